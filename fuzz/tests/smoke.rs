//! The fuzz smoke run (part of `./scripts/test`): every committed corpus file of every target
//! through the same function the libFuzzer driver calls, then seeded random inputs (corpus
//! files with random bytes overwritten, inserted, deleted or cut, and plain random bytes).
//! `FIXPOINT_FUZZ_SMOKE` sets the random inputs per target (default 1,000).
//!
//! `cargo test -p fixpoint-fuzz -- --ignored write_seeds` rewrites the hand-made seeds
//! (fuzz/seeds/); the committed corpus is these seeds merged with what the campaign found and
//! minimized (docs/fuzzing.md).

#[path = "../../ml/tests/common/adversarial.rs"]
mod adversarial;
#[path = "../../ml/tests/common/causal.rs"]
mod causal;

use std::path::PathBuf;

use alloy_primitives::{B256, Bytes, keccak256};
use alloy_sol_types::SolCall;
use commonware_codec::Encode;
use fixpoint_consensus::{Block, BlockBody, gossip};
use fixpoint_fuzz::{RPC_METHODS, TARGETS, TX_SEPARATOR, corpus_name, repo_root, vector_case};
use fixpoint_precompiles::abi::IInference as I;
use fixpoint_precompiles::abi::IModelRegistry as R;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn files(dir: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = repo_root().join("fuzz").join(dir).join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
        .collect();
    out.sort();
    out
}

fn mutate(rng: &mut ChaCha8Rng, seed: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..rng.random_range(1..8) {
        let at = if d.is_empty() { 0 } else { rng.random_range(0..d.len()) };
        match rng.random_range(0..5) {
            0 | 1 if !d.is_empty() => d[at] = rng.random(),
            2 => d.insert(at, rng.random()),
            3 if !d.is_empty() => {
                d.remove(at);
            }
            4 => d.truncate(at),
            _ => {}
        }
    }
    d
}

#[test]
fn corpus_and_random_inputs() {
    let random: usize = std::env::var("FIXPOINT_FUZZ_SMOKE").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000);
    for (name, run) in TARGETS {
        let mut seeds = files("corpus", name);
        seeds.extend(files("seeds", name));
        assert!(!seeds.is_empty(), "no corpus for {name}");
        for (_, data) in &seeds {
            run(data);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(0xF1F);
        for i in 0..random {
            let data = if i % 4 == 3 {
                let len = rng.random_range(0..512);
                (0..len).map(|_| rng.random()).collect()
            } else {
                let pick = rng.random_range(0..seeds.len());
                mutate(&mut rng, &seeds[pick].1)
            };
            run(&data);
        }
        eprintln!("{name}: {} corpus files, {random} random inputs", seeds.len());
    }
}

/// The seeds reach the code they are meant for: the valid calls succeed, the RPC answers.
#[test]
fn seeds_are_valid() {
    for (path, data) in files("seeds", "precompile_calldata") {
        let ok = fixpoint_fuzz::precompile_block(&data);
        eprintln!("{}: {ok:?}", path.display());
    }
    let infer = files("seeds", "precompile_calldata").into_iter().filter(|(_, d)| d.first() == Some(&41)).count();
    assert!(infer >= 3, "inference seeds");
    for (_, data) in files("seeds", "rpc_params") {
        let r = fixpoint_fuzz::rpc_response(&data);
        eprintln!("{}", &r.to_string()[..r.to_string().len().min(160)]);
    }
}

fn write(target: &str, items: Vec<Vec<u8>>) {
    let dir = repo_root().join("fuzz/seeds").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    for d in items {
        std::fs::write(dir.join(corpus_name(&d)), d).unwrap();
    }
}

/// `flags ‖ calldata` for [`fixpoint_fuzz::precompile_calldata`]: `inference` picks 0x0F01.
fn call(inference: bool, gas_steps: u8, calldata: Vec<u8>) -> Vec<u8> {
    let mut v = vec![u8::from(inference) | (gas_steps << 1)];
    v.extend(calldata);
    v
}

