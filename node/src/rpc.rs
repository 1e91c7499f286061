//! Ethereum JSON-RPC (jsonrpsee) over the node, plus `fixpoint_*` methods. Errors follow geth's
//! conventions: -32602 invalid params, 3 "execution reverted" with the revert data, -32000 for
//! pool refusals with geth's messages.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use alloy_consensus::transaction::Recovered;
use alloy_consensus::{Transaction as _, TxEnvelope};
use alloy_primitives::{Address, B256, Bytes, TxKind, U64, U256};
use alloy_rpc_types_eth::state::StateOverride;
use alloy_rpc_types_eth::{
    Block as RpcBlock, BlockNumberOrTag, BlockTransactions, FeeHistory, Filter, Header as RpcHeader, Log as RpcLog,
    Transaction as RpcTransaction, TransactionReceipt, TransactionRequest,
};
use jsonrpsee::RpcModule;
use jsonrpsee::types::{ErrorObjectOwned, Params};
use revm::context::TxEnv;
use revm::context_interface::result::ExecutionResult;
use serde_json::{Value, json};

use alloy_sol_types::SolCall as _;
use fixpoint_precompiles::abi::IInference;

use crate::chain::{Block, Chain, Simulation};
use crate::submit::{Head, Submit, TxRefused};
use crate::trace;
use fixpoint_consensus::Block as ConsensusBlock;
use fixpoint_consensus::{Executed, Sink, SinkError};
use fixpoint_evm::WorldState;

/// Finalized consensus blocks (consecutive heights, oldest first) and the finalization
/// certificate of the last, encoded (docs/consensus.md §followers).
pub type CertifiedBlock = (Vec<Vec<u8>>, Vec<u8>);

/// Where a validator finds finalized blocks with their certificates, to serve followers.
pub trait Finality: Send + Sync + 'static {
    /// Block `height` and its certificate, if this node has them.
    fn certified(&self, height: u64) -> std::pin::Pin<Box<dyn Future<Output = Option<CertifiedBlock>> + Send>>;
}

/// The node as the RPC sees it: its chain, and where transactions go (its mode, a type chosen
/// at startup: [`crate::submit`]).
#[derive(Debug)]
pub struct Node {
    /// The chain: read by queries and validation, written only to move the head.
    pub chain: RwLock<Chain>,
    /// Where admitted transactions go.
    pub(crate) submit: std::sync::OnceLock<Box<dyn Submit>>,
    /// Set on validators: finalized blocks with certificates, for followers.
    finality: std::sync::OnceLock<Arc<dyn Finality>>,
    /// Gas cap of calls over RPC (0: the block gas limit).
    gas_cap: std::sync::atomic::AtomicU64,
    /// Installed filters (crate::filters).
    pub(crate) filters: crate::filters::Filters,
    /// New heads and pending transactions, for filters and subscriptions.
    pub(crate) events: tokio::sync::broadcast::Sender<crate::filters::Event>,
}

impl std::fmt::Debug for dyn Finality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Finality")
    }
}

pub(crate) fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) type RpcResult<T> = Result<T, ErrorObjectOwned>;

pub(crate) fn invalid(msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32602, msg.into(), None::<()>)
}

pub(crate) fn server(msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32000, msg.into(), None::<()>)
}

/// A reverted `fixpoint_infer`: the inference precompile's ABI error, decoded into the message.
fn inference_error(data: &Bytes) -> ErrorObjectOwned {
    use alloy_sol_types::SolInterface as _;
    let what = match IInference::IInferenceErrors::abi_decode(data) {
        Ok(e) => format!("{e:?}"),
        Err(_) => "execution reverted".into(),
    };
    ErrorObjectOwned::owned(3, what, Some(data.to_string()))
}

fn reverted(data: &Bytes) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(3, "execution reverted", Some(data.to_string()))
}

/// Events a slow subscriber may fall behind by before it skips ahead.
const EVENTS_BUFFER: usize = 4096;

impl Node {
    /// A node over `chain`; its mode is set once with [`Node::set_submit`] (the mode's parts may
    /// need the node first, as the sink of their blocks).
    pub fn new(chain: Chain) -> Arc<Self> {
        Arc::new(Self {
            chain: RwLock::new(chain),
            submit: Default::default(),
            finality: Default::default(),
            gas_cap: Default::default(),
            filters: Default::default(),
            events: tokio::sync::broadcast::channel(EVENTS_BUFFER).0,
        })
    }

    /// Sets where transactions go (once, at startup).
    pub fn set_submit(&self, submit: Box<dyn Submit>) {
        let _ = self.submit.set(submit);
    }

    /// Serves `fixpoint_certifiedBlock` from `finality` (validators; set once).
    pub fn set_finality(&self, finality: Arc<dyn Finality>) {
        let _ = self.finality.set(finality);
    }

    /// Transactions pending in this node's mode (0 while starting).
    pub fn pending_count(&self) -> usize {
        self.submit.get().map_or(0, |s| s.pending_count())
    }

