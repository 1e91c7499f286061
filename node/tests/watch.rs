//! Dapps watching the chain (docs/rpc.md §Filters and subscriptions): viem's watchers over
//! WebSocket (`eth_subscribe`) and over HTTP (filters), run by tests/e2e/watch.mjs against the
//! real binary while DigitRecognizer transactions land, on a dev node and on a validator of a
//! 4-validator testnet. What they saw must be exactly what the receipts say.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

fn pixels() -> String {
    let bytes = hex::decode(include_str!("../assets/test-digit.hex").trim()).unwrap();
    format!("[{}]", bytes.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(","))
}

/// Runs the watcher against `rpc` for `count` transactions to `contract`; its report.
fn watch(rpc: &str, key: &str, contract: &str, count: usize) -> Value {
    let out = run(Command::new(node_js(&["viem", "ws"]))
        .arg(root().join("tests/e2e/watch.mjs"))
        .env("RPC_URL", rpc)
        .env("PRIVATE_KEY", key)
        .env("CONTRACT", contract)
        .env("PIXELS", pixels())
        .env("COUNT", count.to_string()));
    serde_json::from_str(out.lines().last().unwrap()).unwrap()
}

/// The checks: every watcher saw every transaction, with the label the chain computed.
fn saw_everything(v: &Value, rpc: &str, contract: &str) {
    assert_eq!(v["errors"], serde_json::json!([]), "{v}");
    let txs = v["txs"].as_array().unwrap();
    // The label the chain computed for these pixels, read independently with cast.
    let label = run(Command::new(tool("cast")).args([
        "call",
        contract,
        "predict(uint8[64])(uint8,int32)",
        &pixels(),
        "--rpc-url",
        rpc,
    ]));
    let label: u64 = label.lines().next().unwrap().trim().parse().unwrap();
    for key in ["wsLogs", "httpLogs", "filterLogs"] {
        let logs = v[key].as_array().unwrap();
        assert_eq!(logs.len(), txs.len(), "{key}: one event per transaction: {v}");
        for (l, t) in logs.iter().zip(txs) {
            assert_eq!(t["status"], "success");
            assert_eq!((&l["tx"], &l["block"]), (&t["tx"], &t["block"]), "{key}: in order, in its block");
            assert_eq!(l["digit"], label, "{key}: the label the chain computed");
        }
    }
    for t in txs {
        let heads = v["wsHeads"].as_array().unwrap();
        assert!(
            heads.iter().any(|h| h["number"] == t["block"] && h["hash"] == t["blockHash"]),
            "newHeads announced block {} with its hash: {v}",
            t["block"]
        );
        assert!(v["filterBlocks"].as_array().unwrap().contains(&t["blockHash"]), "the block filter saw {t}");
        assert!(v["wsPending"].as_array().unwrap().contains(&t["tx"]), "newPendingTransactions saw {t}");
        assert!(v["httpPending"].as_array().unwrap().contains(&t["tx"]), "the pending filter saw {t}");
    }
    assert_eq!(v["uninstalled"], true);
    assert!(v["afterUninstall"].as_str().unwrap().contains("filter not found"), "{v}");
}

#[test]
fn viem_watches_events_blocks_and_pending_transactions_on_a_dev_node() {
    let dir = Tmp::new("watch-dev");
    let n = start(&dir.0, free_port());
    let contract = deploy_digit_recognizer(&n);
    let v = watch(&n.rpc, &n.key, &contract, 3);
    saw_everything(&v, &n.rpc, &contract);
}

#[test]
fn viem_watches_events_blocks_and_pending_transactions_on_a_validator() {
    let dir = Tmp::new("watch-net");
    let (_net, urls) = start_testnet(&dir.0.join("net"), &[], &["[v1] JSON-RPC on "]);
    let rpc = urls[0].clone();
    let key = dev_key(0);
    let model = alloy_primitives::keccak256(fixpoint_node::dev::EXAMPLE_MODEL).to_string();
    let contract = deploy_digit_recognizer_at(&rpc, &key, &model);
    let v = watch(&rpc, &key, &contract, 3);
    saw_everything(&v, &rpc, &contract);
}
