//! The `fixpoint` CLI as a model author uses it: `fixpoint init` writes a genesis, a node starts
//! from it, `fixpoint model register` uploads a model in chunks, `model info` and `model call`
//! read it back through eth_call, and every mistake gets a clear message.

mod common;

use common::*;
use serde_json::Value;

struct Case {
    model: Vec<u8>,
    input: Vec<u8>,
    output: Vec<u8>,
}

fn cnn_case() -> Case {
    let path = root().join("tests/vectors/models/digits-cnn.json");
    let doc: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let c = &doc["cases"][0];
    let h = |k: &str| hex::decode(c[k].as_str().unwrap()).unwrap();
    Case { model: h("model"), input: h("input"), output: h("output") }
}

fn i32s(b: &[u8]) -> Vec<String> {
    b.chunks(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()).to_string()).collect()
}

#[test]
fn init_then_register_inspect_and_call_a_model_from_the_cli() {
    let tmp = Tmp::new("cli");
    let gdir = tmp.0.join("genesis");
    let gdir_s = gdir.to_str().unwrap();
    let (ok, out, err) = fixpoint(&["init", "--dir", gdir_s, "--accounts", "2"]);
    assert!(ok, "{err}");
    assert!(out.contains("genesis.json"), "{out}");
    let genesis: Value = serde_json::from_slice(&std::fs::read(gdir.join("genesis.json")).unwrap()).unwrap();
    assert_eq!(genesis["chainId"], 3871);
    assert_eq!(genesis["alloc"].as_object().unwrap().len(), 2);
    assert_eq!(genesis["models"][0]["file"], "digits-mlp.fxp");
    let (ok, _, err) = fixpoint(&["init", "--dir", gdir_s]);
    assert!(!ok && err.contains("exists"), "a second init does not overwrite: {err}");

    let port = free_port();
    let genesis_file = gdir.join("genesis.json");
    let n = start_with(&["--genesis", genesis_file.to_str().unwrap()], &tmp.0.join("data"), port);
    assert!(n.model_id.starts_with("0x"), "the genesis model id is printed");
    let key = dev_key(0);

    // Register the CNN in 2,000-byte chunks.
    let case = cnn_case();
    let file = tmp.0.join("cnn.fxp");
    std::fs::write(&file, &case.model).unwrap();
    let file_s = file.to_str().unwrap();
    let id = alloy_primitives::keccak256(&case.model).to_string();
    let (ok, out, err) =
        fixpoint(&["model", "register", file_s, "--rpc-url", &n.rpc, "--private-key", &key, "--chunk-size", "2000"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), id, "prints the id");
    let chunks = case.model.len().div_ceil(2000);
    assert!(err.contains(&format!("chunk {chunks}/{chunks}")), "progress: {err}");
    let (ok, out, _) = fixpoint(&["model", "register", file_s, "--rpc-url", &n.rpc, "--private-key", &key]);
    assert!(ok && out.contains("already registered"), "{out}");

    // Info from the registry's view functions.
    let (ok, out, err) = fixpoint(&["model", "info", &id, "--rpc-url", &n.rpc]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("size         {} bytes", case.model.len())), "{out}");
    let owner: alloy_signer_local::PrivateKeySigner = key.parse().unwrap();
    assert!(out.contains(&owner.address().to_string()), "{out}");
    assert!(out.contains("input 0") && out.contains("output 0"), "{out}");

    // Call with packed bytes and with one integer per element: the vector's outputs.
    let input_hex = format!("0x{}", hex::encode(&case.input));
    let (ok, out, err) = fixpoint(&["model", "call", &id, &input_hex, "--rpc-url", &n.rpc]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("packed:   0x{}", hex::encode(&case.output))), "{out}");
    let want = i32s(&case.output);
    assert!(out.contains(&format!("output 0: [{}]", want[0])), "the label: {out}");
    let ints: Vec<String> = case.input.iter().map(|b| (*b as i8).to_string()).collect();
    let (ok, out, err) = fixpoint(&["model", "call", &id, &ints.join(","), "--rpc-url", &n.rpc]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("output: [{}]", want.join(", ")));

    // Mistakes.
    std::fs::write(tmp.0.join("junk.fxp"), b"definitely not a model").unwrap();
    let junk = tmp.0.join("junk.fxp");
    let (ok, _, err) =
        fixpoint(&["model", "register", junk.to_str().unwrap(), "--rpc-url", &n.rpc, "--private-key", &key]);
    assert!(!ok && err.contains("is not a valid model"), "{err}");
    let (ok, _, err) = fixpoint(&["model", "register", file_s, "--rpc-url", &n.rpc, "--private-key", "0x1234"]);
    assert!(!ok && err.contains("invalid private key"), "{err}");
    let unknown = format!("0x{}", "33".repeat(32));
    let (ok, _, err) = fixpoint(&["model", "info", &unknown, "--rpc-url", &n.rpc]);
    assert!(!ok && err.contains("is not registered"), "{err}");
    let (ok, _, err) = fixpoint(&["model", "call", &id, "0x0102", "--rpc-url", &n.rpc]);
    assert!(!ok && err.contains("BadInputLength"), "a decoded revert: {err}");
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (ok, _, err) = fixpoint(&["model", "info", &id, "--rpc-url", &dead]);
    assert!(!ok && err.contains("cannot reach a node"), "{err}");

    // The node refuses a data directory that holds another chain.
    drop(n);
    let other = tmp.0.join("other");
    assert!(fixpoint(&["init", "--dir", other.to_str().unwrap(), "--chain-id", "5"]).0);
    let data = tmp.0.join("data");
    let (ok, _, err) = fixpoint(&[
        "node",
        "--genesis",
        other.join("genesis.json").to_str().unwrap(),
        "--datadir",
        data.to_str().unwrap(),
        "--port",
        &free_port().to_string(),
    ]);
    assert!(!ok && err.contains("chain id 3871, not 5"), "{err}");
    let (ok, _, err) = fixpoint(&["node", "--port", &free_port().to_string()]);
    assert!(!ok && err.contains("--dev"), "{err}");
}

