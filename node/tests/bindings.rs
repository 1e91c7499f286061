//! The generated Solidity bindings as a unit: for imported ONNX fixtures (a per-feature
//! classifier, an image CNN with the squeeze-excite ops, a regressor, a tree ensemble),
//! `fixpoint model import` → `fixpoint model solidity` → forge compiles each library and a
//! contract using it → the contract runs in our EVM with the real precompiles (in process, as
//! the dapp tests in evm/tests/dapps.rs do, no node): the library's `quantize`/`pack` give the
//! bytes of the CLI's rule (node/src/meta.rs), `inferPacked` returns exactly the engine's output
//! bytes, `inferReal` decodes to the engine's label and scores (or values), and the precompile
//! charges exactly the library's COLD_GAS, then WARM_GAS.

#[path = "../../evm/tests/common/mod.rs"]
mod chain;
mod common;

use std::path::Path;
use std::process::Command;

use alloy_primitives::{Bytes, I256, TxKind, U256, keccak256};
use alloy_sol_types::{SolCall, sol};
use chain::{ALICE, BOB, Chain};
use common::{Tmp, fixpoint, root, run, tool};
use fixpoint_node::meta::{load_file, parse_fixed, quantize_decimal};
use fixpoint_precompiles::REGISTRY_ADDRESS;
use fixpoint_precompiles::abi::IModelRegistry;

sol! {
    interface IUse {
        function classify(int256[] xs) external view returns (uint256 label, int256[] scores);
        function regress(int256[] xs) external view returns (int256[] values);
        function packed(bytes input) external view returns (bytes output);
        function quantized(int256[] xs) external pure returns (bytes input);
        function gas() external pure returns (uint256 warm, uint256 cold);
    }
}

/// A contract that uses library `lib` (`n` features) only through its generated API.
fn consumer(lib: &str, n: usize, classifier: bool) -> String {
    let infer = if classifier {
        format!(
            "function classify(int256[] calldata xs) external view returns (uint256 label, int256[] memory scores) {{
        {lib}.Prediction memory p = {lib}.inferReal(reals(xs));
        return (p.label, p.scores);
    }}"
        )
    } else {
        format!(
            "function regress(int256[] calldata xs) external view returns (int256[] memory values) {{
        return {lib}.inferReal(reals(xs)).values;
    }}"
        )
    };
    format!(
        "// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {{{lib}}} from \"./{lib}.sol\";

contract Use{lib} {{
    function reals(int256[] calldata xs) internal pure returns (int256[{n}] memory x) {{
        require(xs.length == {n}, \"features\");
        for (uint256 i = 0; i < {n}; i++) x[i] = xs[i];
    }}

    {infer}

    function packed(bytes calldata input) external view returns (bytes memory output) {{
        return {lib}.inferPacked(input);
    }}

    function quantized(int256[] calldata xs) external pure returns (bytes memory input) {{
        return {lib}.pack({lib}.quantize(reals(xs)));
    }}

    function gas() external pure returns (uint256 warm, uint256 cold) {{
        return ({lib}.WARM_GAS, {lib}.COLD_GAS);
    }}
}}
"
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn artifact(proj: &Path, file: &str, name: &str) -> Vec<u8> {
    let path = proj.join("out").join(file).join(format!("{name}.json"));
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).expect("artifact")).unwrap();
    hex::decode(doc["bytecode"]["object"].as_str().unwrap().trim_start_matches("0x")).unwrap()
}

