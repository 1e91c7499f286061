//! How long a node spends executing blocks: building its own proposals and re-executing
//! everyone else's (sender recovery, inference, EVM, roots), in wall-clock time. This is the cost
//! of "every validator verifies" that the scale simulation reports (BENCHMARKS.md). Observability
//! only: nothing on the consensus path reads it.

use std::time::{Duration, Instant};

/// Blocks executed for one purpose and the wall-clock time they took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    /// Blocks executed.
    pub blocks: u64,
    /// Total wall-clock time.
    pub time: Duration,
}

impl Work {
    /// Adds one execution that took `elapsed`.
    fn add(&mut self, elapsed: Duration) {
        self.blocks = self.blocks.saturating_add(1);
        self.time = self.time.saturating_add(elapsed);
    }
}

/// A node's block execution so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecutionTime {
    /// Its own proposals (and solo-sealed blocks) built.
    pub built: Work,
    /// Other proposals re-executed: in `verify`, catching up on ancestors, and finalized blocks
    /// it had not executed (backfill).
    pub verified: Work,
}

/// Which kind of execution is being timed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// Building a block.
    Build,
    /// Re-executing a block.
    Verify,
}

impl ExecutionTime {
    /// Runs `f`, adding its wall-clock time to `kind`'s total; its result and that time (which
    /// the block's [`crate::Timing`] carries to the node's metrics: one measurement for both).
    pub(crate) fn time<T>(this: &std::sync::Mutex<Self>, kind: Kind, f: impl FnOnce() -> T) -> (T, Duration) {
        let started = Instant::now();
        let out = f();
        let elapsed = started.elapsed();
        let mut t = crate::shared::lock(this);
        match kind {
            Kind::Build => t.built.add(elapsed),
            Kind::Verify => t.verified.add(elapsed),
        }
        (out, elapsed)
    }
}
