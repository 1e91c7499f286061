//! A solo sealer: the dev chain's block producer, on the validators' path. It builds a child of
//! the last finalized block from the same mempool with the same [`Executor::build`](crate::Executor)
//! and header rules as a validator's proposal, and finalizes it through the same
//! [`Shared::finalize`] (execution cache, sink, mempool pruning) as marshal's finalized blocks. Only
//! the vote is missing: one sealer, so its block is final once built.

use std::collections::HashSet;
use std::sync::Arc;

use alloy_primitives::B256;
use commonware_cryptography::Digestible;

use crate::block::Block;
use crate::executed::{Executed, Timing};
use crate::finalizer::FinalizerFailure;
use crate::shared::Shared;
use crate::timing::Kind;

/// Seals blocks on `shared` alone.
#[derive(Debug, Clone)]
pub struct Sealer {
    shared: Arc<Shared>,
}

impl Sealer {
    /// A sealer over `shared` (whose sink receives every sealed block).
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The node state it seals on.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Builds a block of the pending transactions at time `now` (seconds) on the last finalized
    /// block and finalizes it; `None` when nothing is pending, unless `force` (an empty block).
    /// Transactions the executor refuses on this state leave the mempool, the others of every
    /// sender still go in.
    pub fn seal(&self, now: u64, force: bool) -> Result<Option<Block>, FinalizerFailure> {
        let s = &self.shared;
        let (parent, base) = s.head();
        let candidates = s.candidates(&base.state);
        if candidates.is_empty() && !force {
            return Ok(None);
        }
        let view = parent.body().view.saturating_add(1);
        let ((block, out, refused), took) =
            s.timed(Kind::Build, || s.exec.build(&parent, &base.state, view, now, s.beneficiary, candidates));
        let took = Timing::built(took);
        if !refused.is_empty() {
            s.drop_pending(&refused.into_iter().collect::<HashSet<B256>>());
        }
        s.states.insert(block.digest(), Executed::new(block.body().height, out, took));
        s.count_proposal();
        s.finalize(&block)?;
        Ok(Some(block))
    }
}
