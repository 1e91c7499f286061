//! How a node proposes: honestly, or with one of the faults the tests inject.

use alloy_primitives::keccak256;
use fixpoint_evm::BlockOutcome;

use crate::block::Block;

/// How this node behaves as a proposer: honestly, or one of the faults the tests inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proposer {
    /// Builds what the executor computes.
    Honest,
    /// Claims a wrong state root.
    WrongStateRoot,
    /// Its inference engine "answers differently": claims a records root over an output with one
    /// byte changed (one token of a generation).
    WrongInferenceOutput,
    /// Claims a wrong inference-records root.
    WrongRecordsRoot,
    /// Slips a transaction with a nonce gap into its block.
    InvalidTransaction,
    /// Stamps its block an hour ahead of its clock (pushing block time ahead for every child).
    FutureTimestamp,
}

impl Proposer {
    /// The block this proposer proposes in place of `block`, built with outcome `out`.
    pub(crate) fn tamper(self, block: Block, out: &BlockOutcome) -> Block {
        let mut body = block.body().clone();
        match self {
            Proposer::Honest => return block,
            Proposer::WrongStateRoot => body.state_root = keccak256(body.state_root),
            Proposer::WrongInferenceOutput => {
                let mut records = out.records.clone();
                let Some(r) = records.first_mut() else { return block };
                // One byte of the output changed (one token of a generation) when the call was
                // the transaction itself and its output is at hand; any other change otherwise.
                let tx_output = out.txs.get(r.tx_index as usize).map(|t| &t.output);
                r.output_hash = match tx_output.and_then(|o| abi_bytes(o)) {
                    Some(bytes) if r.call_index == 0 && keccak256(bytes) == r.output_hash => {
                        let mut altered = bytes.to_vec();
                        if let Some(last) = altered.last_mut() {
                            *last ^= 1;
                        }
                        keccak256(&altered)
                    }
                    _ => keccak256(r.output_hash),
                };
                body.records_root = fixpoint_evm::records_root(&records);
            }
            Proposer::WrongRecordsRoot => body.records_root = keccak256(body.records_root),
            Proposer::FutureTimestamp => body.timestamp = body.timestamp.saturating_add(3600),
            Proposer::InvalidTransaction => match body.txs.first().cloned() {
                // A copy of a transaction already in the block: its nonce is used by then.
                Some(t) => body.txs.push(t),
                None => return block,
            },
        }
        Block::new(body)
    }
}

/// The `bytes` an ABI-encoded `(bytes)` return holds (offset, length, data), if it is one.
fn abi_bytes(ret: &[u8]) -> Option<&[u8]> {
    let word = |at: usize| -> Option<usize> {
        let w = ret.get(at..at + 32)?;
        let (high, low) = w.split_at(24);
        if high.iter().any(|&b| b != 0) {
            return None;
        }
        usize::try_from(u64::from_be_bytes(low.try_into().ok()?)).ok()
    };
    let offset = word(0)?;
    let len = word(offset)?;
    ret.get(offset.checked_add(32)?..offset.checked_add(32)?.checked_add(len)?)
}
