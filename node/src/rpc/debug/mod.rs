//! The `debug` namespace: `debug_traceTransaction` and `debug_traceCall` with geth's default
//! struct logger and its `callTracer` (formats and options in docs/rpc.md §debug). A mined
//! transaction is traced by replaying its block over the parent state (one of the recent states
//! the node keeps): the transactions before it without an inspector, exactly as the block was
//! executed, then the traced one with it. The replay must reproduce the receipt's status and gas.

pub mod call;
pub mod struct_log;

use std::sync::Arc;

use alloy_consensus::Transaction as _;
use alloy_eips::BlockId;
use alloy_primitives::{B256, Bytes, U256};
use alloy_rpc_types_eth::TransactionRequest;
use alloy_rpc_types_eth::state::StateOverride;
use fixpoint_evm::{ExecError, inspect_last_in};
use fixpoint_precompiles::Scope;
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::types::ErrorObjectOwned;
use revm::context_interface::result::ExecutionResult;
use serde::Deserialize;
use serde_json::Value;

use super::query::tx_env;
use super::{Node, RpcResult, invalid, server};
use crate::chain::{RECENT_STATES, SimError};
use call::{CallConfig, CallTracer};
use struct_log::{LogConfig, StructLogResult, StructLogger};

/// Why a trace cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum DebugError {
    /// The transaction is not in this node's chain.
    #[error("transaction {0} not found")]
    UnknownTx(B256),
    /// The state before the transaction's block is no longer kept.
    #[error(
        "historical state not available: tracing a transaction of block {0} needs the state of block {parent}, and this node keeps the state of the last {RECENT_STATES} blocks",
        parent = .0.saturating_sub(1)
    )]
    StateGone(u64),
    /// Replaying the block failed or did not reproduce it (this node's data is inconsistent).
    #[error("replaying the block did not reproduce transaction {tx}: {why}")]
    Replay {
        /// Transaction hash.
        tx: B256,
        /// What went wrong.
        why: String,
    },
    /// A tracer this node does not have.
    #[error("tracer {0:?} is not supported: use \"callTracer\" or omit `tracer` for the struct logger")]
    UnknownTracer(String),
    /// Options that do not parse.
    #[error("invalid tracer options: {0}")]
    Options(String),
    /// The call could not run (its state is gone, an override is refused, or revm refused it).
    #[error(transparent)]
    Sim(#[from] SimError),
    /// The tracer's result could not be made.
    #[error("{0}")]
    Call(String),
    /// The struct log outgrew its cap.
    #[error("the trace has more than {} entries: pass a `limit`, or use the callTracer", struct_log::MAX_STRUCT_LOGS)]
    TooLarge,
}

impl From<DebugError> for ErrorObjectOwned {
    fn from(e: DebugError) -> Self {
        match e {
            DebugError::UnknownTracer(_) | DebugError::Options(_) => invalid(e.to_string()),
            _ => server(e.to_string()),
        }
    }
}

/// geth's trace options: `tracer`, `tracerConfig`, the struct logger's flags; and, for
/// `debug_traceCall`, `stateOverrides`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceOptions {
    tracer: Option<String>,
    tracer_config: Option<Value>,
    #[serde(flatten)]
    log: LogConfig,
    state_overrides: Option<StateOverride>,
}

/// The tracer the options chose.
enum Tracer {
    Struct(StructLogger),
    Call(CallTracer),
}

impl Tracer {
    fn of(o: &TraceOptions) -> Result<Self, DebugError> {
        match o.tracer.as_deref() {
            None | Some("") | Some("structLogger") => Ok(Self::Struct(StructLogger::new(o.log))),
            Some("callTracer") => {
                let config: CallConfig = match &o.tracer_config {
                    None | Some(Value::Null) => CallConfig::default(),
                    Some(v) => serde_json::from_value(v.clone()).map_err(|e| DebugError::Options(e.to_string()))?,
                };
                Ok(Self::Call(CallTracer::new(config)))
            }
            Some(other) => Err(DebugError::UnknownTracer(other.to_string())),
        }
    }
}

/// What a finished execution contributes to a trace's top level.
struct Ran {
    success: bool,
    gas_used: u64,
    gas_limit: u64,
    output: Bytes,
}

/// The JSON result of `tracer` after an execution.
fn finish(tracer: Tracer, ran: Ran) -> Result<Value, DebugError> {
    let json = |v: Result<Value, serde_json::Error>| v.map_err(|e| DebugError::Call(e.to_string()));
    match tracer {
        Tracer::Struct(l) => json(serde_json::to_value(StructLogResult {
            gas: ran.gas_used,
            failed: !ran.success,
            return_value: ran.output,
            struct_logs: l.into_logs().ok_or(DebugError::TooLarge)?,
        })),
        Tracer::Call(c) => {
            let mut root = c.into_root().ok_or_else(|| DebugError::Call("the transaction made no call".into()))?;
            // The transaction's frame reports what the transaction was given and paid
            // (intrinsic gas included, refund deducted), as geth does.
            root.gas = U256::from(ran.gas_limit);
            root.gas_used = U256::from(ran.gas_used);
            json(serde_json::to_value(root))
        }
    }
}

