//! Shared by the end-to-end tests: the repository's tools, and the `fixpoint` binary started as
//! a user starts it.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("..")
}

pub fn tool(name: &str) -> PathBuf {
    let p = root().join("node_modules/.bin").join(name);
    assert!(p.exists(), "{name} missing: run `npm ci --ignore-scripts` at the repository root");
    p
}

/// Node.js (`node`) for a test script under tests/e2e/, once the npm `packages` it imports are
/// installed at the repository root.
pub fn node_js(packages: &[&str]) -> PathBuf {
    for package in packages {
        let p = root().join("node_modules").join(package);
        assert!(p.exists(), "{package} missing: run `npm ci --ignore-scripts` at the repository root");
    }
    PathBuf::from("node")
}

/// The Chromium the browser tests drive: `$CHROMIUM`, else Debian's /usr/bin/chromium. Missing
/// is a failure, not a skip: `.ci/run` and `scripts/test` install it.
pub fn chromium() -> PathBuf {
    let p = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        p.exists(),
        "Chromium missing at {}: run ./scripts/test (it installs Debian's `chromium`), or `apt-get install chromium`, or set CHROMIUM",
        p.display()
    );
    p
}

/// Where tests leave files for people to look at (screenshots): `<cargo target dir>/artifacts`,
/// found from the `fixpoint` binary Cargo built (`<target>/<profile>/fixpoint`).
pub fn artifacts_dir() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_fixpoint"));
    let target = bin.parent().and_then(Path::parent).expect("the binary is in <target>/<profile>/");
    let dir = target.join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub struct NodeProc {
    pub child: Child,
    pub rpc: String,
    /// The first model the node printed (the dev chain's digit classifier).
    pub model_id: String,
    /// The second (the dev chain's tiny GPT), if any.
    pub writer_id: String,
    pub key: String,
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        // Never leave a node running, whatever happened in the test.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw HTTP POST; (status, body).
pub fn post(port: u16, body: &[u8]) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    std::io::Write::write_all(&mut s, head.as_bytes()).unwrap();
    let _ = std::io::Write::write_all(&mut s, body);
    let mut out = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    (status, body)
}

/// A JSON-RPC call over a raw HTTP POST: the response's `result`, or `None` if the node is not
/// listening (yet) or answered an error.
pub fn rpc_result(port: u16, method: &str, params: serde_json::Value) -> Option<serde_json::Value> {
    std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let body = serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
    let (_, text) = post(port, body.to_string().as_bytes());
    serde_json::from_str::<serde_json::Value>(&text).ok()?.get("result").cloned()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `fixpoint node --dev` on `port` with `datadir`.
pub fn start(datadir: &Path, port: u16) -> NodeProc {
    start_with(&["--dev"], datadir, port)
}

/// Starts `fixpoint node <args>` and waits until it listens.
pub fn start_with(args: &[&str], datadir: &Path, port: u16) -> NodeProc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fixpoint"))
        .arg("node")
        .args(args)
        .args(["--port", &port.to_string(), "--datadir"])
        .arg(datadir)
        // A line per block at the default level: only warnings and errors in test output.
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start fixpoint");
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let (mut model_id, mut writer_id, mut key) = (String::new(), String::new(), String::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Some(Ok(l)) = lines.next() {
        if l.trim_start().starts_with("model id") {
            let id = l.split_whitespace().last().unwrap().to_string();
            if model_id.is_empty() {
                model_id = id
            } else if writer_id.is_empty() {
                writer_id = id
            }
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
    NodeProc { child, rpc: format!("http://127.0.0.1:{port}"), model_id, writer_id, key }
}

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `cast <args> --rpc-url <node>`, which must succeed; its trimmed stdout.
pub fn cast(n: &NodeProc, args: &[&str]) -> String {
    run(Command::new(tool("cast")).args(args).args(["--rpc-url", &n.rpc]))
}

/// `forge create`s the example `DigitRecognizer` on the node's digit classifier with the node's
/// first dev key; its address.
pub fn deploy_digit_recognizer(n: &NodeProc) -> String {
    deploy_digit_recognizer_at(&n.rpc, &n.key, &n.model_id)
}

/// `forge create`s a `DigitRecognizer` for `model` on the node at `rpc`, sent with `key`; its
/// address.
pub fn deploy_digit_recognizer_at(rpc: &str, key: &str, model: &str) -> String {
    let created = run(Command::new(tool("forge")).current_dir(root()).args([
        "create",
        "contracts/src/examples/DigitRecognizer.sol:DigitRecognizer",
        "--broadcast",
        "--private-key",
        key,
        "--rpc-url",
        rpc,
        "--constructor-args",
        model,
    ]));
    created.lines().find_map(|l| l.strip_prefix("Deployed to: ")).expect("deployed address").trim().to_string()
}

/// A running `fixpoint testnet --validators 4` (quiet logs), stopped on drop (SIGTERM: the
/// supervisor stops its validators).
pub struct TestnetProc(pub Child);

impl Drop for TestnetProc {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

/// Starts `fixpoint testnet --validators 4 --rpc-port 0 <extra> --dir <dir>` and reads its output
/// until a line starts with each of `wanted`; the rest of each such line (first word), in order.
pub fn start_testnet(dir: &Path, extra: &[&str], wanted: &[&str]) -> (TestnetProc, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fixpoint"))
        .args(["testnet", "--validators", "4", "--rpc-port", "0"])
        .args(extra)
        .arg("--dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start fixpoint testnet");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut found = vec![String::new(); wanted.len()];
    while found.iter().any(String::is_empty) {
        let l = lines.next().expect("testnet output ended").expect("line");
        for (w, f) in wanted.iter().zip(&mut found) {
            if let Some(rest) = l.strip_prefix(w) {
                *f = rest.split_whitespace().next().unwrap_or_default().to_string();
            }
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (TestnetProc(child), found)
}

/// Runs the `fixpoint` binary; (success, stdout, stderr).
pub fn fixpoint(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fixpoint")).args(args).output().expect("run fixpoint");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The dev account key `i` (public: keccak256("fixpoint dev account {i}")).
pub fn dev_key(i: usize) -> String {
    alloy_primitives::keccak256(format!("fixpoint dev account {i}")).to_string()
}

/// A temporary directory removed on drop.
pub struct Tmp(pub PathBuf);

impl Tmp {
    pub fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("fixpoint-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The conformance vector of the example model (tests/vectors/models/digits-mlp.json) whose input
/// is the end-to-end tests' digit (node/assets/test-digit.hex): (model bytes, input, label). The
/// label is the vector's output #0 (the argmax, i32 little-endian), not a figure from the code
/// under test.
pub fn example_vector() -> (Vec<u8>, Vec<u8>, u64) {
    let path = root().join("tests/vectors/models/digits-mlp.json");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(path).expect("vector")).expect("json");
    let digit = hex::decode(include_str!("../../assets/test-digit.hex").trim()).expect("hex");
    let case = doc["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| hex::decode(c["input"].as_str().expect("input")).expect("hex") == digit)
        .expect("the test digit is one of the vector's cases");
    let h = |k: &str| hex::decode(case[k].as_str().expect("hex field")).expect("hex");
    let output = h("output");
    let label = i32::from_le_bytes(output[..4].try_into().expect("i32 label"));
    (h("model"), digit, u64::try_from(label).expect("a class"))
}
