//! The inference precompile at [`INFERENCE_ADDRESS`](crate::INFERENCE_ADDRESS)
//! (docs/precompiles.md §3): `infer`, `inferInts`, `classify`. Gas is charged before any work
//! on the model — before it is loaded and prepared, before inputs are converted — from the
//! figures the registry stored with it (docs/gas.md); every call is recorded in the scope.

use std::sync::Arc;

use alloy_evm::precompiles::{DynPrecompile, PrecompileInput};
use alloy_primitives::{B256, Bytes, I256, U256};
use alloy_sol_types::{SolCall, SolInterface};
use fixpoint_ml::{DType, Engine, Tensor, io};
use revm::precompile::PrecompileId;

use crate::abi::IInference::{self as I, IInferenceCalls as Call};
use crate::call::{Fail, Meter, finish};
use crate::gas;
use crate::registry::read_model;
use crate::state::ModelRecord;
use crate::store::Scope;

/// Largest packed input a call accepts, in bytes.
pub const MAX_INPUT_BYTES: usize = 1 << 20;

/// The inference precompile over `scope`.
pub fn precompile(scope: Arc<Scope>) -> DynPrecompile {
    DynPrecompile::new_stateful(PrecompileId::custom("fixpoint-inference"), move |mut input| {
        let reservoir = input.reservoir;
        // Wall time, for the node's metrics only: nothing the chain computes depends on it.
        let started = std::time::Instant::now();
        let result = call(&scope, &mut input);
        scope.add_inference_time(started.elapsed());
        finish(result, reservoir)
    })
}

/// The prepared engine of a registered model (the state says it exists, so its bytes must be
/// in the store: a miss means this node is missing data, which is fatal, not the caller's fault).
pub(crate) fn engine_for(scope: &Scope, id: B256) -> Result<Arc<Engine>, Fail> {
    let bytes = scope
        .model_bytes(&id)
        .ok_or_else(|| Fail::Fatal(format!("model {id} is registered but not in the model store")))?;
    scope.store().engine(id, &bytes).map_err(|e| Fail::Fatal(format!("registered model {id} fails to load: {e}")))
}

/// Packs integers into the model's inputs, checking each against its dtype.
fn pack_ints(engine: &Engine, meter: &Meter, xs: &[I256]) -> Result<Vec<u8>, Fail> {
    let mut out = Vec::new();
    let mut it = xs.iter().enumerate();
    for inp in &engine.model().inputs {
        let n: usize = inp.shape.iter().product();
        let (lo, hi): (i64, i64) = match inp.dtype {
            DType::I8 => (-128, 127),
            DType::U8 => (0, 255),
            DType::I16 => (i16::MIN.into(), i16::MAX.into()),
            DType::I32 => (i32::MIN.into(), i32::MAX.into()),
            DType::I64 => (i64::MIN, i64::MAX),
        };
        for _ in 0..n {
            let Some((i, x)) = it.next() else { break };
            let v = i64::try_from(*x).ok().filter(|v| (lo..=hi).contains(v));
            let Some(v) = v else { return Err(meter.revert(I::InputOutOfRange { index: U256::from(i) })) };
            let b = v.to_le_bytes();
            out.extend_from_slice(b.get(..inp.dtype.size()).unwrap_or(&b));
        }
    }
    Ok(out)
}

/// All outputs flattened to integers.
fn unpack_ints(outs: &[Tensor]) -> Vec<I256> {
    outs.iter()
        .flat_map(|t| (0..t.len()).filter_map(|j| t.data().get_i64(j)).map(|v| I256::try_from(v).unwrap_or_default()))
        .collect()
}

/// The label of `classify`: output #0's single value, or its argmax (ties to the lowest index).
fn label(outs: &[Tensor]) -> Option<u64> {
    let t = outs.first()?;
    let vals: Vec<i64> = (0..t.len()).filter_map(|j| t.data().get_i64(j)).collect();
    match vals.as_slice() {
        [one] => u64::try_from(*one).ok(),
        _ => {
            let mut best = 0;
            for (i, v) in vals.iter().enumerate() {
                if *v > *vals.get(best)? {
                    best = i;
                }
            }
            u64::try_from(best).ok()
        }
    }
}

