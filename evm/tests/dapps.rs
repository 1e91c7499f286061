//! The example dapps, compiled with forge, calling real quantized models (the committed model
//! vectors) through the real precompiles in our EVM: outputs equal the engine's, gas and roots
//! are identical across runs, and every inference is recorded.

mod common;

use alloy_primitives::{B256, Bytes, TxKind, U256, keccak256};
use alloy_sol_types::{SolCall, SolConstructor, SolValue, sol};
use common::*;
use fixpoint_precompiles::abi::IModelRegistry;
use fixpoint_precompiles::{INFERENCE_ADDRESS, REGISTRY_ADDRESS};

sol! {
    contract DigitRecognizer {
        constructor(bytes32 modelId_);
        function recognize(uint8[64] pixels) external returns (uint8 digit);
        function predict(uint8[64] pixels) external view returns (uint8 digit, int32 logit);
        function recorded() external view returns (uint256);
    }
    contract ScreeningDesk {
        constructor(bytes32 modelId_);
        function screen(bytes32 caseId, int32[30] features) external returns (bool benign, int64 logit);
    }
}

fn deploy(code: Bytes, args: Vec<u8>) -> Bytes {
    let mut v = code.to_vec();
    v.extend(args);
    v.into()
}

fn i32_at(b: &[u8], i: usize) -> i32 {
    i32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap())
}

#[test]
fn digit_recognizer_runs_the_real_model() {
    let cases = model_cases("digits-mlp");
    let model = cases[0].model.clone();
    let id = keccak256(&model);
    let mut chain = Chain::new();

    let register = IModelRegistry::registerCall { model: model.clone().into() }.abi_encode();
    let reg = chain.tx(ALICE, TxKind::Call(REGISTRY_ADDRESS), register, 5_000_000);
    let code = deploy(
        artifact("DigitRecognizer.sol", "DigitRecognizer"),
        DigitRecognizer::constructorCall { modelId_: id }.abi_encode(),
    );
    let dep = chain.tx(ALICE, TxKind::Create, code, 3_000_000);
    let b1 = chain.block(vec![reg, dep]);
    assert!(b1.txs.iter().all(|t| t.success), "{:?}", b1.txs);
    assert_eq!(B256::abi_decode(&b1.txs[0].output).unwrap(), id, "register returns the keccak id");
    let app = b1.txs[1].contract_address.unwrap();

    let mut txs = Vec::new();
    for c in &cases {
        let pixels: [u8; 64] = c.input.clone().try_into().unwrap();
        txs.push(chain.tx(BOB, TxKind::Call(app), DigitRecognizer::recognizeCall { pixels }.abi_encode(), 2_000_000));
    }
    let before = chain.state.clone();
    let b2 = chain.block(txs.clone());
    for (t, c) in b2.txs.iter().zip(&cases) {
        assert!(t.success, "{t:?}");
        let digit = DigitRecognizer::recognizeCall::abi_decode_returns(&t.output).unwrap();
        assert_eq!(i32::from(digit), i32_at(&c.output, 0), "the contract sees the engine's label");
    }
    // One record per inference, hashing exactly the engine's input and output bytes.
    assert_eq!(b2.records.len(), cases.len());
    for (i, (r, c)) in b2.records.iter().zip(&cases).enumerate() {
        assert_eq!((r.tx_index as usize, r.call_index), (i, 0));
        assert_eq!(r.model_id, id);
        assert_eq!(r.input_hash, keccak256(&c.input));
        assert_eq!(r.output_hash, keccak256(&c.output));
    }
    // The first call pays the cold surcharge, the rest the same warm gas.
    assert!(b2.records[0].gas_used > b2.records[1].gas_used);
    assert!(b2.records[1..].iter().all(|r| r.gas_used == b2.records[1].gas_used));

    // Re-executing the same block from the same parent gives the same everything.
    let again = fixpoint_evm::execute_block(
        &before,
        &chain.store,
        &chain.spec,
        &{
            let mut e = chain.env();
            e.number -= 1;
            e.timestamp -= 1;
            e
        },
        &txs,
    )
    .unwrap();
    assert_eq!(again.state_root, b2.state_root);
    assert_eq!(again.receipts_root, b2.receipts_root);
    assert_eq!(again.records_root, b2.records_root);
    assert_eq!(again.records, b2.records);

    // `predict` is a view: STATICCALL into the precompile works, nothing is written.
    let pixels: [u8; 64] = cases[0].input.clone().try_into().unwrap();
    let call = chain.tx(BOB, TxKind::Call(app), DigitRecognizer::predictCall { pixels }.abi_encode(), 2_000_000);
    let dry = chain.dry_run(&[call]);
    let ret = DigitRecognizer::predictCall::abi_decode_returns(&dry.txs[0].output).unwrap();
    assert_eq!(i32::from(ret.digit), i32_at(&cases[0].output, 0));
    assert_eq!(ret.logit, i32_at(&cases[0].output, 1 + usize::from(ret.digit)));
    assert_eq!(dry.records.len(), 1, "static calls are recorded too");
}