    /// The head block's number.
    pub fn head_number(&self) -> u64 {
        read(&self.chain).head().header.number
    }

    fn submitter(&self) -> RpcResult<&dyn Submit> {
        self.submit.get().map(|s| &**s).ok_or_else(|| server("the node is starting"))
    }
}

impl Sink for Node {
    fn finalized(&self, block: &ConsensusBlock, executed: &Executed) -> Result<(), SinkError> {
        let started = std::time::Instant::now();
        let next = read(&self.chain).import(block, executed).map_err(SinkError::new)?;
        if let Some(next) = next {
            let took = started.elapsed();
            crate::metrics::get().finalized(executed, took);
            let h = &next.block.header;
            tracing::info!(
                height = h.number,
                hash = %next.block.hash,
                digest = %alloy_primitives::hex::encode_prefixed(commonware_cryptography::Digestible::digest(block)),
                txs = next.block.txs.len(),
                gas_used = h.gas_used,
                inferences = executed.records.len(),
                built = executed.timing.built,
                execute_ms = executed.timing.execute.as_millis() as u64,
                commit_ms = took.as_millis() as u64,
                "block finalized"
            );
            self.chain.write().unwrap_or_else(PoisonError::into_inner).apply(next);
            if let Some(s) = self.submit.get() {
                s.finalized(&executed.state);
            }
            // No subscriber is not an error.
            let _ = self.events.send(crate::filters::Event::Head(executed.height));
        }
        Ok(())
    }
}

/// Serves `node`'s JSON-RPC over HTTP on `addr` (limits: [`MAX_REQUEST_BYTES`], [`MAX_BATCH`],
/// [`MAX_CONNECTIONS`]; docs/rpc.md); returns the handle and the bound address.
pub async fn serve(
    node: Arc<Node>,
    addr: std::net::SocketAddr,
) -> anyhow::Result<(jsonrpsee::server::ServerHandle, std::net::SocketAddr)> {
    use anyhow::Context as _;
    let config = jsonrpsee::server::ServerConfig::builder()
        .max_request_body_size(MAX_REQUEST_BYTES)
        .max_response_body_size(MAX_RESPONSE_BYTES)
        .max_connections(MAX_CONNECTIONS)
        .set_batch_request_config(jsonrpsee::server::BatchRequestConfig::Limit(MAX_BATCH))
        .set_id_provider(HexIds)
        .build();
    // Browser pages on any origin may call the node (examples/dapp served by a static server):
    // the RPC holds no keys and no admin methods, so CORS only lets a page read the chain and
    // send transactions it signed itself, as anvil allows by default (docs/rpc.md).
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods(tower_http::cors::Any)
        .allow_headers(tower_http::cors::Any);
    let server = jsonrpsee::server::Server::builder()
        .set_config(config)
        .set_http_middleware(tower::ServiceBuilder::new().layer(cors))
        .set_rpc_middleware(jsonrpsee::server::middleware::rpc::RpcServiceBuilder::new().layer_fn(Measured))
        .build(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = server.local_addr()?;
    let module = module(node)?;
    crate::metrics::get().set_rpc_methods(module.method_names().map(str::to_string));
    Ok((server.start(module), bound))
}

/// Subscription ids as Ethereum clients expect them: `0x` and 32 hex digits (jsonrpsee's
/// default is a JSON number).
#[derive(Debug)]
struct HexIds;

impl jsonrpsee::core::traits::IdProvider for HexIds {
    fn next_id(&self) -> jsonrpsee::types::SubscriptionId<'static> {
        jsonrpsee::types::SubscriptionId::Str(format!("0x{:032x}", rand::random::<u128>()).into())
    }
}

/// JSON-RPC middleware counting requests and their latency by method (crate::metrics).
#[derive(Clone)]
struct Measured<S>(S);

impl<S> jsonrpsee::server::middleware::rpc::RpcServiceT for Measured<S>
where
    S: jsonrpsee::server::middleware::rpc::RpcServiceT + Send + Sync + Clone + 'static,
{
    type MethodResponse = S::MethodResponse;
    type NotificationResponse = S::NotificationResponse;
    type BatchResponse = S::BatchResponse;

    fn call<'a>(
        &self,
        request: jsonrpsee::types::Request<'a>,
    ) -> impl Future<Output = Self::MethodResponse> + Send + 'a {
        let service = self.0.clone();
        async move {
            let started = std::time::Instant::now();
            let method = request.method_name().to_string();
            let response = service.call(request).await;
            crate::metrics::get().rpc(&method, started.elapsed());
            response
        }
    }

    fn batch<'a>(
        &self,
        batch: jsonrpsee::core::middleware::Batch<'a>,
    ) -> impl Future<Output = Self::BatchResponse> + Send + 'a {
        let service = self.0.clone();
        async move {
            let started = std::time::Instant::now();
            let response = service.batch(batch).await;
            crate::metrics::get().rpc("batch", started.elapsed());
            response
        }
    }

    fn notification<'a>(
        &self,
        n: jsonrpsee::core::middleware::Notification<'a>,
    ) -> impl Future<Output = Self::NotificationResponse> + Send + 'a {
        self.0.notification(n)
    }
}

