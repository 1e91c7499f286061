//! What a request names: a block by tag, number or hash resolved against the chain, the state a
//! query reads, the snapshot a call runs on (with its gas cap), and the blocks a log filter
//! covers. Shared by the `eth`, `debug`, `fixpoint` namespaces and the filters.

use alloy_eips::BlockId;
use alloy_primitives::TxKind;
use alloy_rpc_types_eth::state::StateOverride;
use alloy_rpc_types_eth::{BlockNumberOrTag, Filter, Log as RpcLog, TransactionRequest};
use revm::context::TxEnv;
use revm::context_interface::result::ExecutionResult;

use super::convert::block_logs;
use super::{MAX_LOG_RANGE, MAX_LOGS, Node, RpcResult, reverted, server};
use crate::chain::{Chain, Simulation};
use fixpoint_evm::WorldState;

/// Resolves a block tag to a number: `earliest` is 0, `latest`/`pending`/`safe`/`finalized` the
/// head (blocks are final when they are made).
pub(crate) fn block_number(chain: &Chain, tag: Option<BlockNumberOrTag>) -> u64 {
    let head = chain.head().header.number;
    match tag.unwrap_or(BlockNumberOrTag::Latest) {
        BlockNumberOrTag::Number(n) => n,
        BlockNumberOrTag::Earliest => 0,
        _ => head,
    }
}

/// The state a query names by block tag, number or hash (default `latest`), with its block
/// number; recent blocks' states are kept, older ones are refused.
pub(crate) fn state_for(chain: &Chain, block: Option<BlockId>) -> RpcResult<(u64, &WorldState)> {
    let number = match block {
        None => chain.head().header.number,
        Some(BlockId::Number(t)) => block_number(chain, Some(t)),
        Some(BlockId::Hash(h)) => {
            chain.block_by_hash(&h.block_hash).ok_or_else(|| server("unknown block"))?.header.number
        }
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
    /// anything runs), for the block `block` names (default `latest`).
    pub(crate) fn at(&self, block: Option<BlockId>, overrides: Option<&StateOverride>) -> RpcResult<At> {
        let chain = self.chain();
        let (number, _) = state_for(&chain, block)?;
        let sim = chain.simulation(number, overrides).map_err(|e| server(e.to_string()))?;
        Ok(At { sim, cap: self.gas_cap(&chain) })
    }
}

/// Runs `req` on `at`: the result and the inferences it made.
pub(crate) fn call(
    at: &At,
    req: &TransactionRequest,
) -> RpcResult<(ExecutionResult, Vec<fixpoint_precompiles::InferenceRecord>)> {
    at.sim.run(tx_env(&at.sim, req, at.cap)).map_err(|e| server(e.to_string()))
}

/// The least gas `req` succeeds with on `at` (geth's binary search).
pub(crate) fn estimate(at: &At, req: &TransactionRequest) -> RpcResult<u64> {
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

/// The logs of `chain` that `f` matches, within [`MAX_LOG_RANGE`] blocks and [`MAX_LOGS`] results.
pub(crate) fn logs(chain: &Chain, f: &Filter) -> RpcResult<Vec<RpcLog>> {
    let (from, to) = log_range(chain, f)?;
    let mut out = Vec::new();
    for n in from..=to {
        let Some(b) = chain.block(n) else { continue };
        out.extend(block_logs(&b).into_iter().filter(|l| f.matches(&l.inner)));
        if out.len() > MAX_LOGS {
            return Err(server(format!("query returned more than {MAX_LOGS} results")));
        }
    }
    Ok(out)
}
