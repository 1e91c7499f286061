//! fixpoint-consensus: the validator network on commonware (simplex BFT + marshal). A leader
//! proposes a block built by the `evm` executor; every validator re-executes it on the parent's
//! state, inference included, and votes for it only if the state root, receipts root, gas used
//! and inference-records root match. Finalized blocks come out of marshal in order.
//!
//! Consensus code: it must never panic on a peer's block or a transaction, never use floating
//! point, and never let the order of a hash map reach a result.

#![deny(clippy::float_arithmetic)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod app;
pub mod block;
pub mod engine;
pub mod execute;
pub mod executed;
pub mod finalizer;
pub mod follow;
pub mod gossip;
pub mod mempool;
#[cfg(feature = "mocks")]
pub mod mocks;
pub mod sealer;
pub mod shared;
pub mod timing;

pub use app::App;
pub use block::{Block, BlockBody, BlockLimits};
pub use execute::{Executor, PendingTx, VerifyError};
pub use executed::{Executed, Timing};
pub use finalizer::{Finalizer, Sink, SinkError};
pub use shared::Shared;
pub use timing::{ExecutionTime, Work};
