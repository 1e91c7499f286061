//! Inference records: what every inference executed in a block did, for the block to commit to
//! (docs/precompiles.md §4). Records are kept in call order, including calls under STATICCALL
//! and calls inside transactions that later revert: they happened and were paid for.

use alloy_primitives::{B256, keccak256};

/// One executed inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InferenceRecord {
    /// Index of the transaction in the block.
    pub tx_index: u32,
    /// Order of the call within its transaction, from 0.
    pub call_index: u32,
    /// The model.
    pub model_id: B256,
    /// keccak256 of the packed input.
    pub input_hash: B256,
    /// keccak256 of the packed output.
    pub output_hash: B256,
    /// Gas charged for the call.
    pub gas_used: u64,
}

impl InferenceRecord {
    /// Encoded length: two u32, three hashes, one u64.
    pub const ENCODED_LEN: usize = 4 + 4 + 32 * 3 + 8;

    /// Fixed-width big-endian encoding: `tx_index ‖ call_index ‖ model_id ‖ input_hash ‖
    /// output_hash ‖ gas_used` (the leaf of the records root).
    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        let parts: [&[u8]; 6] = [
            &self.tx_index.to_be_bytes(),
            &self.call_index.to_be_bytes(),
            self.model_id.as_slice(),
            self.input_hash.as_slice(),
            self.output_hash.as_slice(),
            &self.gas_used.to_be_bytes(),
        ];
        let mut rest: &mut [u8] = &mut out;
        for p in parts {
            let (head, tail) = rest.split_at_mut(p.len().min(rest.len()));
            head.copy_from_slice(p.get(..head.len()).unwrap_or_default());
            rest = tail;
        }
        out
    }

    /// Decodes [`InferenceRecord::encode`]'s output.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != Self::ENCODED_LEN {
            return None;
        }
        let u32_at = |i: usize| b.get(i..i + 4).and_then(|s| <[u8; 4]>::try_from(s).ok()).map(u32::from_be_bytes);
        let h_at = |i: usize| b.get(i..i + 32).map(B256::from_slice);
        Some(Self {
            tx_index: u32_at(0)?,
            call_index: u32_at(4)?,
            model_id: h_at(8)?,
            input_hash: h_at(40)?,
            output_hash: h_at(72)?,
            gas_used: b.get(104..112).and_then(|s| <[u8; 8]>::try_from(s).ok()).map(u64::from_be_bytes)?,
        })
    }

    /// The record for a call: hashes its packed input and output.
    pub fn new(tx_index: u32, call_index: u32, model_id: B256, input: &[u8], output: &[u8], gas_used: u64) -> Self {
        Self { tx_index, call_index, model_id, input_hash: keccak256(input), output_hash: keccak256(output), gas_used }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_is_fixed_width() {
        let r = InferenceRecord::new(3, 1, B256::repeat_byte(7), b"in", b"out", 12_345);
        let e = r.encode();
        assert_eq!(&e[..8], &[0, 0, 0, 3, 0, 0, 0, 1]);
        assert_eq!(&e[104..], &12_345u64.to_be_bytes());
        assert_eq!(InferenceRecord::decode(&e), Some(r));
        assert_eq!(InferenceRecord::decode(&e[1..]), None);
    }
}
