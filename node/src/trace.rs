//! Per-op inference traces (`fixpoint_traceInference`, `fixpoint model trace`; format in
//! docs/rpc.md §Traces): a model run op by op with what each op produced, so anyone can see how
//! an answer was computed and two implementations can diff their traces to find the first op
//! where they disagree. A recorded call is found by replaying its block's transactions up to
//! it over the parent state, in a scope that keeps the inputs of inference calls; the replay
//! must reproduce the recorded input (its hash is checked), and the trace's final output hash
//! is the record's when the node is honest.

use std::sync::Arc;

use alloy_consensus::TxEnvelope;
use alloy_consensus::transaction::Recovered;
use alloy_primitives::{B256, Bytes, keccak256};
use fixpoint_evm::{BlockEnvInput, ChainSpec, WorldState, execute_block_in};
use fixpoint_ml::{Engine, OpTrace, Tensor, Work};
use fixpoint_precompiles::{InferenceRecord, ModelStore, Scope, gas};
use serde::{Deserialize, Serialize};

use crate::chain::Chain;

/// Tensors with at most this many elements are always listed in full.
pub const INLINE_VALUES: usize = 64;

/// Why a trace cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The transaction is unknown to this node.
    #[error("transaction {0} not found")]
    UnknownTx(B256),
    /// The transaction made no inference call with that index.
    #[error("transaction {tx} has no inference call {call}")]
    NoCall {
        /// Transaction hash.
        tx: B256,
        /// Call index asked for.
        call: u32,
    },
    /// The state the replay starts from is no longer kept.
    #[error("the state before block {0} is not kept on this node (it keeps the most recent blocks' states)")]
    StateGone(u64),
    /// The model is not registered (or its bytes are not in this node's store).
    #[error("model {0} is not registered")]
    UnknownModel(B256),
    /// The model does not load or the input does not fit it.
    #[error("{0}")]
    Model(String),
    /// The replay did not reproduce the block (this node's data is inconsistent).
    #[error("replaying the block did not reproduce call {call} of transaction {tx}: {why}")]
    Replay {
        /// Transaction hash.
        tx: B256,
        /// Call index.
        call: u32,
        /// What differed.
        why: String,
    },
}

/// One op's step in a trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpStep {
    /// Position in the model, from 0.
    pub index: usize,
    /// Op name (docs/model-format.md §6).
    pub op: String,
    /// Output shape.
    pub shape: Vec<usize>,
    /// Output dtype (`i8`, `i32`, `i64`).
    pub dtype: String,
    /// keccak256 of the output's little-endian bytes (docs/model-format.md §8's packing).
    pub output_hash: B256,
    /// The output's elements, row-major, when small or asked for in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<i64>>,
    /// The work the op counted (fixpoint_ml::work), which gas prices.
    pub work: WorkCount,
    /// The gas that work costs: `work_gas` of docs/gas.md for this op alone.
    pub gas: u64,
}

/// Counted work, by component (docs/gas.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkCount {
    /// Multiply-accumulates.
    pub macs: u64,
    /// Other element steps.
    pub elem_ops: u64,
    /// Inner-loop entries.
    pub steps: u64,
    /// Tree node visits.
    pub visits: u64,
    /// Kernel calls and allocations.
    pub calls: u64,
    /// Bytes allocated.
    pub bytes: u64,
}

impl From<Work> for WorkCount {
    fn from(w: Work) -> Self {
        Self { macs: w.macs, elem_ops: w.elem_ops, steps: w.steps, visits: w.visits, calls: w.calls, bytes: w.bytes }
    }
}

/// A whole trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceTrace {
    /// The model.
    pub model_id: B256,
    /// keccak256 of the packed input.
    pub input_hash: B256,
    /// The packed input.
    pub input: Bytes,
    /// keccak256 of the packed output this run produced.
    pub output_hash: B256,
    /// The packed output.
    pub output: Bytes,
    /// Every op, in order.
    pub ops: Vec<OpStep>,
    /// The recorded call this trace replays (by transaction), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<RecordRef>,
}

/// Where a traced call was recorded, and what the record says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordRef {
    /// Block number.
    pub block_number: u64,
    /// Transaction hash.
    pub tx_hash: B256,
    /// Transaction index in the block.
    pub tx_index: u32,
    /// Call index in the transaction.
    pub call_index: u32,
    /// The recorded output hash (equal to the trace's `outputHash` on an honest chain).
    pub recorded_output_hash: B256,
    /// Gas the call was charged.
    pub gas_used: u64,
}

