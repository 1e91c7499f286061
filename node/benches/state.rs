//! State-size benchmark (issue 14): the same blocks applied on states of 10^3, 10^5 and 10^6
//! accounts, in one run. Each state holds that many funded accounts, an ERC-20 (BenchToken)
//! whose balance mapping has one non-zero slot per account (so at 10^6 accounts it is also a
//! contract with 10^6 storage slots), 256 senders and the digits MLP registered. Every size gets
//! the identical sequence of blocks, each with ETH transfers to new accounts, ETH transfers to
//! existing accounts, ERC-20 transfers to existing holders and inference calls.
//!
//! Per size it reports: the state's resident memory per account and build time; the database
//! size per account once the state is written to redb; per block (median over the blocks) the
//! time to execute it and compute its state root (and, apart, how long applying its changes to a
//! copy of the parent and hashing that copy's root take), the time to persist it (the block with its
//! change set, one durable redb transaction: what the block waits for) and the time to fold that
//! change set into the account and storage tables (what the node's folding thread does beside
//! the chain), the transactions per second of execution and persistence together; and the
//! resident memory the kept states before the head hold (the chain keeps 128 for queries),
//! measured as what dropping them frees, per account.
//!
//! `cargo bench -p fixpoint-node --bench state` (env STATE_SIZES=1000,100000,1000000,
//! STATE_BLOCKS=32). A bench binary: nothing here asserts a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_consensus::transaction::{Recovered, SignerRecoverable};
use alloy_consensus::{TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{Address, Bytes, TxKind, U256, keccak256};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{SolCall, sol};
use fixpoint_evm::state::AccountChange;
use fixpoint_evm::{BlockEnvInput, ChainSpec, StateChanges, WorldState, execute_block};
use fixpoint_node::client::sign;
use fixpoint_node::storage::{BlockExtras, FOLD_ENTRIES, Store, StoredBlock};
use fixpoint_precompiles::abi::IInference as I;
use fixpoint_precompiles::{INFERENCE_ADDRESS, ModelStore};
use revm::bytecode::Bytecode;
use revm::state::AccountInfo;
use serde_json::Value;

mod common;
use common::{artifact, root};

sol! {
    function transfer(address to, uint256 value) external returns (bool);
}

const SENDERS: usize = 256;
const NEW_TRANSFERS: usize = 200;
const OLD_TRANSFERS: usize = 200;
const TOKEN_TRANSFERS: usize = 200;
const INFERENCES: usize = 64;
const TOKEN: Address = Address::repeat_byte(0x70);

fn env_list(k: &str, d: &[usize]) -> Vec<usize> {
    std::env::var(k).ok().map_or_else(|| d.to_vec(), |v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
}

/// Resident set size of this process, bytes (Linux), after glibc has handed the heap's free
/// pages back to the kernel (`malloc_trim`): memory freed earlier (a built state's scratch, a
/// dropped copy) would otherwise stay resident and hide what is allocated next.
fn rss() -> u64 {
    // SAFETY: malloc_trim only releases free heap pages; it touches no live allocation.
    unsafe { libc::malloc_trim(0) };
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

fn account(i: usize) -> Address {
    Address::from_slice(&keccak256(format!("state bench account {i}"))[12..])
}

fn sender(i: usize) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&keccak256(format!("state bench sender {i}"))).expect("key")
}

/// BenchToken's runtime code.
fn token_code() -> Bytes {
    artifact("BenchToken.sol", "BenchToken", "deployedBytecode")
}

/// `balanceOf[holder]`'s slot (mapping at slot 0).
fn balance_slot(holder: Address) -> U256 {
    let mut key = [0u8; 64];
    key[12..32].copy_from_slice(holder.as_slice());
    U256::from_be_bytes(keccak256(key).0)
}

fn model_case() -> (Vec<u8>, Vec<u8>) {
    let doc: Value =
        serde_json::from_slice(&std::fs::read(root().join("tests/vectors/models/digits-mlp.json")).expect("vector"))
            .expect("json");
    let h = |k: &str| hex::decode(doc["cases"][0][k].as_str().expect("hex")).expect("hex");
    (h("model"), h("input"))
}

/// A state of `n` accounts (each 1 ETH and 1 token), the senders, the token and the model.
fn build_state(n: usize, code: &Bytes, model: &[u8]) -> WorldState {
    let mut all = StateChanges::default();
    let eth = U256::from(10u128.pow(18));
    let mut token_storage = std::collections::BTreeMap::new();
    for i in 0..n {
        let a = account(i);
        all.accounts.insert(a, AccountChange { info: Some(AccountInfo::from_balance(eth)), ..Default::default() });
        token_storage.insert(balance_slot(a), U256::from(1));
    }
    for s in 0..SENDERS {
        let a = sender(s).address();
        let rich = AccountInfo::from_balance(U256::from(10u128.pow(24)));
        all.accounts.insert(a, AccountChange { info: Some(rich), ..Default::default() });
        token_storage.insert(balance_slot(a), U256::from(10u64.pow(12)));
    }
    token_storage.insert(U256::from(1), U256::from(n as u64 + SENDERS as u64 * 10u64.pow(12)));
    let bytecode = Bytecode::new_raw(code.clone());
    let info = AccountInfo { code_hash: bytecode.hash_slow(), code: Some(bytecode), nonce: 1, ..Default::default() };
    all.accounts.insert(TOKEN, AccountChange { info: Some(info), storage_cleared: false, storage: token_storage });
    let mut state = WorldState::new();
    state.apply(&all);
    fixpoint_node::dev::register_at_genesis(&mut state, model, Address::ZERO).expect("model");
    state
}

/// The blocks every state size gets: signed once, recovered once.
fn blocks(count: usize, model: &[u8], input: &[u8]) -> Vec<Vec<Recovered<TxEnvelope>>> {
    let keys: Vec<PrivateKeySigner> = (0..SENDERS).map(sender).collect();
    let mut nonces = vec![0u64; SENDERS];
    let id = keccak256(model);
    let infer = I::inferCall { modelId: id, input: input.to_vec().into() }.abi_encode();
    let mut k = 0usize;
    let mut next = |to: Address, value: U256, input: Vec<u8>, gas: u64| {
        let s = k % SENDERS;
        k += 1;
        let tx = TxEip1559 {
            chain_id: ChainSpec::DEV.chain_id,
            nonce: nonces[s],
            gas_limit: gas,
            max_fee_per_gas: 10_000_000_000,
            max_priority_fee_per_gas: 1,
            to: TxKind::Call(to),
            value,
            access_list: Default::default(),
            input: input.into(),
        };
        nonces[s] += 1;
        let raw = sign(&keys[s], tx).expect("sign");
        let t = TxEnvelope::decode_2718(&mut raw.as_ref()).expect("decode");
        let signer = t.recover_signer().expect("recover");
        Recovered::new_unchecked(t, signer)
    };
    let mut out = Vec::new();
    let mut fresh = 0usize;
    for b in 0..count {
        let mut txs = Vec::new();
        for _ in 0..NEW_TRANSFERS {
            fresh += 1;
            let to = Address::from_slice(&keccak256(format!("state bench new {fresh}"))[12..]);
            txs.push(next(to, U256::from(1), vec![], 21_000));
        }
        for j in 0..OLD_TRANSFERS {
            // Spread over the whole state whatever its size (hashes pick the index).
            let pick = usize::from_be_bytes(keccak256(format!("{b} {j}"))[..8].try_into().expect("8"));
            txs.push(next(account(pick % 1000), U256::from(1), vec![], 21_000));
        }
        for j in 0..TOKEN_TRANSFERS {
            let call = transferCall { to: account((b * 7919 + j * 104_729) % 1000), value: U256::from(1) };
            txs.push(next(TOKEN, U256::ZERO, call.abi_encode(), 100_000));
        }
        for _ in 0..INFERENCES {
            txs.push(next(INFERENCE_ADDRESS, U256::ZERO, infer.clone(), 1_000_000));
        }
        out.push(txs);
    }
    out
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let sizes = env_list("STATE_SIZES", &[1_000, 100_000, 1_000_000]);
    let count = env_list("STATE_BLOCKS", &[32])[0].max(1);
    let code = token_code();
    let (model, input) = model_case();
    let t = Instant::now();
    let blocks = blocks(count, &model, &input);
    let per_block = blocks[0].len();
    eprintln!("{count} blocks of {per_block} transactions signed in {:.1} s", t.elapsed().as_secs_f64());
    let models = Arc::new(ModelStore::default());
    models.insert(model.clone().into());
    let spec = ChainSpec::DEV;
    let dir = std::env::temp_dir().join(format!("fixpoint-state-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");

    println!(
        "| accounts | state build (s) | memory / account (B) | db / account (B) | execute + root (ms/block) | of which: apply / root | persist (ms/block) | fold, beside (ms/block) | tx/s | kept states (B / account) | restart (s) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut first: Option<f64> = None;
    for &n in &sizes {
        let before = rss();
        let t = Instant::now();
        let genesis = build_state(n, &code, &model);
        let root = genesis.root();
        let build = t.elapsed();
        let memory = rss().saturating_sub(before) as f64 / n as f64;
        std::hint::black_box(root);

        let path = dir.join(format!("state-{n}.redb"));
        let _ = std::fs::remove_file(&path);
        let store = Store::open(&path).expect("db");
        let empty =
            StoredBlock { header: Default::default(), txs: vec![], senders: vec![], receipts: vec![], records: vec![] };
        store.commit_block(0, &empty, &genesis.as_changes(), &BlockExtras::default()).expect("genesis");
        let db = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) as f64 / n as f64;

        let mut kept = vec![genesis.clone()];
        let (mut exec, mut persist, mut apply, mut hashing) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut folding = Vec::new();
        for (i, txs) in blocks.iter().enumerate() {
            let parent = kept.last().expect("parent").clone();
            let env = BlockEnvInput {
                number: i as u64 + 1,
                timestamp: 1_700_000_000 + i as u64,
                gas_limit: 30_000_000,
                base_fee: 1_000_000_000,
                beneficiary: Address::ZERO,
                prev_randao: Default::default(),
            };
            let t = Instant::now();
            let out = execute_block(&parent, &models, &spec, &env, txs).expect("block executes");
            std::hint::black_box(out.state_root);
            exec.push(t.elapsed());
            // The breakdown: the same changes applied to another copy of the parent (fresh trie
            // nodes, so the root really hashes), timed apart: applying them, then the root.
            let mut copy = parent.clone();
            let t = Instant::now();
            copy.apply(&out.changes);
            apply.push(t.elapsed());
            let t = Instant::now();
            assert_eq!(copy.root(), out.state_root, "the copy reaches the same root");
            hashing.push(t.elapsed());
            assert!(out.txs.iter().all(|t| t.success), "every transaction succeeds");
            let t = Instant::now();
            store.commit_block(i as u64 + 1, &empty, &out.changes, &BlockExtras::default()).expect("commit");
            persist.push(t.elapsed());
            let t = Instant::now();
            while store.fold(FOLD_ENTRIES).expect("fold") > 0 {}
            folding.push(t.elapsed());
            kept.push(out.state);
        }
        // What the kept states cost: the memory dropping all but the head frees (what they do
        // not share with it), per account of the state.
        let with_history = rss();
        let head = kept.pop().expect("head");
        drop(kept);
        drop(genesis);
        let history = with_history.saturating_sub(rss()) as f64 / n as f64;
        // A restart: the database opened again and the head state loaded and its root hashed.
        let want = head.root();
        drop(head);
        drop(store);
        let t = Instant::now();
        let reopened = Store::open(&path).expect("reopen").state().expect("stored state");
        assert_eq!(reopened.root(), want, "the stored state is the head's");
        let restart = t.elapsed();
        drop(reopened);
        let (e, p, a, h, f) = (median(exec), median(persist), median(apply), median(hashing), median(folding));
        let tps = per_block as f64 / (e + p).as_secs_f64();
        let total = ms(e + p);
        let ratio = first.map_or(String::new(), |f| format!(" ({:.2}x)", total / f));
        first.get_or_insert(total);
        println!(
            "| {n} | {:.1} | {memory:.0} | {db:.0} | {:.2} | {:.2} / {:.2} | {:.2} | {:.2} | {tps:.0}{ratio} | {history:.0} | {:.1} |",
            build.as_secs_f64(),
            ms(e),
            ms(a),
            ms(h),
            ms(p),
            ms(f),
            restart.as_secs_f64()
        );
        let _ = std::fs::remove_file(&path);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
