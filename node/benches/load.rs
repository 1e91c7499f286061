//! Load benchmark: the same JSON-RPC load against `fixpoint node --dev`, anvil (the pinned npm
//! build) and a 4-validator `fixpoint testnet` (consensus: a transaction counts once it is in a
//! finalized block served by the validator it was sent to; senders are spread over the four
//! validators' RPCs), in one run. Signed transactions are prepared first, then sent over HTTP by one worker
//! per sender (nonces in order) until every one is mined; then a single sender measures
//! send-to-receipt latency. Workloads: ETH transfers, ERC-20 transfers (BenchToken), and calls of
//! the DigitRecognizer dapp that run the example model (fixpoint only: anvil has no inference
//! precompile).
//!
//! Every transaction of a throughput run must have a successful receipt, the load's blocks must
//! hold exactly its transactions, and the ETH transfers' wei must all arrive; a reverted
//! transaction is not throughput.
//!
//! `cargo bench -p fixpoint-node --bench load` (env LOAD_TXS, LOAD_SENDERS, LOAD_LATENCY,
//! LOAD_RUNS (interleaved repetitions; median and spread printed), LOAD_ONLY: a comma-separated subset of fixpoint,testnet,anvil).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_consensus::TxEip1559;
use alloy_primitives::{Address, B256, Bytes, TxKind, U64, U256, keccak256};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{SolCall, SolValue, sol};
use fixpoint_node::client::{Client, sign};
use serde_json::{Value, json};

mod common;
use common::{artifact, root};

sol! {
    function transfer(address to, uint256 value) external returns (bool);
    function recognize(uint8[64] pixels) external returns (uint8 digit);
}

fn env_usize(k: &str, d: usize) -> usize {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(18545)
}

/// A node (or network) under test.
struct Target {
    name: &'static str,
    child: Child,
    /// Setup goes through the first; load is spread over all.
    client: Arc<Client>,
    clients: Vec<Arc<Client>>,
    chain_id: u64,
    funder: PrivateKeySigner,
    nonce: u64,
    _dir: Option<PathBuf>,
}