/// Resolves a block tag to a number (only the head state is kept, so state queries accept
/// `latest`/`pending`/`safe`/`finalized` or the head's number).
fn block_number(chain: &Chain, tag: Option<BlockNumberOrTag>) -> RpcResult<u64> {
    let head = chain.head().header.number;
    Ok(match tag.unwrap_or(BlockNumberOrTag::Latest) {
        BlockNumberOrTag::Number(n) => n,
        BlockNumberOrTag::Earliest => 0,
        _ => head,
    })
}

/// The state a query names by block tag, number or hash (default `latest`), with its block
/// number; recent blocks' states are kept, older ones are refused.
fn state_for(chain: &Chain, tag: Option<Value>) -> RpcResult<(u64, &WorldState)> {
    let number = match tag {
        None | Some(Value::Null) => chain.head().header.number,
        Some(v) => match serde_json::from_value::<alloy_eips::BlockId>(v) {
            Ok(alloy_eips::BlockId::Number(t)) => block_number(chain, Some(t))?,
            Ok(alloy_eips::BlockId::Hash(h)) => {
                chain.block_by_hash(&h.block_hash).ok_or_else(|| server("unknown block"))?.header.number
            }
            Err(e) => return Err(invalid(format!("invalid block tag: {e}"))),
        },
    };
    if number > chain.head().header.number {
        return Err(server(format!("block {number} does not exist yet")));
    }
    let state = chain.state_at(number).ok_or_else(|| {
        server(format!(
            "historical state not available: this node keeps the state of the last {} blocks",
            crate::chain::RECENT_STATES
        ))
    })?;
    Ok((number, state))
}

fn rpc_tx(b: &Block, i: usize) -> Option<RpcTransaction<TxEnvelope>> {
    let t = b.txs.get(i)?;
    let base = b.header.base_fee_per_gas.unwrap_or(0);
    Some(RpcTransaction {
        inner: t.clone(),
        block_hash: Some(b.hash),
        block_number: Some(b.header.number),
        transaction_index: Some(i as u64),
        effective_gas_price: Some(t.inner().effective_gas_price(Some(base))),
        block_timestamp: Some(b.header.timestamp),
    })
}

/// A pending transaction as the RPC shows it (no block yet).
pub(crate) fn pending_tx(t: &Recovered<TxEnvelope>) -> RpcTransaction<TxEnvelope> {
    RpcTransaction {
        inner: t.clone(),
        block_hash: None,
        block_number: None,
        transaction_index: None,
        effective_gas_price: None,
        block_timestamp: None,
    }
}

/// Log index of the first log of transaction `i` in block `b`.
fn first_log_index(b: &Block, i: usize) -> u64 {
    b.envelopes.iter().take(i).map(|e| e.logs().len() as u64).sum()
}

fn rpc_logs(b: &Block, i: usize) -> Vec<RpcLog> {
    let Some(env) = b.envelopes.get(i) else { return vec![] };
    let start = first_log_index(b, i);
    env.logs()
        .iter()
        .enumerate()
        .map(|(k, l)| RpcLog {
            inner: l.clone(),
            block_hash: Some(b.hash),
            block_number: Some(b.header.number),
            block_timestamp: Some(b.header.timestamp),
            transaction_hash: b.txs.get(i).map(|t| *t.inner().tx_hash()),
            transaction_index: Some(i as u64),
            log_index: Some(start + k as u64),
            removed: false,
        })
        .collect()
}

fn rpc_receipt(b: &Block, i: usize) -> Option<TransactionReceipt> {
    let t = b.txs.get(i)?;
    let r = b.receipts.get(i)?;
    let env = b.envelopes.get(i)?.clone();
    let logs = rpc_logs(b, i);
    let mut it = logs.into_iter();
    let inner = env.map_logs(|_| it.next().unwrap_or_default());
    let base = b.header.base_fee_per_gas.unwrap_or(0);
    Some(TransactionReceipt {
        inner,
        transaction_hash: *t.inner().tx_hash(),
        transaction_index: Some(i as u64),
        block_hash: Some(b.hash),
        block_number: Some(b.header.number),
        gas_used: r.gas_used,
        effective_gas_price: t.inner().effective_gas_price(Some(base)),
        blob_gas_used: None,
        blob_gas_price: None,
        from: t.signer(),
        to: t.inner().to(),
        contract_address: r.contract_address,
    })
}

