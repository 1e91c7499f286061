//! The validator network at scale: 4 to 100 validators on commonware's simulated WAN (five
//! regions, 2–128 ms one-way, 2 % loss between regions: tests/common/scale.rs), the real simplex +
//! marshal + `App` of every validator, blocks filled with inference calls (digits MLP, digits CNN,
//! the worst-priced model) and transfers. Prints, per validator count, the proposal-to-
//! finalization latency (simulated time), blocks and transactions finalized per simulated second,
//! bytes sent per validator per block, and the wall-clock time each validator spent executing
//! blocks against the simulated time. Fault modes run the same network with f crashed or
//! byzantine validators, or one region cut off and healed, and check that the honest validators
//! keep finalizing and agree.
//!
//! Run: `taskset -c 1 cargo bench -p fixpoint-consensus --bench scale` (one core). Environment:
//! `FIXPOINT_SCALE_VALIDATORS` (default `4,16,50,100`), `FIXPOINT_SCALE_BLOCKS` (measured blocks
//! per count, default 20), `FIXPOINT_SCALE_MODE` (`load`, the default, or `crash`, `byzantine`,
//! `partition`, or `faults` for all three), `FIXPOINT_SCALE_LOSS` (per mille, default 20),
//! `FIXPOINT_SCALE_SEED` (default 1).
#![allow(missing_docs)]

#[path = "../../ml/tests/common/adversarial.rs"]
mod adversarial;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/scale.rs"]
mod scale;
#[path = "../tests/common/simnet.rs"]
mod simnet;

use std::time::Duration;

use scale::{Fault, Mix, Outcome, quantile};

fn env<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let counts: Vec<usize> = std::env::var("FIXPOINT_SCALE_VALIDATORS")
        .unwrap_or_else(|_| "4,16,50,100".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let blocks: u64 = env("FIXPOINT_SCALE_BLOCKS", 20);
    let loss: u64 = env("FIXPOINT_SCALE_LOSS", 20);
    let seed: u64 = env("FIXPOINT_SCALE_SEED", 1);
    let mode = std::env::var("FIXPOINT_SCALE_MODE").unwrap_or_else(|_| "load".into());
    let threads = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "mix per unit: {:?}; {blocks} measured blocks; cross-region loss {loss}‰; seed {seed}; {threads} core(s)",
        Mix::FULL
    );
    match mode.as_str() {
        "load" => {
            println!(
                "| validators | blocks | tx/block | inference calls/block | gas/block (M) | finalization p50 (ms) | p99 (ms) \
                 | blocks/s | tx/s | KB sent/validator/block (consensus + blocks + backfill) | build ms/block | \
                 re-execute ms/block | execution share of sim time, mean / max | block interval (ms) | wall (s) |"
            );
            println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---:|---:|");
            for n in counts {
                let o = scale::run(seed, n, Fault::None, Mix::FULL, blocks, loss);
                print_load(&o);
            }
        }
        faults => {
            for n in counts {
                let f = (n - 1) / 3;
                let runs: Vec<Fault> = match faults {
                    "crash" => vec![Fault::Crash(f)],
                    "byzantine" => vec![Fault::Byzantine(f)],
                    "partition" => vec![Fault::Partition],
                    _ => vec![Fault::Crash(f), Fault::Byzantine(f), Fault::Partition],
                };
                for fault in runs {
                    let o = scale::run(seed, n, fault, Mix::FULL, blocks, loss);
                    print_fault(&o);
                }
            }
        }
    }
}

fn print_load(o: &Outcome) {
    let b = o.blocks.len().max(1) as f64;
    let txs: usize = o.blocks.iter().map(|s| s.txs).sum();
    let calls: usize = o.blocks.iter().map(|s| s.calls).sum();
    let gas: u64 = o.blocks.iter().map(|s| s.gas_used).sum();
    let mut lat = o.latencies.clone();
    let (p50, p99) = (quantile(&mut lat, 0.5), quantile(&mut lat, 0.99));
    let sim = o.sim.as_secs_f64();
    let per = |f: fn(&scale::Bytes3) -> u64| {
        o.sent.iter().map(f).sum::<u64>() as f64 / o.sent.len().max(1) as f64 / b / 1024.0
    };
    let (cons, blk, back) = (per(|s| s.consensus), per(|s| s.blocks), per(|s| s.backfill));
    let built: (u64, Duration) =
        o.exec.iter().fold((0, Duration::ZERO), |a, e| (a.0 + e.built.blocks, a.1 + e.built.time));
    let verified: (u64, Duration) =
        o.exec.iter().fold((0, Duration::ZERO), |a, e| (a.0 + e.verified.blocks, a.1 + e.verified.time));
    let shares: Vec<f64> = o.exec.iter().map(|e| (e.built.time + e.verified.time).as_secs_f64() / sim).collect();
    let mean_share = shares.iter().sum::<f64>() / shares.len().max(1) as f64;
    let max_share = shares.iter().cloned().fold(0.0, f64::max);
    println!(
        "| {} | {} | {:.0} | {:.1} | {:.1} | {:.0} | {:.0} | {:.2} | {:.0} | {:.1} ({:.1} + {:.1} + {:.1}) | {:.1} | {:.1} | {:.1} % / {:.1} % | {:.0} | {:.0} |",
        o.n,
        o.blocks.len(),
        txs as f64 / b,
        calls as f64 / b,
        gas as f64 / b / 1e6,
        ms(p50),
        ms(p99),
        b / sim,
        txs as f64 / sim,
        cons + blk + back,
        cons,
        blk,
        back,
        ms(built.1) / built.0.max(1) as f64,
        ms(verified.1) / verified.0.max(1) as f64,
        mean_share * 100.0,
        max_share * 100.0,
        sim * 1e3 / b,
        o.wall.as_secs_f64(),
    );
}

fn print_fault(o: &Outcome) {
    let mut lat = o.latencies.clone();
    let (p50, p99) = (quantile(&mut lat, 0.5), quantile(&mut lat, 0.99));
    let txs: usize = o.blocks.iter().map(|s| s.txs).sum();
    let detail = match (o.partition, o.tampered) {
        (Some((cut, rest)), _) => format!(
            "region 4 stopped at height {cut} while cut off (the others reached {rest}), caught up after the heal"
        ),
        (_, Some((t, r))) => format!("{t} tampered proposals, {r} refusals by honest validators, none finalized"),
        _ => "crashed validators stay down".into(),
    };
    println!(
        "| {} | {:?} | {} honest agree to height {} | {} blocks, {} tx in {:.1} s simulated | p50 {:.0} ms, p99 {:.0} ms | {} | wall {:.0} s |",
        o.n,
        o.fault,
        o.agreeing,
        o.height,
        o.blocks.len(),
        txs,
        o.sim.as_secs_f64(),
        ms(p50),
        ms(p99),
        detail,
        o.wall.as_secs_f64()
    );
}
