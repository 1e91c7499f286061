//! The JSON-RPC server against what clients send, right or wrong (docs/rpc.md): malformed and
//! oversized requests, batches, every pool refusal with geth's wording, reverts with their data,
//! log filters, and the node still serving after all of it.

mod common;

use alloy_consensus::TxEip1559;
use alloy_primitives::{Address, B256, Bytes, TxKind, U64, U256, keccak256};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::{SolCall, SolError, SolEvent};
use common::*;
use fixpoint_node::client::{Client, ClientError, sign};
use fixpoint_precompiles::abi::IInference as I;
use fixpoint_precompiles::abi::IModelRegistry as R;
use fixpoint_precompiles::{INFERENCE_ADDRESS, REGISTRY_ADDRESS};
use serde_json::{Value, json};

fn code_of(body: &str) -> i64 {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["error"]["code"].as_i64().unwrap_or_else(|| panic!("no error in {body}"))
}

fn tx(nonce: u64, to: TxKind, input: Bytes, gas: u64, max_fee: u128, tip: u128, chain_id: u64) -> TxEip1559 {
    TxEip1559 {
        chain_id,
        nonce,
        gas_limit: gas,
        max_fee_per_gas: max_fee,
        max_priority_fee_per_gas: tip,
        to,
        value: U256::ZERO,
        access_list: Default::default(),
        input,
    }
}

const GWEI: u128 = 1_000_000_000;

async fn send(c: &Client, raw: Bytes) -> Result<B256, ClientError> {
    c.request("eth_sendRawTransaction", vec![json!(raw)]).await
}

