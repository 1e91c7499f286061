//! The node's JSON-RPC (jsonrpsee, HTTP and WebSocket on one port): one file per namespace, each
//! a typed `#[rpc(server)]` trait (`eth`, its filters and subscriptions, `net`, `web3`, `txpool`,
//! `debug`, `fixpoint`), merged into one module over the [`Node`]. Errors follow geth's
//! conventions: -32602 invalid params, 3 "execution reverted" with the revert data, -32000 for
//! pool refusals with geth's messages (docs/rpc.md).

pub mod convert;
pub mod debug;
pub mod eth;
pub mod filter;
pub mod fixpoint;
pub mod net;
pub mod pubsub;
pub mod query;
pub mod txpool;
pub mod web3;

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use alloy_primitives::{B256, Bytes};
use jsonrpsee::RpcModule;
use jsonrpsee::types::ErrorObjectOwned;

use fixpoint_consensus::Block as ConsensusBlock;
use fixpoint_consensus::{Executed, Sink, SinkError};
use fixpoint_precompiles::abi::IInference;

use crate::chain::Chain;
use crate::submit::Submit;

/// Something that happened on the node, for filters and subscriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Block `number` is the new head.
    Head(u64),
    /// A transaction entered this node's mempool.
    Pending(B256),
}

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
    /// The chain's current version: a query takes it ([`Node::chain`]) and works on it without
    /// a lock; finalization swaps in the next version, never waiting behind a query.
    chain: RwLock<Arc<Chain>>,
    /// Held while a finalized block is imported and swapped in (one writer at a time).
    importing: Mutex<()>,
    /// Where admitted transactions go.
    pub(crate) submit: std::sync::OnceLock<Box<dyn Submit>>,
    /// Set on validators: finalized blocks with certificates, for followers.
    finality: std::sync::OnceLock<Arc<dyn Finality>>,
    /// Gas cap of calls over RPC (0: the block gas limit).
    gas_cap: std::sync::atomic::AtomicU64,
    /// Installed filters (crate::filters).
    pub(crate) filters: filter::Filters,
    /// New heads and pending transactions, for filters and subscriptions.
    pub(crate) events: tokio::sync::broadcast::Sender<Event>,
    /// The highest finalized height this node knows of elsewhere (a follower's upstream), if any.
    highest_known: std::sync::atomic::AtomicU64,
    /// The head when this node started.
    started_at: u64,
}

impl std::fmt::Debug for dyn Finality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Finality")
    }
}

/// What a method answers.
pub(crate) type RpcResult<T> = Result<T, ErrorObjectOwned>;

/// Invalid params (-32602).
pub(crate) fn invalid(msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32602, msg.into(), None::<()>)
}

/// A server error (-32000), geth's code for refusals and failed queries.
pub(crate) fn server(msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32000, msg.into(), None::<()>)
}

/// A reverted `fixpoint_infer`: the inference precompile's ABI error, decoded into the message.
pub(crate) fn inference_error(data: &Bytes) -> ErrorObjectOwned {
    use alloy_sol_types::SolInterface as _;
    let what = match IInference::IInferenceErrors::abi_decode(data) {
        Ok(e) => format!("{e:?}"),
        Err(_) => "execution reverted".into(),
    };
    ErrorObjectOwned::owned(3, what, Some(data.to_string()))
}

/// geth's answer to a reverted call: code 3 with the revert data.
pub(crate) fn reverted(data: &Bytes) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(3, "execution reverted", Some(data.to_string()))
}

/// Events a slow subscriber may fall behind by before it skips ahead.
const EVENTS_BUFFER: usize = 4096;

impl Node {
    /// A node over `chain`; its mode is set once with [`Node::set_submit`] (the mode's parts may
    /// need the node first, as the sink of their blocks).
    pub fn new(chain: Chain) -> Arc<Self> {
        let started_at = chain.head().header.number;
        Arc::new(Self {
            highest_known: Default::default(),
            started_at,
            chain: RwLock::new(Arc::new(chain)),
            importing: Mutex::new(()),
            submit: Default::default(),
            finality: Default::default(),
            gas_cap: Default::default(),
            filters: Default::default(),
            events: tokio::sync::broadcast::channel(EVENTS_BUFFER).0,
        })
    }

    /// The chain as it is now: an immutable version (O(1) to take, the lock held only to clone
    /// an `Arc`), which later blocks do not change.
    pub fn chain(&self) -> Arc<Chain> {
        self.chain.read().unwrap_or_else(PoisonError::into_inner).clone()
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
        self.chain().head().header.number
    }

    /// Records the highest finalized height known elsewhere (a follower's upstream head).
    pub fn saw_height(&self, height: u64) {
        self.highest_known.fetch_max(height, std::sync::atomic::Ordering::Relaxed);
    }

    /// `eth_syncing`: how far this node is behind the highest height it knows of, or `false`
    /// once its head reached it (always `false` on a dev node and a validator, whose head is
    /// what they finalize).
    pub fn sync_status(&self) -> alloy_rpc_types_eth::SyncStatus {
        use alloy_primitives::U256;
        let (current, highest) = (self.head_number(), self.highest_known.load(std::sync::atomic::Ordering::Relaxed));
        if highest <= current {
            return alloy_rpc_types_eth::SyncStatus::None;
        }
        alloy_rpc_types_eth::SyncStatus::Info(Box::new(alloy_rpc_types_eth::SyncInfo {
            starting_block: U256::from(self.started_at),
            current_block: U256::from(current),
            highest_block: U256::from(highest),
            warp_chunks_amount: None,
            warp_chunks_processed: None,
            stages: None,
        }))
    }

    fn submitter(&self) -> RpcResult<&dyn Submit> {
        self.submit.get().map(|s| &**s).ok_or_else(|| server("the node is starting"))
    }
}

impl Sink for Node {
    fn finalized(&self, block: &ConsensusBlock, executed: &Executed) -> Result<(), SinkError> {
        let _importing = self.importing.lock().unwrap_or_else(PoisonError::into_inner);
        let started = std::time::Instant::now();
        let chain = self.chain();
        let next = chain.import(block, executed).map_err(SinkError::new)?;
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
            let mut version = Chain::clone(&chain);
            version.apply(next);
            *self.chain.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(version);
            if let Some(s) = self.submit.get() {
                s.finalized(&executed.state);
            }
            // No subscriber is not an error.
            let _ = self.events.send(Event::Head(executed.height));
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

/// The RPC module over `node`: every namespace merged.
pub fn module(node: Arc<Node>) -> Result<RpcModule<()>, jsonrpsee::core::RegisterMethodError> {
    use debug::DebugApiServer as _;
    use eth::EthApiServer as _;
    use filter::EthFilterApiServer as _;
    use fixpoint::FixpointApiServer as _;
    use net::NetApiServer as _;
    use pubsub::EthPubSubApiServer as _;
    use txpool::TxpoolApiServer as _;
    use web3::Web3ApiServer as _;
    let mut m = RpcModule::new(());
    m.merge(eth::EthRpc(node.clone()).into_rpc())?;
    m.merge(filter::EthFilterRpc(node.clone()).into_rpc())?;
    m.merge(pubsub::EthPubSubRpc(node.clone()).into_rpc())?;
    m.merge(net::NetRpc(node.clone()).into_rpc())?;
    m.merge(web3::Web3Rpc.into_rpc())?;
    m.merge(txpool::TxpoolRpc(node.clone()).into_rpc())?;
    m.merge(debug::DebugRpc(node.clone()).into_rpc())?;
    m.merge(fixpoint::FixpointRpc(node).into_rpc())?;
    Ok(m)
}
