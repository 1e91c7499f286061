//! The model registry precompile at [`REGISTRY_ADDRESS`] (docs/precompiles.md §2):
//! `register`, chunked uploads, and the views `exists`, `modelInfo`, `modelIO`.
//!
//! A chunked upload lives in the block's state: the upload's record and, per chunk, the
//! keccak256 of its bytes (`state.rs`); the bytes wait in the scope, then the model store, under
//! that hash (`store.rs`). `finalizeUpload` reads the hashes from the state and the bytes by
//! hash, so what another fork sent can never be read, and clears the slots; the store drops the
//! bytes only once a block that cleared them is final.

use std::sync::Arc;

use alloy_evm::EvmInternals;
use alloy_evm::precompiles::{DynPrecompile, PrecompileInput};
use alloy_primitives::{Address, B256, Bytes, Log, U256, keccak256};
use alloy_sol_types::{SolCall, SolEvent, SolInterface, SolValue};
use revm::precompile::PrecompileId;

use crate::abi::IModelRegistry::{self as R, IModelRegistryCalls as Call};
use crate::call::{Fail, Meter, finish, keep_alive, sload, sstore};
use crate::gas;
use crate::state::{ModelRecord, UploadRecord, chunk_slot, model_slots, upload_slots};
use crate::store::{ChunkKey, Scope};
use crate::{INFERENCE_ADDRESS, REGISTRY_ADDRESS};

/// The registry precompile over `scope`.
pub fn precompile(scope: Arc<Scope>) -> DynPrecompile {
    DynPrecompile::new_stateful(PrecompileId::custom("fixpoint-model-registry"), move |mut input| {
        let reservoir = input.reservoir;
        finish(call(&scope, &mut input), reservoir)
    })
}

/// Reads model `id`'s record from the registry's storage.
pub(crate) fn read_model(internals: &mut EvmInternals<'_>, id: B256) -> Result<Option<ModelRecord>, Fail> {
    let s = model_slots(id);
    let w0 = sload(internals, REGISTRY_ADDRESS, s[0])?;
    if w0.is_zero() {
        return Ok(None);
    }
    let w = [w0, sload(internals, REGISTRY_ADDRESS, s[1])?, sload(internals, REGISTRY_ADDRESS, s[2])?];
    Ok(ModelRecord::decode(w))
}

fn read_upload(internals: &mut EvmInternals<'_>, id: B256, owner: Address) -> Result<Option<UploadRecord>, Fail> {
    let s = upload_slots(id, owner);
    let w = [sload(internals, REGISTRY_ADDRESS, s[0])?, sload(internals, REGISTRY_ADDRESS, s[1])?];
    Ok(UploadRecord::decode(w))
}

fn write_upload(
    internals: &mut EvmInternals<'_>,
    id: B256,
    owner: Address,
    u: Option<UploadRecord>,
) -> Result<(), Fail> {
    let words = u.map_or([U256::ZERO; 2], |u| u.encode());
    for (slot, w) in upload_slots(id, owner).into_iter().zip(words) {
        sstore(internals, REGISTRY_ADDRESS, slot, w)?;
    }
    Ok(())
}

/// The keys the state names for the first `chunks` chunks of `owner`'s upload of `id`.
fn chunk_keys(internals: &mut EvmInternals<'_>, id: B256, owner: Address, chunks: u64) -> Result<Vec<ChunkKey>, Fail> {
    (0..chunks)
        .map(|index| {
            let h = sload(internals, REGISTRY_ADDRESS, chunk_slot(id, owner, index))?;
            Ok(ChunkKey { id, owner, index, hash: B256::from(h.to_be_bytes::<32>()) })
        })
        .collect()
}

/// Ends an upload: zeroes its chunk slots and its record; the scope notes the released chunks.
fn end_upload(scope: &Scope, internals: &mut EvmInternals<'_>, keys: &[ChunkKey]) -> Result<(), Fail> {
    for k in keys {
        sstore(internals, REGISTRY_ADDRESS, chunk_slot(k.id, k.owner, k.index), U256::ZERO)?;
        scope.release(*k);
    }
    Ok(())
}