/// Block `b` as the RPC shows it (with full transactions or their hashes).
pub(crate) fn rpc_block(b: &Block, full: bool) -> RpcBlock<RpcTransaction<TxEnvelope>> {
    let transactions = if full {
        BlockTransactions::Full((0..b.txs.len()).filter_map(|i| rpc_tx(b, i)).collect())
    } else {
        BlockTransactions::Hashes(b.txs.iter().map(|t| *t.inner().tx_hash()).collect())
    };
    let size = alloy_rlp::Encodable::length(&b.header)
        + b.txs.iter().map(|t| alloy_eips::eip2718::Encodable2718::encode_2718_len(t.inner())).sum::<usize>();
    RpcBlock {
        header: RpcHeader {
            hash: b.hash,
            inner: b.header.clone(),
            total_difficulty: Some(U256::ZERO),
            size: Some(U256::from(size)),
        },
        uncles: vec![],
        transactions,
        withdrawals: Some(Default::default()),
    }
}

/// A call request as revm's transaction, its gas within `cap`.
pub(crate) fn tx_env(sim: &Simulation, req: &TransactionRequest, cap: u64) -> TxEnv {
    TxEnv {
        caller: req.from.unwrap_or_default(),
        kind: req.to.unwrap_or(TxKind::Create),
        data: req.input.input().cloned().unwrap_or_default(),
        value: req.value.unwrap_or_default(),
        gas_limit: req.gas.unwrap_or(cap).min(cap),
        chain_id: Some(sim.chain_id()),
        access_list: req.access_list.clone().unwrap_or_default(),
        ..TxEnv::default()
    }
}

pub(crate) fn params_seq(p: &Params<'_>) -> RpcResult<Vec<Value>> {
    if p.is_object() {
        return Err(invalid("positional parameters expected"));
    }
    let v: Option<Vec<Value>> = p.parse().map_err(|e| invalid(e.to_string()))?;
    Ok(v.unwrap_or_default())
}

pub(crate) fn arg<T: serde::de::DeserializeOwned>(v: &[Value], i: usize, name: &str) -> RpcResult<T> {
    let x = v.get(i).cloned().ok_or_else(|| invalid(format!("missing parameter {i} ({name})")))?;
    serde_json::from_value(x).map_err(|e| invalid(format!("invalid {name}: {e}")))
}

pub(crate) fn opt_arg<T: serde::de::DeserializeOwned>(v: &[Value], i: usize, name: &str) -> RpcResult<Option<T>> {
    match v.get(i) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => serde_json::from_value(x.clone()).map(Some).map_err(|e| invalid(format!("invalid {name}: {e}"))),
    }
}

/// Where a call runs (a snapshot, [`Chain::simulation`]) and the most gas it may use.
pub(crate) struct At {
    pub(crate) sim: Simulation,
    pub(crate) cap: u64,
}

impl Node {
    /// The most gas a call over RPC may use (`--rpc-gas-cap`; the block gas limit by default).
    pub fn gas_cap(&self, chain: &Chain) -> u64 {
        match self.gas_cap.load(std::sync::atomic::Ordering::Relaxed) {
            0 => chain.gas_limit,
            cap => cap,
        }
    }

    /// Sets the gas cap of calls over RPC (0: the block gas limit).
    pub fn set_gas_cap(&self, cap: u64) {
        self.gas_cap.store(cap, std::sync::atomic::Ordering::Relaxed);
    }

    /// A snapshot to run calls on, taken under the chain's read lock (which is released before
    /// anything runs), for the block `tag` names (default `latest`).
    pub(crate) fn at(&self, tag: Option<Value>, overrides: Option<&StateOverride>) -> RpcResult<At> {
        let chain = read(&self.chain);
        let (number, _) = state_for(&chain, tag)?;
        let sim = chain.simulation(number, overrides).map_err(server)?;
        Ok(At { sim, cap: self.gas_cap(&chain) })
    }
}

fn call(at: &At, req: &TransactionRequest) -> RpcResult<(ExecutionResult, Vec<fixpoint_precompiles::InferenceRecord>)> {
    at.sim.run(tx_env(&at.sim, req, at.cap)).map_err(server)
}

fn estimate(at: &At, req: &TransactionRequest) -> RpcResult<u64> {
    let mut r = req.clone();
    r.gas = Some(req.gas.unwrap_or(at.cap).min(at.cap));
    let (res, _) = call(at, &r)?;
    match res {
        ExecutionResult::Success { .. } => {}
        ExecutionResult::Revert { output, .. } => return Err(reverted(&output)),
        ExecutionResult::Halt { reason, .. } => return Err(server(format!("execution failed: {reason:?}"))),
    }
    // `lo` always fails (below any intrinsic gas), `hi` always succeeds.
    let (mut lo, mut hi) = (20_999u64, r.gas.unwrap_or(at.cap));
    while lo + 1 < hi {
        let mid = lo + (hi - lo) / 2;
        r.gas = Some(mid);
        match call(at, &r).map(|(x, _)| x.is_success()) {
            Ok(true) => hi = mid,
            _ => lo = mid,
        }
    }
    Ok(hi)
}

