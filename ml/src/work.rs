//! Counted work: what the interpreter really did in a run, counted by the code that does it.
//!
//! Every loop that the engine runs adds its trip count here, once per loop entry (never per
//! element, never through atomics), so counting costs a few additions per row, window or kernel
//! call. The verifier's cost ([`crate::Cost`], docs/model-format.md §7) must bound this count
//! component-wise for every model it accepts and every input; `ml/tests/cost.rs` checks that on
//! random and adversarial models. Units (docs/gas.md):
//!
//! - `macs`: multiply-accumulates of the GEMM and convolution kernels;
//! - `elem_ops`: other element steps (one element computed by an inner loop: requantization,
//!   elementwise ops, pooling reads, comparisons, tree leaf additions, im2col fills);
//! - `steps`: entries into an inner loop and other fixed per-row costs (a dot product, a window
//!   cell, a tree walk, a copied chunk);
//! - `visits`: tree nodes visited (each a load that depends on the previous one, several times
//!   the cost of a step);
//! - `calls`: kernel invocations, heap allocations and per-op dispatch;
//! - `bytes`: bytes of the buffers allocated. Plain copies and conversions into a fresh buffer
//!   (widening, output copies, Reshape, Concat) write each allocated byte once and are priced
//!   by these bytes rather than as element steps.

use std::cell::Cell;
use std::ops::Add;

/// Amounts of work, counted ([`Counter`]) or bounded (the verifier's cost).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    /// Multiply-accumulates.
    pub macs: u64,
    /// Element steps other than MACs.
    pub elem_ops: u64,
    /// Inner-loop entries and per-row overheads.
    pub steps: u64,
    /// Tree nodes visited.
    pub visits: u64,
    /// Kernel invocations, allocations, per-op dispatch.
    pub calls: u64,
    /// Bytes allocated.
    pub bytes: u64,
}

impl Work {
    /// True if every component of `self` is at most the same component of `bound`.
    pub fn within(&self, bound: &Work) -> bool {
        self.macs <= bound.macs
            && self.elem_ops <= bound.elem_ops
            && self.steps <= bound.steps
            && self.visits <= bound.visits
            && self.calls <= bound.calls
            && self.bytes <= bound.bytes
    }
}

impl Work {
    /// The work counted since `before` (component-wise, saturating): one op's share of a run.
    pub fn since(&self, before: &Work) -> Work {
        Work {
            macs: self.macs.saturating_sub(before.macs),
            elem_ops: self.elem_ops.saturating_sub(before.elem_ops),
            steps: self.steps.saturating_sub(before.steps),
            visits: self.visits.saturating_sub(before.visits),
            calls: self.calls.saturating_sub(before.calls),
            bytes: self.bytes.saturating_sub(before.bytes),
        }
    }
}

impl Add for Work {
    type Output = Work;
    fn add(self, o: Work) -> Work {
        Work {
            macs: self.macs.saturating_add(o.macs),
            elem_ops: self.elem_ops.saturating_add(o.elem_ops),
            steps: self.steps.saturating_add(o.steps),
            visits: self.visits.saturating_add(o.visits),
            calls: self.calls.saturating_add(o.calls),
            bytes: self.bytes.saturating_add(o.bytes),
        }
    }
}

/// The counter a run carries in its [`crate::ops::EvalCx`]. Single-threaded, like a run; one
/// cell per component so a bump is one add to memory.
#[derive(Debug, Default)]
pub struct Counter {
    macs: Cell<u64>,
    elem_ops: Cell<u64>,
    steps: Cell<u64>,
    visits: Cell<u64>,
    calls: Cell<u64>,
    bytes: Cell<u64>,
}

#[inline]
fn bump(c: &Cell<u64>, n: usize) {
    c.set(c.get().saturating_add(u64::try_from(n).unwrap_or(u64::MAX)));
}

impl Counter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `n` multiply-accumulates.
    #[inline]
    pub fn macs(&self, n: usize) {
        bump(&self.macs, n);
    }

    /// Adds `n` element steps.
    #[inline]
    pub fn elems(&self, n: usize) {
        bump(&self.elem_ops, n);
    }

    /// Adds `n` inner-loop entries.
    #[inline]
    pub fn steps(&self, n: usize) {
        bump(&self.steps, n);
    }

    /// Adds `n` tree node visits.
    #[inline]
    pub fn visits(&self, n: usize) {
        bump(&self.visits, n);
    }

    /// Adds `n` kernel calls or allocations.
    #[inline]
    pub fn calls(&self, n: usize) {
        bump(&self.calls, n);
    }

    /// Adds one allocation of `bytes` bytes.
    #[inline]
    pub fn alloc(&self, bytes: usize) {
        bump(&self.calls, 1);
        bump(&self.bytes, bytes);
    }

    /// What has been counted.
    pub fn get(&self) -> Work {
        Work {
            macs: self.macs.get(),
            elem_ops: self.elem_ops.get(),
            steps: self.steps.get(),
            visits: self.visits.get(),
            calls: self.calls.get(),
            bytes: self.bytes.get(),
        }
    }
}
