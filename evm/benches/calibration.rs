//! Two measurements in one run (BENCHMARKS.md):
//! 1. Overhead of a warm `infer` on the digits MLP: a transaction calling the inference
//!    precompile, minus the same transaction sent to the identity precompile (0x04) with the
//!    same calldata, minus the engine's own `run_packed` time = ABI, registry lookup, gas,
//!    record keeping.
//! 2. Gas calibration: execution gas per second of blocks of ERC-20 transfers vs blocks of
//!    inference calls on the portable kernel (the slowest path a validator may run).
//!
//! Run: `taskset -c 0 cargo bench -p fixpoint-evm --bench calibration`. Medians of repeated,
//! interleaved runs, in process CPU time (`common::cpu_time`); a bench binary, not a test: nothing
//! here asserts a time.
#![allow(missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use alloy_consensus::TxEnvelope;
use alloy_consensus::transaction::Recovered;
use alloy_evm::{Evm, FromRecoveredTx};
use alloy_primitives::{Address, TxKind, U256, address, keccak256};
use alloy_sol_types::{SolCall, SolConstructor, sol};
use common::*;
use fixpoint_ml::{Engine, Limits};
use fixpoint_precompiles::abi::{IInference as I, IModelRegistry as R};
use fixpoint_precompiles::{INFERENCE_ADDRESS, REGISTRY_ADDRESS, Scope};
use revm::context::TxEnv;

sol! {
    contract BenchToken {
        constructor(uint256 supply);
        function transfer(address to, uint256 value) external returns (bool);
    }
}

const IDENTITY: Address = address!("0x0000000000000000000000000000000000000004");

/// Median of `reps` timings of `f`, each averaged over `inner` calls.
fn median(reps: usize, inner: u32, mut f: impl FnMut()) -> Duration {
    let mut v: Vec<Duration> = (0..reps)
        .map(|_| {
            let t = cpu_time();
            for _ in 0..inner {
                f();
            }
            (cpu_time() - t) / inner
        })
        .collect();
    v.sort();
    v[reps / 2]
}

fn overhead() {
    let case = model_cases("digits-mlp").remove(0);
    let id = keccak256(&case.model);
    let mut chain = Chain::new();
    let reg = chain.tx(
        ALICE,
        TxKind::Call(REGISTRY_ADDRESS),
        R::registerCall { model: case.model.clone().into() }.abi_encode(),
        5_000_000,
    );
    chain.block(vec![reg]);
    let scope = Scope::new(chain.store.clone());
    let mut evm = fixpoint_evm::create_evm(
        fixpoint_evm::state::Overlay::new(chain.state.clone()),
        &chain.spec,
        &chain.env(),
        &scope,
    );
    let data = I::inferCall { modelId: id, input: case.input.clone().into() }.abi_encode();
    let to_infer = chain.tx(BOB, TxKind::Call(INFERENCE_ADDRESS), data, 1_000_000);
    let env_infer = TxEnv::from_recovered_tx(to_infer.inner(), BOB);
    let env_identity = TxEnv { kind: TxKind::Call(IDENTITY), ..env_infer.clone() };
    assert!(evm.transact(env_infer.clone()).unwrap().result.is_success());
    let ints: Vec<alloy_primitives::I256> =
        case.input.iter().map(|b| alloy_primitives::I256::try_from(*b as i8).unwrap()).collect();
    let data = I::inferIntsCall { modelId: id, input: ints }.abi_encode();
    let env_ints = TxEnv { data: data.into(), ..env_infer.clone() };
    let gas_infer = evm.transact(env_infer.clone()).unwrap().result.tx_gas_used();
    let r = evm.transact(env_ints.clone()).unwrap().result;
    assert!(r.is_success(), "inferInts: {r:?}");
    let gas_ints = r.tx_gas_used();
    let engine = Engine::load(&case.model, &Limits::default()).unwrap();
    let (mut t_infer, mut t_identity, mut t_kernel, mut t_ints) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..15 {
        t_ints.push(median(5, 2000, || {
            black_box(evm.transact(env_ints.clone()).unwrap());
        }));
        t_infer.push(median(5, 2000, || {
            black_box(evm.transact(env_infer.clone()).unwrap());
        }));
        t_identity.push(median(5, 2000, || {
            black_box(evm.transact(env_identity.clone()).unwrap());
        }));
        t_kernel.push(median(5, 2000, || {
            black_box(engine.run_packed(&case.input).unwrap());
        }));
    }
    for v in [&mut t_infer, &mut t_identity, &mut t_kernel, &mut t_ints] {
        v.sort();
    }
    let (a, b, k) = (t_infer[7], t_identity[7], t_kernel[7]);
    println!("overhead (digits MLP, kernel path {:?})", engine.path());
    println!("  tx -> inference precompile  {:>9.3} µs", a.as_secs_f64() * 1e6);
    println!("  tx -> identity precompile   {:>9.3} µs  (same calldata)", b.as_secs_f64() * 1e6);
    println!("  engine.run_packed alone     {:>9.3} µs", k.as_secs_f64() * 1e6);
    println!(
        "  precompile overhead = infer - identity - kernel = {:.3} µs",
        (a.as_secs_f64() - b.as_secs_f64() - k.as_secs_f64()) * 1e6
    );
    // inferInts: the same call with the input as int256[] (64 inputs, 10 outputs converted).
    let (ti, extra) = (t_ints[7].as_secs_f64() - a.as_secs_f64(), gas_ints.saturating_sub(gas_infer));
    println!(
        "  inferInts - infer = {:.3} µs for {extra} more gas (calldata + PER_INT): {:.4} ns/gas",
        ti * 1e6,
        ti * 1e9 / extra.max(1) as f64
    );
}