#[test]
#[ignore = "rewrites fuzz/seeds/"]
fn write_seeds() {
    let names = ["digits-mlp", "digits-cnn", "cancer-gbdt"];
    let models: Vec<(Vec<u8>, Vec<u8>)> = names.iter().map(|n| vector_case(n)).collect();
    // The three example models, and a small causal model (its generation is fuzzed too).
    let decoder = causal::decoder(causal::Dims { t: 8, vocab: 16, d: 8, heads: 2, layers: 1 }, 7).to_bytes();
    write("model", models.iter().map(|(m, _)| m.clone()).chain([decoder]).collect());

    let (mlp, input) = models[0].clone();
    let id = keccak256(&mlp);
    let (gbdt, _) = models[2].clone();
    let gbdt_id = keccak256(&gbdt);
    let ints: Vec<alloy_primitives::I256> =
        input.iter().map(|&b| alloy_primitives::I256::try_from(i64::from(b as i8)).unwrap()).collect();
    let mut calls = vec![
        call(true, 20, I::inferCall { modelId: id, input: input.clone().into() }.abi_encode()),
        call(true, 20, I::inferIntsCall { modelId: id, input: ints }.abi_encode()),
        call(true, 20, I::classifyCall { modelId: id, input: input.clone().into() }.abi_encode()),
        call(false, 60, R::registerCall { model: gbdt.clone().into() }.abi_encode()),
        call(false, 10, R::beginUploadCall { modelId: gbdt_id, size: gbdt.len() as u64 }.abi_encode()),
        call(false, 10, R::putChunkCall { modelId: gbdt_id, offset: 0, chunk: gbdt.clone().into() }.abi_encode()),
        call(false, 10, R::finalizeUploadCall { modelId: gbdt_id }.abi_encode()),
        call(false, 1, R::existsCall { modelId: id }.abi_encode()),
        call(false, 1, R::modelInfoCall { modelId: id }.abi_encode()),
        call(false, 1, R::modelIOCall { modelId: id }.abi_encode()),
    ];
    // A whole upload in one block, then an inference on what it registered.
    let mut upload = Vec::new();
    for (i, part) in calls[4..7].iter().chain(&calls[..1]).enumerate() {
        if i > 0 {
            upload.extend_from_slice(TX_SEPARATOR);
        }
        upload.extend_from_slice(part);
    }
    calls.push(upload);
    write("precompile_calldata", calls);

    let tx = Bytes::from_static(&[0x02, 0xc0, 0x01]);
    let body = BlockBody {
        height: 3,
        view: 4,
        timestamp: 1_700_000_003,
        gas_limit: 30_000_000,
        base_fee: 7,
        gas_used: 21_000,
        state_root: B256::repeat_byte(1),
        txs: vec![tx.clone(), Bytes::from(vec![0xAB; 40])],
        ..Default::default()
    };
    write(
        "block_codec",
        vec![
            Block::genesis(B256::repeat_byte(9), 30_000_000, 1_700_000_000, 1_000_000_000).encode().to_vec(),
            Block::new(body).encode().to_vec(),
        ],
    );
    write("gossip_batch", vec![gossip::encode(&[]), gossip::encode(&[tx.clone(), Bytes::from(vec![7; 100])])]);

    let id = format!("{id}");
    let addr = "\"0xa1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1\"";
    let call_obj = format!(
        "{{\"to\":\"0x0000000000000000000000000000000000000f01\",\"data\":\"0x{}\"}}",
        hex::encode(I::inferCall { modelId: keccak256(&mlp), input: input.clone().into() }.abi_encode())
    );
    let params: Vec<(&str, String)> = vec![
        ("eth_feeHistory", "[\"0x4\",\"latest\",[25.0,75.0]]".into()),
        ("eth_getBalance", format!("[{addr},\"latest\"]")),
        ("eth_getTransactionCount", format!("[{addr},\"pending\"]")),
        ("eth_getCode", "[\"0x0000000000000000000000000000000000000f00\",\"0x0\"]".into()),
        ("eth_getStorageAt", "[\"0x0000000000000000000000000000000000000f00\",\"0x0\",\"latest\"]".into()),
        ("eth_getProof", format!("[{addr},[\"0x{}\"],\"latest\"]", "00".repeat(32))),
        ("eth_call", format!("[{call_obj},\"latest\"]")),
        ("eth_estimateGas", format!("[{call_obj}]")),
        ("eth_sendRawTransaction", "[\"0x02f86c\"]".into()),
        ("fixpoint_certifiedBlock", "[\"0x1\"]".into()),
        ("eth_getTransactionByHash", format!("[\"0x{}\"]", "11".repeat(32))),
        ("eth_getTransactionReceipt", format!("[\"0x{}\"]", "11".repeat(32))),
        ("eth_getBlockByNumber", "[\"0x0\",true]".into()),
        ("eth_getBlockByHash", format!("[\"0x{}\",false]", "22".repeat(32))),
        ("eth_getLogs", "[{\"fromBlock\":\"0x0\",\"toBlock\":\"latest\",\"address\":\"0x0000000000000000000000000000000000000f01\"}]".into()),
        ("fixpoint_listModels", "[]".into()),
        ("fixpoint_modelInfo", format!("[\"{id}\"]")),
        ("fixpoint_infer", format!("[\"{id}\",\"0x{}\"]", hex::encode(&input))),
        ("fixpoint_inferenceRecords", "[\"0x0\"]".into()),
        ("fixpoint_transactionRecords", format!("[\"0x{}\"]", "11".repeat(32))),
        ("eth_chainId", "[]".into()),
    ];
    let rpc = params
        .into_iter()
        .map(|(m, p)| {
            let index = RPC_METHODS.iter().position(|x| *x == m).unwrap_or_else(|| panic!("unknown method {m}"));
            let mut v = vec![index as u8];
            v.extend_from_slice(p.as_bytes());
            v
        })
        .collect();
    write("rpc_params", rpc);
}
