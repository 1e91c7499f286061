//! The `fixpoint` namespace: registered models, inference without a transaction, the inference
//! records of blocks and transactions, per-op inference traces (docs/rpc.md §Traces), and the
//! certified blocks followers fetch (docs/consensus.md §followers).

use std::sync::Arc;

use alloy_eips::BlockId;
use alloy_primitives::{B256, Bytes, TxKind, U64};
use alloy_rpc_types_eth::{BlockNumberOrTag, TransactionRequest};
use alloy_sol_types::SolCall as _;
use fixpoint_precompiles::abi::IInference;
use jsonrpsee::proc_macros::rpc;
use revm::context_interface::result::ExecutionResult;
use serde_json::{Value, json};

use super::query::{block_number, call, state_for};
use super::{Node, RpcResult, inference_error, invalid, server};
use crate::chain::Block;
use crate::trace::{self, InferenceTrace};

/// The `fixpoint` methods.
#[rpc(server, namespace = "fixpoint")]
pub trait FixpointApi {
    /// Finalized blocks from `height` up to the next certified one, with that certificate
    /// (validators only).
    #[method(name = "certifiedBlock")]
    async fn certified_block(&self, height: U64) -> RpcResult<Option<Value>>;
    /// The ids of the registered models.
    #[method(name = "listModels")]
    fn list_models(&self) -> RpcResult<Vec<B256>>;
    /// A registered model's metadata and cost, or null.
    #[method(name = "modelInfo")]
    fn model_info(&self, id: B256) -> RpcResult<Value>;
    /// Runs a model on an input through the inference precompile, as a call.
    #[method(name = "infer", blocking)]
    fn infer(&self, id: B256, input: Bytes, gas: Option<U64>) -> RpcResult<Bytes>;
    /// Every op of an inference: a recorded one, or a model on an input at a block.
    #[method(name = "traceInference", blocking)]
    fn trace_inference(&self, target: Value, options: Option<TraceOptions>) -> RpcResult<InferenceTrace>;
    /// A block's inference records and their root.
    #[method(name = "inferenceRecords")]
    fn inference_records(&self, block: BlockNumberOrTag) -> RpcResult<Value>;
    /// A transaction's inference records.
    #[method(name = "transactionRecords")]
    fn transaction_records(&self, hash: B256) -> RpcResult<Value>;
}

/// The `fixpoint` namespace over a node.
#[derive(Debug, Clone)]
pub struct FixpointRpc(pub Arc<Node>);

#[jsonrpsee::core::async_trait]
impl FixpointApiServer for FixpointRpc {
    async fn certified_block(&self, height: U64) -> RpcResult<Option<Value>> {
        let Some(f) = self.0.finality.get().cloned() else {
            return Err(server("this node does not serve certified blocks (only validators do)"));
        };
        Ok(f.certified(height.to()).await.map(|(blocks, certificate)| {
            let blocks: Vec<Bytes> = blocks.into_iter().map(Bytes::from).collect();
            json!({ "blocks": blocks, "certificate": Bytes::from(certificate) })
        }))
    }

    fn list_models(&self) -> RpcResult<Vec<B256>> {
        Ok(self.0.chain().models.ids())
    }

    fn model_info(&self, id: B256) -> RpcResult<Value> {
        let chain = self.0.chain();
        let word = |slot| chain.state.storage(&fixpoint_precompiles::REGISTRY_ADDRESS, &slot);
        let Some(r) = fixpoint_precompiles::state::model_info(id, word) else {
            return Ok(Value::Null);
        };
        Ok(json!({
            "modelId": id, "owner": r.owner, "size": r.size, "registeredAt": r.registered_at, "macs": r.macs,
            "elemOps": r.elem_ops, "bytesRead": r.bytes_read, "peakActivationBytes": r.peak_activation_bytes,
            "inputBytes": r.input_bytes, "outputBytes": r.output_bytes, "warmGas": r.warm_gas,
        }))
    }

    fn infer(&self, id: B256, input: Bytes, gas: Option<U64>) -> RpcResult<Bytes> {
        // The inference precompile's own metered path, as an eth_call from the zero address:
        // the gas cap bounds the work like any call's (docs/rpc.md).
        let at = self.0.at(None, None)?;
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
    }

    fn trace_inference(&self, target: Value, options: Option<TraceOptions>) -> RpcResult<InferenceTrace> {
        let parse = |what: &'static str| move |e: serde_json::Error| invalid(format!("invalid target {what}: {e}"));
        let target = if target.get("tx").is_some() {
            TraceTarget::Recorded(serde_json::from_value(target.clone()).map_err(parse("{tx, call}"))?)
        } else if target.get("model").is_some() {
            TraceTarget::Model(serde_json::from_value(target.clone()).map_err(parse("{model, input, block}"))?)
        } else {
            return Err(invalid("target: {\"tx\", \"call\"} or {\"model\", \"input\", \"block\"}"));
        };
        let full = options.is_some_and(|o| o.full);
        let n = &self.0;
        let traced = match target {
            TraceTarget::Recorded(ByTx { tx, call }) => {
                // Snapshot under the lock, replay without it.
                let (replay, models, spec) = {
                    let chain = n.chain();
                    (trace::Replay::of(&chain, tx, call.unwrap_or(0)), chain.models.clone(), chain.spec)
                };
                replay.and_then(|r| trace::trace_recorded(r, &models, &spec, full))
            }
            TraceTarget::Model(ByModel { model, input, block }) => {
                let models = {
                    let chain = n.chain();
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
    }

    fn inference_records(&self, block: BlockNumberOrTag) -> RpcResult<Value> {
        let chain = self.0.chain();
        let num = block_number(&chain, Some(block));
        let Some(b) = chain.block(num) else { return Ok(Value::Null) };
        Ok(json!({
            "blockNumber": num, "blockHash": b.hash, "recordsRoot": Bytes::from(b.header.extra_data.to_vec()),
            "records": records_json(&b, None),
        }))
    }

    fn transaction_records(&self, hash: B256) -> RpcResult<Value> {
        let chain = self.0.chain();
        let Some((b, i)) = chain.locate(&hash) else { return Ok(Value::Null) };
        Ok(records_json(&b, Some(i as u32)))
    }
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
    block: Option<BlockId>,
}

/// `fixpoint_traceInference` options.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceOptions {
    /// List every op's values, not only small tensors'.
    #[serde(default)]
    full: bool,
}

/// Inference records of block `b` (of transaction `tx` only, if given) as JSON.
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
