//! `fixpoint-fuzz`: the bodies of the fuzz targets, as plain functions of `&[u8]`.
//!
//! Each target feeds outside input to one consensus-facing decoder or entry point and asserts
//! the properties that must hold for every input (docs/fuzzing.md):
//!
//! | target                | input                                   | property                                     |
//! |-----------------------|-----------------------------------------|----------------------------------------------|
//! | [`model`]             | model bytes                             | parse → verify never panics; accepted models give the same bits on every kernel path |
//! | [`precompile_calldata`] | flags ‖ calldata, up to 4 transactions | the block executes (no `InvalidTx`, no fatal, no panic) |
//! | [`block_codec`]       | an encoded consensus block              | decoding never panics; a decoded block re-encodes to the same bytes |
//! | [`gossip_batch`]      | a gossip message                        | decoding never panics; a decoded batch re-encodes to the same bytes |
//! | [`rpc_params`]        | method index ‖ params text              | every JSON-RPC method answers a result or an error, never panics |
//!
//! The libFuzzer drivers (`fuzz_targets/`, built by `scripts/fuzz`) call these functions, and
//! `tests/smoke.rs` replays the committed corpus and seeded random inputs through them, so CI
//! exercises the same code without a fuzzing toolchain. A panic is the failure signal; with
//! `FIXPOINT_FUZZ_MAX_MS` set, an input that takes longer than that also panics (a hang).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use alloy_consensus::transaction::Recovered;
use alloy_consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy_primitives::{Address, B256, Bytes, Signature, TxKind, U256, keccak256};
use alloy_sol_types::SolCall;
use commonware_codec::{Copying, Decode, Encode};
use fixpoint_consensus::{Block, BlockLimits, gossip};
use fixpoint_evm::{BlockEnvInput, ChainSpec, WorldState, execute_block};
use fixpoint_ml::engine::default_path;
use fixpoint_ml::kernels::Path;
use fixpoint_ml::{Engine, Limits, Model, model_id, verify};
use fixpoint_precompiles::abi::IModelRegistry as R;
use fixpoint_precompiles::{INFERENCE_ADDRESS, ModelStore, REGISTRY_ADDRESS};
use jsonrpsee::RpcModule;
use serde_json::Value;

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// The five targets, by the names of their libFuzzer drivers and corpus directories.
pub const TARGETS: [(&str, Target); 5] = [
    ("model", model),
    ("precompile_calldata", precompile_calldata),
    ("block_codec", block_codec),
    ("gossip_batch", gossip_batch),
    ("rpc_params", rpc_params),
];

/// Largest `macs + elem_ops` of an accepted model that [`model`] also runs: inference time is
/// bounded by gas (priced from this cost), not by this target; above it the target checks parse
/// and verify only, so one input stays well under the 100 ms hang threshold.
pub const MODEL_RUN_BUDGET: u64 = 1 << 22;

/// Runs `f`; panics if it took longer than `FIXPOINT_FUZZ_MAX_MS` (when set): libFuzzer then
/// keeps the input as a crash, which is how a hang shorter than its whole-second `-timeout` is
/// caught.
fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    static MAX: OnceLock<Option<u128>> = OnceLock::new();
    let max = *MAX.get_or_init(|| std::env::var("FIXPOINT_FUZZ_MAX_MS").ok().and_then(|s| s.parse().ok()));
    let start = Instant::now();
    let out = f();
    if let Some(max) = max {
        let ms = start.elapsed().as_millis();
        assert!(ms <= max, "hang: {what} took {ms} ms on one input (limit {max} ms)");
    }
    out
}

/// Model bytes → [`Model::parse`] → [`verify`] with the chain's [`Limits`]; an accepted model
/// within [`MODEL_RUN_BUDGET`] is prepared and run on the reference, portable and this machine's
/// default path with an input derived from the same bytes, and all must agree bit for bit.
/// Parse + verify, and each path's run, are timed separately.
pub fn model(data: &[u8]) {
    model_body(data);
}

