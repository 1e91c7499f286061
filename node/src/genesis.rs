//! Genesis files: the chain id, block gas limit, timestamp, funded accounts (with optional code
//! and storage) and models registered before the first block. `fixpoint init` writes a starter
//! one; `fixpoint node --genesis FILE` starts from it; `--dev` builds the same thing in memory.
//! The format is in docs/genesis.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use alloy_primitives::{Address, B256, Bytes, U256};
use fixpoint_evm::{AccountChange, StateChanges, WorldState};
use revm::bytecode::Bytecode;
use revm::state::AccountInfo;
use serde::{Deserialize, Serialize};

use crate::dev::{DevAccount, EXAMPLE_MODEL, EXAMPLE_WRITER, register_at_genesis};

/// Why a genesis file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The JSON is malformed.
    #[error("{path} is not a valid genesis file: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A model entry is unusable.
    #[error("model #{index}: {reason}")]
    Model {
        /// Position in `models`.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A semantic problem (zero chain id, gas limit out of range...).
    #[error("{0}")]
    Invalid(String),
}

/// One allocated account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GenesisAccount {
    /// Balance in wei (number, decimal or 0x-hex string).
    pub balance: U256,
    /// Nonce.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub nonce: u64,
    /// Runtime bytecode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Bytes>,
    /// Storage slots.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage: BTreeMap<U256, U256>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A model registered at genesis: its bytes inline or in a file next to the genesis file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GenesisModel {
    /// Path of a `.fxp` file, relative to the genesis file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// The model bytes inline (0x-hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<Bytes>,
    /// The registered owner.
    pub owner: Address,
    /// If given, the model's id (keccak256 of its bytes) must equal it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<B256>,
}

/// A genesis file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Genesis {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Block gas limit.
    pub gas_limit: u64,
    /// Timestamp of block 0.
    pub timestamp: u64,
    /// Funded accounts.
    pub alloc: BTreeMap<Address, GenesisAccount>,
    /// Models registered before block 1.
    #[serde(default)]
    pub models: Vec<GenesisModel>,
    /// The validator set: 0x-hex ed25519 public keys (`fixpoint keygen`). Empty for a
    /// single-node dev chain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validators: Vec<String>,
}

/// What a genesis builds: the state of block 0 and the model bytes it registered.
#[derive(Debug)]
pub struct GenesisState {
    /// The state.
    pub state: WorldState,
    /// Registered models' bytes.
    pub models: Vec<Vec<u8>>,
    /// Their ids, in file order.
    pub model_ids: Vec<B256>,
    /// The validator set, in file order.
    pub validators: Vec<commonware_cryptography::ed25519::PublicKey>,
}

/// Smallest accepted block gas limit (one plain transfer must fit).
pub const MIN_GAS_LIMIT: u64 = 21_000;

impl Genesis {
    /// The dev chain's genesis: `accounts` with 10,000 ETH each and the example models (the digit
    /// classifier, the tiny GPT) owned by the first.
    pub fn dev(chain_id: u64, gas_limit: u64, accounts: &[DevAccount]) -> Self {
        let balance = U256::from(10_000u64) * U256::from(10u64).pow(U256::from(18));
        Self {
            chain_id,
            gas_limit,
            timestamp: 1_700_000_000,
            alloc: accounts.iter().map(|a| (a.address, GenesisAccount { balance, ..Default::default() })).collect(),
            models: [EXAMPLE_MODEL, EXAMPLE_WRITER]
                .into_iter()
                .map(|m| GenesisModel {
                    file: None,
                    bytes: Some(Bytes::from_static(m)),
                    owner: accounts.first().map_or(Address::ZERO, |a| a.address),
                    id: None,
                })
                .collect(),
            validators: Vec::new(),
        }
    }

    /// Reads and parses a genesis file.
    pub fn load(path: &Path) -> Result<Self, GenesisError> {
        let text = std::fs::read(path).map_err(|source| GenesisError::Read { path: path.into(), source })?;
        serde_json::from_slice(&text).map_err(|source| GenesisError::Parse { path: path.into(), source })
    }

