//! `debug_traceTransaction` / `debug_traceCall` against the real binary: a DigitRecognizer
//! transaction traced with geth's struct logger and call tracer, and reverts (docs/rpc.md
//! §debug). Expected values come from the transaction, its receipt, the conformance vector and
//! the ABI, never from the tracer.

mod common;

use alloy_primitives::keccak256;
use common::*;
use serde_json::{Value, json};

fn digit() -> Vec<u8> {
    hex::decode(include_str!("../assets/test-digit.hex").trim()).unwrap()
}

fn pixels(bytes: &[u8]) -> String {
    format!("[{}]", bytes.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(","))
}

fn rpc(n: &NodeProc, method: &str, params: Value) -> Value {
    let out = cast(n, &["rpc", "--raw", method, &params.to_string()]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{method}: {e}: {out}"))
}

/// The JSON-RPC error of a call that must fail: (code, message).
fn rpc_error(n: &NodeProc, method: &str, params: Value) -> (i64, String) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let out = run(std::process::Command::new("curl").args([
        "-s",
        "-H",
        "content-type: application/json",
        "--data",
        &body,
        &n.rpc,
    ]));
    let v: Value = serde_json::from_str(&out).unwrap();
    (
        v["error"]["code"].as_i64().unwrap_or_else(|| panic!("{method} did not fail: {out}")),
        v["error"]["message"].as_str().unwrap().to_string(),
    )
}

fn hex_u64(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().unwrap(),
        Value::String(s) => u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap(),
        _ => panic!("not a quantity: {v}"),
    }
}

fn selector(sig: &str) -> Vec<u8> {
    keccak256(sig)[..4].to_vec()
}

fn word(n: u64) -> Vec<u8> {
    let mut w = vec![0u8; 24];
    w.extend_from_slice(&n.to_be_bytes());
    w
}

/// `bytes` as one ABI tail: length word, then the data padded to 32 bytes.
fn abi_bytes(b: &[u8]) -> Vec<u8> {
    let mut out = word(b.len() as u64);
    out.extend_from_slice(b);
    out.resize(32 + b.len().div_ceil(32) * 32, 0);
    out
}

fn bytes_of(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap().trim_start_matches("0x")).unwrap()
}

/// Every frame of a call tree, depth first.
fn frames(f: &Value) -> Vec<&Value> {
    let mut out = vec![f];
    for c in f["calls"].as_array().into_iter().flatten() {
        out.extend(frames(c));
    }
    out
}

/// The example vector's packed output for the test digit.
fn vector_output() -> Vec<u8> {
    let doc: Value =
        serde_json::from_slice(&std::fs::read(root().join("tests/vectors/models/digits-mlp.json")).unwrap()).unwrap();
    let case = doc["cases"].as_array().unwrap().iter().find(|c| bytes_of(&json!(c["input"])) == digit()).unwrap();
    bytes_of(&case["output"])
}

/// Intrinsic gas of a call with `data` (no access list): 21000 + 4 per zero byte + 16 per other.
fn intrinsic(data: &[u8]) -> u64 {
    21_000 + data.iter().map(|&b| if b == 0 { 4 } else { 16 }).sum::<u64>()
}

