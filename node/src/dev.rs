//! The development chain's pieces: deterministic dev accounts, the example models (the digit
//! classifier of tests/vectors/models/digits-mlp.json and the tiny GPT), and registering a model
//! at genesis.

use alloy_primitives::{Address, B256, keccak256};
use alloy_signer_local::PrivateKeySigner;
use fixpoint_evm::WorldState;
use fixpoint_precompiles::REGISTRY_ADDRESS;
use fixpoint_precompiles::state::genesis_registration;

/// The example model: the digits MLP from `quantize/` (UCI 8×8 digits, 97.5 % test accuracy).
pub const EXAMPLE_MODEL: &[u8] = include_bytes!("../assets/digits-mlp.fxp");

/// The example language model: the tiny byte-level GPT from `quantize/` (4 blocks, width 64,
/// window 128, trained on the King James Bible; quantize/ACCURACY.md), which `generate` runs.
pub const EXAMPLE_WRITER: &[u8] = include_bytes!("../assets/tiny-gpt.fxp");

/// A dev account: its key and address.
#[derive(Debug, Clone)]
pub struct DevAccount {
    /// The private key (public knowledge: dev chains only).
    pub key: B256,
    /// The address.
    pub address: Address,
}

/// The `n` dev accounts: key `i` is keccak256("fixpoint dev account {i}").
pub fn dev_accounts(n: usize) -> Vec<DevAccount> {
    (0..n)
        .filter_map(|i| {
            let key = keccak256(format!("fixpoint dev account {i}"));
            let signer = PrivateKeySigner::from_bytes(&key).ok()?;
            Some(DevAccount { key, address: signer.address() })
        })
        .collect()
}

/// Writes `model` into the registry's state as if registered by `owner` at genesis; returns
/// its id. Errors if the model does not verify.
pub fn register_at_genesis(state: &mut WorldState, model: &[u8], owner: Address) -> Result<B256, fixpoint_ml::Error> {
    let registration = genesis_registration(model, owner)?;
    for a in registration.accounts {
        state.set_nonce(a, state.nonce(&a).max(1));
    }
    for (slot, w) in registration.storage {
        state.set_storage(REGISTRY_ADDRESS, slot, w);
    }
    Ok(registration.id)
}