/// Gas per second of executing a block of `txs` (block execution as a validator does it).
fn gas_per_second(chain: &mut Chain, txs: &[Recovered<TxEnvelope>]) -> (f64, u64) {
    let out = chain.dry_run(txs);
    assert!(out.txs.iter().all(|t| t.success), "calibration block must succeed");
    let gas = out.gas_used;
    let t = median(9, 3, || {
        black_box(fixpoint_evm::execute_block(&chain.state, &chain.store, &chain.spec, &chain.env(), txs).unwrap());
    });
    (gas as f64 / t.as_secs_f64(), gas)
}

fn calibration() {
    let mut chain = Chain::new();
    let args = BenchToken::constructorCall { supply: U256::from(10u64.pow(18)) }.abi_encode();
    let mut code = artifact("BenchToken.sol", "BenchToken").to_vec();
    code.extend(args);
    let mut first = vec![chain.tx(ALICE, TxKind::Create, code, 2_000_000)];
    let mut models = Vec::new();
    for name in ["digits-mlp", "digits-cnn", "cancer-gbdt"] {
        let case = model_cases(name).remove(0);
        first.push(chain.tx(
            ALICE,
            TxKind::Call(REGISTRY_ADDRESS),
            R::registerCall { model: case.model.clone().into() }.abi_encode(),
            8_000_000,
        ));
        models.push((name, case));
    }
    let b = chain.block(first);
    assert!(b.txs.iter().all(|t| t.success));
    let token = b.txs[0].contract_address.unwrap();
    // Seed the recipients once so the measured transfers are the steady state.
    let n = 200usize;
    let recipients: Vec<Address> = (0..n).map(|i| Address::with_last_byte(i as u8).create(7)).collect();
    let transfer = |to: Address| BenchToken::transferCall { to, value: U256::from(1) }.abi_encode();
    let seed: Vec<_> = recipients.iter().map(|r| chain.tx(ALICE, TxKind::Call(token), transfer(*r), 100_000)).collect();
    chain.block(seed);
    let transfers: Vec<_> =
        recipients.iter().map(|r| chain.tx(ALICE, TxKind::Call(token), transfer(*r), 100_000)).collect();
    let (erc20, erc20_gas) = gas_per_second(&mut chain, &transfers);
    println!("\ngas calibration (kernel path {:?}), blocks of {n} transactions", fixpoint_ml::engine::default_path());
    println!("  ERC-20 transfers      {:>8.1} Mgas/s  ({erc20_gas} gas per block)", erc20 / 1e6);
    for (name, case) in &models {
        let id = keccak256(&case.model);
        let data = I::inferCall { modelId: id, input: case.input.clone().into() }.abi_encode();
        let calls: Vec<_> =
            (0..n).map(|_| chain.tx(BOB, TxKind::Call(INFERENCE_ADDRESS), data.clone(), 2_000_000)).collect();
        let (g, gas) = gas_per_second(&mut chain, &calls);
        println!(
            "  infer {name:<12}    {:>8.1} Mgas/s  ({gas} gas per block)  ratio to ERC-20 {:.2}",
            g / 1e6,
            g / erc20
        );
    }
    generation(&mut chain, erc20);
}

/// Blocks of `generate` calls on the tiny GPT (node/assets/tiny-gpt.fxp): 32 new bytes after a
/// 32-byte prompt each, as many as fill a 30M-gas block; its gas per second against ERC-20's,
/// and the time to verify a full block of generation.
fn generation(chain: &mut Chain, erc20: f64) {
    let model = std::fs::read(root().join("node/assets/tiny-gpt.fxp")).expect("node/assets/tiny-gpt.fxp");
    let id = keccak256(&model);
    let reg = chain.tx(
        ALICE,
        TxKind::Call(REGISTRY_ADDRESS),
        R::registerCall { model: model.into() }.abi_encode(),
        20_000_000,
    );
    assert!(chain.block(vec![reg]).txs[0].success);
    let prompts = [
        &b"And God said, Let there be light"[..],
        b"In the beginning God created the",
        b"And it came to pass, when men be",
    ];
    let calls: Vec<_> = (0..40)
        .map(|i| {
            let p = prompts[i % prompts.len()];
            let data = I::generateCall { modelId: id, prompt: p.to_vec().into(), maxTokens: 32 }.abi_encode();
            chain.tx(BOB, TxKind::Call(INFERENCE_ADDRESS), data, 30_000_000)
        })
        .collect();
    let per_call = chain.dry_run(&calls[..1]).gas_used;
    let fit = (30_000_000 / per_call).max(1) as usize;
    let (g, gas) = gas_per_second(chain, &calls[..fit.min(calls.len())]);
    println!(
        "  generate tiny-gpt     {:>8.1} Mgas/s  ({gas} gas per block of {} calls, {per_call} per call)  ratio to ERC-20 {:.2}; a 30M-gas block verifies in {:.0} ms",
        g / 1e6,
        fit.min(calls.len()),
        g / erc20,
        30e6 / g * 1e3
    );
}

fn main() {
    // Calibrate against the slowest path a validator may run.
    if std::env::var("FIXPOINT_KERNEL").is_err() {
        // SAFETY: set before any thread exists and before the engine first reads it.
        unsafe { std::env::set_var("FIXPOINT_KERNEL", "portable") };
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    overhead();
    calibration();
}