/// Most logs one `eth_getLogs` answers.
pub const MAX_LOGS: usize = 10_000;
/// Widest block range of one `eth_getLogs`.
pub const MAX_LOG_RANGE: u64 = 10_000;
/// Most storage keys of one `eth_getProof`.
pub const MAX_PROOF_KEYS: usize = 256;
/// Largest request body, bytes (a chunked model upload fits).
pub const MAX_REQUEST_BYTES: u32 = 8 << 20;
/// Largest response body, bytes.
pub const MAX_RESPONSE_BYTES: u32 = 64 << 20;
/// Most requests in one JSON-RPC batch.
pub const MAX_BATCH: u32 = 100;
/// Most simultaneous connections.
pub const MAX_CONNECTIONS: u32 = 256;

/// Every log of block `b`, in order.
pub(crate) fn block_logs(b: &Block) -> Vec<RpcLog> {
    (0..b.txs.len()).flat_map(|i| rpc_logs(b, i)).collect()
}

/// The blocks filter `f` covers on `chain` (its block hash, or its range with tags resolved
/// against the head), refused if wider than [`MAX_LOG_RANGE`].
pub(crate) fn log_range(chain: &Chain, f: &Filter) -> RpcResult<(u64, u64)> {
    let head = chain.head().header.number;
    let (from, to) = if let Some(h) = f.get_block_hash() {
        let b = chain.block_by_hash(&h).ok_or_else(|| server("unknown block"))?;
        (b.header.number, b.header.number)
    } else {
        let resolve = |t: Option<BlockNumberOrTag>, d: u64| match t {
            Some(BlockNumberOrTag::Number(n)) => n,
            Some(BlockNumberOrTag::Earliest) => 0,
            Some(_) => head,
            None => d,
        };
        (
            resolve(
                f.get_from_block().map(BlockNumberOrTag::Number).or(f.block_option.get_from_block().copied()),
                head,
            ),
            resolve(f.block_option.get_to_block().copied(), head),
        )
    };
    if to.saturating_sub(from) > MAX_LOG_RANGE {
        return Err(server(format!("query exceeds max block range {MAX_LOG_RANGE}")));
    }
    Ok((from, to.min(head)))
}

fn logs(chain: &Chain, f: &Filter) -> RpcResult<Vec<RpcLog>> {
    let (from, to) = log_range(chain, f)?;
    let mut out = Vec::new();
    for n in from..=to {
        let Some(b) = chain.block(n) else { continue };
        out.extend(block_logs(b).into_iter().filter(|l| f.matches(&l.inner)));
        if out.len() > MAX_LOGS {
            return Err(server(format!("query returned more than {MAX_LOGS} results")));
        }
    }
    Ok(out)
}