#[test]
fn a_chunked_upload_interrupted_by_kill_9_resumes_after_restart() {
    let tmp = Tmp::new("cli-resume");
    let port = free_port();
    let data = tmp.0.join("data");
    let mut n = start(&data, port);
    let case = cnn_case();
    let id = alloy_primitives::keccak256(&case.model).to_string();
    let (first, rest) = case.model.split_at(4000);
    let registry = "0x0000000000000000000000000000000000000F00";
    let size = case.model.len().to_string();
    let key = n.key.clone();
    let send = |n: &NodeProc, args: &[&str]| {
        let mut all = vec!["send", registry];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--private-key", &key, "--json"]);
        let r: Value = serde_json::from_str(&cast(n, &all)).unwrap();
        assert_eq!(r["status"], "0x1", "{args:?}: {r}");
    };
    send(&n, &["beginUpload(bytes32,uint64)", &id, &size]);
    send(&n, &["putChunk(bytes32,uint64,bytes)", &id, "0", &format!("0x{}", hex::encode(first))]);

    n.child.kill().unwrap();
    n.child.wait().unwrap();
    drop(n);
    let n = start(&data, port);
    // The first chunk survived the crash: the upload completes where it stopped.
    send(&n, &["putChunk(bytes32,uint64,bytes)", &id, "4000", &format!("0x{}", hex::encode(rest))]);
    send(&n, &["finalizeUpload(bytes32)", &id]);
    let (ok, out, err) =
        fixpoint(&["model", "call", &id, &format!("0x{}", hex::encode(&case.input)), "--rpc-url", &n.rpc]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("packed:   0x{}", hex::encode(&case.output))), "{out}");
}

#[test]
fn keygen_and_a_genesis_with_a_validator_set() {
    let tmp = Tmp::new("cli-keys");
    let out = tmp.0.join("k.json");
    let (ok, pubkey, err) = fixpoint(&["keygen", "--out", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    let pubkey = pubkey.trim();
    assert!(pubkey.starts_with("0x") && pubkey.len() == 66, "{pubkey}");
    let file: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(file["publicKey"], pubkey);
    let (ok, _, err) = fixpoint(&["keygen", "--out", out.to_str().unwrap()]);
    assert!(!ok && err.contains("exists"), "never overwrites a key: {err}");

    let g = tmp.0.join("net");
    let (ok, _, err) = fixpoint(&["init", "--dir", g.to_str().unwrap(), "--validators", "4"]);
    assert!(ok, "{err}");
    let genesis: Value = serde_json::from_slice(&std::fs::read(g.join("genesis.json")).unwrap()).unwrap();
    let validators = genesis["validators"].as_array().unwrap();
    assert_eq!(validators.len(), 4);
    for (i, v) in validators.iter().enumerate() {
        let key: Value =
            serde_json::from_slice(&std::fs::read(g.join(format!("validators/v{i}.json"))).unwrap()).unwrap();
        assert_eq!(&key["publicKey"], v);
    }
    // A genesis with a bad validator key is refused with the reason.
    let mut bad = genesis.clone();
    bad["validators"][1] = Value::from("0x1234");
    std::fs::write(g.join("bad.json"), bad.to_string()).unwrap();
    let (ok, _, err) =
        fixpoint(&["node", "--genesis", g.join("bad.json").to_str().unwrap(), "--port", &free_port().to_string()]);
    assert!(!ok && err.contains("validator #1"), "{err}");
}
