//! fixpoint-evm: the chain's EVM and its block executor. The EVM is revm (via alloy-evm) with
//! Ethereum's precompiles for the configured hardfork plus fixpoint's model registry (0x0F00)
//! and inference (0x0F01) precompiles. The executor applies a block's transactions to a state,
//! producing receipts, the state root, the receipts root and the inference-records root.
//!
//! Consensus code: a pure function of (parent state, block), identical on every node. It must
//! never panic on a transaction or block, never use floating point, and never iterate a hash
//! map where order could leak into a result.

#![deny(clippy::float_arithmetic)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod admission;
pub mod chain;
pub mod executor;
pub mod state;
pub mod trie;

pub use chain::{ChainSpec, create_evm, create_evm_with_inspector};
pub use executor::{
    BlockEnvInput, BlockOutcome, BuiltBlock, ExecError, Refused, RefusedReason, TxOutcome, TxRejection, build_block,
    execute_block, execute_block_in, inspect_last_in, records_root,
};
pub use state::{AccountChange, StateChanges, WorldState, state_root};
