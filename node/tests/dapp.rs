//! The dapp page (examples/dapp) in a real browser: start `fixpoint node --dev`, `forge create`
//! the `DigitRecognizer` example, and let tests/e2e/dapp.mjs serve the page, open it in headless
//! Chromium, draw digits with synthetic mouse strokes and send them. Everything the page showed
//! is then checked against the chain with cast, not with the page's code: the pixels in the
//! transaction, the label in the receipt's event and in an `eth_call` of the model on those
//! pixels, the block, the inference record and its hashes; and the per-op trace view against
//! `fixpoint_traceInference` (or the page's message when the node lacks it). The screenshot is
//! left in `<target>/artifacts/dapp.png`.

mod common;

use alloy_primitives::{B256, keccak256};
use common::*;
use serde_json::Value;
use std::process::Command;

/// The 64 pixels a `recognize(uint8[64])` call carries: the selector, then one word a pixel.
fn pixels_of_calldata(input: &str) -> Vec<u8> {
    let bytes = hex::decode(input.trim_start_matches("0x")).unwrap();
    assert_eq!(&bytes[..4], &keccak256("recognize(uint8[64])")[..4], "a recognize call");
    assert_eq!(bytes.len(), 4 + 64 * 32);
    bytes[4..]
        .chunks(32)
        .map(|w| {
            assert!(w[..31].iter().all(|b| *b == 0), "a uint8 word");
            w[31]
        })
        .collect()
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

#[test]
fn the_dapp_page_in_chromium_shows_the_label_block_and_record_the_chain_computed() {
    let chromium = chromium();
    let tmp = Tmp::new("dapp");
    let n = start(&tmp.0, free_port());
    let app = deploy_digit_recognizer(&n);
    let artifacts = artifacts_dir();
    let out = run(Command::new(node_js(&["viem", "playwright-core", "esbuild"]))
        .arg(root().join("tests/e2e/dapp.mjs"))
        .env("RPC_URL", &n.rpc)
        .env("CONTRACT", &app)
        .env("CHROMIUM", &chromium)
        .env("ARTIFACTS", &artifacts));
    let v = json(out.lines().last().expect("the script's report"));

    let event = keccak256("DigitRecognized(bytes32,address,uint8,int32)");
    let drawings = v["drawings"].as_array().unwrap();
    assert_eq!(drawings.len(), 3);
    for d in drawings {
        let tx = d["tx"].as_str().unwrap();
        // The page showed the pixels it sent.
        let sent = pixels_of_calldata(json(&cast(&n, &["tx", tx, "--json"]))["input"].as_str().unwrap());
        let shown: Vec<u8> = serde_json::from_value(d["pixels"].clone()).unwrap();
        assert_eq!(sent, shown, "pixels in the transaction vs on the page");
        assert!(sent.iter().all(|p| *p <= 16) && sent.iter().any(|p| *p > 0), "{sent:?}");

        // The label: the receipt's DigitRecognized event, and the model run again on the same
        // 64 bytes through the precompile (eth_call), both equal what the page showed; and it is
        // the digit the strokes draw.
        let receipt = json(&cast(&n, &["receipt", tx, "--json"]));
        assert_eq!(receipt["status"], "0x1");
        let logs = receipt["logs"].as_array().unwrap();
        assert_eq!(logs.len(), 1, "{receipt}");
        assert_eq!(logs[0]["address"].as_str().unwrap().to_lowercase(), app.to_lowercase());
        assert_eq!(logs[0]["topics"][0].as_str().unwrap(), event.to_string());
        let data = hex::decode(logs[0]["data"].as_str().unwrap().trim_start_matches("0x")).unwrap();
        let logged = u64::from(data[31]);
        let input = format!("0x{}", hex::encode(&sent));
        let inference = "0x0000000000000000000000000000000000000F01";
        let recomputed = cast(&n, &["call", inference, "classify(bytes32,bytes)(uint256)", &n.model_id, &input]);
        let label: u64 = d["label"].as_str().unwrap().parse().unwrap();
        assert_eq!(label, logged, "the page's label vs the receipt's event");
        assert_eq!(label.to_string(), recomputed, "the page's label vs the model on the same pixels");
        assert_eq!(label, d["digit"].as_u64().unwrap(), "the digit drawn");

        // The block the page showed is the receipt's.
        let block = u64::from_str_radix(receipt["blockNumber"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
        assert_eq!(d["block"].as_str().unwrap(), block.to_string());

        // The record the page showed is the node's, and it is the record of this inference:
        // the model, keccak256 of the 64 pixels, keccak256 of the model's output on them.
        let records = json(&cast(&n, &["rpc", "fixpoint_transactionRecords", tx]));
        let r = &records[0];
        assert_eq!(records.as_array().unwrap().len(), 1, "{records}");
        let output = cast(&n, &["call", inference, "infer(bytes32,bytes)(bytes)", &n.model_id, &input]);
        let output = hex::decode(output.trim_start_matches("0x")).unwrap();
        let id: B256 = n.model_id.parse().unwrap();
        assert_eq!(d["recordModel"].as_str().unwrap().parse::<B256>().unwrap(), id);
        assert_eq!(r["modelId"].as_str().unwrap().parse::<B256>().unwrap(), id);
        assert_eq!(d["recordInput"].as_str().unwrap(), keccak256(&sent).to_string());
        assert_eq!(r["inputHash"].as_str().unwrap(), keccak256(&sent).to_string());
        assert_eq!(d["recordOutput"].as_str().unwrap(), keccak256(&output).to_string());
        assert_eq!(r["outputHash"].as_str().unwrap(), keccak256(&output).to_string());
        assert_eq!(d["recordCall"].as_str().unwrap(), "0");
        assert!(d["traceHref"].as_str().unwrap().ends_with(&format!("#trace={tx}&call=0")), "{d}");
    }
    let labels: std::collections::BTreeSet<_> = drawings.iter().map(|d| d["label"].as_str().unwrap()).collect();
    assert_eq!(labels.len(), 3, "three drawings, three different labels");

    // The trace view of the last inference shows what fixpoint_traceInference answers, or says
    // plainly that the node does not have the method.
    let last = drawings.last().unwrap();
    let tx = last["tx"].as_str().unwrap();
    let t = &v["trace"];
    assert_eq!(t["tx"].as_str().unwrap(), tx);
    assert_eq!(t["call"], "0");
    let request = format!(r#"[{{"tx":"{tx}","call":0}}]"#);
    let answer = Command::new(tool("cast"))
        .args(["rpc", "fixpoint_traceInference", "--raw", &request, "--rpc-url", &n.rpc])
        .output()
        .unwrap();
    if answer.status.success() {
        let trace = json(String::from_utf8_lossy(&answer.stdout).trim());
        let ops = trace["ops"].as_array().unwrap();
        assert_eq!(t["state"], "done", "{t}");
        assert_eq!(t["ops"].as_array().unwrap().len(), ops.len(), "one row per op");
        for (row, op) in t["ops"].as_array().unwrap().iter().zip(ops) {
            assert_eq!(row[1].as_str().unwrap(), op["op"].as_str().unwrap(), "{row} vs {op}");
        }
        assert_eq!(t["outputHash"].as_str().unwrap(), last["recordOutput"].as_str().unwrap());
    } else {
        let err = String::from_utf8_lossy(&answer.stderr);
        assert!(err.contains("-32601") || err.to_lowercase().contains("method not found"), "{err}");
        assert_eq!(t["state"], "unavailable", "{t}");
        assert!(t["message"].as_str().unwrap().contains("method not found"), "{t}");
    }

    // The page deployed a DigitRecognizer of its own on the node's digit classifier.
    let deployed = v["deployed"]["contract"].as_str().unwrap();
    assert_ne!(deployed.to_lowercase(), app.to_lowercase());
    assert_eq!(cast(&n, &["call", deployed, "modelId()(bytes32)"]), n.model_id);
    assert_eq!(v["deployed"]["model"].as_str().unwrap(), n.model_id);

    for key in ["screenshot", "traceScreenshot"] {
        let path = std::path::PathBuf::from(v[key].as_str().unwrap());
        let png = std::fs::read(&path).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{}", path.display());
        eprintln!("screenshot: {}", path.display());
    }
}