impl Drop for Target {
    fn drop(&mut self) {
        // SIGTERM first: a testnet stops its validators on it.
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        std::thread::sleep(Duration::from_millis(500));
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(d) = &self._dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

async fn start(name: &'static str, mut cmd: Command, port: u16, key: B256, dir: Option<PathBuf>) -> Target {
    let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start node");
    start_with(name, child, &format!("http://127.0.0.1:{port}"), key, dir).await
}

async fn start_with(name: &'static str, child: Child, url: &str, key: B256, dir: Option<PathBuf>) -> Target {
    let client = Arc::new(Client::new(url).expect("client"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let chain_id = loop {
        if let Ok(id) = client.chain_id().await {
            break id;
        }
        assert!(Instant::now() < deadline, "{name} did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let funder = PrivateKeySigner::from_bytes(&key).expect("key");
    Target { name, child, clients: vec![client.clone()], client, chain_id, funder, nonce: 0, _dir: dir }
}

/// `fixpoint testnet --validators 4` on loopback, its four RPCs.
async fn testnet() -> Target {
    use std::io::BufRead as _;
    let dir = std::env::temp_dir().join(format!("fixpoint-load-net-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_fixpoint"))
        .args(["testnet", "--validators", "4", "--rpc-port", "0", "--dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start testnet");
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut urls = Vec::new();
    while urls.len() < 4 {
        let l = lines.next().expect("testnet output").expect("line");
        if let Some((_, url)) = l.split_once("JSON-RPC on ") {
            urls.push(url.split_whitespace().next().expect("url").to_string());
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let mut t = start_with("testnet", child, &urls[0], keccak256("fixpoint dev account 0"), Some(dir)).await;
    t.clients = urls.iter().map(|u| Arc::new(Client::new(u).expect("client"))).collect();
    // Consensus is running once a block is finalized.
    while t.client.request::<U64>("eth_blockNumber", vec![]).await.map_or(0, |n| n.to::<u64>()) < 1 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t
}

async fn fixpoint() -> Target {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("fixpoint-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fixpoint"));
    cmd.args(["node", "--dev", "--port", &port.to_string(), "--datadir"]).arg(&dir);
    start("fixpoint", cmd, port, keccak256("fixpoint dev account 0"), Some(dir)).await
}

async fn anvil() -> Target {
    let port = free_port();
    let mut cmd = Command::new(root().join("node_modules/.bin/anvil"));
    // Like fixpoint, keep the latest state only: anvil's default keeps a state per block in
    // memory, which grew past 14 GB within a few thousand blocks here.
    cmd.args(["--port", &port.to_string(), "--silent", "--gas-limit", "60000000", "--prune-history"]);
    if let Ok(extra) = std::env::var("LOAD_ANVIL_ARGS") {
        cmd.args(extra.split_whitespace());
    }
    // anvil's first default account (the "test test ... junk" mnemonic).
    let key: B256 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80".parse().expect("key");
    start("anvil", cmd, port, key, None).await
}

const MAX_FEE: u128 = 200_000_000_000;
const TIP: u128 = 1_000_000_000;

fn tx(chain_id: u64, nonce: u64, to: TxKind, input: Bytes, gas: u64, value: U256) -> TxEip1559 {
    TxEip1559 {
        chain_id,
        nonce,
        gas_limit: gas,
        max_fee_per_gas: MAX_FEE,
        max_priority_fee_per_gas: TIP,
        to,
        value,
        access_list: Default::default(),
        input,
    }
}

async fn receipt(c: &Client, hash: B256) -> Value {
    loop {
        let r: Option<Value> = c.request("eth_getTransactionReceipt", vec![json!(hash)]).await.expect("receipt");
        if let Some(r) = r {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

impl Target {
    /// Sends one transaction from the funder and waits for it.
    async fn fund_tx(&mut self, to: TxKind, input: Bytes, gas: u64, value: U256) -> Value {
        let raw = sign(&self.funder, tx(self.chain_id, self.nonce, to, input, gas, value)).expect("sign");
        self.nonce += 1;
        let hash: B256 = self.client.request("eth_sendRawTransaction", vec![json!(raw)]).await.expect("send");
        let r = receipt(&self.client, hash).await;
        assert_eq!(r["status"], "0x1", "{} setup transaction failed: {r}", self.name);
        r
    }

    async fn deploy(&mut self, code: Bytes) -> Address {
        let r = self.fund_tx(TxKind::Create, code, 5_000_000, U256::ZERO).await;
        r["contractAddress"].as_str().expect("created").parse().expect("address")
    }

    /// Waits until every RPC serves the first one's head (validators import finalized blocks
    /// a few milliseconds apart).
    async fn sync(&self) {
        let n = |c: Arc<Client>| async move {
            c.request::<U64>("eth_blockNumber", vec![]).await.map_or(0, |n| n.to::<u64>())
        };
        let head = n(self.client.clone()).await;
        for c in &self.clients {
            while n(c.clone()).await < head {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    /// `n` fresh senders with 100 ETH each.
    async fn senders(&mut self, n: usize, tag: &str) -> Vec<PrivateKeySigner> {
        let keys: Vec<_> =
            (0..n).map(|i| PrivateKeySigner::from_bytes(&keccak256(format!("load {tag} {i}"))).expect("key")).collect();
        for k in &keys {
            let eth100 = U256::from(100u64) * U256::from(10u64).pow(U256::from(18));
            self.fund_tx(TxKind::Call(k.address()), Bytes::new(), 21_000, eth100).await;
        }
        self.sync().await;
        keys
    }
}

/// Throughput: every sender's transactions signed up front, one worker per sender sending in
/// nonce order; the clock stops when the last one is mined. Then every receipt is fetched and
/// must say success: a reverted transaction is not throughput.
async fn throughput(
    t: &Target,
    senders: &[PrivateKeySigner],
    per_sender: usize,
    value: U256,
    make: &(dyn Fn(usize) -> (TxKind, Bytes, u64) + Sync),
) -> (f64, Blocks) {
    let first_block = head(&t.client).await + 1;
    let lists: Vec<Vec<Bytes>> = senders
        .iter()
        .map(|k| {
            (0..per_sender)
                .map(|i| {
                    let (to, input, gas) = make(i);
                    sign(k, tx(t.chain_id, i as u64, to, input, gas, value)).expect("sign")
                })
                .collect()
        })
        .collect();
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for (i, list) in lists.into_iter().enumerate() {
        let c = t.clients[i % t.clients.len()].clone();
        workers.spawn(async move {
            let mut hashes = Vec::with_capacity(list.len());
            for raw in list {
                hashes.push(c.request::<B256>("eth_sendRawTransaction", vec![json!(raw)]).await.expect("send"));
            }
            receipt(&c, *hashes.last().expect("one transaction")).await;
            (c, hashes)
        });
    }
    let mut sent = Vec::new();
    while let Some(r) = workers.join_next().await {
        sent.push(r.expect("worker"));
    }
    let tps = (senders.len() * per_sender) as f64 / start.elapsed().as_secs_f64();
    t.sync().await;
    for (c, hashes) in &sent {
        for h in hashes {
            let r = receipt(c, *h).await;
            assert_eq!(r["status"], "0x1", "{}: transaction {h} did not succeed: {r}", t.name);
        }
    }
    let b = blocks(&t.client, first_block, head(&t.client).await).await;
    assert_eq!(b.txs, senders.len() * per_sender, "{}: the load's blocks hold exactly its transactions", t.name);
    (tps, b)
}

async fn balance(c: &Client, a: Address) -> U256 {
    c.request("eth_getBalance", vec![json!(a), json!("latest")]).await.expect("balance")
}

async fn head(c: &Client) -> u64 {
    c.request::<U64>("eth_blockNumber", vec![]).await.map_or(0, |n| n.to::<u64>())
}

/// The blocks a load filled: how many had transactions, the transactions in them, the largest,
/// and the most gas in one.
#[derive(Debug, Default)]
struct Blocks {
    used: usize,
    txs: usize,
    max_txs: usize,
    max_gas: u64,
}

async fn blocks(c: &Client, from: u64, to: u64) -> Blocks {
    let mut b = Blocks::default();
    for n in from..=to {
        let block: Value =
            c.request("eth_getBlockByNumber", vec![json!(format!("{n:#x}")), json!(false)]).await.expect("block");
        let txs = block["transactions"].as_array().map_or(0, Vec::len);
        let gas = block["gasUsed"]
            .as_str()
            .and_then(|g| u64::from_str_radix(g.trim_start_matches("0x"), 16).ok())
            .unwrap_or(0);
        if txs > 0 {
            b.used += 1;
        }
        b.txs += txs;
        b.max_txs = b.max_txs.max(txs);
        b.max_gas = b.max_gas.max(gas);
    }
    b
}

/// Latency: one transaction at a time, from sending to its receipt being served.
async fn latency(
    t: &Target,
    key: &PrivateKeySigner,
    first_nonce: u64,
    n: usize,
    make: &(dyn Fn(usize) -> (TxKind, Bytes, u64) + Sync),
) -> (f64, f64) {
    let mut ms = Vec::with_capacity(n);
    for i in 0..n {
        let (to, input, gas) = make(i);
        let raw = sign(key, tx(t.chain_id, first_nonce + i as u64, to, input, gas, U256::ZERO)).expect("sign");
        let c = &t.clients[i % t.clients.len()];
        let s = Instant::now();
        let hash: B256 = c.request("eth_sendRawTransaction", vec![json!(raw)]).await.expect("send");
        loop {
            let r: Option<Value> = c.request("eth_getTransactionReceipt", vec![json!(hash)]).await.expect("receipt");
            if r.is_some() {
                break;
            }
        }
        ms.push(s.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    (ms[n / 2], ms[(n * 99 / 100).min(n - 1)])
}

#[derive(Debug)]
struct Row {
    workload: &'static str,
    node: &'static str,
    txs: usize,
    tps: f64,
    p50: f64,
    p99: f64,
    blocks: Blocks,
}

fn push(rows: &mut Vec<Row>, r: Row) {
    eprintln!("{r:?}");
    rows.push(r);
}

async fn run(t: &mut Target, rows: &mut Vec<Row>, n_senders: usize, per_sender: usize, lat: usize, inference: bool) {
    let to = Address::repeat_byte(0x42);
    // ETH transfers.
    let keys = t.senders(n_senders + 1, "eth").await;
    let (lat_key, keys) = keys.split_last().expect("senders");
    let make = |_: usize| (TxKind::Call(to), Bytes::new(), 21_000);
    let before = balance(&t.client, to).await;
    let (tps, blocks) = throughput(t, keys, per_sender, U256::from(1), &make).await;
    let got = balance(&t.client, to).await - before;
    assert_eq!(got, U256::from(keys.len() * per_sender), "{}: every transfer's wei arrived", t.name);
    let (p50, p99) = latency(t, lat_key, 0, lat, &make).await;
    push(rows, Row { workload: "ETH transfer", node: t.name, txs: keys.len() * per_sender, tps, p50, p99, blocks });

    // ERC-20 transfers: every sender holds tokens.
    let mut code = artifact("BenchToken.sol", "BenchToken", "bytecode").to_vec();
    code.extend_from_slice(&U256::from(10u64).pow(U256::from(30)).abi_encode());
    let token = t.deploy(code.into()).await;
    let keys = t.senders(n_senders + 1, "erc20").await;
    for k in &keys {
        let give = transferCall { to: k.address(), value: U256::from(10u64).pow(U256::from(24)) }.abi_encode();
        t.fund_tx(TxKind::Call(token), give.into(), 100_000, U256::ZERO).await;
    }
    t.sync().await;
    let (lat_key, keys) = keys.split_last().expect("senders");
    let make = |i: usize| {
        let data = transferCall { to: Address::with_last_byte((i % 200) as u8 + 1), value: U256::from(1) }.abi_encode();
        (TxKind::Call(token), Bytes::from(data), 80_000)
    };
    let (tps, blocks) = throughput(t, keys, per_sender, U256::ZERO, &make).await;
    let (p50, p99) = latency(t, lat_key, 0, lat, &make).await;
    push(rows, Row { workload: "ERC-20 transfer", node: t.name, txs: keys.len() * per_sender, tps, p50, p99, blocks });

    if !inference {
        return;
    }
    // DigitRecognizer.recognize: one run of the example model per transaction, varied images.
    let id = keccak256(fixpoint_node::dev::EXAMPLE_MODEL);
    let mut code = artifact("DigitRecognizer.sol", "DigitRecognizer", "bytecode").to_vec();
    code.extend_from_slice(&id.abi_encode());
    let app = t.deploy(code.into()).await;
    t.sync().await;
    let keys = t.senders(n_senders + 1, "infer").await;
    let (lat_key, keys) = keys.split_last().expect("senders");
    let make = |i: usize| {
        let mut pixels = [0u8; 64];
        for (k, p) in pixels.iter_mut().enumerate() {
            *p = ((i * 31 + k * 7) % 17) as u8;
        }
        (TxKind::Call(app), Bytes::from(recognizeCall { pixels }.abi_encode()), 300_000)
    };
    let (tps, blocks) = throughput(t, keys, per_sender, U256::ZERO, &make).await;
    let (p50, p99) = latency(t, lat_key, 0, lat, &make).await;
    push(
        rows,
        Row {
            workload: "model call (DigitRecognizer)",
            node: t.name,
            txs: keys.len() * per_sender,
            tps,
            p50,
            p99,
            blocks,
        },
    );
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        // `cargo test --benches` / `--list` probes: nothing to run.
        return;
    }
    let txs = env_usize("LOAD_TXS", 8_000);
    let n_senders = env_usize("LOAD_SENDERS", 16);
    let lat = env_usize("LOAD_LATENCY", 200);
    let per_sender = txs.div_ceil(n_senders);
    let runs = env_usize("LOAD_RUNS", 1).max(1);
    let mut rows = Vec::new();
    let only = std::env::var("LOAD_ONLY").unwrap_or_default();
    let wants = |n: &str| only.is_empty() || only.split(',').any(|o| o == n);
    // Runs interleave the nodes (fixpoint, testnet, anvil, fixpoint, …) so that a change in the
    // machine's load hits all of them alike.
    for _ in 0..runs {
        if wants("fixpoint") {
            let mut f = fixpoint().await;
            run(&mut f, &mut rows, n_senders, per_sender, lat, true).await;
        }
        if wants("testnet") {
            let mut n = testnet().await;
            run(&mut n, &mut rows, n_senders, per_sender, lat, true).await;
        }
        if wants("anvil") {
            let mut a = anvil().await;
            run(&mut a, &mut rows, n_senders, per_sender, lat, false).await;
        }
    }
    println!(
        "| workload | node | transactions | tx/s | send→receipt p50 (ms) | p99 (ms) | blocks used | transactions per used block | most txs in a block | most gas in a block |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let b = &r.blocks;
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {:.1} | {} | {} |",
            r.workload,
            r.node,
            r.txs,
            r.tps,
            r.p50,
            r.p99,
            b.used,
            b.txs as f64 / b.used.max(1) as f64,
            b.max_txs,
            b.max_gas
        );
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    println!("\n{runs} run(s): tx/s median [min–max]");
    for w in ["ETH transfer", "ERC-20 transfer", "model call (DigitRecognizer)"] {
        for n in ["fixpoint", "testnet", "anvil"] {
            let v: Vec<f64> = rows.iter().filter(|r| r.workload == w && r.node == n).map(|r| r.tps).collect();
            if !v.is_empty() {
                let (m, lo, hi) = median(v);
                println!("  {w}, {n}: {m:.0} [{lo:.0}–{hi:.0}]");
            }
        }
        let get = |n: &str| rows.iter().filter(|r| r.workload == w && r.node == n).map(|r| r.tps).collect::<Vec<_>>();
        let (f, a) = (get("fixpoint"), get("anvil"));
        if !f.is_empty() && f.len() == a.len() {
            let (m, lo, hi) = median(f.iter().zip(&a).map(|(f, a)| f / a).collect());
            println!("  {w}: fixpoint / anvil throughput, run by run: median {m:.2} [{lo:.2}–{hi:.2}]");
        }
    }
}