fn model_body(data: &[u8]) {
    let verified = timed("parse + verify", || Model::parse(data).and_then(|m| verify(m, &Limits::default())));
    let Ok(verified) = verified else { return };
    let cost = *verified.cost();
    if cost.macs.saturating_add(cost.elem_ops) > MODEL_RUN_BUDGET {
        return;
    }
    let id = model_id(data);
    let n = fixpoint_ml::io::input_len(verified.model());
    // Deterministic input from the fuzz bytes (non-empty: the model parsed).
    let input: Vec<u8> = (0..n)
        .map(|i| data.get(i.wrapping_mul(7).wrapping_add(3) % data.len()).copied().unwrap_or(0) ^ i as u8)
        .collect();
    let run = |path: Path| {
        timed(&format!("prepare + run on {path:?}"), || {
            Engine::new(verified.clone(), id, path).map_err(|e| e.to_string()).and_then(|e| {
                let out = e.run_packed(&input).map_err(|e| e.to_string());
                let short = input.get(..n / 2).unwrap_or_default();
                assert!(n == 0 || e.run_packed(short).is_err(), "a short input was accepted on {path:?}");
                out
            })
        })
    };
    let reference = run(Path::Reference);
    for path in [Path::Portable, default_path()] {
        assert_eq!(run(path), reference, "{path:?} disagrees with the reference path");
    }
    // A model that plans as causal also generates: the same tokens on every path, within the
    // planned cost (fixpoint_ml::decode).
    let generate = |path: Path| {
        let e = Engine::new(verified.clone(), id, path).ok()?;
        let plan = e.plan().ok()?;
        let prompt: Vec<u32> =
            data.iter().take(plan.context().min(3)).map(|&b| u32::from(b) % plan.vocab() as u32).collect();
        let tokens = (plan.context() + 1).saturating_sub(prompt.len()).min(2);
        let work = fixpoint_ml::Counter::new();
        let out =
            timed(&format!("generate on {path:?}"), || e.generate(&prompt, tokens, &work).map_err(|e| e.to_string()));
        let bound = plan.generation_cost(prompt.len(), tokens).ok()?;
        assert!(work.get().within(&bound), "generation on {path:?} counted {:?} beyond its cost {bound:?}", work.get());
        Some(out)
    };
    let reference = generate(Path::Reference);
    for path in [Path::Portable, default_path()] {
        assert_eq!(generate(path), reference, "generation on {path:?} disagrees with the reference path");
    }
}

/// The sender of the fuzzed transactions (funded, never used by the setup).
const FUZZER: Address = Address::repeat_byte(0xB0);
/// The owner of the registered model.
const OWNER: Address = Address::repeat_byte(0xA1);
/// Separates transactions in a [`precompile_calldata`] input.
pub const TX_SEPARATOR: &[u8] = b"|tx|";

/// A chain state where the digits MLP (tests/vectors/models) is registered.
struct PrecompileChain {
    state: WorldState,
    store: Arc<ModelStore>,
}

fn env(number: u64) -> BlockEnvInput {
    BlockEnvInput {
        number,
        timestamp: 1_700_000_000 + number,
        gas_limit: 60_000_000,
        base_fee: 7,
        beneficiary: Address::repeat_byte(0xFE),
        prev_randao: B256::ZERO,
    }
}

fn tx(from: Address, nonce: u64, to: Address, gas: u64, data: impl Into<Bytes>) -> Recovered<TxEnvelope> {
    let t = TxEip1559 {
        chain_id: ChainSpec::DEV.chain_id,
        nonce,
        gas_limit: gas,
        max_fee_per_gas: 1_000,
        max_priority_fee_per_gas: 1,
        to: TxKind::Call(to),
        value: U256::ZERO,
        access_list: Default::default(),
        input: data.into(),
    };
    // The executor takes the recovered sender; the signature is not checked.
    Recovered::new_unchecked(TxEnvelope::Eip1559(t.into_signed(Signature::test_signature())), from)
}

/// The repository root (this crate lives in `fuzz/`).
pub fn repo_root() -> PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("..")
}

/// The first case (model bytes, packed input) of a model conformance vector.
pub fn vector_case(name: &str) -> (Vec<u8>, Vec<u8>) {
    let path = repo_root().join("tests/vectors/models").join(format!("{name}.json"));
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value = serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let field = |k: &str| hex::decode(doc["cases"][0][k].as_str().unwrap_or_default()).unwrap_or_default();
    (field("model"), field("input"))
}