    /// Builds block 0's state; model files are resolved against `base`.
    pub fn build(&self, base: &Path) -> Result<GenesisState, GenesisError> {
        if self.chain_id == 0 {
            return Err(GenesisError::Invalid("chainId must be positive".into()));
        }
        if self.gas_limit < MIN_GAS_LIMIT {
            return Err(GenesisError::Invalid(format!("gasLimit must be at least {MIN_GAS_LIMIT}")));
        }
        let mut alloc = StateChanges::default();
        for (address, a) in &self.alloc {
            let mut info = AccountInfo { balance: a.balance, nonce: a.nonce, ..Default::default() };
            if let Some(code) = a.code.as_ref().filter(|c| !c.is_empty()) {
                let bytecode = Bytecode::new_raw(code.clone());
                info.code_hash = bytecode.hash_slow();
                info.code = Some(bytecode);
            }
            let storage = a.storage.iter().map(|(k, v)| (*k, *v)).collect();
            alloc.accounts.insert(*address, AccountChange { info: Some(info), storage_cleared: false, storage });
        }
        let mut state = WorldState::new();
        state.apply(&alloc);
        let (mut models, mut model_ids) = (Vec::new(), Vec::new());
        for (index, m) in self.models.iter().enumerate() {
            let bad = |reason: String| GenesisError::Model { index, reason };
            let bytes = match (&m.file, &m.bytes) {
                (Some(f), None) => {
                    let p = base.join(f);
                    std::fs::read(&p).map_err(|e| bad(format!("cannot read {}: {e}", p.display())))?
                }
                (None, Some(b)) => b.to_vec(),
                _ => return Err(bad("give exactly one of `file` and `bytes`".into())),
            };
            let id =
                register_at_genesis(&mut state, &bytes, m.owner).map_err(|e| bad(format!("invalid model: {e}")))?;
            if m.id.is_some_and(|want| want != id) {
                return Err(bad(format!("its bytes hash to {id}, not the id given")));
            }
            if model_ids.contains(&id) {
                return Err(bad(format!("model {id} is listed twice")));
            }
            model_ids.push(id);
            models.push(bytes);
        }
        let mut validators = Vec::new();
        for (i, v) in self.validators.iter().enumerate() {
            let k =
                crate::keys::parse_public_key(v).map_err(|e| GenesisError::Invalid(format!("validator #{i}: {e}")))?;
            if validators.contains(&k) {
                return Err(GenesisError::Invalid(format!("validator #{i} is listed twice")));
            }
            validators.push(k);
        }
        Ok(GenesisState { state, models, model_ids, validators })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dev::dev_accounts;

    #[test]
    fn a_written_genesis_reads_back_and_builds_the_same_state() {
        let g = Genesis::dev(77, 30_000_000, &dev_accounts(3));
        let text = serde_json::to_string_pretty(&g).unwrap();
        let back: Genesis = serde_json::from_str(&text).unwrap();
        assert_eq!(back, g);
        let (a, b) = (g.build(Path::new(".")).unwrap(), back.build(Path::new(".")).unwrap());
        assert_eq!(fixpoint_evm::state_root(&a.state), fixpoint_evm::state_root(&b.state));
        assert_eq!(
            a.model_ids,
            vec![alloy_primitives::keccak256(EXAMPLE_MODEL), alloy_primitives::keccak256(EXAMPLE_WRITER)]
        );
    }

    #[test]
    fn bad_genesis_files_say_what_is_wrong() {
        let mut g = Genesis::dev(77, 30_000_000, &dev_accounts(1));
        g.models[0].bytes = Some(Bytes::from_static(b"not a model"));
        let e = g.build(Path::new(".")).unwrap_err().to_string();
        assert!(e.starts_with("model #0: invalid model"), "{e}");
        g.models[0].bytes = None;
        g.models[0].file = Some("missing.fxp".into());
        assert!(g.build(Path::new("/nonexistent")).unwrap_err().to_string().contains("cannot read"));
        g.models.clear();
        g.chain_id = 0;
        assert!(g.build(Path::new(".")).is_err());
        let e =
            serde_json::from_str::<Genesis>(r#"{"chainId":1,"gasLimit":30000000,"timestamp":0,"alloc":{},"extra":1}"#)
                .unwrap_err()
                .to_string();
        assert!(e.contains("unknown field"), "{e}");
        let g: Genesis = serde_json::from_str(
            r#"{"chainId":1,"gasLimit":30000000,"timestamp":0,"alloc":{"0x00000000000000000000000000000000000000aa":{"balance":"1000","storage":{"0x1":"0x2"},"code":"0x6000"}}}"#,
        )
        .unwrap();
        let s = g.build(Path::new(".")).unwrap().state;
        // Validators: valid distinct ed25519 keys.
        let mut g = Genesis::dev(77, 30_000_000, &dev_accounts(1));
        let k = crate::keys::public_key_hex(&commonware_cryptography::Signer::public_key(&crate::keys::generate()));
        g.validators = vec![k.clone()];
        assert_eq!(g.build(Path::new(".")).unwrap().validators.len(), 1);
        g.validators.push(k);
        assert!(g.build(Path::new(".")).unwrap_err().to_string().contains("listed twice"));
        g.validators = vec!["0x00".into()];
        assert!(g.build(Path::new(".")).unwrap_err().to_string().contains("validator #0"));
        let holder = Address::with_last_byte(0xaa);
        assert_eq!(s.balance(&holder), U256::from(1000));
        assert_eq!(s.storage(&holder, &U256::from(1)), U256::from(2));
    }
}
