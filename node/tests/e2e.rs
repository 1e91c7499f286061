//! End to end, as a user works: start the `fixpoint` binary on a temp datadir, deploy the
//! example dapp with `forge create`, call the model through it with `cast send` / `cast call`,
//! read the receipt and the inference records, then stop the node (gracefully, then with
//! SIGKILL) and check the chain is still there with the same head and state. A dapp-side viem
//! script (tests/e2e/viem.mjs) does the same from JavaScript, and a node killed mid-load comes
//! back consistent.

mod common;

use common::*;
use std::process::Command;

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
    let (model, _, expected) = example_vector();
    assert_eq!(label, expected.to_string(), "the vector's label");
    // The model the node registered at genesis is the vector's model, byte for byte.
    assert_eq!(fixpoint_node::dev::EXAMPLE_MODEL, model.as_slice());
    assert_eq!(n.model_id, format!("{}", alloy_primitives::keccak256(&model)));

    // forge create the dapp, cast send a recognition, cast call the record.
    let app = deploy_digit_recognizer(&n);
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

    // The per-op trace of that call (docs/rpc.md §Traces): the replay reproduces the recorded
    // input and output, the last op (the argmax) holds the vector's label, and tracing the same
    // model and input at the latest block gives the same ops.
    let record: serde_json::Value = serde_json::from_str::<serde_json::Value>(&records).unwrap()[0].clone();
    let by_tx = format!(r#"[{{"tx":"{tx}","call":0}}]"#);
    let traced: serde_json::Value =
        serde_json::from_str(&cast(&n, &["rpc", "--raw", "fixpoint_traceInference", &by_tx])).unwrap();
    assert_eq!(traced["inputHash"], record["inputHash"]);
    assert_eq!(traced["outputHash"], record["outputHash"]);
    assert_eq!(traced["record"]["recordedOutputHash"], record["outputHash"]);
    let ops = traced["ops"].as_array().unwrap();
    assert!(ops.len() > 1, "{traced}");
    assert_eq!(ops.last().unwrap()["values"], serde_json::json!([expected]), "the argmax is the vector's label");
    let by_model = format!(r#"[{{"model":"{}","input":"{input}","block":"latest"}}]"#, n.model_id);
    let again: serde_json::Value =
        serde_json::from_str(&cast(&n, &["rpc", "--raw", "fixpoint_traceInference", &by_model])).unwrap();
    assert_eq!(again["ops"], traced["ops"]);
    let (ok, out, err) = fixpoint(&["model", "trace", "--tx", &tx, "--rpc-url", &n.rpc]);
    assert!(ok && out.contains("the run matches the record of call 0"), "{out}{err}");
    assert!(out.contains("ArgMax"), "{out}");
    // A call the transaction did not make is an invalid-params error, and the node keeps serving.
    let bad = Command::new(tool("cast"))
        .args(["rpc", "--raw", "fixpoint_traceInference", &format!(r#"[{{"tx":"{tx}","call":5}}]"#)])
        .args(["--rpc-url", &n.rpc])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && said.contains("has no inference call 5"), "{said}");
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

#[test]
fn viem_dapp_client_calls_and_sends_inference() {
    let dir = std::env::temp_dir().join(format!("fixpoint-e2e-viem-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let n = start(&dir, free_port());
    let input = format!("0x{}", include_str!("../assets/test-digit.hex").trim());
    let out = run(Command::new(node_js(&["viem"]))
        .arg(root().join("tests/e2e/viem.mjs"))
        .env("RPC_URL", &n.rpc)
        .env("PRIVATE_KEY", &n.key)
        .env("MODEL_ID", &n.model_id)
        .env("INPUT_HEX", &input));
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(v["chainId"], 3871);
    assert_eq!(v["label"], example_vector().2.to_string(), "the vector's label (tests/vectors)");
    assert_eq!(v["status"], "success");
    // The output viem simulated equals the one the chain recorded for the transaction.
    assert_eq!(v["outputHash"], v["recordOutputHash"], "{v}");
    assert_eq!(v["unknownError"], "UnknownModel", "{v}");
    assert_eq!(v["balancePositive"], true);
    drop(n);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A transfer of 1 wei on the dev chain.
fn one_wei(nonce: u64, to: alloy_primitives::Address) -> alloy_consensus::TxEip1559 {
    alloy_consensus::TxEip1559 {
        chain_id: 3871,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: alloy_primitives::TxKind::Call(to),
        value: alloy_primitives::U256::from(1),
        access_list: Default::default(),
        input: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_keeps_every_mined_transaction_and_a_consistent_state() {
    use alloy_primitives::{Address, B256, U64, U256};
    use fixpoint_node::client::{Client, parse_key, sign};
    use serde_json::json;

    let tmp = Tmp::new("crash");
    let port = free_port();
    let mut n = start(&tmp.0, port);
    let key = parse_key(&n.key).unwrap();
    let to = Address::repeat_byte(0x42);
    let raws: Vec<_> = (0..20_000u64).map(|nonce| sign(&key, one_wei(nonce, to)).unwrap()).collect();
    // Send in nonce order; every 25 transactions wait for the receipt of the latest, so
    // `confirmed` counts transactions the node had shown mined before it was killed.
    let client = Client::new(&n.rpc).unwrap();
    let sender = tokio::spawn(async move {
        let (mut acked, mut confirmed) = (0u64, 0u64);
        for raw in raws {
            let Ok(hash) = client.request::<B256>("eth_sendRawTransaction", vec![json!(raw)]).await else { break };
            acked += 1;
            if acked % 25 == 0 {
                loop {
                    match client
                        .request::<Option<serde_json::Value>>("eth_getTransactionReceipt", vec![json!(hash)])
                        .await
                    {
                        Ok(Some(_)) => break,
                        Ok(None) => tokio::time::sleep(std::time::Duration::from_millis(1)).await,
                        Err(_) => return (acked, confirmed),
                    }
                }
                confirmed = acked;
            }
        }
        (acked, confirmed)
    });
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    n.child.kill().unwrap();
    n.child.wait().unwrap();
    let (acked, confirmed) = sender.await.unwrap();
    assert!(confirmed > 20, "the load ran ({confirmed} transactions confirmed)");
    drop(n);

    // The node reopens (it checks the stored state against the head's state root) and holds
    // exactly the transactions of its blocks: each moved 1 wei and bumped the nonce.
    let n = start(&tmp.0, port);
    let c = Client::new(&n.rpc).unwrap();
    let from = key.address();
    let nonce: U64 = c.request("eth_getTransactionCount", vec![json!(from), json!("latest")]).await.unwrap();
    let nonce = nonce.to::<u64>();
    let balance: U256 = c.request("eth_getBalance", vec![json!(to), json!("latest")]).await.unwrap();
    assert_eq!(balance, U256::from(nonce));
    // Nothing the node showed as mined is lost; nothing it never accepted appears.
    assert!(confirmed <= nonce && nonce <= acked + 1, "confirmed {confirmed}, accepted {acked}, on chain {nonce}");
    let head: U64 = c.request("eth_blockNumber", vec![]).await.unwrap();
    let mut in_blocks = 0;
    for b in 1..=head.to::<u64>() {
        let block: serde_json::Value =
            c.request("eth_getBlockByNumber", vec![json!(U64::from(b)), json!(false)]).await.unwrap();
        in_blocks += block["transactions"].as_array().unwrap().len() as u64;
    }
    assert_eq!(in_blocks, nonce);
    eprintln!("killed after {acked} accepted ({confirmed} confirmed) transactions; {nonce} on chain in {head} blocks");
    // And it goes on from there.
    let next = one_wei(nonce, to);
    let hash: B256 = c.request("eth_sendRawTransaction", vec![json!(sign(&key, next).unwrap())]).await.unwrap();
    let receipt = loop {
        let r: Option<serde_json::Value> = c.request("eth_getTransactionReceipt", vec![json!(hash)]).await.unwrap();
        if let Some(r) = r {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    assert_eq!(receipt["status"], "0x1");
}

#[test]
fn forge_script_broadcast_deploys_a_dapp_that_calls_the_model() {
    let tmp = Tmp::new("e2e-script");
    let n = start(&tmp.0, free_port());
    let out = run(Command::new(tool("forge")).current_dir(root()).env("MODEL_ID", &n.model_id).args([
        "script",
        "contracts/script/DeployDigitRecognizer.s.sol:DeployDigitRecognizer",
        "--broadcast",
        "--slow",
        "--rpc-url",
        &n.rpc,
        "--private-key",
        &n.key,
    ]));
    assert!(out.contains("ONCHAIN EXECUTION COMPLETE & SUCCESSFUL"), "{out}");
    // The deployed address is the sender's first CREATE.
    let sender: alloy_signer_local::PrivateKeySigner = n.key.parse().unwrap();
    let app = sender.address().create(0).to_string();
    assert_eq!(cast(&n, &["call", &app, "modelId()(bytes32)"]), n.model_id);
    let predicted = cast(&n, &["call", &app, "predict(uint8[64])(uint8,int32)", &pixels()]);
    assert!(predicted.starts_with('8'), "{predicted}");
}

/// The dev chain's language model, as a user meets it: `fixpoint model generate` against the node
/// answers what the same command writes locally from the model file (the chain's engine on this
/// machine), then `forge create` the StoryBook dapp and `cast send` a turn: the story on chain is
/// the opening, the author's words and the engine's greedy continuation of the story's tail, and
/// the turn's inference is recorded under the model's id.
#[test]
fn the_dev_chain_writes_text_with_its_language_model() {
    let dir = Tmp::new("e2e-writer");
    let n = start(&dir.0, free_port());
    let writer = &n.writer_id;
    assert_eq!(writer, &format!("{}", alloy_primitives::keccak256(fixpoint_node::dev::EXAMPLE_WRITER)));
    let file = root().join("node/assets/tiny-gpt.fxp");
    let prompt = "And God said, Let there be";
    let (ok, on_chain, err) = fixpoint(&["model", "generate", writer, prompt, "--tokens", "16", "--rpc-url", &n.rpc]);
    assert!(ok, "{err}");
    let (ok, local, err) = fixpoint(&["model", "generate", file.to_str().unwrap(), prompt, "--tokens", "16"]);
    assert!(ok, "{err}");
    assert_eq!(on_chain, local);
    assert!(on_chain.starts_with(prompt) && on_chain.trim_end().len() > prompt.len(), "{on_chain}");

    let created = run(Command::new(tool("forge")).current_dir(root()).args([
        "create",
        "contracts/src/examples/StoryBook.sol:StoryBook",
        "--broadcast",
        "--private-key",
        &n.key,
        "--rpc-url",
        &n.rpc,
        "--constructor-args",
        writer,
        &format!("0x{}", hex::encode("In the beginning")),
        "32",
        "24",
    ]));
    let app =
        created.lines().find_map(|l| l.strip_prefix("Deployed to: ")).expect("deployed address").trim().to_string();
    let words = format!("0x{}", hex::encode(" God"));
    let receipt = cast(&n, &["send", &app, "extend(bytes,uint32)", &words, "20", "--private-key", &n.key, "--json"]);
    let receipt: serde_json::Value = serde_json::from_str(&receipt).unwrap();
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    let story = cast(&n, &["call", &app, "story()(bytes)"]);
    let story = hex::decode(story.trim_start_matches("0x")).unwrap();
    // The engine on the model file: the tail of "In the beginning God", 20 greedy bytes.
    let engine = fixpoint_ml::Engine::load(&std::fs::read(&file).unwrap(), &fixpoint_ml::Limits::default()).unwrap();
    let head = b"In the beginning God".to_vec();
    let tail: Vec<u32> = head.iter().map(|&b| u32::from(b)).collect();
    let text = engine.generate(&tail, 20, &fixpoint_ml::Counter::new()).unwrap();
    let mut want = head;
    want.extend(text.into_iter().map(|t| t as u8));
    assert_eq!(story, want, "{}", String::from_utf8_lossy(&story));
    let tx = receipt["transactionHash"].as_str().unwrap();
    let records = cast(&n, &["rpc", "fixpoint_transactionRecords", tx]);
    assert!(records.contains(&writer[2..]), "{records}");
}
