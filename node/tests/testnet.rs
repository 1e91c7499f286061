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

#[test]
fn a_validator_with_a_bad_config_says_what_is_wrong() {
    let tmp = Tmp::new("validator-config");
    let net = tmp.0.join("net");
    assert!(fixpoint(&["init", "--dir", net.to_str().unwrap(), "--validators", "2"]).0);
    // A key that is not in the genesis validator set.
    let outsider = net.join("outsider.json");
    assert!(fixpoint(&["keygen", "--out", outsider.to_str().unwrap()]).0);
    let cfg = serde_json::json!({
        "genesis": "genesis.json", "key": "outsider.json", "listen": "127.0.0.1:1",
        "peers": {}, "datadir": "data/x"
    });
    std::fs::write(net.join("x.json"), cfg.to_string()).unwrap();
    let (ok, _, err) = fixpoint(&["node", "--validator", "--config", net.join("x.json").to_str().unwrap()]);
    assert!(!ok && err.contains("is not in the genesis validator set"), "{err}");
    // A config that is not one.
    std::fs::write(net.join("y.json"), "{\"genesis\": 1}").unwrap();
    let (ok, _, err) = fixpoint(&["node", "--validator", "--config", net.join("y.json").to_str().unwrap()]);
    assert!(!ok && err.contains("is not a validator config"), "{err}");
    let (ok, _, err) = fixpoint(&["node", "--validator"]);
    assert!(!ok && err.contains("--config"), "{err}");
}