#[test]
fn screening_desk_runs_the_tree_model() {
    let cases = model_cases("cancer-gbdt");
    let id = keccak256(&cases[0].model);
    let mut chain = Chain::new();
    let reg = chain.tx(
        ALICE,
        TxKind::Call(REGISTRY_ADDRESS),
        IModelRegistry::registerCall { model: cases[0].model.clone().into() }.abi_encode(),
        8_000_000,
    );
    let code = deploy(
        artifact("ScreeningDesk.sol", "ScreeningDesk"),
        ScreeningDesk::constructorCall { modelId_: id }.abi_encode(),
    );
    let dep = chain.tx(ALICE, TxKind::Create, code, 3_000_000);
    let b1 = chain.block(vec![reg, dep]);
    assert!(b1.txs.iter().all(|t| t.success), "{:?}", b1.txs);
    let app = b1.txs[1].contract_address.unwrap();
    let mut txs = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let features: [i32; 30] = std::array::from_fn(|j| i32_at(&c.input, j));
        let call = ScreeningDesk::screenCall { caseId: B256::with_last_byte(i as u8), features };
        txs.push(chain.tx(BOB, TxKind::Call(app), call.abi_encode(), 2_000_000));
    }
    let b2 = chain.block(txs);
    for (t, c) in b2.txs.iter().zip(&cases) {
        assert!(t.success, "{t:?}");
        let r = ScreeningDesk::screenCall::abi_decode_returns(&t.output).unwrap();
        assert_eq!(r.benign, i32_at(&c.output, 0) == 1);
        let logit = i64::from_le_bytes(c.output[12..20].try_into().unwrap());
        assert_eq!(r.logit, logit);
    }
    // Registry views agree with the engine's own cost figures.
    let info = chain.tx(
        BOB,
        TxKind::Call(REGISTRY_ADDRESS),
        IModelRegistry::modelInfoCall { modelId: id }.abi_encode(),
        100_000,
    );
    let out = chain.dry_run(&[info]);
    let info = IModelRegistry::modelInfoCall::abi_decode_returns(&out.txs[0].output).unwrap();
    let engine = fixpoint_ml::Engine::load(&cases[0].model, &fixpoint_ml::Limits::default()).unwrap();
    assert_eq!(info.owner, ALICE);
    assert_eq!(info.size as usize, cases[0].model.len());
    assert_eq!(info.registeredAt, 1);
    assert_eq!(info.elemOps, engine.cost().elem_ops);
    assert_eq!(info.inputBytes, 120);
    // The schedule as docs/gas.md writes it, with its numbers: the code's constants and formula
    // must give the same figure for this model's cost (not the function under test again).
    let (c, ops, w) = (engine.cost(), engine.model().nodes.len() as u64, |b: u64| b.div_ceil(32));
    let documented = 6_000
        + 200 * ops
        + c.macs.div_ceil(2)
        + 6 * c.elem_ops
        + 8 * c.steps
        + 24 * c.visits
        + 48 * c.calls
        + 4 * w(c.alloc_bytes)
        + w(c.bytes_read)
        + 480 * w(c.input_bytes + c.output_bytes);
    assert_eq!(info.warmGas, documented);
    let _ = (INFERENCE_ADDRESS, U256::ZERO);
}