#[test]
fn generated_libraries_compile_and_match_the_engine_in_our_evm() {
    // (fixture, library name, classifier)
    let fixtures = [
        ("iris_logreg", "Iris", true),
        ("digits_se", "DigitsSe", true),
        ("diabetes_ridge", "Diabetes", false),
        ("cancer_xgb", "Cancer", true),
    ];
    let tmp = Tmp::new("bindings");
    let proj = tmp.0.join("proj");
    std::fs::create_dir_all(proj.join("src")).unwrap();
    let mut models = Vec::new();
    for (name, lib, classifier) in fixtures {
        let fx = root().join("tests/fixtures/onnx").join(name);
        let fxp = tmp.0.join(format!("{name}.fxp"));
        let onnx = fx.join("model.onnx");
        let calib = fx.join("calib.csv");
        let (ok, out, err) = fixpoint(&["model", "import", s(&onnx), "--calibration", s(&calib), "--out", s(&fxp)]);
        assert!(ok, "{name}: {out}{err}");
        let (ok, src, err) = fixpoint(&["model", "solidity", s(&fxp), "--name", lib]);
        assert!(ok, "{name}: {err}");
        std::fs::write(proj.join(format!("src/{lib}.sol")), &src).unwrap();
        let (bytes, view, meta) = load_file(&fxp).unwrap();
        assert_eq!(view.is_classifier(), classifier, "{name}");
        std::fs::write(proj.join(format!("src/Use{lib}.sol")), consumer(lib, view.features(), classifier)).unwrap();
        models.push((name, lib, fx, bytes, view, meta));
    }
    std::fs::write(
        proj.join("foundry.toml"),
        format!(
            "[profile.default]\nsrc = \"src\"\nout = \"out\"\nlibs = []\nsolc = \"{}\"\noffline = true\noptimizer = true\nevm_version = \"prague\"\n",
            s(&root().join("scripts/solc"))
        ),
    )
    .unwrap();
    run(Command::new(tool("forge")).current_dir(&proj).arg("build"));

    let mut chain = Chain::new();
    for (name, lib, fx, bytes, view, meta) in &models {
        let id = keccak256(bytes);
        let reg = chain.tx(
            ALICE,
            TxKind::Call(REGISTRY_ADDRESS),
            IModelRegistry::registerCall { model: bytes.clone().into() }.abi_encode(),
            20_000_000,
        );
        let code = artifact(&proj, &format!("Use{lib}.sol"), &format!("Use{lib}"));
        let dep = chain.tx(ALICE, TxKind::Create, code, 5_000_000);
        let b = chain.block(vec![reg, dep]);
        assert!(b.txs.iter().all(|t| t.success), "{name}: {:?}", b.txs);
        let app = b.txs[1].contract_address.unwrap();
        let engine = fixpoint_ml::Engine::load(bytes, &fixpoint_ml::Limits::default()).unwrap();
        let chw = meta.as_ref().and_then(|m| m.chw);

        let call = |chain: &mut Chain, data: Vec<u8>| {
            let tx = chain.tx(BOB, TxKind::Call(app), data, 20_000_000);
            let out = chain.dry_run(&[tx]);
            assert!(out.txs[0].success, "{name}: {:?}", out.txs[0]);
            out.txs[0].output.clone()
        };
        let gas = IUse::gasCall::abi_decode_returns(&call(&mut chain, IUse::gasCall {}.abi_encode())).unwrap();

        let test = std::fs::read_to_string(fx.join("test.csv")).unwrap();
        let mut txs = Vec::new();
        for (i, line) in test.lines().skip(1).take(4).enumerate() {
            let cells: Vec<&str> = line.split(',').take(view.features()).collect();
            let row = cells.join(",");
            let xs: Vec<I256> = cells.iter().map(|c| parse_fixed(c).unwrap()).collect();
            // The library quantizes reals as the CLI does (docs/import.md §3).
            let (_, input) = quantize_decimal(view, &row, chw).unwrap();
            let q = call(&mut chain, IUse::quantizedCall { xs: xs.clone() }.abi_encode());
            let q = IUse::quantizedCall::abi_decode_returns(&q).unwrap();
            assert_eq!(q.as_ref(), input.as_slice(), "{name} row {i}: Solidity quantize+pack vs the CLI");
            // The packed path returns exactly the engine's bytes.
            let want = engine.run_packed(&input).unwrap();
            let out = call(&mut chain, IUse::packedCall { input: Bytes::from(input.clone()) }.abi_encode());
            let out = IUse::packedCall::abi_decode_returns(&out).unwrap();
            assert_eq!(out.as_ref(), want.as_slice(), "{name} row {i}: inferPacked vs the engine");
            // The decoded path: the engine's label and scores, or its values.
            let outputs = view.unpack_outputs(&want).unwrap();
            let ints = |v: &[i64]| v.iter().map(|&x| I256::try_from(x).unwrap()).collect::<Vec<_>>();
            if view.is_classifier() {
                let data = IUse::classifyCall { xs: xs.clone() }.abi_encode();
                let r = IUse::classifyCall::abi_decode_returns(&call(&mut chain, data.clone())).unwrap();
                assert_eq!(r.label, U256::from(outputs[0][0] as u64), "{name} row {i}: label");
                assert_eq!(r.scores, ints(&outputs[1]), "{name} row {i}: scores");
                txs.push(data);
            } else {
                let data = IUse::regressCall { xs: xs.clone() }.abi_encode();
                let r = IUse::regressCall::abi_decode_returns(&call(&mut chain, data.clone())).unwrap();
                assert_eq!(r, ints(&outputs.concat()), "{name} row {i}: values");
                txs.push(data);
            }
        }
        // In one block: the first inference pays COLD_GAS, the others WARM_GAS, as the library says.
        let txs: Vec<_> = txs.into_iter().map(|d| chain.tx(BOB, TxKind::Call(app), d, 20_000_000)).collect();
        let n = txs.len();
        let b = chain.block(txs);
        assert!(b.txs.iter().all(|t| t.success), "{name}");
        assert_eq!(b.records.len(), n, "{name}");
        assert!(b.records.iter().all(|r| r.model_id == id), "{name}");
        assert_eq!(U256::from(b.records[0].gas_used), gas.cold, "{name}: COLD_GAS");
        assert!(b.records[1..].iter().all(|r| U256::from(r.gas_used) == gas.warm), "{name}: WARM_GAS");
        println!("{name}: {n} rows, warm {} / cold {} gas", gas.warm, gas.cold);
    }
}
