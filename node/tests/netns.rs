//! Four validators as on four hosts: each `fixpoint node --validator` runs in a network namespace
//! of its own (`ip netns`), with its own private address (10.77.X.1–4) on a veth pair to a bridge
//! this test makes, configs written by `fixpoint init --validators 4 --p2p …` (listening on
//! 0.0.0.0, dialable at the private address; validators 1–3 know only validator 0's address, as
//! a bootstrapper, and discover the others). The test reaches each validator's JSON-RPC from the
//! root namespace through the bridge's address, checks that an inference transaction sent to one
//! validator is finalized on all four and that they serve the same block hashes. Namespaces,
//! veths and the bridge are removed on drop, whatever happened. Needs root and `ip netns`;
//! without them it prints why and passes without checking anything.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Validators.
const N: usize = 4;
/// Every validator's p2p port (each has an address of its own).
const P2P_PORT: u16 = 30400;
/// Every validator's JSON-RPC port.
const RPC_PORT: u16 = 8545;

/// Runs `ip <args>`; whether it succeeded.
fn ip(args: &[&str]) -> bool {
    Command::new("ip").args(args).stderr(Stdio::null()).stdout(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// The namespaces, veths and bridge of one run (names unique to this process), and the
/// validators running in them; all removed on drop.
struct Hosts {
    tag: String,
    subnet: u8,
    validators: Vec<Child>,
}

impl Hosts {
    fn ns(&self, i: usize) -> String {
        format!("{}-h{i}", self.tag)
    }

    fn bridge(&self) -> String {
        format!("{}b", self.tag)
    }

    fn veth(&self, i: usize) -> String {
        format!("{}v{i}", self.tag)
    }

    fn addr(&self, i: usize) -> String {
        format!("10.77.{}.{}", self.subnet, i + 1)
    }

    /// Makes the bridge (10.77.X.254 in the root namespace) and N namespaces wired to it;
    /// `Err` says what failed (nothing of it is left behind).
    fn make() -> Result<Self, String> {
        let pid = std::process::id();
        // Interface names are at most 15 bytes: "fx" + pid (≤ 7 digits) + "v3" fits.
        let tag = format!("fx{pid}");
        // A /24 no interface here uses yet.
        let used = String::from_utf8_lossy(
            &Command::new("ip").args(["-4", "addr"]).output().map_err(|e| e.to_string())?.stdout,
        )
        .to_string();
        let subnet = (0..250u32)
            .map(|k| ((pid + k) % 250) as u8 + 1)
            .find(|s| !used.contains(&format!("10.77.{s}.")))
            .ok_or("no free 10.77.X.0/24")?;
        let hosts = Self { tag, subnet, validators: Vec::new() };
        let br = hosts.bridge();
        let ok = ip(&["link", "add", &br, "type", "bridge"])
            && ip(&["addr", "add", &format!("10.77.{subnet}.254/24"), "dev", &br])
            && ip(&["link", "set", &br, "up"]);
        if !ok {
            return Err(format!("cannot make bridge {br}"));
        }
        for i in 0..N {
            let (ns, host_side, inner) = (hosts.ns(i), hosts.veth(i), format!("{}p{i}", hosts.tag));
            let addr = format!("{}/24", hosts.addr(i));
            let ok = ip(&["netns", "add", &ns])
                && ip(&["link", "add", &host_side, "type", "veth", "peer", "name", &inner])
                && ip(&["link", "set", &inner, "netns", &ns])
                && ip(&["link", "set", &host_side, "master", &br])
                && ip(&["link", "set", &host_side, "up"])
                && ip(&["netns", "exec", &ns, "ip", "addr", "add", &addr, "dev", &inner])
                && ip(&["netns", "exec", &ns, "ip", "link", "set", &inner, "up"])
                && ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
            if !ok {
                return Err(format!("cannot make namespace {ns} (ip netns unavailable?)"));
            }
        }
        Ok(hosts)
    }

    fn rpc(&self, i: usize) -> String {
        format!("http://{}:{RPC_PORT}", self.addr(i))
    }

    fn cast(&self, i: usize, args: &[&str]) -> String {
        run(Command::new(tool("cast")).args(args).args(["--rpc-url", &self.rpc(i)]))
    }

    /// Starts validator `i` in its namespace as a user starts it, and waits for its JSON-RPC.
    fn start(&mut self, i: usize, dir: &std::path::Path) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns(i)])
            .arg(env!("CARGO_BIN_EXE_fixpoint"))
            .args(["node", "--validator", "--config"])
            .arg(dir.join(format!("v{i}.config.json")))
            // A line per block at info: only warnings in the test's output.
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a validator in its namespace");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        self.validators.push(child);
        loop {
            let l = lines.next().expect("validator output ended").unwrap();
            if l.starts_with("JSON-RPC on ") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
    }

    /// Waits until every validator serves block `n`.
    fn wait_for(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(180);
        for i in 0..N {
            while self.cast(i, &["block-number"]).parse::<u64>().unwrap() < n {
                assert!(Instant::now() < deadline, "validator {i} did not reach block {n}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // `ip netns exec` execs the validator: its pid is the validator's.
        for c in &mut self.validators {
            let _ = c.kill();
            let _ = c.wait();
        }
        for i in 0..N {
            // Deleting a namespace deletes the veth end in it, and with it the pair.
            ip(&["netns", "del", &self.ns(i)]);
            ip(&["link", "del", &self.veth(i)]);
        }
        ip(&["link", "del", &self.bridge()]);
    }
}

/// Why this machine cannot run the test, if it cannot.
fn unavailable() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if uid.as_deref() != Some("0") {
        return Some("not root".into());
    }
    if !ip(&["netns", "list"]) {
        return Some("`ip netns` is not available".into());
    }
    None
}

#[test]
fn four_validators_in_separate_network_namespaces_agree_and_finalize_inference() {
    if let Some(why) = unavailable() {
        eprintln!("SKIPPED four_validators_in_separate_network_namespaces: {why}");
        return;
    }
    // Made first, so dropped last: the validators stop before their directories go.
    let tmp = Tmp::new("netns");
    let mut hosts = match Hosts::make() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("SKIPPED four_validators_in_separate_network_namespaces: {e}");
            return;
        }
    };
    let dir = tmp.0.join("net");
    let p2p: Vec<String> = (0..N).map(|i| format!("{}:{P2P_PORT}", hosts.addr(i))).collect();
    let (ok, out, err) = fixpoint(&[
        "init",
        "--dir",
        dir.to_str().unwrap(),
        "--validators",
        &N.to_string(),
        "--p2p",
        &p2p.join(","),
        "--bootstrappers",
        "1",
        "--rpc",
        &format!("0.0.0.0:{RPC_PORT}"),
    ]);
    assert!(ok, "{out}\n{err}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("v2.config.json")).unwrap()).unwrap();
    assert_eq!(cfg["listen"], format!("0.0.0.0:{P2P_PORT}"));
    assert_eq!(cfg["dialable"], p2p[2]);
    assert_eq!(cfg["bootstrappers"].as_object().unwrap().len(), 1, "{cfg}");
    for i in 0..N {
        hosts.start(i, &dir);
    }
    hosts.wait_for(2);

    // An inference call (the genesis digit classifier) sent to validator 2 only.
    let g: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("genesis.json")).unwrap()).unwrap();
    let model_id = g["models"][0]["id"].as_str().unwrap().to_string();
    let (_, digit, _) = example_vector();
    let input = format!("0x{}", hex::encode(&digit));
    let inference = "0x0000000000000000000000000000000000000F01";
    let r = hosts.cast(
        2,
        &["send", inference, "infer(bytes32,bytes)", &model_id, &input, "--private-key", &dev_key(0), "--json"],
    );
    let receipt: serde_json::Value = serde_json::from_str(&r).unwrap();
    assert_eq!(receipt["status"], "0x1", "{r}");
    let tx = receipt["transactionHash"].as_str().unwrap().to_string();
    let block = u64::from_str_radix(receipt["blockNumber"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    hosts.wait_for(block);
    for i in 0..N {
        let r: serde_json::Value =
            serde_json::from_str(&hosts.cast(i, &["receipt", &tx, "--json"])).expect("a receipt on every validator");
        assert_eq!(r["status"], "0x1", "validator {i}");
        let records = hosts.cast(i, &["rpc", "fixpoint_transactionRecords", &tx]);
        assert!(records.contains(&model_id[2..]), "validator {i}: {records}");
    }
    for n in 1..=block {
        let hashes: Vec<String> =
            (0..N).map(|i| hosts.cast(i, &["block", &n.to_string(), "--field", "hash"])).collect();
        assert!(hashes.iter().all(|h| *h == hashes[0]), "block {n}: {hashes:?}");
    }
    eprintln!(
        "4 validators in namespaces {}-h0..3 on 10.77.{}.1-4: inference tx {tx} finalized in block {block} on all, \
         same hashes for blocks 1..={block}",
        hosts.tag, hosts.subnet
    );
}
