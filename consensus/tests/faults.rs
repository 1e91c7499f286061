//! Faults at scale on the simulated WAN (tests/common/scale.rs): f of 3f+1 validators crashed,
//! f byzantine proposers (the tampering variants in turn), one of five regions cut off and
//! healed. Each run checks that the honest validators keep finalizing, agree block for block
//! (digest, state root, records root), refuse and never finalize a tampered block, and that a
//! cut-off region does not finalize while cut and catches up after the heal. 16 validators
//! (f = 5) run in the normal suite; 100 validators (f = 33) are ignored by default:
//! `cargo test -p fixpoint-consensus --test faults -- --ignored` (15–58 s each here).

#[path = "../../ml/tests/common/adversarial.rs"]
mod adversarial;
mod common;
#[path = "common/scale.rs"]
mod scale;
#[path = "common/simnet.rs"]
mod simnet;

use scale::{Fault, Mix, run};

/// Loaded blocks the honest validators must finalize after the fault.
const BLOCKS: u64 = 6;
/// Cross-region loss, per mille.
const LOSS: u64 = 20;

fn check(n: usize, fault: Fault, mix: Mix) {
    let o = run(3, n, fault, mix, BLOCKS, LOSS);
    assert!(o.blocks.len() as u64 >= BLOCKS.min(3), "{n} validators, {fault:?}: {} blocks", o.blocks.len());
    assert!(o.blocks.iter().map(|b| b.txs).sum::<usize>() > 0, "{n} validators, {fault:?}: no transaction finalized");
    eprintln!(
        "{n} validators, {fault:?}: {} honest agree to height {}, {} blocks in {:.1} s simulated, {:.1} s wall",
        o.agreeing,
        o.height,
        o.blocks.len(),
        o.sim.as_secs_f64(),
        o.wall.as_secs_f64()
    );
}

#[test]
fn sixteen_validators_with_five_crashed_keep_finalizing() {
    check(16, Fault::Crash(5), Mix::LIGHT);
}

#[test]
fn sixteen_validators_with_five_byzantine_proposers_keep_finalizing() {
    check(16, Fault::Byzantine(5), Mix::LIGHT);
}

#[test]
fn sixteen_validators_survive_a_region_cut_off_and_healed() {
    check(16, Fault::Partition, Mix::LIGHT);
}

#[test]
#[ignore = "100 validators: up to a minute each"]
fn a_hundred_validators_with_33_crashed_keep_finalizing() {
    check(100, Fault::Crash(33), Mix::LIGHT);
}

#[test]
#[ignore = "100 validators: up to a minute each"]
fn a_hundred_validators_with_33_byzantine_proposers_keep_finalizing() {
    check(100, Fault::Byzantine(33), Mix::LIGHT);
}

#[test]
#[ignore = "100 validators: up to a minute each"]
fn a_hundred_validators_survive_a_region_cut_off_and_healed() {
    check(100, Fault::Partition, Mix::LIGHT);
}
