//! A real multi-validator network on loopback, started with one command as a user starts it:
//! `fixpoint testnet --validators 4` writes keys, genesis and configs, runs four validator
//! processes (commonware simplex + marshal over authenticated TCP p2p), and with `--exit-after`
//! checks they all finalized the same block at that height. Transactions go in through any
//! validator's JSON-RPC and come out of every validator's; a second run resumes.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A running `fixpoint testnet`, stopped (SIGTERM: it stops its validators) on drop.
struct Testnet {
    child: Child,
    rpcs: Vec<String>,
}

impl Testnet {
    fn start(dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fixpoint"))
            .args(["testnet", "--validators", "4", "--rpc-port", "0", "--dir"])
            .arg(dir)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start fixpoint testnet");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut rpcs = vec![String::new(); 4];
        while rpcs.iter().any(String::is_empty) {
            let l = lines.next().expect("testnet output ended").unwrap();
            if let Some((v, url)) = l.split_once("] JSON-RPC on ") {
                let i: usize = v.trim_start_matches("[v").parse().unwrap();
                rpcs[i] = url.split_whitespace().next().unwrap().to_string();
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Self { child, rpcs }
    }

    fn cast(&self, i: usize, args: &[&str]) -> String {
        run(Command::new(tool("cast")).args(args).args(["--rpc-url", &self.rpcs[i]]))
    }

    /// Waits until every validator serves block `n`.
    fn wait_for(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(120);
        for i in 0..4 {
            while self.cast(i, &["block-number"]).parse::<u64>().unwrap() < n {
                assert!(Instant::now() < deadline, "validator {i} did not reach block {n}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Testnet {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

fn pixels() -> String {
    let bytes = hex::decode(include_str!("../assets/test-digit.hex").trim()).unwrap();
    format!("[{}]", bytes.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(","))
}

fn block_of(receipt: &str) -> u64 {
    let r: serde_json::Value = serde_json::from_str(receipt).unwrap();
    assert_eq!(r["status"], "0x1", "{receipt}");
    u64::from_str_radix(r["blockNumber"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

#[test]
fn a_testnet_takes_transactions_on_any_validator_serves_them_from_all_followers_and_resumes() {
    let tmp = Tmp::new("testnet");
    let dir = tmp.0.join("net");
    let net = Testnet::start(&dir);
    let model_id = {
        let g: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("genesis.json")).unwrap()).unwrap();
        g["models"][0]["id"].as_str().unwrap().to_string()
    };
    net.wait_for(1);

    // A transfer sent to validator 1 is finalized and visible on validator 3.
    let sink = "0x000000000000000000000000000000000000dEaD";
    let r = net.cast(1, &["send", sink, "--value", "7", "--private-key", &dev_key(0), "--json"]);
    let transfer_block = block_of(&r);
    net.wait_for(transfer_block);
    assert_eq!(net.cast(3, &["balance", sink]), "7");

    // The dapp deployed through validator 2, an inference transaction through validator 3.
    let created = run(Command::new(tool("forge")).current_dir(root()).args([
        "create",
        "contracts/src/examples/DigitRecognizer.sol:DigitRecognizer",
        "--broadcast",
        "--private-key",
        &dev_key(1),
        "--rpc-url",
        &net.rpcs[2],
        "--constructor-args",
        &model_id,
    ]));
    let app = created.lines().find_map(|l| l.strip_prefix("Deployed to: ")).expect("deployed").trim().to_string();
    let deployed: u64 = net.cast(2, &["block-number"]).parse().unwrap();
    net.wait_for(deployed);
    let r = net.cast(3, &["send", &app, "recognize(uint8[64])", &pixels(), "--private-key", &dev_key(1), "--json"]);
    let inference_block = block_of(&r);
    let tx = serde_json::from_str::<serde_json::Value>(&r).unwrap()["transactionHash"].as_str().unwrap().to_string();
    net.wait_for(inference_block);
    for i in 0..4 {
        assert_eq!(net.cast(i, &["call", &app, "recorded()(uint256)"]), "1", "validator {i}");
        let records = net.cast(i, &["rpc", "fixpoint_transactionRecords", &tx]);
        assert!(records.contains(&model_id[2..]), "validator {i}: {records}");
    }
    // Every validator serves the same blocks (the Ethereum view is derived from the finalized
    // consensus blocks, so even its hashes agree).
    for n in [1, transfer_block, inference_block] {
        let hashes: Vec<String> = (0..4).map(|i| net.cast(i, &["block", &n.to_string(), "--field", "hash"])).collect();
        assert!(hashes.iter().all(|h| *h == hashes[0]), "block {n}: {hashes:?}");
    }

    // A follower (no vote) started late: it checks each block's certificate, re-executes it,
    // serves the same chain, and forwards a transaction it is sent.
    let port = free_port();
    let follower_dir = tmp.0.join("follower");
    let mut follower = Command::new(env!("CARGO_BIN_EXE_fixpoint"))
        .args(["node", "--follow", &net.rpcs[0], "--port", &port.to_string(), "--genesis"])
        .arg(dir.join("genesis.json"))
        .arg("--datadir")
        .arg(&follower_dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().starts_with("following "));
    std::thread::spawn(move || for _ in lines {});
    let f = format!("http://127.0.0.1:{port}");
    let fcast = |args: &[&str]| run(Command::new(tool("cast")).args(args).args(["--rpc-url", &f]));
    let deadline = Instant::now() + Duration::from_secs(120);
    while fcast(&["block-number"]).parse::<u64>().unwrap() < inference_block {
        assert!(Instant::now() < deadline, "the follower did not catch up");
        std::thread::sleep(Duration::from_millis(100));
    }
    let n = inference_block.to_string();
    assert_eq!(fcast(&["block", &n, "--field", "hash"]), net.cast(0, &["block", &n, "--field", "hash"]));
    assert_eq!(fcast(&["call", &app, "recorded()(uint256)"]), "1");
    let r = fcast(&["send", sink, "--value", "5", "--private-key", &dev_key(2), "--json"]);
    let via_follower = block_of(&r);
    net.wait_for(via_follower);
    assert_eq!(net.cast(2, &["balance", sink]), "12");
    let out =
        Command::new(tool("cast")).args(["rpc", "fixpoint_certifiedBlock", "1", "--rpc-url", &f]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("only validators do"), "{out:?}");
    let _ = follower.kill();
    let _ = follower.wait();

    let head: u64 = net.cast(0, &["block-number"]).parse().unwrap();
    drop(net);

    // Run again: each validator resumes from its database (not from genesis) and they agree.
    // Well above where they stopped (they finalize a few more blocks while being stopped).
    let target = head + 30;
    let (ok, out, err) = fixpoint(&["testnet", "--dir", dir.to_str().unwrap(), "--exit-after", &target.to_string()]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("resuming the 4 validators"), "{out}");
    assert!(out.contains(&format!("all 4 validators finalized height {target} with digest 0x")), "{out}");
    for i in 0..4 {
        let resumed_at: u64 = out
            .lines()
            .find_map(|l| l.strip_prefix(&format!("[v{i}] validator ")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|h| h.parse().ok())
            .unwrap_or_else(|| panic!("validator {i} start line: {out}"));
        assert!(resumed_at >= inference_block, "validator {i} resumed at {resumed_at}: {out}");
    }
    // A directory that is not a testnet is refused.
    std::fs::write(tmp.0.join("other.txt"), "x").unwrap();
    let (ok, _, err) = fixpoint(&["testnet", "--dir", tmp.0.to_str().unwrap(), "--exit-after", "1"]);
    assert!(!ok && err.contains("holds no testnet"), "{err}");
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
