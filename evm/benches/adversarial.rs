//! Adversarial gas calibration (docs/gas.md, BENCHMARKS.md): for every op, the shapes the verifier
//! accepts that get the most time per unit of gas on the **portable** kernel path, next to an
//! ERC-20 block measured in the same run.
//!
//! For each model of `ml/tests/common/adversarial.rs` (at the caps' scale) and each example model
//! of `tests/vectors/models`, it times what the precompile does per call after charging — unpack
//! the packed input, run, pack the output, hash input and output for the record — and divides by
//! the gas of a warm call (`REJECT + warm`). The ERC-20 figure is a block of 200 transfers run
//! by the real block executor. Ratios above 2 break the goal of issue 11.
//!
//! Run: `taskset -c 1 cargo bench -p fixpoint-evm --bench adversarial`. Timed in process CPU time
//! (`common::cpu_time`), so a busy machine moves the ratios little. A bench binary, not a
//! test: nothing here asserts a time.
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "../../ml/tests/common/adversarial.rs"]
mod adversarial;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use alloy_primitives::{Address, TxKind, U256, keccak256};
use alloy_sol_types::{SolCall, SolConstructor, sol};
use common::*;
use fixpoint_ml::kernels::Path;
use fixpoint_ml::{Engine, Limits, io};
use fixpoint_precompiles::gas;

sol! {
    contract BenchToken {
        constructor(uint256 supply);
        function transfer(address to, uint256 value) external returns (bool);
    }
}

/// Median of 7 samples of `f`, each averaged over enough calls to last about `target`.
fn median(target: Duration, mut f: impl FnMut()) -> Duration {
    let t = cpu_time();
    f();
    let once = (cpu_time() - t).max(Duration::from_nanos(50));
    let inner = (target.as_nanos() / once.as_nanos()).clamp(1, 100_000) as u32;
    let mut v: Vec<Duration> = (0..7)
        .map(|_| {
            let t = cpu_time();
            for _ in 0..inner {
                f();
            }
            (cpu_time() - t) / inner
        })
        .collect();
    v.sort();
    v[3]
}

/// ns per gas of ERC-20 transfer blocks through the real executor.
fn erc20_ns_per_gas() -> f64 {
    let mut chain = Chain::new();
    let args = BenchToken::constructorCall { supply: U256::from(10u64.pow(18)) }.abi_encode();
    let mut code = artifact("BenchToken.sol", "BenchToken").to_vec();
    code.extend(args);
    let deploy = chain.tx(ALICE, TxKind::Create, code, 2_000_000);
    let b = chain.block(vec![deploy]);
    let token = b.txs[0].contract_address.unwrap();
    let n = 200usize;
    let recipients: Vec<Address> = (0..n).map(|i| Address::with_last_byte(i as u8).create(7)).collect();
    let transfer = |to: Address| BenchToken::transferCall { to, value: U256::from(1) }.abi_encode();
    let seed: Vec<_> = recipients.iter().map(|r| chain.tx(ALICE, TxKind::Call(token), transfer(*r), 100_000)).collect();
    chain.block(seed);
    let txs: Vec<_> = recipients.iter().map(|r| chain.tx(ALICE, TxKind::Call(token), transfer(*r), 100_000)).collect();
    let out = chain.dry_run(&txs);
    assert!(out.txs.iter().all(|t| t.success));
    let t = median(Duration::from_millis(20), || {
        black_box(fixpoint_evm::execute_block(&chain.state, &chain.store, &chain.spec, &chain.env(), &txs).unwrap());
    });
    t.as_nanos() as f64 / out.gas_used as f64
}

/// The gas of one warm call (what the precompile charges before running).
fn call_gas(engine: &Engine) -> u64 {
    gas::REJECT + gas::warm_infer_gas(engine.cost(), engine.model().nodes.len() as u64)
}

/// Time of the precompile's work after charging: unpack, run, pack, hash input and output.
fn call_time(engine: &Engine, packed: &[u8]) -> Duration {
    median(Duration::from_millis(4), || {
        let out = engine.run_packed(packed).unwrap();
        black_box((keccak256(packed), keccak256(&out)));
    })
}

struct Row {
    op: &'static str,
    name: String,
    gas: u64,
    ns: f64,
    /// Counted work of one portable run, and the cost's other priced quantities.
    work: fixpoint_ml::Work,
    ops: u64,
    io_bytes: u64,
    read_bytes: u64,
    io_ns: f64,
}