fn call(scope: &Scope, input: &mut PrecompileInput<'_>) -> Result<(u64, Bytes), Fail> {
    let mut meter = Meter::new(input.gas)?;
    if !input.is_direct_call() {
        return Err(meter.revert(I::DelegateCallNotAllowed {}));
    }
    let data = input.data;
    let Some(selector) = data.get(..4).and_then(|s| <[u8; 4]>::try_from(s).ok()) else {
        return Err(meter.revert(I::BadCalldata {}));
    };
    if !Call::valid_selector(selector) {
        return Err(meter.revert(I::UnknownSelector { selector: selector.into() }));
    }
    if data.len() > MAX_INPUT_BYTES.saturating_mul(33) {
        return Err(meter.revert(I::InputTooLarge { size: U256::from(data.len()), max: U256::from(MAX_INPUT_BYTES) }));
    }
    let Ok(decoded) = Call::abi_decode(data) else {
        return Err(meter.revert(I::BadCalldata {}));
    };
    let id = match &decoded {
        Call::infer(c) => c.modelId,
        Call::inferInts(c) => c.modelId,
        Call::classify(c) => c.modelId,
        Call::generate(c) => c.modelId,
    };
    let Some(record) = read_model(&mut input.internals, id)? else {
        return Err(meter.revert(I::UnknownModel { modelId: id }));
    };
    let decoded = match decoded {
        Call::generate(c) => return generate(scope, meter, &record, c),
        other => other,
    };
    // A packed input of the wrong size is refused before anything is charged beyond REJECT.
    if let Call::infer(I::inferCall { input, .. }) | Call::classify(I::classifyCall { input, .. }) = &decoded
        && input.len() as u64 != record.input_bytes
    {
        let expected = U256::from(record.input_bytes);
        return Err(meter.revert(I::BadInputLength { expected, got: U256::from(input.len()) }));
    }
    // Charge before preparing or computing anything: the warm figure fixed at registration
    // (which prices the run, the input and output copies and the record's hashes), plus the
    // cold surcharge (load, verify, pack weights) on the model's first use in this scope, plus
    // the integer conversions of `inferInts`. All of it comes from the stored record.
    let cold = !scope.is_warm(&id);
    meter.charge(record.warm_gas)?;
    if cold {
        meter.charge(gas::cold_surcharge(record.size))?;
    }
    if let Call::inferInts(c) = &decoded {
        meter.charge(gas::ints_gas(c.input.len() as u64, record.output_bytes))?;
    }
    scope.touch(id);
    let engine = engine_for(scope, id)?;
    let packed = match &decoded {
        Call::infer(c) => c.input.to_vec(),
        Call::classify(c) => c.input.to_vec(),
        Call::generate(_) => return Err(Fail::Fatal("generate reached infer".into())),
        Call::inferInts(c) => {
            let want: usize = engine.model().inputs.iter().map(|i| i.shape.iter().product::<usize>()).sum();
            if c.input.len() != want {
                return Err(
                    meter.revert(I::BadInputLength { expected: U256::from(want), got: U256::from(c.input.len()) })
                );
            }
            pack_ints(&engine, &meter, &c.input)?
        }
    };
    if packed.len() > MAX_INPUT_BYTES {
        return Err(meter.revert(I::InputTooLarge { size: U256::from(packed.len()), max: U256::from(MAX_INPUT_BYTES) }));
    }
    let want = io::input_len(engine.model());
    if packed.len() != want {
        return Err(meter.revert(I::BadInputLength { expected: U256::from(want), got: U256::from(packed.len()) }));
    }
    let inputs = io::unpack_inputs(engine.model(), &packed)
        .map_err(|e| meter.revert(I::InferenceFailed { reason: e.to_string() }))?;
    let outs = engine.run(inputs).map_err(|e| meter.revert(I::InferenceFailed { reason: e.to_string() }))?;
    let out_packed = io::pack(&outs);
    scope.record(id, &packed, &out_packed, meter.used());
    let ret = match decoded {
        Call::infer(_) => I::inferCall::abi_encode_returns(&Bytes::from(out_packed)),
        Call::inferInts(_) => I::inferIntsCall::abi_encode_returns(&unpack_ints(&outs)),
        Call::classify(_) => {
            let Some(l) = label(&outs) else {
                return Err(meter.revert(I::InferenceFailed { reason: "output #0 is not a class label".into() }));
            };
            I::classifyCall::abi_encode_returns(&U256::from(l))
        }
        Call::generate(_) => return Err(Fail::Fatal("generate reached infer".into())),
    };
    Ok((meter.used(), ret.into()))
}