/// The RPC module over `node`.
pub fn module(node: Arc<Node>) -> Result<RpcModule<Arc<Node>>, jsonrpsee::core::RegisterMethodError> {
    let mut m = RpcModule::new(node);
    crate::debug::register(&mut m)?;
    m.register_method("web3_clientVersion", |_, _, _| {
        RpcResult::Ok(format!("fixpoint/v{}", env!("CARGO_PKG_VERSION")))
    })?;
    m.register_method("net_version", |_, n, _| RpcResult::Ok(read(&n.chain).spec.chain_id.to_string()))?;
    m.register_method("net_listening", |_, _, _| RpcResult::Ok(true))?;
    m.register_method("eth_chainId", |_, n, _| RpcResult::Ok(U64::from(read(&n.chain).spec.chain_id)))?;
    m.register_method("eth_syncing", |_, _, _| RpcResult::Ok(false))?;
    m.register_method("eth_accounts", |_, _, _| RpcResult::Ok(Vec::<Address>::new()))?;
    m.register_method("eth_blockNumber", |_, n, _| RpcResult::Ok(U64::from(read(&n.chain).head().header.number)))?;
    m.register_method("eth_gasPrice", |_, n, _| {
        RpcResult::Ok(U256::from(read(&n.chain).next_base_fee()) + U256::from(1_000_000_000u64))
    })?;
    m.register_method("eth_maxPriorityFeePerGas", |_, _, _| RpcResult::Ok(U256::from(1_000_000_000u64)))?;
    m.register_method("eth_feeHistory", |p, n, _| {
        let v = params_seq(&p)?;
        let count: U64 = arg(&v, 0, "blockCount")?;
        let newest: BlockNumberOrTag = arg(&v, 1, "newestBlock")?;
        let percentiles: Option<Vec<f64>> = opt_arg(&v, 2, "rewardPercentiles")?;
        let chain = read(&n.chain);
        let newest = block_number(&chain, Some(newest))?.min(chain.head().header.number);
        let count = count.to::<u64>().clamp(1, 1024).min(newest + 1);
        let oldest = newest + 1 - count;
        let mut base = Vec::new();
        let mut ratio = Vec::new();
        let bps =
            percentiles.as_deref().map(crate::fees::basis_points).transpose().map_err(|e| invalid(e.to_string()))?;
        let mut rewards = Vec::new();
        for b in (oldest..=newest).filter_map(|i| chain.block(i)) {
            rewards.extend(bps.as_deref().map(|bps| crate::fees::rewards(b, bps)));
            base.push(u128::from(b.header.base_fee_per_gas.unwrap_or(0)));
            ratio.push(b.header.gas_used as f64 / b.header.gas_limit.max(1) as f64);
        }
        base.push(u128::from(chain.next_base_fee()));
        let reward = bps.map(|_| rewards);
        RpcResult::Ok(FeeHistory {
            oldest_block: oldest,
            base_fee_per_gas: base,
            gas_used_ratio: ratio,
            reward,
            base_fee_per_blob_gas: vec![],
            blob_gas_used_ratio: vec![],
        })
    })?;
    m.register_method("eth_getBalance", |p, n, _| {
        let v = params_seq(&p)?;
        let a: Address = arg(&v, 0, "address")?;
        let chain = read(&n.chain);
        let (_, st) = state_for(&chain, v.get(1).cloned())?;
        RpcResult::Ok(st.balance(&a))
    })?;
    m.register_method("eth_getTransactionCount", |p, n, _| {
        let v = params_seq(&p)?;
        let a: Address = arg(&v, 0, "address")?;
        if v.get(1).and_then(Value::as_str) == Some("pending") {
            let head = Head::of(&read(&n.chain));
            return RpcResult::Ok(U64::from(n.submitter()?.pending_nonce(&head, &a)));
        }
        let chain = read(&n.chain);
        let (_, st) = state_for(&chain, v.get(1).cloned())?;
        RpcResult::Ok(U64::from(st.nonce(&a)))
    })?;
    m.register_method("eth_getCode", |p, n, _| {
        let v = params_seq(&p)?;
        let a: Address = arg(&v, 0, "address")?;
        let chain = read(&n.chain);
        let (_, st) = state_for(&chain, v.get(1).cloned())?;
        RpcResult::Ok(st.code(&a))
    })?;
    m.register_method("eth_getStorageAt", |p, n, _| {
        let v = params_seq(&p)?;
        let a: Address = arg(&v, 0, "address")?;
        let slot: U256 = arg(&v, 1, "slot")?;
        let chain = read(&n.chain);
        let (_, st) = state_for(&chain, v.get(2).cloned())?;
        let val = st.storage(&a, &slot);
        RpcResult::Ok(B256::from(val.to_be_bytes::<32>()))
    })?;
    m.register_blocking_method("eth_getProof", |p, n, _| {
        let v = params_seq(&p)?;
        let a: Address = arg(&v, 0, "address")?;
        let keys: Vec<B256> = opt_arg(&v, 1, "storageKeys")?.unwrap_or_default();
        if keys.len() > MAX_PROOF_KEYS {
            return Err(invalid(format!("at most {MAX_PROOF_KEYS} storage keys")));
        }
        let st = {
            let chain = read(&n.chain);
            state_for(&chain, v.get(2).cloned())?.1.clone()
        };
        let p = crate::proof::prove(&st, a, &keys);
        RpcResult::Ok(json!({
            "address": p.address,
            "balance": p.account.balance,
            "codeHash": p.account.code_hash,
            "nonce": U64::from(p.account.nonce),
            "storageHash": p.account.storage_root,
            "accountProof": p.proof,
            "storageProof": p.storage.iter().map(|s| json!({ "key": s.key, "value": s.value, "proof": s.proof })).collect::<Vec<_>>(),
        }))
    })?;
    m.register_blocking_method("eth_call", |p, n, _| {
        let v = params_seq(&p)?;
        let req: TransactionRequest = arg(&v, 0, "transaction")?;
        let overrides: Option<StateOverride> = opt_arg(&v, 2, "state overrides")?;
        let at = n.at(v.get(1).cloned(), overrides.as_ref())?;
        match call(&at, &req)?.0 {
            ExecutionResult::Success { output, .. } => RpcResult::Ok(output.into_data()),
            ExecutionResult::Revert { output, .. } => Err(reverted(&output)),
            ExecutionResult::Halt { reason, .. } => Err(server(format!("execution failed: {reason:?}"))),
        }
    })?;
    m.register_blocking_method("eth_estimateGas", |p, n, _| {
        let v = params_seq(&p)?;
        let req: TransactionRequest = arg(&v, 0, "transaction")?;
        let overrides: Option<StateOverride> = opt_arg(&v, 2, "state overrides")?;
        let at = n.at(v.get(1).cloned(), overrides.as_ref())?;
        RpcResult::Ok(U64::from(estimate(&at, &req)?))
    })?;
    m.register_blocking_method("eth_sendRawTransaction", |p, n, _| {
        let v = params_seq(&p)?;
        let raw: Bytes = arg(&v, 0, "data")?;
        send_raw(&n, raw).map_err(|e| {
            crate::metrics::get().refused(e.reason());
            tracing::info!(reason = e.reason(), error = %e, "transaction refused");
            server(e.to_string())
        })
    })?;
    m.register_async_method("fixpoint_certifiedBlock", |p, n, _| async move {
        let v = params_seq(&p)?;
        let height: U64 = arg(&v, 0, "height")?;
        let Some(f) = n.finality.get().cloned() else {
            return Err(server("this node does not serve certified blocks (only validators do)"));
        };
        RpcResult::Ok(f.certified(height.to()).await.map(|(blocks, certificate)| {
            let blocks: Vec<Bytes> = blocks.into_iter().map(Bytes::from).collect();
            json!({ "blocks": blocks, "certificate": Bytes::from(certificate) })
        }))
    })?;
    m.register_method("eth_getTransactionByHash", |p, n, _| {
        let v = params_seq(&p)?;
        let h: B256 = arg(&v, 0, "hash")?;
        if let Some(t) = read(&n.chain).locate(&h).and_then(|(b, i)| rpc_tx(b, i)) {
            return RpcResult::Ok(Some(t));
        }
        RpcResult::Ok(n.submitter()?.pending_tx(&h).as_ref().map(pending_tx))
    })?;
    m.register_method("eth_getTransactionReceipt", |p, n, _| {
        let v = params_seq(&p)?;
        let h: B256 = arg(&v, 0, "hash")?;
        let chain = read(&n.chain);
        RpcResult::Ok(chain.locate(&h).and_then(|(b, i)| rpc_receipt(b, i)))
    })?;
    m.register_method("eth_getBlockByNumber", |p, n, _| {
        let v = params_seq(&p)?;
        let tag: BlockNumberOrTag = arg(&v, 0, "block")?;
        let full: bool = opt_arg(&v, 1, "full")?.unwrap_or(false);
        let chain = read(&n.chain);
        let num = block_number(&chain, Some(tag))?;
        RpcResult::Ok(chain.block(num).map(|b| rpc_block(b, full)))
    })?;
    m.register_method("eth_getBlockByHash", |p, n, _| {
        let v = params_seq(&p)?;
        let h: B256 = arg(&v, 0, "hash")?;
        let full: bool = opt_arg(&v, 1, "full")?.unwrap_or(false);
        let chain = read(&n.chain);
        RpcResult::Ok(chain.block_by_hash(&h).map(|b| rpc_block(b, full)))
    })?;
    m.register_method("eth_getLogs", |p, n, _| {
        let v = params_seq(&p)?;
        let f: Filter = arg(&v, 0, "filter")?;
        let chain = read(&n.chain);
        logs(&chain, &f)
    })?;
    // fixpoint methods.
    m.register_method("fixpoint_listModels", |_, n, _| {
        let chain = read(&n.chain);
        RpcResult::Ok(chain.models.ids())
    })?;
    m.register_method("fixpoint_modelInfo", |p, n, _| {
        let v = params_seq(&p)?;
        let id: B256 = arg(&v, 0, "modelId")?;
        let chain = read(&n.chain);
        let word = |slot| chain.state.storage(&fixpoint_precompiles::REGISTRY_ADDRESS, &slot);
        let Some(r) = fixpoint_precompiles::state::model_info(id, word) else {
            return RpcResult::Ok(Value::Null);
        };
        RpcResult::Ok(json!({
            "modelId": id, "owner": r.owner, "size": r.size, "registeredAt": r.registered_at, "macs": r.macs,
            "elemOps": r.elem_ops, "bytesRead": r.bytes_read, "peakActivationBytes": r.peak_activation_bytes,
            "inputBytes": r.input_bytes, "outputBytes": r.output_bytes, "warmGas": r.warm_gas,
        }))
    })?;
    m.register_blocking_method("fixpoint_infer", |p, n, _| {
        let v = params_seq(&p)?;
        let id: B256 = arg(&v, 0, "modelId")?;
        let input: Bytes = arg(&v, 1, "input")?;
        let gas: Option<U64> = opt_arg(&v, 2, "gas")?;
        // The inference precompile's own metered path, as an eth_call from the zero address:
        // the gas cap bounds the work like any call's (docs/rpc.md).
        let at = n.at(None, None)?;
        let req = TransactionRequest {
            to: Some(TxKind::Call(fixpoint_precompiles::INFERENCE_ADDRESS)),
            input: Bytes::from(IInference::inferCall { modelId: id, input }.abi_encode()).into(),
            gas: gas.map(|g| g.to()),
            ..Default::default()
        };
        match call(&at, &req)?.0 {
            ExecutionResult::Success { output, .. } => IInference::inferCall::abi_decode_returns(output.data())
                .map_err(|e| server(format!("undecodable inference output: {e}"))),
            ExecutionResult::Revert { output, .. } => Err(inference_error(&output)),
            ExecutionResult::Halt { reason, .. } => Err(server(format!("execution failed: {reason:?}"))),
        }
    })?;
    m.register_blocking_method("fixpoint_traceInference", |p, n, _| {
        let v = params_seq(&p)?;
        let target: Value = arg(&v, 0, "target")?;
        let target = if target.get("tx").is_some() {
            TraceTarget::Recorded(arg(&v, 0, "target {tx, call}")?)
        } else if target.get("model").is_some() {
            TraceTarget::Model(arg(&v, 0, "target {model, input, block}")?)
        } else {
            return Err(invalid("target: {\"tx\", \"call\"} or {\"model\", \"input\", \"block\"}"));
        };
        let full = opt_arg::<TraceOptions>(&v, 1, "options")?.is_some_and(|o| o.full);
        let traced = match target {
            TraceTarget::Recorded(ByTx { tx, call }) => {
                // Snapshot under the lock, replay without it.
                let (replay, models, spec) = {
                    let chain = read(&n.chain);
                    (trace::Replay::of(&chain, tx, call.unwrap_or(0)), chain.models.clone(), chain.spec)
                };
                replay.and_then(|r| trace::trace_recorded(r, &models, &spec, full))
            }
            TraceTarget::Model(ByModel { model, input, block }) => {
                let models = {
                    let chain = read(&n.chain);
                    let (num, state) = state_for(&chain, block)?;
                    let word = |slot| state.storage(&fixpoint_precompiles::REGISTRY_ADDRESS, &slot);
                    if fixpoint_precompiles::state::model_info(model, word).is_none() {
                        return Err(invalid(format!("model {model} is not registered at block {num}")));
                    }
                    chain.models.clone()
                };
                trace::trace_model(&models, model, &input, full)
            }
        };
        traced.map_err(|e| match e {
            trace::TraceError::StateGone(_) | trace::TraceError::Replay { .. } => server(e.to_string()),
            _ => invalid(e.to_string()),
        })
    })?;
    m.register_method("fixpoint_inferenceRecords", |p, n, _| {
        let v = params_seq(&p)?;
        let tag: BlockNumberOrTag = arg(&v, 0, "block")?;
        let chain = read(&n.chain);
        let num = block_number(&chain, Some(tag))?;
        let Some(b) = chain.block(num) else { return RpcResult::Ok(Value::Null) };
        RpcResult::Ok(json!({ "blockNumber": num, "blockHash": b.hash, "recordsRoot": Bytes::from(b.header.extra_data.to_vec()), "records": records_json(b, None) }))
    })?;
    m.register_method("fixpoint_transactionRecords", |p, n, _| {
        let v = params_seq(&p)?;
        let h: B256 = arg(&v, 0, "hash")?;
        let chain = read(&n.chain);
        let Some((b, i)) = chain.locate(&h) else { return RpcResult::Ok(Value::Null) };
        RpcResult::Ok(records_json(b, Some(i as u32)))
    })?;
    crate::filters::register(&mut m)?;
    crate::txpool::register(&mut m)?;
    Ok(m)
}