fn call(scope: &Scope, input: &mut PrecompileInput<'_>) -> Result<(u64, Bytes), Fail> {
    let mut meter = Meter::new(input.gas)?;
    if !input.is_direct_call() {
        return Err(meter.revert(R::DelegateCallNotAllowed {}));
    }
    let data = input.data;
    let Some(selector) = data.get(..4).and_then(|s| <[u8; 4]>::try_from(s).ok()) else {
        return Err(meter.revert(R::BadCalldata {}));
    };
    if !Call::valid_selector(selector) {
        return Err(meter.revert(R::UnknownSelector { selector: selector.into() }));
    }
    let Ok(decoded) = Call::abi_decode(data) else {
        return Err(meter.revert(R::BadCalldata {}));
    };
    let writes = matches!(
        decoded,
        Call::register(_) | Call::beginUpload(_) | Call::putChunk(_) | Call::finalizeUpload(_) | Call::cancelUpload(_)
    );
    if writes && input.is_static {
        return Err(meter.revert(R::StaticCallNotAllowed {}));
    }
    let caller = input.caller;
    let out = match decoded {
        Call::register(c) => {
            meter.charge(gas::register_gas(c.model.len() as u64))?;
            let id = register_bytes(scope, &mut input.internals, &meter, caller, c.model.to_vec())?;
            R::registerCall::abi_encode_returns(&id)
        }
        Call::beginUpload(c) => {
            meter.charge(gas::BEGIN_UPLOAD)?;
            let max = scope.store().limits().max_model_bytes.min(gas::MAX_UPLOAD_BYTES);
            if c.size > max {
                return Err(meter.revert(R::ModelTooLarge { size: c.size, max }));
            }
            if c.size == 0 {
                return Err(meter.revert(R::ModelRejected { reason: "empty upload".into() }));
            }
            // A restart drops what the previous upload received.
            if let Some(old) = read_upload(&mut input.internals, c.modelId, caller)? {
                meter.charge(gas::FINISH_PER_CHUNK.saturating_mul(old.chunks))?;
                let keys = chunk_keys(&mut input.internals, c.modelId, caller, old.chunks)?;
                end_upload(scope, &mut input.internals, &keys)?;
            }
            keep_alive(&mut input.internals, REGISTRY_ADDRESS)?;
            let up = UploadRecord { owner: caller, size: c.size, received: 0, chunks: 0 };
            write_upload(&mut input.internals, c.modelId, caller, Some(up))?;
            let ev = R::UploadStarted { modelId: c.modelId, owner: caller, size: c.size };
            input.internals.log(Log { address: REGISTRY_ADDRESS, data: ev.encode_log_data() });
            Vec::new()
        }
        Call::putChunk(c) => {
            let len = c.chunk.len() as u64;
            meter.charge(gas::chunk_gas(len))?;
            let Some(mut up) = read_upload(&mut input.internals, c.modelId, caller)? else {
                return Err(meter.revert(R::UploadNotStarted { modelId: c.modelId }));
            };
            if c.offset != up.received || len == 0 {
                return Err(meter.revert(R::UploadOutOfOrder {
                    modelId: c.modelId,
                    expected: up.received,
                    got: c.offset,
                }));
            }
            let end = c.offset.saturating_add(len);
            if end > up.size {
                return Err(meter.revert(R::UploadOverflow { modelId: c.modelId, size: up.size, end }));
            }
            if up.chunks >= gas::MAX_UPLOAD_CHUNKS {
                return Err(meter.revert(R::TooManyChunks { modelId: c.modelId, max: gas::MAX_UPLOAD_CHUNKS }));
            }
            let key = scope.put_chunk(c.modelId, caller, up.chunks, c.chunk.to_vec().into());
            let slot = chunk_slot(c.modelId, caller, up.chunks);
            sstore(&mut input.internals, REGISTRY_ADDRESS, slot, U256::from_be_bytes(key.hash.0))?;
            up.received = end;
            up.chunks = up.chunks.saturating_add(1);
            write_upload(&mut input.internals, c.modelId, caller, Some(up))?;
            Vec::new()
        }
        Call::finalizeUpload(c) => {
            let Some(up) = read_upload(&mut input.internals, c.modelId, caller)? else {
                return Err(meter.revert(R::UploadNotStarted { modelId: c.modelId }));
            };
            if up.received < up.size {
                return Err(meter.revert(R::UploadIncomplete {
                    modelId: c.modelId,
                    received: up.received,
                    size: up.size,
                }));
            }
            meter.charge(gas::finalize_gas(up.size, up.chunks))?;
            // The state names every chunk's hash; the bytes are in this node's scope or store
            // whatever forks it executed (store.rs), so a miss is this node's fault: fatal.
            let keys = chunk_keys(&mut input.internals, c.modelId, caller, up.chunks)?;
            let missing = |what: &str| Fail::Fatal(format!("upload {} of {caller}: {what}", c.modelId));
            let mut bytes = Vec::with_capacity(usize::try_from(up.size).map_err(|_| missing("size"))?);
            for k in &keys {
                let chunk = scope.chunk(k).ok_or_else(|| missing("chunk missing from the model store"))?;
                bytes.extend_from_slice(&chunk);
            }
            if bytes.len() as u64 != up.size {
                return Err(missing("chunks do not add up to the size"));
            }
            // The upload ends here; if the model is refused below, the revert undoes this too
            // and the upload stays open (cancel or restart it).
            end_upload(scope, &mut input.internals, &keys)?;
            write_upload(&mut input.internals, c.modelId, caller, None)?;
            let actual = keccak256(&bytes);
            if actual != c.modelId {
                return Err(meter.revert(R::HashMismatch { expected: c.modelId, actual }));
            }
            let id = register_bytes(scope, &mut input.internals, &meter, caller, bytes)?;
            R::finalizeUploadCall::abi_encode_returns(&id)
        }
        Call::cancelUpload(c) => {
            meter.charge(gas::CANCEL_UPLOAD)?;
            let Some(up) = read_upload(&mut input.internals, c.modelId, caller)? else {
                return Err(meter.revert(R::UploadNotStarted { modelId: c.modelId }));
            };
            meter.charge(gas::FINISH_PER_CHUNK.saturating_mul(up.chunks))?;
            let keys = chunk_keys(&mut input.internals, c.modelId, caller, up.chunks)?;
            end_upload(scope, &mut input.internals, &keys)?;
            write_upload(&mut input.internals, c.modelId, caller, None)?;
            let ev = R::UploadCancelled { modelId: c.modelId, owner: caller };
            input.internals.log(Log { address: REGISTRY_ADDRESS, data: ev.encode_log_data() });
            Vec::new()
        }
        Call::exists(c) => {
            meter.charge(gas::VIEW_BASE)?;
            let present = !sload(&mut input.internals, REGISTRY_ADDRESS, model_slots(c.modelId)[0])?.is_zero();
            R::existsCall::abi_encode_returns(&present)
        }
        Call::modelInfo(c) => {
            meter.charge(gas::VIEW_BASE)?;
            let Some(r) = read_model(&mut input.internals, c.modelId)? else {
                return Err(meter.revert(R::UnknownModel { modelId: c.modelId }));
            };
            let info = R::ModelInfo {
                owner: r.owner,
                size: r.size,
                registeredAt: r.registered_at,
                macs: r.macs,
                elemOps: r.elem_ops,
                bytesRead: r.bytes_read,
                peakActivationBytes: r.peak_activation_bytes,
                inputBytes: r.input_bytes,
                outputBytes: r.output_bytes,
                warmGas: r.warm_gas,
            };
            R::modelInfoCall::abi_encode_returns(&info)
        }
        Call::modelIO(c) => {
            meter.charge(gas::VIEW_BASE)?;
            if read_model(&mut input.internals, c.modelId)?.is_none() {
                return Err(meter.revert(R::UnknownModel { modelId: c.modelId }));
            }
            let engine = crate::inference::engine_for(scope, c.modelId)?;
            let desc = |dtype: fixpoint_ml::DType, shape: &[usize], q: &fixpoint_ml::format::Quant| R::TensorDesc {
                dtype: dtype as u8,
                shape: shape.iter().map(|&d| u32::try_from(d).unwrap_or(u32::MAX)).collect(),
                zeroPoint: q.zero_point,
                multiplier: q.multiplier,
                shift: q.shift,
            };
            let infos = engine.verified().output_infos();
            let m = engine.model();
            let inputs: Vec<R::TensorDesc> = m.inputs.iter().map(|i| desc(i.dtype, &i.shape, &i.quant)).collect();
            let outputs: Vec<R::TensorDesc> =
                m.outputs.iter().zip(&infos).map(|(o, v)| desc(v.dtype, &v.shape, &o.quant)).collect();
            let enc = (inputs, outputs).abi_encode_params();
            meter.charge(gas::VIEW_PER_WORD.saturating_mul(gas::words(enc.len() as u64)))?;
            enc
        }
    };
    Ok((meter.used(), out.into()))
}

