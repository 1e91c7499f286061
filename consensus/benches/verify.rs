//! How long a validator spends in `verify` for one block, split into sender recovery,
//! inference (the engine's own time for the block's calls) and the rest of EVM execution and
//! roots. Blocks filled to 30M gas: inference calls of the digits MLP, of the digits CNN, and
//! plain transfers for comparison.
//!
//! Run: `taskset -c 0 cargo bench -p fixpoint-consensus --bench verify` (one core; medians of
//! repeated runs; a bench binary, nothing here asserts a time).
#![allow(missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;

use common::{model_case, signed_call as tx};
use std::time::{Duration, Instant};

use alloy_consensus::TxEnvelope;
use alloy_consensus::transaction::SignerRecoverable;
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{Address, Bytes, U256, keccak256};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::SolCall;
use fixpoint_consensus::{Block, BlockLimits, Executor};
use fixpoint_evm::{ChainSpec, WorldState};
use fixpoint_ml::{Engine, Limits};
use fixpoint_precompiles::abi::IInference as I;
use fixpoint_precompiles::abi::IModelRegistry as R;
use fixpoint_precompiles::{INFERENCE_ADDRESS, ModelStore, REGISTRY_ADDRESS};

const GAS_LIMIT: u64 = 30_000_000;

/// A block to fill: its name, the model and input each transaction calls (none: transfers),
/// and each transaction's gas limit.
type Workload<'a> = (&'a str, Option<(&'a [u8], &'a [u8])>, u64);
const USERS: usize = 64;

fn user(i: usize) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&keccak256(format!("bench user {i}"))).expect("key")
}

fn median(reps: usize, mut f: impl FnMut()) -> Duration {
    let mut v: Vec<Duration> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    v.sort();
    v[reps / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let exec = Executor {
        spec: ChainSpec::DEV,
        gas_limit: GAS_LIMIT,
        limits: BlockLimits::default(),
        models: Arc::new(ModelStore::default()),
    };
    let mut state = WorldState::new();
    for i in 0..USERS {
        state.fund(user(i).address(), U256::from(10u128.pow(24)));
    }
    let genesis = Block::genesis(fixpoint_evm::state_root(&state), GAS_LIMIT, 1_700_000_000, 1_000_000_000);
    let (mlp, mlp_input, _) = model_case("digits-mlp");
    let (cnn, cnn_input, _) = model_case("digits-cnn");
    // Block 1 registers both models.
    let regs = vec![
        tx(&user(0), 0, REGISTRY_ADDRESS, R::registerCall { model: mlp.clone().into() }.abi_encode(), 10_000_000),
        tx(&user(1), 0, REGISTRY_ADDRESS, R::registerCall { model: cnn.clone().into() }.abi_encode(), 10_000_000),
    ];
    let (b1, out1) = exec.propose(&genesis, &state, 1, 0, Address::ZERO, &regs);
    out1.scope.commit(1);
    let s1: WorldState = out1.state;
    let limits = Limits::default();

    println!("| block (30M gas limit) | txs | gas used | verify (ms) | recovery | inference | EVM + roots |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let workloads: Vec<Workload<'_>> = vec![
        ("digits MLP inference", Some((&mlp, &mlp_input)), 80_000),
        ("digits CNN inference", Some((&cnn, &cnn_input)), 400_000),
        ("ETH transfers", None, 21_000),
    ];
    for (name, model, gas) in workloads {
        let data =
            model.map(|(m, input)| I::inferCall { modelId: keccak256(m), input: input.to_vec().into() }.abi_encode());
        let to = if data.is_some() { INFERENCE_ADDRESS } else { Address::repeat_byte(0x42) };
        // Enough candidates to fill the block whatever each call really uses.
        let per_block = (GAS_LIMIT / 21_000) as usize + USERS;
        let candidates: Vec<Bytes> = (0..per_block)
            .map(|k| {
                let u = k % USERS;
                let nonce = (k / USERS) as u64 + u64::from(u < 2);
                tx(&user(u), nonce, to, data.clone().unwrap_or_default(), gas)
            })
            .collect();
        let (b2, out2) = exec.propose(&b1, &s1, 2, 0, Address::ZERO, &candidates);
        let n = b2.body().txs.len();
        // Check once that it verifies, then time.
        exec.verify(&b1, &s1, &b2).expect("block verifies");
        let total = median(15, || {
            let out = exec.verify(&b1, &s1, &b2).expect("verifies");
            std::hint::black_box(out.state_root);
        });
        let recovery = median(15, || {
            for raw in &b2.body().txs {
                let t = TxEnvelope::decode_2718(&mut raw.as_ref()).expect("tx");
                std::hint::black_box(t.recover_signer().expect("signer"));
            }
        });
        let inference = match model {
            Some((m, input)) => {
                let engine = Engine::load(m, &limits).expect("model");
                let calls = out2.records.len();
                median(15, || {
                    for _ in 0..calls {
                        std::hint::black_box(engine.run_packed(input).expect("runs"));
                    }
                })
            }
            None => Duration::ZERO,
        };
        let rest = total.saturating_sub(recovery).saturating_sub(inference);
        println!(
            "| {name} | {n} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            b2.body().gas_used,
            ms(total),
            ms(recovery),
            ms(inference),
            ms(rest)
        );
    }
}
