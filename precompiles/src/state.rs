//! The registry's storage layout (docs/precompiles.md §2): what the state commits to about each
//! model and each open upload, packed into the registry account's storage.
//!
//! Model `id`: `base = keccak256(id ‖ uint256(0))` (64-byte preimage)
//! - `base`:   `1 << 248 | size << 160 | owner`
//! - `base+1`: `registeredAt << 192 | macs << 128 | elemOps << 64 | bytesRead`
//! - `base+2`: `peakActivationBytes << 192 | inputBytes << 128 | outputBytes << 64 | warmGas`
//!
//! Upload of `id` by `owner`: `base = keccak256(id ‖ owner ‖ 0x01)` (a 53-byte preimage, so it
//! never collides with a model's 64-byte one)
//! - `base`:   `1 << 248 | size << 160 | owner`
//! - `base+1`: `chunks << 64 | received` (chunks received, bytes received)
//!
//! Chunk `i` of that upload: `keccak256(id ‖ owner ‖ 0x02) + i` (like a Solidity array) holds
//! `keccak256(chunk)`. The state thus names the exact bytes of every chunk: the node keeps the
//! bytes off the state, keyed by `(id, owner, i, keccak256(chunk))` (see `store.rs`), and any fork
//! may put or drop chunks without touching another fork's. Finishing an upload (finalize, cancel,
//! restart) zeroes its chunk slots and both record words. At most
//! [`MAX_UPLOAD_CHUNKS`](crate::gas::MAX_UPLOAD_CHUNKS) chunks.

use alloy_primitives::{Address, B256, U256, keccak256};
use fixpoint_ml::{Engine, Limits};

use crate::{INFERENCE_ADDRESS, REGISTRY_ADDRESS, gas};

/// The registry's record of a model, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModelRecord {
    /// Who registered it.
    pub owner: Address,
    /// Model size in bytes.
    pub size: u64,
    /// Block it was registered in.
    pub registered_at: u64,
    /// Multiply-accumulates per call.
    pub macs: u64,
    /// Element operations per call.
    pub elem_ops: u64,
    /// Bytes of weights and activations read per call.
    pub bytes_read: u64,
    /// Peak live activation bytes.
    pub peak_activation_bytes: u64,
    /// Packed input bytes.
    pub input_bytes: u64,
    /// Packed output bytes.
    pub output_bytes: u64,
    /// Gas of a warm inference (docs/gas.md).
    pub warm_gas: u64,
}

/// An open chunked upload, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UploadRecord {
    /// Who opened it.
    pub owner: Address,
    /// Declared size.
    pub size: u64,
    /// Bytes received so far.
    pub received: u64,
    /// Chunks received so far.
    pub chunks: u64,
}

const PRESENT: u64 = 1;

/// A model written into the state at genesis, as if `owner` registered it in block 0: what a
/// genesis builder writes ([`genesis_registration`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The model id (keccak256 of its bytes).
    pub id: B256,
    /// The registry account's storage words to write, as (slot, word).
    pub storage: [(U256, U256); 3],
    /// The accounts whose nonce must be at least 1 (the registry's and the inference
    /// precompile's, so that neither is ever "empty"), as the registry does on a registration.
    pub accounts: [Address; 2],
}

/// The registration of `model` by `owner` at genesis (block 0). Errors if the model does not
/// verify (default limits).
pub fn genesis_registration(model: &[u8], owner: Address) -> Result<Registration, fixpoint_ml::Error> {
    let engine = Engine::load(model, &Limits::default())?;
    let id = keccak256(model);
    let record = ModelRecord::of(&engine, owner, model.len() as u64, 0);
    let [a, b, c] = model_slots(id);
    let [x, y, z] = record.encode();
    Ok(Registration { id, storage: [(a, x), (b, y), (c, z)], accounts: [REGISTRY_ADDRESS, INFERENCE_ADDRESS] })
}

/// Model `id`'s record, reading the registry account's storage with `read` (slot to word);
/// `None` if it is not registered.
pub fn model_info(id: B256, read: impl Fn(U256) -> U256) -> Option<ModelRecord> {
    ModelRecord::decode(model_slots(id).map(read))
}

/// The storage slots of model `id`'s record.
pub fn model_slots(id: B256) -> [U256; 3] {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(id.as_slice());
    let b = U256::from_be_bytes(keccak256(buf).0);
    [b, b.wrapping_add(U256::from(1)), b.wrapping_add(U256::from(2))]
}

/// The storage slots of `owner`'s upload of `id`.
pub fn upload_slots(id: B256, owner: Address) -> [U256; 2] {
    let mut buf = [0u8; 53];
    buf[..32].copy_from_slice(id.as_slice());
    buf[32..52].copy_from_slice(owner.as_slice());
    buf[52] = 1;
    let b = U256::from_be_bytes(keccak256(buf).0);
    [b, b.wrapping_add(U256::from(1))]
}

