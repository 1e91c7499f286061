//! End to end, as a user works: start the `fixpoint` binary on a temp datadir, deploy the
//! example dapp with `forge create`, call the model through it with `cast send` / `cast call`,
//! read the receipt and the inference records, then stop the node (gracefully, then with
//! SIGKILL) and check the chain is still there with the same head and state. A dapp-side viem
//! script (tests/e2e/viem.mjs) does the same from JavaScript, and a node killed mid-load comes
//! back consistent.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tool(name: &str) -> PathBuf {
    let p = root().join("node_modules/.bin").join(name);
    assert!(p.exists(), "{name} missing: run `npm ci --ignore-scripts` at the repository root");
    p
}

struct NodeProc {
    child: Child,
    rpc: String,
    model_id: String,
    key: String,
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        // Never leave a node running, whatever happened in the test.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(datadir: &std::path::Path, port: u16) -> NodeProc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fixpoint"))
        .args(["node", "--dev", "--port", &port.to_string(), "--datadir"])
        .arg(datadir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start fixpoint");
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let (mut model_id, mut key) = (String::new(), String::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Some(Ok(l)) = lines.next() {
        if l.trim_start().starts_with("model id") {
            model_id = l.split_whitespace().last().unwrap().to_string();
        }
        if key.is_empty() && l.starts_with("(0) 0x") && l.len() > 50 {
            key = l[4..].to_string();
        }
        if l.starts_with("Listening on") {
            break;
        }
        assert!(Instant::now() < deadline, "node did not start");
    }
    std::thread::spawn(move || for _ in lines {});
    NodeProc { child, rpc: format!("http://127.0.0.1:{port}"), model_id, key }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn cast(n: &NodeProc, args: &[&str]) -> String {
    run(Command::new(tool("cast")).args(args).args(["--rpc-url", &n.rpc]))
}

fn pixels() -> String {
    let hex = include_str!("../assets/test-digit.hex").trim();
    let bytes = hex::decode(hex).unwrap();
    format!("[{}]", bytes.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(","))
}

#[test]
fn forge_and_cast_against_the_binary_with_restart_and_crash() {
    let dir = std::env::temp_dir().join(format!("fixpoint-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let mut n = start(&dir, port);
    assert_eq!(cast(&n, &["chain-id"]), "3871");

    // The example model answers an eth_call straight away (expected label from the vectors).
    let input = format!("0x{}", include_str!("../assets/test-digit.hex").trim());
    let label = cast(
        &n,
        &[
            "call",
            "0x0000000000000000000000000000000000000F01",
            "classify(bytes32,bytes)(uint256)",
            &n.model_id,
            &input,
        ],
    );
    assert_eq!(label, "8");

    // forge create the dapp, cast send a recognition, cast call the record.
    let created = run(Command::new(tool("forge")).current_dir(root()).args([
        "create",
        "contracts/src/examples/DigitRecognizer.sol:DigitRecognizer",
        "--broadcast",
        "--private-key",
        &n.key,
        "--rpc-url",
        &n.rpc,
        "--constructor-args",
        &n.model_id,
    ]));
    let app =
        created.lines().find_map(|l| l.strip_prefix("Deployed to: ")).expect("deployed address").trim().to_string();
    let receipt = cast(&n, &["send", &app, "recognize(uint8[64])", &pixels(), "--private-key", &n.key, "--json"]);
    let receipt: serde_json::Value = serde_json::from_str(&receipt).unwrap();
    assert_eq!(receipt["status"], "0x1");
    assert_eq!(receipt["logs"].as_array().unwrap().len(), 1, "DigitRecognized event");
    let tx = receipt["transactionHash"].as_str().unwrap().to_string();
    assert_eq!(cast(&n, &["call", &app, "recorded()(uint256)"]), "1");
    let predicted = cast(&n, &["call", &app, "predict(uint8[64])(uint8,int32)", &pixels()]);
    assert!(predicted.starts_with('8'), "{predicted}");
    let records = cast(&n, &["rpc", "fixpoint_transactionRecords", &tx]);
    assert!(records.contains(&n.model_id[2..]), "{records}");
    // A revert from the precompile reaches cast decoded as a custom error selector.
    let out = Command::new(tool("cast"))
        .args([
            "call",
            "0x0000000000000000000000000000000000000F01",
            "infer(bytes32,bytes)",
            &format!("0x{}", "11".repeat(32)),
            "0x00",
            "--rpc-url",
            &n.rpc,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("execution reverted"));

    let head = cast(&n, &["block-number"]);
    let root_before = cast(&n, &["block", "latest", "--field", "stateRoot"]);

    // Kill -9 and restart: same head, same state, the dapp still answers.
    n.child.kill().unwrap();
    n.child.wait().unwrap();
    drop(n);
    let n2 = start(&dir, port);
    assert_eq!(cast(&n2, &["block-number"]), head);
    assert_eq!(cast(&n2, &["block", "latest", "--field", "stateRoot"]), root_before);
    assert_eq!(cast(&n2, &["call", &app, "recorded()(uint256)"]), "1");
    let receipt = cast(&n2, &["receipt", &tx, "status"]);
    assert!(receipt == "true" || receipt.starts_with('1'), "{receipt}");

    // The chain goes on after the restart.
    let receipt = cast(&n2, &["send", &app, "recognize(uint8[64])", &pixels(), "--private-key", &n2.key, "--json"]);
    let receipt: serde_json::Value = serde_json::from_str(&receipt).unwrap();
    assert_eq!(receipt["status"], "0x1");
    assert_eq!(cast(&n2, &["call", &app, "recorded()(uint256)"]), "2");
    drop(n2);
    let _ = std::fs::remove_dir_all(&dir);
}

fn node_js() -> PathBuf {
    let p = root().join("node_modules/viem");
    assert!(p.exists(), "viem missing: run `npm ci --ignore-scripts` at the repository root");
    PathBuf::from("node")
}

#[test]
fn viem_dapp_client_calls_and_sends_inference() {
    let dir = std::env::temp_dir().join(format!("fixpoint-e2e-viem-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let n = start(&dir, free_port());
    let input = format!("0x{}", include_str!("../assets/test-digit.hex").trim());
    let out = run(Command::new(node_js())
        .arg(root().join("tests/e2e/viem.mjs"))
        .env("RPC_URL", &n.rpc)
        .env("PRIVATE_KEY", &n.key)
        .env("MODEL_ID", &n.model_id)
        .env("INPUT_HEX", &input));
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(v["chainId"], 3871);
    assert_eq!(v["label"], "8", "the test digit is an 8 (tests/vectors)");
    assert_eq!(v["status"], "success");
    // The output viem simulated equals the one the chain recorded for the transaction.
    assert_eq!(v["outputHash"], v["recordOutputHash"], "{v}");
    assert_eq!(v["unknownError"], "UnknownModel", "{v}");
    assert_eq!(v["balancePositive"], true);
    drop(n);
    let _ = std::fs::remove_dir_all(&dir);
}
