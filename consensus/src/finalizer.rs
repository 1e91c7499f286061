//! The [`Finalizer`]: receives finalized blocks from marshal, in height order, applies each to
//! the node's finalized side ([`Durable`]) and persists it through the node's [`Sink`] before
//! acknowledging it. A block it cannot apply halts finalization on this node
//! ([`FinalizerFailure`]): it never skips or diverges.

use std::sync::Arc;

use alloy_primitives::B256;
use commonware_actor::Feedback;
use commonware_consensus::Reporter;
use commonware_consensus::marshal::Update;
use commonware_cryptography::Digestible;
use commonware_cryptography::sha256::Digest;
use commonware_utils::Acknowledgement;

use crate::block::Block;
use crate::execute::VerifyError;
use crate::executed::Executed;
use crate::shared::Shared;

/// How many finalized blocks [`Shared::finalized`] lists (the most recent).
pub const MAX_FINALIZED_LOG: usize = 100_000;

/// Where a node persists finalized blocks (its database), before marshal is acknowledged.
pub trait Sink: Send + Sync + 'static {
    /// Persists finalized `block`, executed as `executed`. Called once per height, in order,
    /// from height 1; an error halts finalization on this node (marshal is not acknowledged).
    fn finalized(&self, block: &Block, executed: &Executed) -> Result<(), SinkError>;
}

/// Why a [`Sink`] could not persist a finalized block: the node's own typed error, kept whole
/// (shared, so that [`FinalizerFailure`] stays cloneable).
#[derive(Debug, Clone, thiserror::Error)]
#[error(transparent)]
pub struct SinkError(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl SinkError {
    /// The sink error `e`.
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(e))
    }
}

/// A finalized block as this node recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finalized {
    /// Height.
    pub height: u64,
    /// Digest.
    pub digest: Digest,
    /// State root after it.
    pub state_root: B256,
    /// Its inference-records root.
    pub records_root: B256,
    /// Transactions in it.
    pub txs: usize,
    /// Its timestamp (seconds).
    pub timestamp: u64,
}

impl Finalized {
    /// The record of block `b`.
    pub(crate) fn of(b: &Block) -> Self {
        Self {
            height: b.body().height,
            digest: b.digest(),
            state_root: b.body().state_root,
            records_root: b.body().records_root,
            txs: b.body().txs.len(),
            timestamp: b.body().timestamp,
        }
    }
}

/// Why a finalized block could not be applied here (each halts finalization on this node).
#[derive(Debug, Clone, thiserror::Error)]
pub enum FinalizerFailure {
    /// Not a child of this node's last finalized block.
    #[error("finalized block {0} does not extend this node's last finalized block")]
    NotAChild(u64),
    /// It does not re-execute to what it claims here.
    #[error("finalized block {height} does not re-execute here: {reason}")]
    Diverged {
        /// Height.
        height: u64,
        /// What re-execution found.
        reason: VerifyError,
    },
    /// The sink (database) refused it.
    #[error("cannot persist finalized block {height}: {reason}")]
    Persist {
        /// Height.
        height: u64,
        /// The sink's error.
        reason: SinkError,
    },
}

/// The finalized side of a node: the last finalized block, the state after it, and the chain
/// finalized since the node started (what survives a crash is what [`Sink`] persisted; a node
/// restarts from it with [`Shared::new`]).
#[derive(Debug)]
pub(crate) struct Durable {
    /// The last finalized block.
    pub(crate) block: Block,
    /// The state after it.
    pub(crate) executed: Arc<Executed>,
    /// The blocks finalized since the node started (the last [`MAX_FINALIZED_LOG`] or so).
    pub(crate) finalized: Vec<Finalized>,
}

impl Durable {
    /// A node's finalized side, starting at `start` executed as `executed`.
    pub(crate) fn new(start: &Block, executed: Arc<Executed>) -> Self {
        // Marshal redelivers finalized blocks above its last acknowledgement: those at or below
        // `start` are skipped.
        let finalized = if start.body().height == 0 { Vec::new() } else { vec![Finalized::of(start)] };
        Self { block: start.clone(), executed, finalized }
    }
}

/// Receives finalized blocks from marshal.
#[derive(Debug, Clone)]
pub struct Finalizer {
    shared: Arc<Shared>,
}

impl Finalizer {
    /// The finalizer over `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl Reporter for Finalizer {
    type Activity = Update<Block>;

    fn report(&mut self, activity: Update<Block>) -> Feedback {
        let Update::Block(block, ack) = activity else { return Feedback::Ok };
        // An error is recorded by `finalize` and halts marshal here: no acknowledgement.
        if self.shared.finalize(block.inner()).is_err() {
            return Feedback::Ok;
        }
        ack.acknowledge();
        Feedback::Ok
    }
}