fn precompile_chain() -> &'static PrecompileChain {
    static CHAIN: OnceLock<PrecompileChain> = OnceLock::new();
    CHAIN.get_or_init(|| {
        let (model, _) = vector_case("digits-mlp");
        let mut state = WorldState::new();
        for a in [OWNER, FUZZER] {
            state.fund(a, U256::from(10u128.pow(24)));
        }
        let store = Arc::new(ModelStore::default());
        let reg = tx(OWNER, 0, REGISTRY_ADDRESS, 10_000_000, R::registerCall { model: model.into() }.abi_encode());
        let out = execute_block(&state, &store, &ChainSpec::DEV, &env(1), &[reg]).expect("registration block");
        assert!(out.txs.first().is_some_and(|t| t.success), "digits-mlp registers");
        out.scope.commit(1);
        PrecompileChain { state: out.state, store }
    })
}

/// Up to four transactions separated by [`TX_SEPARATOR`], each `flags ‖ calldata`: bit 0 of
/// `flags` picks the inference (1) or registry (0) precompile, the other bits the gas limit
/// (60,000 + 100,000 per step, at least the calldata floor). They run as one block, with the real executor, on a state where
/// the digits MLP is registered; the block must execute whatever they hold.
pub fn precompile_calldata(data: &[u8]) {
    precompile_chain();
    timed("a block", || precompile_block(data));
}

/// The block of [`precompile_calldata`], executed and checked; whether each transaction
/// succeeded.
pub fn precompile_block(data: &[u8]) -> Vec<bool> {
    let chain = precompile_chain();
    let txs: Vec<_> = split(data, TX_SEPARATOR)
        .take(4)
        .enumerate()
        .map(|(nonce, part)| {
            let (flags, calldata) = part.split_first().map_or((0, &[][..]), |(f, rest)| (*f, rest));
            let to = if flags & 1 == 1 { INFERENCE_ADDRESS } else { REGISTRY_ADDRESS };
            // At least the EIP-7623 calldata floor (21,000 + 10 gas per token, ≤ 4 tokens a
            // byte): revm refuses a transaction below it, and no proposer includes one.
            let floor = 21_000 + 40 * calldata.len() as u64;
            let gas = (60_000 + u64::from(flags >> 1) * 100_000).max(floor);
            tx(FUZZER, nonce as u64, to, gas, calldata.to_vec())
        })
        .collect();
    let out = match execute_block(&chain.state, &chain.store, &ChainSpec::DEV, &env(2), &txs) {
        Ok(out) => out,
        Err(e) => panic!("a block of precompile calls must execute: {e}"),
    };
    assert_eq!(out.txs.len(), txs.len());
    for t in &out.txs {
        assert!(t.gas_used >= 21_000, "every call pays");
        // A revert carries an ABI error (selector and arguments) or nothing (out of gas).
        assert!(t.success || t.output.is_empty() || t.output.len() >= 4, "revert data {:?}", t.output);
    }
    out.txs.iter().map(|t| t.success).collect()
}