/// Verifies and records a model; returns its id. Registering known bytes again is a no-op.
fn register_bytes(
    scope: &Scope,
    internals: &mut EvmInternals<'_>,
    meter: &Meter,
    owner: Address,
    bytes: Vec<u8>,
) -> Result<B256, Fail> {
    let size = bytes.len() as u64;
    let max = scope.store().limits().max_model_bytes;
    if size > max {
        return Err(meter.revert(R::ModelTooLarge { size, max }));
    }
    let id = keccak256(&bytes);
    if read_model(internals, id)?.is_some() {
        return Ok(id);
    }
    let engine = scope.engine(id, &bytes).map_err(|e| meter.revert(R::ModelRejected { reason: e.to_string() }))?;
    let registered_at = u64::try_from(internals.block_number()).unwrap_or(u64::MAX);
    let record = ModelRecord::of(&engine, owner, size, registered_at);
    keep_alive(internals, REGISTRY_ADDRESS)?;
    // The inference precompile's account gets a nonce too, so neither is ever "empty".
    keep_alive(internals, INFERENCE_ADDRESS)?;
    for (slot, w) in model_slots(id).into_iter().zip(record.encode()) {
        sstore(internals, REGISTRY_ADDRESS, slot, w)?;
    }
    scope.stage_model(bytes.into());
    let ev = R::ModelRegistered { modelId: id, owner, size };
    internals.log(Log { address: REGISTRY_ADDRESS, data: ev.encode_log_data() });
    Ok(id)
}
