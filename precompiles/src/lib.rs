//! fixpoint-precompiles: the model registry (0x0F00) and inference (0x0F01) precompiles for
//! revm, with their ABI (generated from `contracts/src/*.sol`), gas schedule (docs/gas.md),
//! storage layout, off-state model store and inference records (docs/precompiles.md).
//!
//! Consensus code: it must never panic or use floating point on any calldata, model or state,
//! and never return `PrecompileError::Fatal` for anything a user controls; bad input reverts
//! with an ABI custom error and pays for the work done.

#![deny(clippy::float_arithmetic)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

use std::sync::Arc;

use alloy_evm::precompiles::PrecompilesMap;
use alloy_primitives::{Address, address};

pub mod abi;
mod call;
pub mod gas;
pub mod inference;
pub mod records;
pub mod registry;
pub mod state;
pub mod store;

pub use records::InferenceRecord;
pub use store::{Chunk, ChunkKey, ModelStore, Scope, ScopeOutcome};

/// The model registry precompile: clear of Ethereum's 0x01–0x11 and Osaka's P256VERIFY (0x100).
pub const REGISTRY_ADDRESS: Address = address!("0x0000000000000000000000000000000000000F00");
/// The inference precompile.
pub const INFERENCE_ADDRESS: Address = address!("0x0000000000000000000000000000000000000F01");

/// Adds both precompiles, bound to `scope`, to an EVM's precompile map.
pub fn install(map: &mut PrecompilesMap, scope: &Arc<Scope>) {
    map.extend_precompiles([
        (REGISTRY_ADDRESS, registry::precompile(scope.clone())),
        (INFERENCE_ADDRESS, inference::precompile(scope.clone())),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Solidity library and the Rust constants name the same addresses.
    #[test]
    fn solidity_addresses_match() {
        let sol = include_str!("../../contracts/src/Fixpoint.sol");
        assert!(sol.contains("IModelRegistry(address(0x0F00))"));
        assert!(sol.contains("IInference(address(0x0F01))"));
        assert_eq!(u16::from_be_bytes([REGISTRY_ADDRESS[18], REGISTRY_ADDRESS[19]]), 0x0F00);
        assert_eq!(u16::from_be_bytes([INFERENCE_ADDRESS[18], INFERENCE_ADDRESS[19]]), 0x0F01);
    }
}