/// `generate`: greedy generation by a causal byte-level model (docs/precompiles.md §3). Gas:
/// the cold surcharge is charged before the model is loaded (it prices loading and planning);
/// then, before any step runs, the whole generation from the plan's step cost, a pure function
/// of the model bytes and the two lengths, so `eth_estimateGas` is exact.
fn generate(scope: &Scope, mut meter: Meter, record: &ModelRecord, c: I::generateCall) -> Result<(u64, Bytes), Fail> {
    let id = c.modelId;
    if !scope.is_warm(&id) {
        meter.charge(gas::cold_surcharge(record.size))?;
    }
    scope.touch(id);
    let engine = engine_for(scope, id)?;
    let plan = engine.plan().map_err(|e| meter.revert(I::NotGenerative { reason: e.to_string() }))?;
    if plan.vocab() > 256 {
        return Err(meter.revert(I::NotGenerative { reason: format!("{} tokens do not fit a byte", plan.vocab()) }));
    }
    let (prompt, tokens) = (c.prompt.as_ref(), c.maxTokens as usize);
    let steps = plan.steps(prompt.len(), tokens).map_err(|e| match e {
        fixpoint_ml::Error::EmptyPrompt => meter.revert(I::EmptyPrompt {}),
        _ => meter.revert(I::ContextExceeded {
            promptLength: U256::from(prompt.len()),
            maxTokens: U256::from(tokens),
            context: U256::from(plan.context()),
        }),
    })?;
    let ops = engine.model().nodes.len() as u64;
    let step = gas::step_gas(plan, ops, engine.cost().weight_bytes);
    meter.charge(gas::generate_gas(plan, step, steps as u64, prompt.len() as u64, tokens as u64))?;
    let ids: Vec<u32> = prompt.iter().map(|&b| u32::from(b)).collect();
    let text = engine
        .generate(&ids, tokens, &fixpoint_ml::Counter::new())
        .map_err(|e| meter.revert(I::InferenceFailed { reason: e.to_string() }))?;
    let text: Vec<u8> = text.into_iter().map(|t| u8::try_from(t).unwrap_or(u8::MAX)).collect();
    // The record's input: the prompt and the token count (u32 big-endian); output: the text.
    let mut recorded = prompt.to_vec();
    recorded.extend_from_slice(&c.maxTokens.to_be_bytes());
    scope.record(id, &recorded, &text, meter.used());
    Ok((meter.used(), I::generateCall::abi_encode_returns(&Bytes::from(text)).into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fixpoint_ml::TensorData;

    #[test]
    fn labels() {
        let t = |v: Vec<i32>| Tensor::new(vec![v.len()], TensorData::I32(v)).unwrap();
        assert_eq!(label(&[t(vec![7])]), Some(7));
        assert_eq!(label(&[t(vec![-1])]), None);
        assert_eq!(label(&[t(vec![1, 5, 5, 2])]), Some(1));
        assert_eq!(label(&[]), None);
    }
}
