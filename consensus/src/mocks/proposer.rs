//! A byzantine proposer: it builds its block like an honest node, then tampers with one claim
//! before proposing it. Honest validators must refuse every such block for the fault's reason
//! and never finalize it (consensus/tests/sim.rs).

use std::sync::{Arc, Mutex};

use alloy_primitives::{Address, keccak256};
use commonware_cryptography::Digestible;
use commonware_cryptography::sha256::Digest;
use fixpoint_evm::{BlockOutcome, WorldState};

use crate::block::Block;
use crate::execute::Executor;
use crate::shared::{Shared, lock};

/// How this node behaves as a proposer: honestly, or one of the faults the tests inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Proposer {
    /// Builds what the executor computes.
    #[default]
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

/// A node's proposer and the proposals it tampered with.
#[derive(Debug, Default)]
pub(crate) struct Byzantine {
    proposer: Proposer,
    tampered: Mutex<Vec<(u64, Digest)>>,
}

impl Byzantine {
    /// The block this node proposes in place of `block` (built with outcome `out`); logs it if
    /// it differs.
    pub(crate) fn tamper(&self, block: Block, out: &BlockOutcome) -> Block {
        let honest_digest = block.digest();
        let block = self.proposer.tamper(block, out);
        if block.digest() != honest_digest {
            lock(&self.tampered).push((block.body().height, block.digest()));
        }
        block
    }
}

impl Shared {
    /// [`Shared::new`] for a node that proposes as `proposer`.
    pub fn with_proposer(
        exec: Executor,
        start: &Block,
        state: WorldState,
        proposer: Proposer,
        beneficiary: Address,
    ) -> Arc<Self> {
        let mut shared = Self::build(exec, start, state, beneficiary);
        shared.byzantine.proposer = proposer;
        Arc::new(shared)
    }

    /// The proposals this node tampered with, as (height, digest).
    pub fn tampered(&self) -> Vec<(u64, Digest)> {
        lock(&self.byzantine.tampered).clone()
    }
}

impl Proposer {
    /// The block this proposer proposes in place of `block`, built with outcome `out`.
    fn tamper(self, block: Block, out: &BlockOutcome) -> Block {
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