/// Admits a raw transaction (`eth_sendRawTransaction`): its hash, or why it is refused.
fn send_raw(n: &Node, raw: Bytes) -> Result<B256, TxRefused> {
    // Decode and recover the sender before taking any lock: it is the costly part.
    let tx = crate::submit::decode(raw)?;
    let hash = tx.hash();
    let head = {
        let chain = read(&n.chain);
        if chain.tx_index.contains_key(&hash) {
            return Err(TxRefused::Known);
        }
        Head::of(&chain)
    };
    let (max_fee, base_fee) = (tx.tx.inner().max_fee_per_gas(), u128::from(head.env.base_fee));
    if max_fee < base_fee {
        return Err(TxRefused::FeeTooLow { max_fee, base_fee });
    }
    // Without the chain's lock: the mode takes the consensus node's locks.
    let submit = n.submit.get().ok_or(TxRefused::Starting)?;
    if let Err(e) = submit.submit(&head, tx) {
        // Included since the check above (its nonce is used now): known, as geth says.
        let known = read(&n.chain).tx_index.contains_key(&hash);
        return Err(if known { TxRefused::Known } else { e });
    }
    n.filters.pending(hash);
    let _ = n.events.send(crate::filters::Event::Pending(hash));
    Ok(hash)
}

/// What `fixpoint_traceInference` traces (docs/rpc.md §Traces).
enum TraceTarget {
    Recorded(ByTx),
    Model(ByModel),
}

/// Call `call` (default 0) of transaction `tx`, as recorded.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ByTx {
    tx: B256,
    call: Option<u32>,
}

/// `model` on `input` as registered at `block` (default latest).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ByModel {
    model: B256,
    input: Bytes,
    block: Option<Value>,
}

/// `fixpoint_traceInference` options.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TraceOptions {
    /// List every op's values, not only small tensors'.
    #[serde(default)]
    full: bool,
}

fn records_json(b: &Block, tx: Option<u32>) -> Value {
    Value::Array(
        b.records
            .iter()
            .filter(|r| tx.is_none_or(|t| t == r.tx_index))
            .map(|r| {
                json!({
                    "txIndex": r.tx_index, "callIndex": r.call_index, "modelId": r.model_id,
                    "inputHash": r.input_hash, "outputHash": r.output_hash, "gasUsed": r.gas_used,
                    "txHash": b.txs.get(r.tx_index as usize).map(|t| *t.inner().tx_hash()),
                })
            })
            .collect(),
    )
}
