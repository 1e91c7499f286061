//! The executed-state cache: the blocks a node built, verified or finalized, each with its
//! post-state ([`Executed`]), by digest. Children are built and verified on these states; a
//! block above the cache is executed on the newest ancestor it holds first
//! ([`States::execute_ancestry`]). Forks that are executed and then dropped leave no trace
//! beyond content-addressed model bytes (docs/consensus.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use alloy_primitives::Bloom;
use commonware_consensus::marshal::ancestry::Ancestry;
use commonware_cryptography::Digestible;
use commonware_cryptography::sha256::Digest;
use fixpoint_evm::{BlockOutcome, StateChanges, TxOutcome, WorldState};
use fixpoint_precompiles::{InferenceRecord, ModelStore, REGISTRY_ADDRESS, ScopeOutcome};
use futures::StreamExt;

use crate::block::Block;
use crate::execute::Executor;
use crate::shared::lock;
use crate::timing::{ExecutionTime, Kind};

/// Most unexecuted ancestors a node executes to catch up before it can verify or build on a
/// block (after a restart, the notarized blocks above its last finalized one).
pub const MAX_CATCH_UP: usize = 256;

/// A block this node executed: the post-state, and what a node persists with the block.
#[derive(Debug, Default)]
pub struct Executed {
    /// Height of the block.
    pub height: u64,
    /// Post-state.
    pub state: WorldState,
    /// What the block changed (what a node persists).
    pub changes: StateChanges,
    /// Per-transaction results (receipts, outputs, created contracts).
    pub txs: Vec<TxOutcome>,
    /// Bloom of all logs.
    pub logs_bloom: Bloom,
    /// Inference records, in order.
    pub records: Vec<InferenceRecord>,
    /// Models registered and upload chunks received in the block.
    pub scope: ScopeOutcome,
    /// How this node executed it and how long that took (metrics only).
    pub timing: Timing,
}

/// How a node executed a block, and the wall time it took (observed for metrics and logs;
/// nothing the chain computes depends on it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    /// Built (proposed or sealed) by this node; otherwise verified (re-executed).
    pub built: bool,
    /// Building or verifying, sender recovery included.
    pub execute: std::time::Duration,
    /// Of which inference calls.
    pub inference: std::time::Duration,
}

impl Timing {
    /// A block built in `execute`.
    pub fn built(execute: std::time::Duration) -> Self {
        Self { built: true, execute, inference: std::time::Duration::ZERO }
    }

    /// A block verified in `execute`.
    pub fn verified(execute: std::time::Duration) -> Self {
        Self { built: false, execute, inference: std::time::Duration::ZERO }
    }
}

impl Executed {
    /// A block's execution; stages its models and upload chunks in the model store.
    pub fn new(height: u64, out: BlockOutcome, timing: Timing) -> Arc<Self> {
        // Content-addressed: staging a block's models and chunks early cannot change a result
        // (docs/precompiles.md), and children may be built before finalization. Nothing is
        // removed here: only [`Executed::finalize_models`], for a finalized block.
        let scope = out.scope.commit(height);
        Arc::new(Self {
            height,
            state: out.state,
            changes: out.changes,
            txs: out.txs,
            logs_bloom: out.logs_bloom,
            records: out.records,
            scope,
            timing: Timing { inference: out.inference_time, ..timing },
        })
    }

    /// This block is final: drops from `models` the upload chunks no block that can still be
    /// built on may name (`ModelStore::finalize`). Idempotent.
    pub fn finalize_models(&self, models: &ModelStore) -> usize {
        let read = |slot| self.state.storage(&REGISTRY_ADDRESS, &slot);
        models.finalize(self.height, &self.scope.released, read)
    }

    /// The starting point of a node: block `height`'s post-state, nothing else.
    pub fn start(height: u64, state: WorldState) -> Arc<Self> {
        Arc::new(Self { height, state, ..Default::default() })
    }
}

/// The executed blocks a node holds, by digest: those it built or verified above its last
/// finalized block, and that block.
#[derive(Debug, Default)]
pub(crate) struct States(Mutex<HashMap<Digest, Arc<Executed>>>);

impl States {
    /// The executed block `digest`, if this node has it.
    pub(crate) fn get(&self, digest: &Digest) -> Option<Arc<Executed>> {
        lock(&self.0).get(digest).cloned()
    }

    /// Records block `digest`'s execution.
    pub(crate) fn insert(&self, digest: Digest, executed: Arc<Executed>) {
        lock(&self.0).insert(digest, executed);
    }

    /// Block `digest` at `height` is finalized as `executed`: it stays (children are built and
    /// verified on it, whether or not this node had executed it before), and so do the blocks
    /// above it; every other goes.
    pub(crate) fn finalized(&self, digest: Digest, height: u64, executed: Arc<Executed>) {
        let mut states = lock(&self.0);
        states.insert(digest, executed);
        states.retain(|k, e| e.height > height || *k == digest);
    }

    /// The execution of `first`, executing it and the ancestors this node has not executed (from
    /// `ancestry`, newest first) on the newest one it has (timed in `timing`). `None` when that takes more than
    /// [`MAX_CATCH_UP`] blocks, reaches down to the last finalized height (`finalized`, read as
    /// it goes) or an ancestor does not re-execute.
    pub(crate) async fn execute_ancestry(
        &self,
        exec: &Executor,
        timing: &Mutex<ExecutionTime>,
        finalized: impl Fn() -> u64,
        first: Block,
        ancestry: &mut impl Ancestry<Block>,
    ) -> Option<Arc<Executed>> {
        let mut pending = vec![first];
        let (mut parent, mut base) = loop {
            let newest = pending.last()?;
            if let Some(e) = self.get(&newest.digest()) {
                break (pending.pop()?, e);
            }
            if pending.len() >= MAX_CATCH_UP || newest.body().height <= finalized() {
                return None;
            }
            pending.push(ancestry.next().await?.inner().clone());
        };
        while let Some(block) = pending.pop() {
            let (out, took) = ExecutionTime::time(timing, Kind::Verify, || exec.verify(&parent, &base.state, &block));
            base = Executed::new(block.body().height, out.ok()?, Timing::verified(took));
            self.insert(block.digest(), base.clone());
            parent = block;
        }
        Some(base)
    }
}