async fn wait(c: &Client, h: B256) -> Value {
    for _ in 0..2_000 {
        let r: Option<Value> = c.request("eth_getTransactionReceipt", vec![json!(h)]).await.unwrap();
        if let Some(r) = r {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("{h} not mined");
}

fn refused(r: Result<B256, ClientError>) -> String {
    match r {
        Err(ClientError::Rpc { code: -32000, message, .. }) => message,
        other => panic!("expected a -32000 refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_get_errors_they_understand_and_the_node_keeps_serving() {
    let tmp = Tmp::new("rpc");
    let port = free_port();
    let n = start(&tmp.0, port);
    let c = Client::new(&n.rpc).unwrap();

    // Transport-level mistakes.
    assert_eq!(code_of(&post(port, b"{not json").1), -32700);
    assert_eq!(code_of(&post(port, br#"{"jsonrpc":"2.0","id":1,"method":"eth_nope","params":[]}"#).1), -32601);
    let bad_addr = br#"{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":["0xzz","latest"]}"#;
    assert_eq!(code_of(&post(port, bad_addr).1), -32602);
    let missing = br#"{"jsonrpc":"2.0","id":1,"method":"eth_getBalance","params":[]}"#;
    assert_eq!(code_of(&post(port, missing).1), -32602);
    let (_, body) = post(
        port,
        br#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]},{"jsonrpc":"2.0","id":2,"method":"eth_nope","params":[]},{"jsonrpc":"2.0","id":3,"method":"eth_blockNumber","params":[]}]"#,
    );
    let batch: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(batch.len(), 3, "{body}");
    let by_id = |id: i64| batch.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(by_id(1)["result"], "0xf1f");
    assert_eq!(by_id(2)["error"]["code"], -32601);
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":["0x{}"]}}"#,
        "00".repeat(9 << 20)
    );
    let (status, body) = post(port, huge.as_bytes());
    // Over the 8 MiB body limit: HTTP 413 with jsonrpsee's "request too big" error (-32007).
    assert_eq!((status, code_of(&body)), (413, -32007), "{body}");

    // Pool refusals, in geth's words.
    let key: PrivateKeySigner = n.key.parse().unwrap();
    let to = TxKind::Call(Address::repeat_byte(0x42));
    let ok = tx(0, to, Bytes::new(), 21_000, 10 * GWEI, GWEI, 3871);
    let h = send(&c, sign(&key, ok.clone()).unwrap()).await.unwrap();
    assert!(refused(send(&c, sign(&key, ok.clone()).unwrap()).await).contains("already known"));
    wait(&c, h).await;
    assert!(refused(send(&c, sign(&key, ok.clone()).unwrap()).await).contains("already known"), "mined: still known");
    let again = TxEip1559 { max_fee_per_gas: 11 * GWEI, ..ok.clone() };
    assert!(refused(send(&c, sign(&key, again).unwrap()).await).starts_with("nonce too low"));
    let wrong_chain = tx(1, to, Bytes::new(), 21_000, 10 * GWEI, GWEI, 1);
    assert_eq!(refused(send(&c, sign(&key, wrong_chain).unwrap()).await), "invalid chain id");
    let low_gas = tx(1, to, Bytes::new(), 20_000, 10 * GWEI, GWEI, 3871);
    assert!(refused(send(&c, sign(&key, low_gas).unwrap()).await).starts_with("intrinsic gas too low"));
    let cheap = tx(1, to, Bytes::new(), 21_000, 1, 1, 3871);
    assert!(
        refused(send(&c, sign(&key, cheap).unwrap()).await).starts_with("max fee per gas less than block base fee")
    );
    let too_much_gas = tx(1, to, Bytes::new(), 100_000_000, 10 * GWEI, GWEI, 3871);
    assert_eq!(refused(send(&c, sign(&key, too_much_gas).unwrap()).await), "exceeds block gas limit");
    let pauper = PrivateKeySigner::from_bytes(&keccak256("nobody")).unwrap();
    let poor = tx(0, to, Bytes::new(), 21_000, 10 * GWEI, GWEI, 3871);
    assert!(
        refused(send(&c, sign(&pauper, poor).unwrap()).await).starts_with("insufficient funds for gas * price + value")
    );
    assert!(refused(send(&c, Bytes::from_static(b"\x02garbage")).await).starts_with("invalid transaction"));

    // A nonce gap waits in the pool; its replacement needs 10 % more fee and tip.
    let gap = tx(5, to, Bytes::new(), 21_000, 10 * GWEI, GWEI, 3871);
    let gap_hash = send(&c, sign(&key, gap.clone()).unwrap()).await.unwrap();
    let same = TxEip1559 { max_fee_per_gas: 10 * GWEI + 1, ..gap.clone() };
    assert_eq!(refused(send(&c, sign(&key, same).unwrap()).await), "replacement transaction underpriced");
    let bumped = TxEip1559 { max_fee_per_gas: 11 * GWEI, max_priority_fee_per_gas: GWEI + GWEI / 10, ..gap };
    let bumped_hash = send(&c, sign(&key, bumped).unwrap()).await.unwrap();
    let pending: U64 =
        c.request("eth_getTransactionCount", vec![json!(key.address()), json!("pending")]).await.unwrap();
    assert_eq!(pending.to::<u64>(), 1, "the gap is not executable");
    let queued: Value = c.request("eth_getTransactionByHash", vec![json!(bumped_hash)]).await.unwrap();
    assert!(queued["blockNumber"].is_null());
    let replaced: Value = c.request("eth_getTransactionByHash", vec![json!(gap_hash)]).await.unwrap();
    assert!(replaced.is_null(), "the replaced transaction is gone");
    assert_eq!(wait(&c, h).await["status"], "0x1");

    // Reverts carry their data: the precompile's custom error decodes.
    let unknown = B256::repeat_byte(0x22);
    let call = I::classifyCall { modelId: unknown, input: Bytes::from_static(&[0; 64]) }.abi_encode();
    let (_, body) = post(
        port,
        json!({"jsonrpc":"2.0","id":1,"method":"eth_call","params":[{"to": INFERENCE_ADDRESS, "input": Bytes::from(call)}, "latest"]})
            .to_string()
            .as_bytes(),
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], 3);
    assert_eq!(v["error"]["message"], "execution reverted");
    let data: Bytes = serde_json::from_value(v["error"]["data"].clone()).unwrap();
    assert_eq!(I::UnknownModel::abi_decode(&data).unwrap().modelId, unknown);

    // Logs: a registration emits ModelRegistered from the registry; filters select it.
    let model = {
        let path = root().join("tests/vectors/models/digits-cnn.json");
        let doc: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        hex::decode(doc["cases"][0]["model"].as_str().unwrap()).unwrap()
    };
    let id = keccak256(&model);
    let reg = R::registerCall { model: model.into() }.abi_encode();
    let reg_tx = tx(1, TxKind::Call(REGISTRY_ADDRESS), reg.into(), 10_000_000, 10 * GWEI, GWEI, 3871);
    let h = send(&c, sign(&key, reg_tx).unwrap()).await.unwrap();
    let r = wait(&c, h).await;
    assert_eq!(r["status"], "0x1", "{r}");
    let topic0 = R::ModelRegistered::SIGNATURE_HASH;
    let logs: Vec<Value> = c
        .request("eth_getLogs", vec![json!({"fromBlock": "0x0", "address": REGISTRY_ADDRESS, "topics": [topic0, id]})])
        .await
        .unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0]["transactionHash"], json!(h));
    let none: Vec<Value> = c
        .request(
            "eth_getLogs",
            vec![json!({"fromBlock": "0x0", "address": REGISTRY_ADDRESS, "topics": [topic0, B256::ZERO]})],
        )
        .await
        .unwrap();
    assert!(none.is_empty());
    let by_hash: Vec<Value> = c
        .request("eth_getLogs", vec![json!({"blockHash": r["blockHash"], "address": REGISTRY_ADDRESS})])
        .await
        .unwrap();
    assert_eq!(by_hash.len(), 1);

    // eth_getProof: the registry's record of the model, proven against the head's state root
    // with alloy-trie's verifier, as a light client would.
    let slot = B256::from(fixpoint_precompiles::state::model_slots(id)[0].to_be_bytes());
    let p: Value =
        c.request("eth_getProof", vec![json!(REGISTRY_ADDRESS), json!([slot]), json!("latest")]).await.unwrap();
    let head: Value = c.request("eth_getBlockByNumber", vec![json!("latest"), json!(false)]).await.unwrap();
    let get = |v: &Value| serde_json::from_value::<B256>(v.clone()).unwrap();
    let account = alloy_trie::TrieAccount {
        nonce: serde_json::from_value::<U64>(p["nonce"].clone()).unwrap().to(),
        balance: serde_json::from_value(p["balance"].clone()).unwrap(),
        storage_root: get(&p["storageHash"]),
        code_hash: get(&p["codeHash"]),
    };
    let nodes = |v: &Value| serde_json::from_value::<Vec<Bytes>>(v.clone()).unwrap();
    let path = |k: B256| alloy_trie::Nibbles::unpack(keccak256(k));
    alloy_trie::proof::verify_proof(
        get(&head["stateRoot"]),
        alloy_trie::Nibbles::unpack(keccak256(REGISTRY_ADDRESS)),
        Some(alloy_rlp::encode(account)),
        &nodes(&p["accountProof"]),
    )
    .unwrap();
    let sp = &p["storageProof"][0];
    let value: U256 = serde_json::from_value(sp["value"].clone()).unwrap();
    assert!(!value.is_zero(), "the model's record is set");
    alloy_trie::proof::verify_proof(
        account.storage_root,
        path(slot),
        Some(alloy_rlp::encode(value)),
        &nodes(&sp["proof"]),
    )
    .unwrap();

    // Still serving, and the chain kept only what was valid: two mined transactions.
    let nonce: U64 = c.request("eth_getTransactionCount", vec![json!(key.address()), json!("latest")]).await.unwrap();
    assert_eq!(nonce.to::<u64>(), 2);
    // Older block tags read the state as it was (recent blocks are kept in memory).
    let me = key.address();
    let genesis_balance: U256 = c.request("eth_getBalance", vec![json!(me), json!("0x0")]).await.unwrap();
    let now_balance: U256 = c.request("eth_getBalance", vec![json!(me), json!("latest")]).await.unwrap();
    assert!(genesis_balance > now_balance, "fees were paid since genesis");
    let count_at_1: U64 = c.request("eth_getTransactionCount", vec![json!(key.address()), json!("0x1")]).await.unwrap();
    assert_eq!(count_at_1.to::<u64>(), 1);
    match c.request::<U256>("eth_getBalance", vec![json!(key.address()), json!("0x99")]).await {
        Err(ClientError::Rpc { code: -32000, message, .. }) => assert!(message.contains("does not exist"), "{message}"),
        other => panic!("expected a refusal, got {other:?}"),
    }

    // eth_call state overrides (geth's format): code and storage replaced for one call only.
    let probe = Address::repeat_byte(0x77);
    let ret42 = "0x602a60005260206000f3"; // return 42
    let sload0 = "0x60005460005260206000f3"; // return storage slot 0
    let out: Bytes = c
        .request("eth_call", vec![json!({"to": probe}), json!("latest"), json!({ probe.to_string(): {"code": ret42} })])
        .await
        .unwrap();
    assert_eq!(U256::from_be_slice(&out), U256::from(42));
    let out: Bytes = c
        .request(
            "eth_call",
            vec![
                json!({"to": probe}),
                json!("latest"),
                json!({ probe.to_string(): {"code": sload0, "stateDiff": {"0x0000000000000000000000000000000000000000000000000000000000000000": "0x0000000000000000000000000000000000000000000000000000000000000007"}} }),
            ],
        )
        .await
        .unwrap();
    assert_eq!(U256::from_be_slice(&out), U256::from(7));
    let plain: Bytes = c.request("eth_call", vec![json!({"to": probe}), json!("latest")]).await.unwrap();
    assert!(plain.is_empty(), "overrides do not stick");
    let rich = Address::repeat_byte(0x78);
    let est: U64 = c
        .request(
            "eth_estimateGas",
            vec![
                json!({"from": rich, "to": probe, "value": "0xde0b6b3a7640000"}),
                json!("latest"),
                json!({ rich.to_string(): {"balance": "0xffffffffffffffffffff"} }),
            ],
        )
        .await
        .unwrap();
    assert_eq!(est.to::<u64>(), 21_000, "a funded-by-override transfer");

    let models: Vec<B256> = c.request("fixpoint_listModels", vec![]).await.unwrap();
    assert!(models.contains(&id));

    // Overrides may not touch the precompiles' accounts: the registry's storage fixes what
    // inference costs (a model's warm gas), so rewriting it would run inference for free.
    let warm_slot = B256::from(fixpoint_precompiles::state::model_slots(id)[2].to_be_bytes());
    match c
        .request::<Bytes>(
            "eth_call",
            vec![
                json!({"to": probe}),
                json!("latest"),
                json!({ REGISTRY_ADDRESS.to_string(): {"stateDiff": { warm_slot.to_string(): B256::ZERO }} }),
            ],
        )
        .await
    {
        Err(ClientError::Rpc { code: -32000, message, .. }) => {
            assert!(message.contains("may not touch the precompile"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    // fixpoint_infer runs the precompile's metered path: the same answer as an eth_call of
    // `infer`, and a gas cap it cannot exceed.
    let input = {
        let path = root().join("tests/vectors/models/digits-cnn.json");
        let doc: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        Bytes::from(hex::decode(doc["cases"][0]["input"].as_str().unwrap()).unwrap())
    };
    let out: Bytes = c.request("fixpoint_infer", vec![json!(id), json!(input)]).await.unwrap();
    let via_call: Bytes = c
        .request(
            "eth_call",
            vec![json!({"to": INFERENCE_ADDRESS, "input": Bytes::from(I::inferCall { modelId: id, input: input.clone() }.abi_encode())}), json!("latest")],
        )
        .await
        .unwrap();
    assert_eq!(out, I::inferCall::abi_decode_returns(&via_call).unwrap());
    match c.request::<Bytes>("fixpoint_infer", vec![json!(id), json!(input), json!("0xc350")]).await {
        Err(ClientError::Rpc { message, .. }) => assert!(message.contains("OutOfGas"), "{message}"),
        other => panic!("50,000 gas cannot pay for the CNN: {other:?}"),
    }

    // Admission applies revm's rules exactly. EIP-7623: 10,000 non-zero calldata bytes cost
    // 21,000 + 16·10,000 = 181,000 in intrinsic gas, but the floor is 21,000 + 10·40,000.
    let next: U64 = c.request("eth_getTransactionCount", vec![json!(me), json!("pending")]).await.unwrap();
    let next = next.to::<u64>();
    let heavy = tx(next, to, Bytes::from(vec![0xAB; 10_000]), 200_000, 10 * GWEI, GWEI, 3871);
    assert_eq!(
        refused(send(&c, sign(&key, heavy).unwrap()).await),
        "insufficient gas for floor data gas cost: have 200000, want 421000"
    );
    // Balance is checked cumulatively per sender: two pending transactions that each fit the
    // balance alone but not together (both wait behind a nonce gap, so neither executes).
    let balance: U256 = c.request("eth_getBalance", vec![json!(me), json!("latest")]).await.unwrap();
    let spend = |nonce: u64| TxEip1559 {
        value: balance / U256::from(5) * U256::from(3),
        ..tx(nonce, to, Bytes::new(), 21_000, 10 * GWEI, GWEI, 3871)
    };
    send(&c, sign(&key, spend(next + 10)).unwrap()).await.unwrap();
    assert!(
        refused(send(&c, sign(&key, spend(next + 11)).unwrap()).await)
            .starts_with("insufficient funds for gas * price + value"),
        "60 % of the balance twice"
    );
}

/// geth's txpool namespace: a transaction with a nonce gap waits as `queued` under its sender
/// and nonce; once the gap is filled both are mined and the pool is empty.
#[test]
fn txpool_shows_a_nonce_gap_as_queued_until_it_is_filled() {
    let dir = Tmp::new("txpool");
    let n = start(&dir.0, free_port());
    let key = dev_key(3);
    let from = run(std::process::Command::new(tool("cast")).args(["wallet", "address", "--private-key", &key]));
    let nonce: u64 = cast(&n, &["nonce", &from]).parse().unwrap();
    let to = "0x000000000000000000000000000000000000dEaD";
    let send = |nonce: u64| {
        cast(&n, &["send", to, "--value", "1", "--nonce", &nonce.to_string(), "--async", "--private-key", &key])
    };
    let later = send(nonce + 1);
    let status: serde_json::Value = serde_json::from_str(&cast(&n, &["rpc", "txpool_status"])).unwrap();
    assert_eq!(status, serde_json::json!({ "pending": "0x0", "queued": "0x1" }));
    let content: serde_json::Value = serde_json::from_str(&cast(&n, &["rpc", "txpool_content"])).unwrap();
    let queued = &content["queued"][from.to_lowercase()][(nonce + 1).to_string()];
    assert_eq!(queued["hash"], later, "{content}");
    assert_eq!(queued["nonce"], format!("{:#x}", nonce + 1));
    assert_eq!(content["pending"], serde_json::json!({}));
    let inspect: serde_json::Value = serde_json::from_str(&cast(&n, &["rpc", "txpool_inspect"])).unwrap();
    let line = inspect["queued"][from.to_lowercase()][(nonce + 1).to_string()].as_str().unwrap().to_string();
    assert!(line.starts_with(&format!("{to}: 1 wei + ")), "{line}");
    // Filling the gap mines both; nothing is left.
    send(nonce);
    let receipt: serde_json::Value = serde_json::from_str(&cast(&n, &["receipt", &later, "--json"])).unwrap();
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    let status: serde_json::Value = serde_json::from_str(&cast(&n, &["rpc", "txpool_status"])).unwrap();
    assert_eq!(status, serde_json::json!({ "pending": "0x0", "queued": "0x0" }));
}
