//! Bring your own model, as a user does it: an ONNX fixture → `fixpoint model import` →
//! `fixpoint model register` on `fixpoint node --dev` → `fixpoint model solidity` → a contract
//! using the generated library, compiled by forge and deployed with `forge create` → `cast send`
//! → receipt: the on-chain label equals `fixpoint model run` (local engine), `fixpoint model
//! call --csv-row` (eth_call) and onnxruntime's label (expected.json), and the precompile charged
//! exactly the library's COLD_GAS. Also: CLI errors are messages, never panics.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/onnx").join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A decimal CSV cell as an 18-decimal fixed-point integer (test-side, by string arithmetic).
fn fixed18(cell: &str) -> String {
    let (neg, body) = cell.strip_prefix('-').map_or((false, cell), |b| (true, b));
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    assert!(frac.len() <= 18 && !body.contains('e'), "plain decimals only: {cell}");
    let digits = format!("{int}{frac:0<18}");
    let digits = digits.trim_start_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    format!("{}{digits}", if neg && digits != "0" { "-" } else { "" })
}

/// The label a `fixpoint model run|call` printout names.
fn label_of(out: &str) -> u64 {
    let l = out.lines().find_map(|l| l.strip_prefix("label: ")).unwrap_or_else(|| panic!("no label in {out}"));
    l.split_whitespace().next().unwrap().parse().unwrap()
}

const DESK: &str = r#"// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Iris} from "./Iris.sol";

/// A dapp built on the generated bindings only.
contract IrisDesk {
    uint256 public lastLabel;
    uint256 public calls;

    event Classified(uint256 label, int256[] scores);

    function classify(int256[4] calldata x) external returns (uint256 label) {
        Iris.Prediction memory p = Iris.inferReal(x);
        lastLabel = p.label;
        calls++;
        emit Classified(p.label, p.scores);
        return p.label;
    }

    function predict(int8[4] calldata q) external view returns (uint256 label, int256[] memory scores) {
        Iris.Prediction memory p = Iris.infer(q);
        return (p.label, p.scores);
    }

    function gas() external pure returns (uint256 warm, uint256 cold) {
        return (Iris.WARM_GAS, Iris.COLD_GAS);
    }

    function name(uint256 label) external pure returns (string memory) {
        return Iris.labelName(label);
    }
}
"#;