/// Replays `tx`'s block up to it and traces it.
fn trace_transaction(node: &Node, tx: B256, opts: &TraceOptions) -> Result<Value, DebugError> {
    let tracer = Tracer::of(opts)?;
    // Snapshot under the lock, replay without it.
    let (parent, env, txs, receipt_gas, receipt_ok, spec, models) = {
        let chain = node.chain();
        let (b, i) = chain.locate(&tx).ok_or(DebugError::UnknownTx(tx))?;
        let n = b.header.number;
        let parent = n.checked_sub(1).and_then(|p| chain.state_at(p)).cloned().ok_or(DebugError::StateGone(n))?;
        let cumulative = |k: usize| b.envelopes.get(k).map_or(0, |e| e.cumulative_gas_used());
        let before = if i == 0 { 0 } else { cumulative(i - 1) };
        let ok = b.envelopes.get(i).is_some_and(|e| e.status());
        let txs = b.txs.get(..=i).map(<[_]>::to_vec).unwrap_or_default();
        (parent, b.env(), txs, cumulative(i).saturating_sub(before), ok, chain.spec, chain.models.clone())
    };
    let gas_limit = txs.last().map_or(0, |t| t.inner().gas_limit());
    let replay = |why: String| DebugError::Replay { tx, why };
    let scope = Scope::new(models);
    let ran = match tracer {
        Tracer::Struct(l) => inspect_last_in(scope, &parent, &spec, &env, &txs, l)
            .map_err(|e: ExecError| replay(e.to_string()))?
            .map(|(o, l)| (o, Tracer::Struct(l))),
        Tracer::Call(c) => inspect_last_in(scope, &parent, &spec, &env, &txs, c)
            .map_err(|e: ExecError| replay(e.to_string()))?
            .map(|(o, c)| (o, Tracer::Call(c))),
    };
    let (outcome, tracer) = ran.ok_or_else(|| replay("the block has no such transaction".into()))?;
    if outcome.gas_used != receipt_gas || outcome.success != receipt_ok {
        return Err(replay(format!(
            "gas used {} (receipt {receipt_gas}), status {} (receipt {receipt_ok})",
            outcome.gas_used, outcome.success
        )));
    }
    finish(tracer, Ran { success: outcome.success, gas_used: outcome.gas_used, gas_limit, output: outcome.output })
}

/// Runs `req` on the state `block` names with the tracer `opts` choose.
fn trace_call(
    node: &Node,
    req: &TransactionRequest,
    block: Option<BlockId>,
    opts: &TraceOptions,
) -> Result<Value, ErrorObjectOwned> {
    let tracer = Tracer::of(opts)?;
    let at = node.at(block, opts.state_overrides.as_ref())?;
    let env = tx_env(&at.sim, req, at.cap);
    let gas_limit = env.gas_limit;
    let run = |e: SimError| ErrorObjectOwned::from(DebugError::from(e));
    let (result, tracer) = match tracer {
        Tracer::Struct(l) => at.sim.inspect(env, l).map(|(r, _, l)| (r, Tracer::Struct(l))).map_err(run)?,
        Tracer::Call(c) => at.sim.inspect(env, c).map(|(r, _, c)| (r, Tracer::Call(c))).map_err(run)?,
    };
    let output = match &result {
        ExecutionResult::Success { output, .. } => output.data().clone(),
        ExecutionResult::Revert { output, .. } => output.clone(),
        ExecutionResult::Halt { .. } => Bytes::new(),
    };
    Ok(finish(tracer, Ran { success: result.is_success(), gas_used: result.tx_gas_used(), gas_limit, output })?)
}

/// The `debug` trace methods.
#[rpc(server, namespace = "debug")]
pub trait DebugApi {
    /// Replays a mined transaction with a tracer.
    #[method(name = "traceTransaction", blocking)]
    fn trace_transaction(&self, tx: B256, options: Option<TraceOptions>) -> RpcResult<Value>;
    /// Runs a call on a block's state with a tracer.
    #[method(name = "traceCall", blocking)]
    fn trace_call(
        &self,
        call: TransactionRequest,
        block: Option<BlockId>,
        options: Option<TraceOptions>,
    ) -> RpcResult<Value>;
}

/// The `debug` namespace over a node.
#[derive(Debug, Clone)]
pub struct DebugRpc(pub Arc<Node>);

impl DebugApiServer for DebugRpc {
    fn trace_transaction(&self, tx: B256, options: Option<TraceOptions>) -> RpcResult<Value> {
        trace_transaction(&self.0, tx, &options.unwrap_or_default()).map_err(ErrorObjectOwned::from)
    }

    fn trace_call(
        &self,
        call: TransactionRequest,
        block: Option<BlockId>,
        options: Option<TraceOptions>,
    ) -> RpcResult<Value> {
        trace_call(&self.0, &call, block, &options.unwrap_or_default())
    }
}