impl Row {
    fn new(op: &'static str, name: String, engine: &Engine, packed: &[u8]) -> Row {
        let t = call_time(engine, packed);
        let inputs = io::unpack_inputs(engine.model(), packed).unwrap();
        let (outs, work) = engine.run_counted(inputs).unwrap();
        // The part of the call that is input and output handling: unpack, pack, two hashes.
        let io_ns = median(Duration::from_millis(2), || {
            let ins = io::unpack_inputs(engine.model(), packed).unwrap();
            let out = io::pack(&outs);
            black_box((ins, keccak256(packed), keccak256(&out)));
        });
        let c = engine.cost();
        Row {
            op,
            name,
            gas: call_gas(engine),
            ns: t.as_nanos() as f64,
            work,
            ops: engine.model().nodes.len() as u64,
            io_bytes: c.input_bytes + c.output_bytes,
            read_bytes: c.bytes_read,
            io_ns: io_ns.as_nanos() as f64,
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // The ERC-20 reference is measured three times across the run; the median is used.
    let mut erc20s = vec![erc20_ns_per_gas()];
    let limits = Limits::default();
    let mut rows = Vec::new();
    for case in adversarial::cases(1 << 20) {
        let bytes = case.model.to_bytes();
        let engine = match Engine::load_with_path(&bytes, &limits, Path::Portable) {
            Ok(e) => e,
            Err(e) => {
                println!("  {:<15} {:<45} refused: {e}", case.op, case.name);
                continue;
            }
        };
        rows.push(Row::new(case.op, case.name, &engine, &io::pack(&case.inputs)));
    }
    erc20s.push(erc20_ns_per_gas());
    for name in ["digits-mlp", "digits-cnn", "cancer-gbdt"] {
        let case = model_cases(name).remove(0);
        let engine = Engine::load_with_path(&case.model, &limits, Path::Portable).unwrap();
        rows.push(Row::new("example", name.into(), &engine, &case.input));
    }
    erc20s.push(erc20_ns_per_gas());
    let samples = erc20s.iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>().join(", ");
    erc20s.sort_by(f64::total_cmp);
    let erc20 = erc20s[1];
    println!("ERC-20 block (200 transfers, executor): {erc20:.4} ns/gas (median of {samples})\n");
    println!("{:<15} {:<48} {:>12} {:>12} {:>9} {:>7}", "op", "shape", "gas", "µs", "ns/gas", "×ERC20");
    let mut worst: BTreeMap<&str, &Row> = BTreeMap::new();
    for r in &rows {
        let per = r.ns / r.gas as f64;
        println!("{:<15} {:<48} {:>12} {:>12.1} {:>9.4} {:>7.2}", r.op, r.name, r.gas, r.ns / 1e3, per, per / erc20);
        let w = worst.entry(r.op).or_insert(r);
        if per > w.ns / w.gas as f64 {
            *w = r;
        }
    }
    // The counted work of each row, for refitting the schedule (docs/gas.md).
    if let Some(path) = std::env::var_os("ADVERSARIAL_CSV") {
        let mut csv =
            String::from("op,shape,ns,gas,macs,elem_ops,steps,calls,alloc_bytes,ops,io_bytes,read_bytes,io_ns\n");
        for r in &rows {
            let w = r.work;
            csv += &format!(
                "{},{},{:.0},{},{},{},{},{},{},{},{},{},{:.0}\n",
                r.op,
                r.name.replace(',', ";"),
                r.ns,
                r.gas,
                w.macs,
                w.elem_ops,
                w.steps,
                w.calls,
                w.bytes,
                r.ops,
                r.io_bytes,
                r.read_bytes,
                r.io_ns
            );
        }
        std::fs::write(path, csv).unwrap();
    }
    println!("\nworst per op (portable path), ERC-20 = {erc20:.4} ns/gas");
    println!("| op | worst shape | gas | µs | ns/gas | × ERC-20 |");
    println!("|---|---|---|---|---|---|");
    for (op, r) in worst {
        let per = r.ns / r.gas as f64;
        println!("| {op} | {} | {} | {:.1} | {:.4} | {:.1} |", r.name, r.gas, r.ns / 1e3, per, per / erc20);
    }
}
