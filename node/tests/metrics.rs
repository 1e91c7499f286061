//! What an operator sees (docs/operations.md): the real binary started with `--metrics`, its
//! Prometheus page scraped before and after a burst of inference transactions, on a dev node and
//! on a validator of a 4-validator testnet. The counters and histograms must move by exactly what
//! happened (transactions, inference calls and their recorded gas, blocks executed and
//! committed, requests and refusals), and `/health` and `/ready` answer as orchestrators expect.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A raw HTTP GET on `url` (`http://host:port`); (status, body).
fn get(url: &str, path: &str) -> (u16, String) {
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text.split("\r\n\r\n").nth(1).unwrap_or_default().to_string())
}

/// A scraped page: `name{labels}` → value.
fn scrape(url: &str) -> BTreeMap<String, f64> {
    let (status, page) = get(url, "/metrics");
    assert_eq!(status, 200, "{page}");
    assert!(page.ends_with("# EOF\n"), "an OpenMetrics page ends with # EOF");
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn at(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

fn delta(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>, key: &str) -> f64 {
    at(b, key) - at(a, key)
}

/// Sends `n` inference transactions (the digit classifier on the test digit) to `rpc` with
/// `key`; their hashes once mined.
fn burst(rpc: &str, model: &str, key: &str, n: usize) -> Vec<String> {
    let input = format!("0x{}", include_str!("../assets/test-digit.hex").trim());
    (0..n)
        .map(|_| {
            let receipt = run(Command::new(tool("cast")).args([
                "send",
                "0x0000000000000000000000000000000000000F01",
                "infer(bytes32,bytes)",
                model,
                &input,
                "--private-key",
                key,
                "--rpc-url",
                rpc,
                "--json",
            ]));
            let r: serde_json::Value = serde_json::from_str(&receipt).unwrap();
            assert_eq!(r["status"], "0x1", "{receipt}");
            r["transactionHash"].as_str().unwrap().to_string()
        })
        .collect()
}

/// The gas the chain recorded for the inference calls of `txs`.
fn recorded_gas(rpc: &str, txs: &[String]) -> f64 {
    let mut gas = 0.0;
    for tx in txs {
        let out = run(Command::new(tool("cast")).args(["rpc", "fixpoint_transactionRecords", tx, "--rpc-url", rpc]));
        let records: serde_json::Value = serde_json::from_str(&out).unwrap();
        for r in records.as_array().unwrap() {
            gas += r["gasUsed"].as_u64().unwrap() as f64;
        }
    }
    gas
}

/// The checks shared by both modes: what a burst of `txs` must have moved between `a` and `b`.
fn moved_by_the_burst(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>, model: &str, gas: f64, kinds: &[&str]) {
    let n = 5.0;
    assert_eq!(delta(a, b, "fixpoint_transactions_total"), n, "transactions");
    let calls = format!("fixpoint_inference_calls_total{{model=\"{model}\"}}");
    assert_eq!(delta(a, b, &calls), n, "inference calls of the model");
    assert_eq!(delta(a, b, &format!("fixpoint_inference_gas_total{{model=\"{model}\"}}")), gas, "recorded gas");
    // Every block finalized in between was executed here (built or verified) and committed.
    let blocks = delta(a, b, "fixpoint_finalized_height");
    assert!(blocks >= 1.0, "blocks were finalized");
    assert_eq!(delta(a, b, "fixpoint_block_commit_seconds_count"), blocks, "one commit per block");
    let executed: f64 =
        kinds.iter().map(|k| delta(a, b, &format!("fixpoint_block_execute_seconds_count{{kind=\"{k}\"}}"))).sum();
    assert_eq!(executed, blocks, "one execution per block");
    assert_eq!(delta(a, b, "fixpoint_block_transactions_sum"), n, "transactions per block add up");
    assert!(delta(a, b, "fixpoint_block_gas_used_sum") >= gas, "block gas covers the inference gas");
    let inference: f64 =
        kinds.iter().map(|k| delta(a, b, &format!("fixpoint_block_inference_seconds_sum{{kind=\"{k}\"}}"))).sum();
    let execute: f64 =
        kinds.iter().map(|k| delta(a, b, &format!("fixpoint_block_execute_seconds_sum{{kind=\"{k}\"}}"))).sum();
    assert!(inference > 0.0 && inference <= execute, "inference time is a part of execution: {inference} of {execute}");
    assert_eq!(at(b, "fixpoint_head_height"), at(b, "fixpoint_finalized_height"));
    assert!(at(b, "fixpoint_database_size_bytes") > 0.0);
}

#[test]
fn a_dev_node_reports_what_a_burst_of_inference_did() {
    let dir = Tmp::new("metrics-dev");
    let metrics = format!("127.0.0.1:{}", free_port());
    let n = start_with(&["--dev", "--metrics", &metrics], &dir.0, free_port());
    let url = format!("http://{metrics}");
    assert_eq!(get(&url, "/health").0, 200);
    let (status, ready) = get(&url, "/ready");
    assert_eq!(status, 200, "a dev node is ready once it serves: {ready}");

    let a = scrape(&url);
    let txs = burst(&n.rpc, &n.model_id, &n.key, 5);
    let gas = recorded_gas(&n.rpc, &txs);
    // A resend of a mined transaction is refused ("already known"), counted by reason.
    let raw = run(Command::new(tool("cast")).args(["tx", &txs[0], "--raw", "--rpc-url", &n.rpc]));
    let resent = Command::new(tool("cast")).args(["publish", &raw, "--rpc-url", &n.rpc]).output().unwrap();
    assert!(!resent.status.success());
    let b = scrape(&url);

    moved_by_the_burst(&a, &b, &n.model_id, gas, &["built"]);
    assert_eq!(delta(&a, &b, "fixpoint_transactions_refused_total{reason=\"known\"}"), 1.0);
    // cast send: eth_sendRawTransaction once per transaction, and a receipt poll or more.
    assert_eq!(delta(&a, &b, "fixpoint_rpc_requests_total{method=\"eth_sendRawTransaction\"}"), 6.0);
    assert!(delta(&a, &b, "fixpoint_rpc_requests_total{method=\"eth_getTransactionReceipt\"}") >= 5.0);
    assert_eq!(
        delta(&a, &b, "fixpoint_rpc_request_seconds_count{method=\"eth_sendRawTransaction\"}"),
        6.0,
        "latency observed per request"
    );
    assert_eq!(at(&b, "fixpoint_mempool_transactions"), 0.0, "nothing left pending");
    let head = cast(&n, &["block-number"]).parse::<f64>().unwrap();
    assert_eq!(at(&b, "fixpoint_head_height"), head);

    // Every metric the Grafana dashboard (ops/grafana) and the alerts (docs/operations.md)
    // query is one the node serves.
    for file in ["ops/grafana/fixpoint.json", "docs/operations.md"] {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        let mut names: Vec<&str> = text
            .match_indices("fixpoint_")
            .map(|(i, _)| {
                let rest = &text[i..];
                &rest[..rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len())]
            })
            // Metric names are lower case; `fixpoint_certifiedBlock` and the like are RPC methods.
            .filter(|n| n.len() > "fixpoint_".len() && !n.chars().any(|c| c.is_ascii_uppercase()))
            .collect();
        names.sort_unstable();
        names.dedup();
        assert!(names.len() > 10, "{file} queries the node's metrics");
        for name in names {
            assert!(b.keys().any(|k| k.starts_with(name)), "{file} uses {name}, which the node does not serve");
        }
    }
}

/// Validator 0's addresses.
struct Net {
    rpc: String,
    metrics: String,
}

#[test]
fn a_validator_reports_consensus_and_what_a_burst_of_inference_did() {
    let dir = Tmp::new("metrics-net");
    let (_net, urls) =
        start_testnet(&dir.0.join("net"), &["--metrics-port", "0"], &["[v0] JSON-RPC on ", "[v0] metrics on "]);
    let (rpc, metrics) = (urls[0].clone(), urls[1].split("/metrics").next().unwrap().to_string());
    let net = Net { rpc, metrics };

    // Ready once blocks are finalized.
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(&net.metrics, "/ready").0 != 200 {
        assert!(Instant::now() < deadline, "validator 0 never became ready: {}", get(&net.metrics, "/ready").1);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(get(&net.metrics, "/health").0, 200);

    // The testnet's genesis registers the example digit classifier (and a tiny GPT).
    let model = alloy_primitives::keccak256(fixpoint_node::dev::EXAMPLE_MODEL).to_string();
    let a = scrape(&net.metrics);
    let txs = burst(&net.rpc, &model, &dev_key(0), 5);
    let gas = recorded_gas(&net.rpc, &txs);
    let b = scrape(&net.metrics);
    moved_by_the_burst(&a, &b, &model, gas, &["built", "verified"]);
    assert!(
        delta(&a, &b, "fixpoint_block_execute_seconds_count{kind=\"verified\"}") >= 1.0,
        "a validator re-executes other validators' blocks"
    );
    // commonware's own consensus and p2p metrics are on the same page.
    let names: Vec<&String> = b.keys().filter(|k| !k.starts_with("fixpoint_")).collect();
    assert!(!names.is_empty(), "consensus and p2p metrics are served too");
}