/// The storage slot holding the keccak256 of chunk `index` of `owner`'s upload of `id`.
pub fn chunk_slot(id: B256, owner: Address, index: u64) -> U256 {
    let mut buf = [0u8; 53];
    buf[..32].copy_from_slice(id.as_slice());
    buf[32..52].copy_from_slice(owner.as_slice());
    buf[52] = 2;
    U256::from_be_bytes(keccak256(buf).0).wrapping_add(U256::from(index))
}

fn four(a: u64, b: u64, c: u64, d: u64) -> U256 {
    (U256::from(a) << 192) | (U256::from(b) << 128) | (U256::from(c) << 64) | U256::from(d)
}

fn quarter(v: U256, i: usize) -> u64 {
    v.as_limbs().get(3 - i).copied().unwrap_or(0)
}

fn head(owner: Address, size: u64) -> U256 {
    (U256::from(PRESENT) << 248) | (U256::from(size) << 160) | U256::from_be_slice(owner.as_slice())
}

fn parse_head(v: U256) -> Option<(Address, u64)> {
    if v.is_zero() {
        return None;
    }
    let bytes = v.to_be_bytes::<32>();
    let owner = Address::from_slice(&bytes[12..]);
    let size = (v >> 160usize).as_limbs()[0];
    Some((owner, size))
}

impl ModelRecord {
    /// The record of `engine`'s model (`size` bytes) registered by `owner` in block
    /// `registered_at`: its cost and warm gas (docs/gas.md).
    pub fn of(engine: &Engine, owner: Address, size: u64, registered_at: u64) -> Self {
        let cost = engine.cost();
        Self {
            owner,
            size,
            registered_at,
            macs: cost.macs,
            elem_ops: cost.elem_ops,
            bytes_read: cost.bytes_read,
            peak_activation_bytes: cost.peak_activation_bytes,
            input_bytes: cost.input_bytes,
            output_bytes: cost.output_bytes,
            warm_gas: gas::warm_infer_gas(cost, engine.model().nodes.len() as u64),
        }
    }

    /// The three storage words.
    pub fn encode(&self) -> [U256; 3] {
        [
            head(self.owner, self.size),
            four(self.registered_at, self.macs, self.elem_ops, self.bytes_read),
            four(self.peak_activation_bytes, self.input_bytes, self.output_bytes, self.warm_gas),
        ]
    }

    /// The record from its storage words; `None` if absent.
    pub fn decode(w: [U256; 3]) -> Option<Self> {
        let (owner, size) = parse_head(w[0])?;
        Some(Self {
            owner,
            size,
            registered_at: quarter(w[1], 0),
            macs: quarter(w[1], 1),
            elem_ops: quarter(w[1], 2),
            bytes_read: quarter(w[1], 3),
            peak_activation_bytes: quarter(w[2], 0),
            input_bytes: quarter(w[2], 1),
            output_bytes: quarter(w[2], 2),
            warm_gas: quarter(w[2], 3),
        })
    }
}

impl UploadRecord {
    /// The two storage words.
    pub fn encode(&self) -> [U256; 2] {
        [head(self.owner, self.size), (U256::from(self.chunks) << 64) | U256::from(self.received)]
    }

    /// The record from its storage words; `None` if absent.
    pub fn decode(w: [U256; 2]) -> Option<Self> {
        let (owner, size) = parse_head(w[0])?;
        Some(Self { owner, size, received: w[1].as_limbs()[0], chunks: w[1].as_limbs()[1] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_zero_means_absent() {
        let r = ModelRecord {
            owner: Address::repeat_byte(0xAB),
            size: u64::MAX,
            registered_at: 7,
            macs: 1,
            elem_ops: 2,
            bytes_read: 3,
            peak_activation_bytes: 4,
            input_bytes: 5,
            output_bytes: 6,
            warm_gas: u64::MAX,
        };
        assert_eq!(ModelRecord::decode(r.encode()), Some(r));
        // Even the zero address with size 0 is present: the flag bit is set.
        let z = ModelRecord::default();
        assert_eq!(ModelRecord::decode(z.encode()), Some(z));
        assert_eq!(ModelRecord::decode([U256::ZERO; 3]), None);
        let u = UploadRecord { owner: Address::repeat_byte(1), size: 10, received: 4, chunks: u64::MAX };
        assert_eq!(UploadRecord::decode(u.encode()), Some(u));
        assert_ne!(model_slots(B256::ZERO)[0], upload_slots(B256::ZERO, Address::ZERO)[0]);
        let (id, o) = (B256::repeat_byte(3), Address::repeat_byte(4));
        assert_eq!(chunk_slot(id, o, 5), chunk_slot(id, o, 0) + U256::from(5));
        assert_ne!(chunk_slot(id, o, 0), upload_slots(id, o)[0]);
    }

    #[test]
    fn model_info_reads_the_record_words() {
        let r = ModelRecord { owner: Address::repeat_byte(7), size: 9, warm_gas: 5, ..Default::default() };
        let id = B256::repeat_byte(8);
        let words: std::collections::BTreeMap<U256, U256> = model_slots(id).into_iter().zip(r.encode()).collect();
        let read = |s| words.get(&s).copied().unwrap_or_default();
        assert_eq!(model_info(id, read), Some(r));
        assert_eq!(model_info(B256::repeat_byte(9), read), None);
    }
}