#[test]
fn traces_a_digit_recognizer_transaction_and_reverts() {
    let tmp = Tmp::new("debug-trace");
    let n = start(&tmp.0, free_port());
    let app = deploy_digit_recognizer(&n);
    let receipt: Value = serde_json::from_str(&cast(
        &n,
        &["send", &app, "recognize(uint8[64])", &pixels(&digit()), "--private-key", &n.key, "--json"],
    ))
    .unwrap();
    assert_eq!(receipt["status"], "0x1");
    let hash = receipt["transactionHash"].as_str().unwrap().to_string();
    let gas_used = hex_u64(&receipt["gasUsed"]);
    let tx = rpc(&n, "eth_getTransactionByHash", json!([hash]));
    let gas_limit = hex_u64(&tx["gas"]);
    let calldata = bytes_of(&tx["input"]);
    let sender = receipt["from"].as_str().unwrap().to_lowercase();

    // What the contract sends the precompile: infer(modelId, input) with the packed pixels,
    // which for this model are the pixel bytes themselves.
    let model = hex::decode(n.model_id.trim_start_matches("0x")).unwrap();
    let mut infer = selector("infer(bytes32,bytes)");
    infer.extend_from_slice(&model);
    infer.extend_from_slice(&word(64));
    infer.extend_from_slice(&abi_bytes(&digit()));
    // What it answers: the vector's output as ABI `bytes`.
    let mut answer = word(32);
    answer.extend_from_slice(&abi_bytes(&vector_output()));

    // Call tracer: the transaction's frame, and the inference call inside it.
    let top = rpc(&n, "debug_traceTransaction", json!([hash, {"tracer": "callTracer"}]));
    assert_eq!(top["type"], "CALL");
    assert_eq!(top["from"].as_str().unwrap().to_lowercase(), sender);
    assert_eq!(top["to"].as_str().unwrap().to_lowercase(), app.to_lowercase());
    assert_eq!(hex_u64(&top["gas"]), gas_limit, "the transaction's gas limit");
    assert_eq!(hex_u64(&top["gasUsed"]), gas_used, "the receipt's gasUsed");
    assert_eq!(bytes_of(&top["input"]), calldata);
    assert!(top.get("error").is_none(), "{top}");
    let inference: Vec<&Value> = frames(&top)
        .into_iter()
        .filter(|f| {
            f["to"].as_str().is_some_and(|t| t.eq_ignore_ascii_case("0x0000000000000000000000000000000000000f01"))
        })
        .collect();
    assert_eq!(inference.len(), 1, "one inference call: {top}");
    let call = inference[0];
    assert_eq!(call["type"], "CALL");
    assert_eq!(call["from"].as_str().unwrap().to_lowercase(), app.to_lowercase());
    assert_eq!(bytes_of(&call["input"]), infer, "the exact calldata the contract sent");
    assert_eq!(bytes_of(&call["output"]), answer, "the vector's output");
    let (given, used) = (hex_u64(&call["gas"]), hex_u64(&call["gasUsed"]));
    assert!(0 < used && used <= given && used < gas_used, "inference gas {used} of {given}");
    // The precompile's gas is the gas its inference record says it was charged.
    let records = rpc(&n, "fixpoint_transactionRecords", json!([hash]));
    let records = records["records"].as_array().or(records.as_array()).unwrap().clone();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(hex_u64(&records[0]["gasUsed"]), used);
    // onlyTopCall drops the nested frames.
    let only = rpc(
        &n,
        "debug_traceTransaction",
        json!([hash, {"tracer": "callTracer", "tracerConfig": {"onlyTopCall": true}}]),
    );
    assert!(only.get("calls").is_none(), "{only}");
    assert_eq!(only["gasUsed"], top["gasUsed"]);
    // withLog: the DigitRecognized event, on the contract's frame.
    let logged =
        rpc(&n, "debug_traceTransaction", json!([hash, {"tracer": "callTracer", "tracerConfig": {"withLog": true}}]));
    let topic = format!("{}", keccak256("DigitRecognized(bytes32,address,uint8,int32)"));
    assert_eq!(logged["logs"][0]["topics"][0], topic, "{}", logged["logs"]);
    let l = &receipt["logs"][0];
    // The event is emitted after the inference call: one call precedes it.
    let expected = json!([{ "address": l["address"], "topics": l["topics"], "data": l["data"], "position": 1 }]);
    assert_eq!(logged["logs"], expected);

    // Struct logger.
    let s = rpc(&n, "debug_traceTransaction", json!([hash]));
    assert_eq!(hex_u64(&s["gas"]), gas_used);
    assert_eq!(s["failed"], false);
    // recognize returns the vector's label as a uint8 word.
    let label = vector_output()[0];
    assert_eq!(bytes_of(&s["returnValue"]), word(u64::from(label)));
    let logs = s["structLogs"].as_array().unwrap();
    let first = &logs[0];
    assert_eq!((hex_u64(&first["pc"]), hex_u64(&first["depth"])), (0, 1));
    assert_eq!(hex_u64(&first["gas"]), gas_limit - intrinsic(&calldata), "the gas left after intrinsic gas");
    let last = logs.last().unwrap();
    assert!(matches!(last["op"].as_str(), Some("RETURN" | "STOP")), "{last}");
    assert_eq!(hex_u64(&last["depth"]), 1);
    // Gas figures chain: within a frame, each opcode starts with what the previous left (a
    // call's cost includes the gas it passed on, the unused part returns after it).
    for w in logs.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if a["depth"] == b["depth"]
            && !matches!(
                a["op"].as_str(),
                Some("CALL" | "STATICCALL" | "DELEGATECALL" | "CALLCODE" | "CREATE" | "CREATE2")
            )
        {
            assert_eq!(hex_u64(&b["gas"]), hex_u64(&a["gas"]) - hex_u64(&a["gasCost"]), "{a} then {b}");
        }
    }
    // The CALL to the precompile: its stack holds the address 0xf01 as the call's second
    // operand (gas on top).
    let calls: Vec<&Value> = logs.iter().filter(|l| l["op"] == "CALL").collect();
    assert_eq!(calls.len(), 1);
    let stack = calls[0]["stack"].as_array().unwrap();
    assert_eq!(stack[stack.len() - 2], "0xf01");
    // Storage is shown at SSTORE; disableStorage and disableStack leave them out; enableMemory
    // adds 32-byte words.
    assert!(logs.iter().any(|l| l["op"] == "SSTORE" && l["storage"].is_object()));
    let bare = rpc(
        &n,
        "debug_traceTransaction",
        json!([hash, {"disableStorage": true, "disableStack": true, "enableMemory": true}]),
    );
    let bare = bare["structLogs"].as_array().unwrap();
    assert_eq!(bare.len(), logs.len());
    assert!(bare.iter().all(|l| l.get("storage").is_none() && l.get("stack").is_none()));
    assert!(bare.iter().any(|l| {
        l["memory"].as_array().is_some_and(|m| !m.is_empty() && m.iter().all(|w| w.as_str().unwrap().len() == 64))
    }));

    // A mined transaction that reverts: a pixel above 16 (sent with a gas limit, so not
    // estimated). Its revert data is PixelOutOfRange(5, 17).
    let mut bad = digit();
    bad[5] = 17;
    let failed: Value = serde_json::from_str(&cast(
        &n,
        &[
            "send",
            &app,
            "recognize(uint8[64])",
            &pixels(&bad),
            "--private-key",
            &n.key,
            "--gas-limit",
            "300000",
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(failed["status"], "0x0");
    let fhash = failed["transactionHash"].as_str().unwrap();
    let mut revert = selector("PixelOutOfRange(uint256,uint8)");
    revert.extend_from_slice(&word(5));
    revert.extend_from_slice(&word(17));
    let ft = rpc(&n, "debug_traceTransaction", json!([fhash, {"tracer": "callTracer"}]));
    assert_eq!(ft["error"], "execution reverted");
    assert_eq!(bytes_of(&ft["output"]), revert);
    assert_eq!(hex_u64(&ft["gasUsed"]), hex_u64(&failed["gasUsed"]));
    let fs = rpc(&n, "debug_traceTransaction", json!([fhash]));
    assert_eq!(fs["failed"], true);
    assert_eq!(bytes_of(&fs["returnValue"]), revert);
    assert_eq!(fs["structLogs"].as_array().unwrap().last().unwrap()["op"], "REVERT");

    // debug_traceCall: the same recognition as a call traces like the transaction's inference;
    // an inference that reverts (unknown model) shows the precompile's error.
    let req = json!({"from": sender, "to": app, "data": format!("0x{}", hex::encode(&calldata)), "gas": "0x100000"});
    let ct = rpc(&n, "debug_traceCall", json!([req, "latest", {"tracer": "callTracer"}]));
    let ci: Vec<&Value> = frames(&ct).into_iter().filter(|f| bytes_of(&f["input"]) == infer).collect();
    assert_eq!(ci.len(), 1, "{ct}");
    assert_eq!(bytes_of(&ci[0]["output"]), answer);
    let unknown = [0x11u8; 32];
    let mut direct = selector("infer(bytes32,bytes)");
    direct.extend_from_slice(&unknown);
    direct.extend_from_slice(&word(64));
    direct.extend_from_slice(&abi_bytes(&digit()));
    let req =
        json!({"to": "0x0000000000000000000000000000000000000f01", "data": format!("0x{}", hex::encode(&direct))});
    let rt = rpc(&n, "debug_traceCall", json!([req, "latest", {"tracer": "callTracer"}]));
    assert_eq!(rt["error"], "execution reverted", "{rt}");
    let mut err = selector("UnknownModel(bytes32)");
    err.extend_from_slice(&unknown);
    assert_eq!(bytes_of(&rt["output"]), err);
    let rs = rpc(&n, "debug_traceCall", json!([req, "latest", {}]));
    assert_eq!(rs["failed"], true);
    assert_eq!(rs["structLogs"], json!([]), "a precompile runs no opcodes");

    // Errors: an unknown transaction, an unknown tracer.
    let (code, msg) = rpc_error(&n, "debug_traceTransaction", json!([format!("0x{}", "ab".repeat(32))]));
    assert_eq!(code, -32000, "{msg}");
    assert!(msg.contains("not found"), "{msg}");
    let (code, msg) = rpc_error(&n, "debug_traceTransaction", json!([hash, {"tracer": "prestateTracer"}]));
    assert_eq!(code, -32602, "{msg}");
}

/// eth_feeHistory rewards: each block holds one transfer whose tip the test chose, so every
/// percentile of that block is that tip; percentiles out of order are refused.
#[test]
fn fee_history_rewards_are_the_tips_paid() {
    let tmp = Tmp::new("fee-history");
    let n = start(&tmp.0, free_port());
    let to = "0x00000000000000000000000000000000000000aa";
    let tips = [2_000_000_000u64, 3_000_000_000];
    let mut blocks = Vec::new();
    for tip in tips {
        let r: Value = serde_json::from_str(&cast(
            &n,
            &[
                "send",
                to,
                "--value",
                "1",
                "--gas-price",
                "10000000000",
                "--priority-gas-price",
                &tip.to_string(),
                "--private-key",
                &n.key,
                "--json",
            ],
        ))
        .unwrap();
        blocks.push(hex_u64(&r["blockNumber"]));
    }
    assert_eq!(blocks[1], blocks[0] + 1, "one transfer per block");
    let h = rpc(&n, "eth_feeHistory", json!(["0x2", format!("{:#x}", blocks[1]), [10.0, 50.0, 99.5]]));
    assert_eq!(hex_u64(&h["oldestBlock"]), blocks[0]);
    let rewards: Vec<Vec<u64>> =
        h["reward"].as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(hex_u64).collect()).collect();
    assert_eq!(rewards, vec![vec![tips[0]; 3], vec![tips[1]; 3]]);
    let (code, msg) = rpc_error(&n, "eth_feeHistory", json!(["0x2", "latest", [50.0, 10.0]]));
    assert_eq!(code, -32602, "{msg}");
}

/// `cast run` re-executes a transaction in foundry's own revm over state it reads through this
/// node's RPC (block, transactions, accounts at the parent block). For a transaction that stays
/// in the EVM its replay agrees with the chain: success and the receipt's gas. (One that calls a
/// model cannot replay there: foundry's revm lacks the precompile; docs/rpc.md §debug.)
#[test]
fn cast_run_replays_a_transaction_that_does_not_call_a_model() {
    let tmp = Tmp::new("cast-run");
    let n = start(&tmp.0, free_port());
    let app = deploy_digit_recognizer(&n);
    let receipt: Value = serde_json::from_str(&cast(
        &n,
        &["send", &app, "recorded()", "--private-key", &n.key, "--gas-limit", "100000", "--json"],
    ))
    .unwrap();
    assert_eq!(receipt["status"], "0x1");
    let hash = receipt["transactionHash"].as_str().unwrap();
    let gas_used = hex_u64(&receipt["gasUsed"]);
    let out = run(std::process::Command::new(tool("cast")).env("FOUNDRY_NO_STORAGE_CACHING", "true").args([
        "run",
        hash,
        "--rpc-url",
        &n.rpc,
    ]));
    assert!(out.contains("Transaction successfully executed"), "{out}");
    assert!(out.contains(&format!("Gas used: {gas_used}")), "receipt gas {gas_used}: {out}");
    // The trace names the call by its selector, or by its signature where cast knows it.
    let out_lower = out.to_lowercase();
    let by = |f: &str| format!("{}::{f}", app.to_lowercase());
    let (selector, name) = (by(&format!("{}()", hex::encode(selector("recorded()")))), by("recorded()"));
    assert!(out_lower.contains(&selector) || out_lower.contains(&name), "{name}: {out}");
}