#[test]
fn onnx_fixture_to_a_contract_on_the_dev_node() {
    let tmp = Tmp::new("import-e2e");
    let fx = fixture("iris_logreg");
    let fxp = tmp.0.join("iris.fxp");
    let (ok, out, err) = fixpoint(&[
        "model",
        "import",
        s(&fx.join("model.onnx")),
        "--calibration",
        s(&fx.join("calib.csv")),
        "--eval",
        s(&fx.join("test.csv")),
        "--target",
        "target",
        "--out",
        s(&fxp),
    ]);
    assert!(ok, "{out}{err}");
    println!("{out}");
    for want in ["op mapping", "LinearClassifier", "classification", "gas per inference: warm", "model id 0x"] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    let id = out.lines().find_map(|l| l.strip_prefix("model id ")).unwrap().trim().to_string();
    let bytes = std::fs::read(&fxp).unwrap();
    assert_eq!(format!("{}", alloy_primitives::keccak256(&bytes)), id, "the .fxp is the canonical bytes");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.0.join("iris.fxp.json")).unwrap()).unwrap();
    assert_eq!(meta["id"], id);
    assert_eq!(meta["features"][0], "sepal length (cm)");
    // Deterministic: importing again gives the same id.
    let again = tmp.0.join("again.fxp");
    let (ok, out2, err) = fixpoint(&[
        "model",
        "import",
        s(&fx.join("model.onnx")),
        "--calibration",
        s(&fx.join("calib.csv")),
        "--out",
        s(&again),
    ]);
    assert!(ok, "{out2}{err}");
    assert_eq!(std::fs::read(&again).unwrap(), bytes);

    let n = start(&tmp.0.join("data"), free_port());
    let (ok, out, err) = fixpoint(&["model", "register", s(&fxp), "--private-key", &n.key, "--rpc-url", &n.rpc]);
    assert!(ok, "{out}{err}");
    assert_eq!(out.trim(), id);

    // Bindings from the chain (id + sidecar) and from the file are the same source.
    let proj = tmp.0.join("proj");
    std::fs::create_dir_all(proj.join("src")).unwrap();
    let lib = proj.join("src/Iris.sol");
    let meta_path = tmp.0.join("iris.fxp.json");
    let (ok, out, err) = fixpoint(&[
        "model",
        "solidity",
        &id,
        "--meta",
        s(&meta_path),
        "--name",
        "Iris",
        "--rpc-url",
        &n.rpc,
        "--out",
        s(&lib),
    ]);
    assert!(ok, "{out}{err}");
    let (ok, from_file, err) = fixpoint(&["model", "solidity", s(&fxp), "--name", "Iris"]);
    assert!(ok, "{err}");
    let src = std::fs::read_to_string(&lib).unwrap();
    assert_eq!(src, from_file, "the chain and the file describe the same model");
    assert!(src.contains(&format!("bytes32 internal constant ID = {id};")), "{src}");
    assert!(src.contains("sepal length (cm)"), "NatSpec names the features");
    std::fs::write(proj.join("src/IrisDesk.sol"), DESK).unwrap();
    std::fs::write(
        proj.join("foundry.toml"),
        format!(
            "[profile.default]\nsrc = \"src\"\nout = \"out\"\nlibs = []\nsolc = \"{}\"\noffline = true\nevm_version = \"prague\"\n",
            s(&root().join("scripts/solc"))
        ),
    )
    .unwrap();
    run(Command::new(tool("forge")).current_dir(&proj).arg("build"));
    let created = run(Command::new(tool("forge")).current_dir(&proj).args([
        "create",
        "src/IrisDesk.sol:IrisDesk",
        "--broadcast",
        "--private-key",
        &n.key,
        "--rpc-url",
        &n.rpc,
    ]));
    let app =
        created.lines().find_map(|l| l.strip_prefix("Deployed to: ")).expect("deployed address").trim().to_string();
    let gas = cast(&n, &["call", &app, "gas()(uint256,uint256)"]);
    let cold: u64 = gas.lines().nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();

    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fx.join("expected.json")).unwrap()).unwrap();
    let test = std::fs::read_to_string(fx.join("test.csv")).unwrap();
    for (i, line) in test.lines().skip(1).take(5).enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        let row = cells[..4].join(",");
        let float_label = expected["first_rows"][i]["label"].as_u64().unwrap();
        let xs: Vec<String> = cells[..4].iter().map(|c| fixed18(c)).collect();
        let receipt = cast(
            &n,
            &["send", &app, "classify(int256[4])", &format!("[{}]", xs.join(",")), "--private-key", &n.key, "--json"],
        );
        let receipt: serde_json::Value = serde_json::from_str(&receipt).unwrap();
        assert_eq!(receipt["status"], "0x1", "{receipt}");
        let chain_label: u64 = cast(&n, &["call", &app, "lastLabel()(uint256)"]).parse().unwrap();

        let (ok, local, err) = fixpoint(&["model", "run", s(&fxp), "--csv-row", &row]);
        assert!(ok, "{err}");
        let (ok, called, err) = fixpoint(&["model", "call", &id, "--csv-row", &row, "--rpc-url", &n.rpc]);
        assert!(ok, "{err}");
        assert_eq!(chain_label, label_of(&local), "row {i}: contract vs `fixpoint model run`\n{local}");
        assert_eq!(chain_label, label_of(&called), "row {i}: contract vs `fixpoint model call --csv-row`");
        assert_eq!(chain_label, float_label, "row {i}: contract vs onnxruntime");

        // Each transaction is alone in its block: the precompile charged exactly COLD_GAS.
        let tx = receipt["transactionHash"].as_str().unwrap();
        let records: serde_json::Value =
            serde_json::from_str(&cast(&n, &["rpc", "fixpoint_transactionRecords", tx])).unwrap();
        let rec = &records.as_array().unwrap()[0];
        let used = rec["gasUsed"].as_str().map_or_else(
            || rec["gasUsed"].as_u64().unwrap(),
            |h| u64::from_str_radix(h.trim_start_matches("0x"), 16).unwrap(),
        );
        assert_eq!(used, cold, "the library's COLD_GAS is what the precompile charged");
    }
    assert_eq!(cast(&n, &["call", &app, "calls()(uint256)"]), "5");
    // The view path (int8 integers, STATICCALL) agrees with `model run` on the same integers.
    let (ok, local, _) = fixpoint(&["model", "run", s(&fxp), "--csv-row", "6.3,3.4,5.6,2.4"]);
    assert!(ok);
    let q = local.lines().find_map(|l| l.strip_prefix("input: ")).unwrap().trim().to_string();
    let predicted = cast(&n, &["call", &app, "predict(int8[4])(uint256,int256[])", &q]);
    assert_eq!(predicted.lines().next().unwrap().trim(), label_of(&local).to_string(), "{predicted}");
    assert_eq!(cast(&n, &["call", &app, "name(uint256)(string)", "2"]), "\"2\"");
}

#[test]
fn import_errors_are_messages_not_panics() {
    let tmp = Tmp::new("import-errors");
    let fx = fixture("iris_logreg");
    let out = s(&tmp.0.join("m.fxp")).to_string();
    let check = |args: &[&str], want: &str| {
        let (ok, stdout, err) = fixpoint(args);
        assert!(!ok, "{args:?} succeeded: {stdout}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    };
    check(
        &["model", "import", "/nonexistent.onnx", "--calibration", s(&fx.join("calib.csv")), "--out", &out],
        "does not exist",
    );
    let bad = tmp.0.join("bad.csv");
    std::fs::write(&bad, "a,b,c,d\n1,2,x,4\n").unwrap();
    check(&["model", "import", s(&fx.join("model.onnx")), "--calibration", s(&bad), "--out", &out], "bad.csv");
    let short = tmp.0.join("short.csv");
    std::fs::write(&short, "1,2,3\n4,5,6\n").unwrap();
    check(&["model", "import", s(&fx.join("model.onnx")), "--calibration", s(&short), "--out", &out], "short.csv");
    let not_onnx = tmp.0.join("x.onnx");
    std::fs::write(&not_onnx, "not a protobuf").unwrap();
    check(&["model", "import", s(&not_onnx), "--calibration", s(&fx.join("calib.csv")), "--out", &out], "x.onnx");
    // A good import, then bad rows for `run`.
    let (ok, o, e) = fixpoint(&[
        "model",
        "import",
        s(&fx.join("model.onnx")),
        "--calibration",
        s(&fx.join("calib.csv")),
        "--out",
        &out,
    ]);
    assert!(ok, "{o}{e}");
    check(&["model", "run", &out, "--csv-row", "1,2,3"], "4 features");
    check(&["model", "run", &out, "--csv-row", "1,2,abc,4"], "not a decimal");
    check(&["model", "solidity", "nope.fxp"], "neither a model file nor a model id");
}