fn step(t: &OpTrace, full: bool) -> OpStep {
    let data = t.output.data();
    let mut bytes = Vec::with_capacity(data.len() * t.output.dtype().size());
    data.write_le(&mut bytes);
    let values =
        (full || data.len() <= INLINE_VALUES).then(|| (0..data.len()).filter_map(|i| data.get_i64(i)).collect());
    OpStep {
        index: t.index,
        op: t.op.to_string(),
        shape: t.output.shape().to_vec(),
        dtype: t.output.dtype().name().to_string(),
        output_hash: keccak256(&bytes),
        values,
        work: t.work.into(),
        gas: gas::work_gas(&t.work, 1, 0),
    }
}

/// Traces `engine` on the packed `input`; `full` lists every op's values, not only small ones.
pub fn trace(engine: &Engine, input: &[u8], full: bool) -> Result<InferenceTrace, TraceError> {
    let inputs = fixpoint_ml::io::unpack_inputs(engine.model(), input).map_err(|e| TraceError::Model(e.to_string()))?;
    let (outs, ops): (Vec<Tensor>, Vec<OpTrace>) =
        engine.run_traced(inputs).map_err(|e| TraceError::Model(e.to_string()))?;
    let output = fixpoint_ml::io::pack(&outs);
    Ok(InferenceTrace {
        model_id: B256::from(engine.id()),
        input_hash: keccak256(input),
        input: Bytes::copy_from_slice(input),
        output_hash: keccak256(&output),
        output: output.into(),
        ops: ops.iter().map(|t| step(t, full)).collect(),
        record: None,
    })
}

/// The prepared engine of registered model `id`, from `scope` (a model registered earlier in
/// the replayed block) or the store.
fn engine(scope: &Scope, id: B256) -> Result<Arc<Engine>, TraceError> {
    let bytes = scope.model_bytes(&id).ok_or(TraceError::UnknownModel(id))?;
    scope.engine(id, &bytes).map_err(|e| TraceError::Model(e.to_string()))
}

/// Traces `(model, input)` with the models of `store` (the RPC checks the model is registered
/// in the state it names).
pub fn trace_model(store: &Arc<ModelStore>, id: B256, input: &[u8], full: bool) -> Result<InferenceTrace, TraceError> {
    trace(&*engine(&Scope::new(store.clone()), id)?, input, full)
}

/// What replaying recorded call `call` of a block's transaction `index` needs, taken from the
/// chain in O(1) under its lock (the replay runs after the lock is released).
#[derive(Debug)]
pub struct Replay {
    /// The state before the block.
    pub parent: Arc<WorldState>,
    /// The block's environment, as it was executed.
    pub env: BlockEnvInput,
    /// The block's transactions up to and including the traced one.
    pub txs: Vec<Recovered<TxEnvelope>>,
    /// The record of the traced call.
    pub record: InferenceRecord,
    /// The traced transaction's hash.
    pub tx_hash: B256,
}

impl Replay {
    /// What tracing call `call` of transaction `tx` needs from `chain`.
    pub fn of(chain: &Chain, tx: B256, call: u32) -> Result<Self, TraceError> {
        let (b, i) = chain.locate(&tx).ok_or(TraceError::UnknownTx(tx))?;
        let record = b
            .records
            .iter()
            .find(|r| r.tx_index as usize == i && r.call_index == call)
            .copied()
            .ok_or(TraceError::NoCall { tx, call })?;
        let h = &b.header;
        let parent =
            h.number.checked_sub(1).and_then(|p| chain.state_at(p)).cloned().ok_or(TraceError::StateGone(h.number))?;
        let env = b.env();
        let txs = b.txs.get(..=i).map(<[_]>::to_vec).unwrap_or_default();
        Ok(Self { parent, env, txs, record, tx_hash: tx })
    }
}

/// Replays the block prefix in a tracing scope and traces the recorded call.
pub fn trace_recorded(
    replay: Replay,
    store: &Arc<ModelStore>,
    spec: &ChainSpec,
    full: bool,
) -> Result<InferenceTrace, TraceError> {
    let Replay { parent, env, txs, record, tx_hash } = replay;
    let (tx, call) = (tx_hash, record.call_index);
    let scope = Scope::tracing(store.clone());
    let outcome = execute_block_in(scope.clone(), &parent, spec, &env, &txs).map_err(|e| TraceError::Replay {
        tx,
        call,
        why: e.to_string(),
    })?;
    let input = outcome.scope.traced_input(record.tx_index, call).ok_or(TraceError::Replay {
        tx,
        call,
        why: "the call was not made".into(),
    })?;
    if keccak256(&input) != record.input_hash {
        return Err(TraceError::Replay { tx, call, why: "the input differs from the recorded input hash".into() });
    }
    let mut t = trace(&*engine(&scope, record.model_id)?, &input, full)?;
    t.record = Some(RecordRef {
        block_number: env.number,
        tx_hash,
        tx_index: record.tx_index,
        call_index: call,
        recorded_output_hash: record.output_hash,
        gas_used: record.gas_used,
    });
    Ok(t)
}

