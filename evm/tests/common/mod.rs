//! A small chain harness for the integration tests: forge artifacts, the model vectors, signed
//! transactions, and blocks executed with the real executor and precompiles.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use alloy_consensus::transaction::Recovered;
use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_primitives::{Address, Bytes, Signature, TxKind, U256};
use fixpoint_evm::{BlockEnvInput, BlockOutcome, ChainSpec, WorldState, execute_block};
use fixpoint_precompiles::ModelStore;
use serde_json::Value;

pub fn root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("..")
}

/// Builds the contracts once per test binary with the pinned forge (scripts/test installs it).
pub fn artifact(file: &str, name: &str) -> Bytes {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let forge = root().join("node_modules/.bin/forge");
        assert!(forge.exists(), "forge missing: run `npm ci --ignore-scripts` at the repository root");
        let out = Command::new(forge).arg("build").current_dir(root()).output().expect("run forge");
        assert!(out.status.success(), "forge build failed: {}", String::from_utf8_lossy(&out.stderr));
    });
    let path = root().join("out").join(file).join(format!("{name}.json"));
    let doc: Value = serde_json::from_slice(&std::fs::read(&path).expect("artifact")).expect("artifact json");
    let hex = doc["bytecode"]["object"].as_str().expect("bytecode");
    hex::decode(hex.trim_start_matches("0x")).expect("hex").into()
}

/// One case of a model conformance vector.
pub struct Case {
    pub model: Vec<u8>,
    pub input: Vec<u8>,
    pub output: Vec<u8>,
}

pub fn model_cases(name: &str) -> Vec<Case> {
    let path = root().join("tests/vectors/models").join(format!("{name}.json"));
    let doc: Value = serde_json::from_slice(&std::fs::read(path).expect("vector file")).expect("json");
    doc["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| {
            let h = |k: &str| hex::decode(c[k].as_str().expect("hex field")).expect("hex");
            Case { model: h("model"), input: h("input"), output: h("output") }
        })
        .collect()
}

pub struct Chain {
    pub state: WorldState,
    pub store: Arc<ModelStore>,
    pub spec: ChainSpec,
    pub number: u64,
    pub nonces: std::collections::HashMap<Address, u64>,
}

pub const ALICE: Address = Address::repeat_byte(0xA1);
pub const BOB: Address = Address::repeat_byte(0xB0);

impl Default for Chain {
    fn default() -> Self {
        Self::new()
    }
}

impl Chain {
    pub fn new() -> Self {
        let mut state = WorldState::new();
        for a in [ALICE, BOB] {
            state.fund(a, U256::from(10u128.pow(24)));
        }
        Self {
            state,
            store: Arc::new(ModelStore::default()),
            spec: ChainSpec::DEV,
            number: 0,
            nonces: Default::default(),
        }
    }

    pub fn env(&self) -> BlockEnvInput {
        BlockEnvInput {
            number: self.number + 1,
            timestamp: 1_700_000_000 + self.number,
            gas_limit: 60_000_000,
            base_fee: 7,
            beneficiary: Address::repeat_byte(0xFE),
            prev_randao: Default::default(),
        }
    }

    /// A signed-looking EIP-1559 transaction from `from` (the executor takes the recovered
    /// sender); nonces follow the state plus transactions built since the last block.
    pub fn tx(&mut self, from: Address, to: TxKind, data: impl Into<Bytes>, gas: u64) -> Recovered<TxEnvelope> {
        let base = self.state.nonce(&from);
        let nonce = self.nonces.entry(from).or_insert(base);
        let t = TxEip1559 {
            chain_id: self.spec.chain_id,
            nonce: *nonce,
            gas_limit: gas,
            max_fee_per_gas: 1_000,
            max_priority_fee_per_gas: 1,
            to,
            value: U256::ZERO,
            access_list: Default::default(),
            input: data.into(),
        };
        *nonce += 1;
        Recovered::new_unchecked(TxEnvelope::Eip1559(t.into_signed(Signature::test_signature())), from)
    }

    /// Executes a block without applying it.
    pub fn dry_run(&mut self, txs: &[Recovered<TxEnvelope>]) -> BlockOutcome {
        self.nonces.clear();
        execute_block(&self.state, &self.store, &self.spec, &self.env(), txs).expect("block executes")
    }

    /// Executes and applies a block, final at once: commits its scope and finalizes it in the
    /// model store.
    pub fn block(&mut self, txs: Vec<Recovered<TxEnvelope>>) -> BlockOutcome {
        let mut out = self.dry_run(&txs);
        self.nonces.clear();
        let scope = commit_scope(&out, self.number + 1);
        self.number += 1;
        // Applied blocks are final here.
        let read = |slot| out.state.storage(&fixpoint_precompiles::REGISTRY_ADDRESS, &slot);
        self.store.finalize(self.number, &scope.released, read);
        self.state = std::mem::replace(&mut out.state, WorldState::new());
        out
    }
}

/// Commits an executed block's scope to the model store, as a node does for every block it
/// builds or verifies (final or not).
pub fn commit_scope(out: &BlockOutcome, height: u64) -> fixpoint_precompiles::ScopeOutcome {
    out.scope.commit(height)
}

/// CPU time this process has used, all threads (`CLOCK_PROCESS_CPUTIME_ID`). The benches time
/// with it rather than the wall clock: other work on a shared machine takes the CPU away from a
/// bench (wall time grows) but does not add to its CPU time, so ratios measured in one run stay
/// put when the machine is busy.
pub fn cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    std::time::Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.clamp(0, 999_999_999) as u32)
}