fn split<'a>(data: &'a [u8], sep: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.windows(sep.len()).position(|w| w == sep) {
            Some(at) => {
                rest = r.get(at + sep.len()..);
                r.get(..at)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// An encoded consensus block → [`Block::decode_cfg`] with [`BlockLimits::default`]; a block
/// that decodes must re-encode to exactly the input (one encoding per block, so one digest).
pub fn block_codec(data: &[u8]) {
    timed("decode", || {
        if let Ok(block) = Block::decode_cfg(Copying(data), &BlockLimits::default()) {
            assert_eq!(block.encode().as_ref(), data, "re-encoding differs");
            let again = Block::decode_cfg(block.encode().to_vec(), &BlockLimits::default());
            assert_eq!(again.ok().as_ref(), Some(&block), "decode(encode(b)) != b");
        }
    });
}

/// A gossip message → [`gossip::decode`]; a batch that decodes must re-encode to the input and
/// respect the batch limits.
pub fn gossip_batch(data: &[u8]) {
    timed("decode", || {
        if let Some(batch) = gossip::decode(data) {
            assert!(batch.len() <= gossip::MAX_BATCH_TXS);
            assert_eq!(gossip::encode(&batch), data, "re-encoding differs");
        }
    });
}

/// Every method the node's RPC module registers (node/src/rpc.rs), in registration order.
pub const RPC_METHODS: [&str; 29] = [
    "web3_clientVersion",
    "net_version",
    "net_listening",
    "eth_chainId",
    "eth_syncing",
    "eth_accounts",
    "eth_blockNumber",
    "eth_gasPrice",
    "eth_maxPriorityFeePerGas",
    "eth_feeHistory",
    "eth_getBalance",
    "eth_getTransactionCount",
    "eth_getCode",
    "eth_getStorageAt",
    "eth_getProof",
    "eth_call",
    "eth_estimateGas",
    "eth_sendRawTransaction",
    "fixpoint_certifiedBlock",
    "eth_getTransactionByHash",
    "eth_getTransactionReceipt",
    "eth_getBlockByNumber",
    "eth_getBlockByHash",
    "eth_getLogs",
    "fixpoint_listModels",
    "fixpoint_modelInfo",
    "fixpoint_infer",
    "fixpoint_inferenceRecords",
    "fixpoint_transactionRecords",
];

struct Rpc {
    runtime: tokio::runtime::Runtime,
    module: RpcModule<()>,
}

fn rpc() -> &'static Rpc {
    static RPC: OnceLock<Rpc> = OnceLock::new();
    RPC.get_or_init(|| {
        use fixpoint_node::chain::Chain;
        use fixpoint_node::dev::dev_accounts;
        use fixpoint_node::genesis::Genesis;
        use fixpoint_node::storage::Store;
        let dir = std::env::temp_dir().join(format!("fixpoint-fuzz-rpc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let genesis = Genesis::dev(ChainSpec::DEV.chain_id, 30_000_000, &dev_accounts(2))
            .build(std::path::Path::new("."))
            .expect("dev genesis");
        let store = Store::open(&dir.join("chain.redb")).expect("store");
        let chain = Chain::open(ChainSpec::DEV, 30_000_000, store, &genesis, 1_700_000_000).expect("chain");
        let node = fixpoint_node::startup::start_solo(
            chain,
            genesis.state.root(),
            1_700_000_000,
            &dir,
            fixpoint_node::submit::Sealing::Instant,
        )
        .expect("dev node");
        let module = fixpoint_node::rpc::module(node).expect("rpc module");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        Rpc { runtime, module }
    })
}

/// `method ‖ params`: the first byte picks one of [`RPC_METHODS`], the rest is the params
/// (JSON when it parses, else one string parameter). The request goes through jsonrpsee's
/// [`RpcModule::raw_json_request`] on a node opened on a temporary directory; it must be
/// answered with a result or an error, never a panic or an internal error.
pub fn rpc_params(data: &[u8]) {
    rpc();
    timed("a request", || rpc_response(data));
}

/// The response of [`rpc_params`] to `data`, checked (`Null` for an empty input).
pub fn rpc_response(data: &[u8]) -> Value {
    let rpc = rpc();
    let Some((&m, rest)) = data.split_first() else { return Value::Null };
    let method = RPC_METHODS.get(usize::from(m) % RPC_METHODS.len()).copied().unwrap_or_default();
    let text = String::from_utf8_lossy(rest);
    let params =
        serde_json::from_str::<Value>(&text).unwrap_or_else(|_| Value::Array(vec![Value::String(text.into())]));
    let request = serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }).to_string();
    let (response, _) = match rpc.runtime.block_on(rpc.module.raw_json_request(&request, 1)) {
        Ok(r) => r,
        Err(e) => panic!("a well-formed request was not answered: {e}"),
    };
    let response: Value = serde_json::from_str(response.get()).unwrap_or(Value::Null);
    let code = response.get("error").and_then(|e| e.get("code")).and_then(Value::as_i64);
    assert!(response.get("result").is_some() || code.is_some(), "neither result nor error: {response}");
    assert_ne!(code, Some(-32603), "internal error (a panicked handler?): {response}");
    response
}

/// Hash of a file's bytes, as used to name corpus entries (like libFuzzer, by content).
pub fn corpus_name(data: &[u8]) -> String {
    hex::encode(&keccak256(data)[..20])
}