/// The first op at which two traces of the same model and input differ (output hash, shape or
/// dtype), if any: where two implementations start to disagree.
pub fn first_divergence(a: &InferenceTrace, b: &InferenceTrace) -> Option<usize> {
    a.ops
        .iter()
        .zip(&b.ops)
        .find(|(x, y)| x.output_hash != y.output_hash || x.shape != y.shape || x.dtype != y.dtype)
        .map(|(x, _)| x.index)
        .or_else(|| (a.ops.len() != b.ops.len()).then(|| a.ops.len().min(b.ops.len())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fixpoint_ml::format::Model;
    use fixpoint_ml::ops::Op;
    use fixpoint_ml::{Limits, TensorData, verify};

    fn vector(name: &str) -> (Vec<u8>, Vec<u8>) {
        let path = std::path::PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join(format!("../tests/vectors/models/{name}.json"));
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let h = |k: &str| hex::decode(doc["cases"][0][k].as_str().unwrap()).unwrap();
        (h("model"), h("input"))
    }

    /// A second implementation that disagrees from op `k` on (its weights differ there) is
    /// found at op `k` by diffing the two traces, and every op before it agrees.
    #[test]
    fn a_diverging_op_is_found_where_it_diverges() {
        for name in ["digits-mlp", "digits-cnn"] {
            let (bytes, input) = vector(name);
            let honest = Engine::load(&bytes, &Limits::default()).unwrap();
            let a = trace(&honest, &input, false).unwrap();
            assert_eq!(first_divergence(&a, &a), None);
            // Every fully connected op in turn: its weights negated (same magnitudes, so the
            // overflow proof still holds), everything else unchanged.
            let mut model = Model::parse(&bytes).unwrap();
            let fcs: Vec<(usize, u32)> = model
                .nodes
                .iter()
                .enumerate()
                .filter_map(|(i, n)| match &n.op {
                    Op::FullyConnected(fc) => Some((i, fc.weights)),
                    _ => None,
                })
                .collect();
            assert!(!fcs.is_empty(), "{name} has fully connected ops");
            for (k, w) in fcs {
                let original = model.tensors[w as usize].clone();
                let TensorData::I8(ws) = original.data() else { panic!("i8 weights") };
                let flipped: Vec<i8> = ws.iter().map(|&v| v.checked_neg().unwrap_or(i8::MAX)).collect();
                model.tensors[w as usize] = Tensor::i8(original.shape().to_vec(), flipped).unwrap();
                let other = Engine::new(
                    verify(model.clone(), &Limits::default()).unwrap(),
                    honest.id(),
                    fixpoint_ml::engine::default_path(),
                )
                .unwrap();
                let b = trace(&other, &input, false).unwrap();
                assert_eq!(first_divergence(&a, &b), Some(k), "{name}: op {k} altered");
                assert_eq!(a.ops[..k], b.ops[..k], "{name}: ops before {k} agree");
                model.tensors[w as usize] = original;
            }
        }
    }

    /// Small outputs are listed in full; `full` lists every op's; hashes cover the values.
    #[test]
    fn values_are_listed_when_small_or_asked_for() {
        let (bytes, input) = vector("digits-cnn");
        let e = Engine::load(&bytes, &Limits::default()).unwrap();
        let short = trace(&e, &input, false).unwrap();
        let full = trace(&e, &input, true).unwrap();
        assert!(short.ops.iter().any(|o| o.values.is_none()), "a large tensor is hashed only");
        for (s, f) in short.ops.iter().zip(&full.ops) {
            let vals = f.values.as_ref().unwrap();
            assert_eq!(vals.len(), s.shape.iter().product::<usize>());
            assert_eq!(s.values.is_some(), vals.len() <= INLINE_VALUES);
            assert_eq!(s.output_hash, f.output_hash);
        }
        // Each op's hash is over its values, little-endian at its dtype's width.
        for o in &full.ops {
            let mut packed = Vec::new();
            for &v in o.values.as_ref().unwrap() {
                match o.dtype.as_str() {
                    "i64" => packed.extend_from_slice(&v.to_le_bytes()),
                    "i32" => packed.extend_from_slice(&i32::try_from(v).unwrap().to_le_bytes()),
                    "i8" => packed.extend_from_slice(&i8::try_from(v).unwrap().to_le_bytes()),
                    d => panic!("unexpected dtype {d}"),
                }
            }
            assert_eq!(keccak256(&packed), o.output_hash, "op {}", o.index);
        }
    }
}
