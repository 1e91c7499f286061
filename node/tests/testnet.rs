//! A real multi-validator network on loopback, started with one command as a user starts it:
//! `fixpoint testnet --validators 4` writes keys, genesis and configs, runs four validator
//! processes (commonware simplex + marshal over authenticated TCP p2p), and with `--exit-after`
//! checks they all finalized the same block at that height.

mod common;

use common::*;

#[test]
fn four_validator_processes_finalize_the_same_chain() {
    let tmp = Tmp::new("testnet");
    let dir = tmp.0.join("net");
    let (ok, out, err) =
        fixpoint(&["testnet", "--validators", "4", "--dir", dir.to_str().unwrap(), "--exit-after", "5"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("all 4 validators finalized height 5 with digest 0x"), "{out}");
    for i in 0..4 {
        assert!(out.contains(&format!("[v{i}] finalized height 5 digest")), "validator {i}: {out}");
        assert!(dir.join(format!("v{i}.config.json")).exists());
    }
    // A second testnet refuses a directory that is in use.
    let (ok, _, err) = fixpoint(&["testnet", "--dir", dir.to_str().unwrap(), "--exit-after", "1"]);
    assert!(!ok && err.contains("not empty"), "{err}");
}
