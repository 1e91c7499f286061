//! The precompiles' ABI, generated from the Solidity interfaces in `contracts/src/` so the Rust
//! side and the Solidity side cannot drift.

#![allow(missing_docs, unreachable_pub)]

alloy_sol_types::sol!(
    #[sol(all_derives)]
    "../contracts/src/IInference.sol"
);

alloy_sol_types::sol!(
    #[sol(all_derives)]
    "../contracts/src/IModelRegistry.sol"
);
