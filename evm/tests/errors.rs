//! Every error path of the precompiles, reached the way contracts reach them: each reverts with
//! its decodable ABI error (or halts out of gas), charges gas, and leaves the chain running.

mod common;

use alloy_primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use alloy_sol_types::{SolCall, SolError, SolInterface, sol};
use common::*;
use fixpoint_precompiles::abi::IInference::{self as I, IInferenceErrors};
use fixpoint_precompiles::abi::IModelRegistry::{self as R, IModelRegistryErrors};
use fixpoint_precompiles::{INFERENCE_ADDRESS, REGISTRY_ADDRESS};

sol! {
    contract Prober {
        function callWith(address target, bytes data, uint256 gas) external returns (bool ok, bytes ret);
        function staticWith(address target, bytes data) external returns (bool ok, bytes ret);
        function delegateWith(address target, bytes data) external returns (bool ok, bytes ret);
    }
}

struct Setup {
    chain: Chain,
    prober: Address,
    model: Vec<u8>,
    id: B256,
    input: Vec<u8>,
}

fn setup() -> Setup {
    let case = model_cases("digits-mlp").remove(0);
    let mut chain = Chain::new();
    let reg = chain.tx(
        ALICE,
        TxKind::Call(REGISTRY_ADDRESS),
        R::registerCall { model: case.model.clone().into() }.abi_encode(),
        5_000_000,
    );
    let dep = chain.tx(ALICE, TxKind::Create, artifact("Prober.sol", "Prober"), 2_000_000);
    let b = chain.block(vec![reg, dep]);
    assert!(b.txs.iter().all(|t| t.success));
    let prober = b.txs[1].contract_address.unwrap();
    Setup { chain, prober, id: keccak256(&case.model), model: case.model, input: case.input }
}

/// Calls `target` with `data` through the prober (CALL with `gas`); returns (ok, return data).
fn probe(s: &mut Setup, target: Address, data: Vec<u8>, gas: u64) -> (bool, Bytes) {
    let call = Prober::callWithCall { target, data: data.into(), gas: U256::from(gas) };
    let tx = s.chain.tx(BOB, TxKind::Call(s.prober), call.abi_encode(), 10_000_000);
    let out = s.chain.dry_run(&[tx]);
    assert!(out.txs[0].success, "the prober itself never fails");
    let r = Prober::callWithCall::abi_decode_returns(&out.txs[0].output).unwrap();
    (r.ok, r.ret)
}

fn inference_error(ret: &[u8]) -> IInferenceErrors {
    IInferenceErrors::abi_decode(ret).unwrap_or_else(|e| panic!("undecodable revert {}: {e}", hex::encode(ret)))
}

fn registry_error(ret: &[u8]) -> IModelRegistryErrors {
    IModelRegistryErrors::abi_decode(ret).unwrap_or_else(|e| panic!("undecodable revert {}: {e}", hex::encode(ret)))
}

#[test]
fn inference_errors_are_decodable() {
    let mut s = setup();
    let (id, input) = (s.id, s.input.clone());
    let unknown = B256::repeat_byte(9);
    let (ok, ret) = probe(
        &mut s,
        INFERENCE_ADDRESS,
        I::inferCall { modelId: unknown, input: input.clone().into() }.abi_encode(),
        1_000_000,
    );
    assert!(!ok);
    assert_eq!(inference_error(&ret), IInferenceErrors::UnknownModel(I::UnknownModel { modelId: unknown }));

    let (ok, ret) = probe(
        &mut s,
        INFERENCE_ADDRESS,
        I::inferCall { modelId: id, input: vec![1; 63].into() }.abi_encode(),
        1_000_000,
    );
    assert!(!ok);
    assert_eq!(
        inference_error(&ret),
        IInferenceErrors::BadInputLength(I::BadInputLength { expected: U256::from(64), got: U256::from(63) })
    );

    let ints: Vec<alloy_primitives::I256> =
        (0..64).map(|i| alloy_primitives::I256::try_from(if i == 5 { 300 } else { 1 }).unwrap()).collect();
    let (ok, ret) =
        probe(&mut s, INFERENCE_ADDRESS, I::inferIntsCall { modelId: id, input: ints }.abi_encode(), 1_000_000);
    assert!(!ok);
    assert_eq!(inference_error(&ret), IInferenceErrors::InputOutOfRange(I::InputOutOfRange { index: U256::from(5) }));

    for garbage in
        [vec![], vec![1, 2], I::inferCall::SELECTOR.to_vec(), [I::inferCall::SELECTOR.as_slice(), &[0xff; 40]].concat()]
    {
        let (ok, ret) = probe(&mut s, INFERENCE_ADDRESS, garbage.clone(), 1_000_000);
        assert!(!ok);
        assert_eq!(inference_error(&ret), IInferenceErrors::BadCalldata(I::BadCalldata {}), "{garbage:?}");
    }
    let (ok, ret) = probe(&mut s, INFERENCE_ADDRESS, vec![0xde, 0xad, 0xbe, 0xef, 0], 1_000_000);
    assert!(!ok);
    assert_eq!(
        inference_error(&ret),
        IInferenceErrors::UnknownSelector(I::UnknownSelector { selector: [0xde, 0xad, 0xbe, 0xef].into() })
    );

    // The happy path through the same prober, and the int form agrees with the packed form.
    let (ok, ret) = probe(
        &mut s,
        INFERENCE_ADDRESS,
        I::inferCall { modelId: id, input: input.clone().into() }.abi_encode(),
        1_000_000,
    );
    assert!(ok);
    let packed = I::inferCall::abi_decode_returns(&ret).unwrap();
    let ints: Vec<alloy_primitives::I256> =
        input.iter().map(|&b| alloy_primitives::I256::try_from(b as i8).unwrap()).collect();
    let (ok, ret) =
        probe(&mut s, INFERENCE_ADDRESS, I::inferIntsCall { modelId: id, input: ints }.abi_encode(), 1_000_000);
    assert!(ok);
    let flat = I::inferIntsCall::abi_decode_returns(&ret).unwrap();
    assert_eq!(flat.len(), 11);
    assert_eq!(flat[0], alloy_primitives::I256::try_from(i32::from_le_bytes(packed[..4].try_into().unwrap())).unwrap());
    let (ok, ret) = probe(
        &mut s,
        INFERENCE_ADDRESS,
        I::classifyCall { modelId: id, input: input.clone().into() }.abi_encode(),
        1_000_000,
    );
    assert!(ok);
    assert_eq!(
        I::classifyCall::abi_decode_returns(&ret).unwrap(),
        U256::from(u32::from_le_bytes(packed[..4].try_into().unwrap()))
    );
}

#[test]
fn out_of_gas_halts_cleanly_and_the_chain_goes_on() {
    let mut s = setup();
    let data = I::inferCall { modelId: s.id, input: s.input.clone().into() }.abi_encode();
    // Enough for the lookup but not for the inference itself.
    for gas in [0u64, 500, 5_000] {
        let (ok, ret) = probe(&mut s, INFERENCE_ADDRESS, data.clone(), gas);
        assert!(!ok, "gas {gas}");
        assert!(ret.is_empty(), "out of gas carries no data");
    }
    // A whole transaction short of gas fails with status 0 and the next block still works.
    let tx = s.chain.tx(BOB, TxKind::Call(INFERENCE_ADDRESS), data.clone(), 30_000);
    let b = s.chain.block(vec![tx]);
    assert!(!b.txs[0].success);
    assert!(b.records.is_empty(), "nothing ran, nothing recorded");
    let tx = s.chain.tx(BOB, TxKind::Call(INFERENCE_ADDRESS), data, 1_000_000);
    let b = s.chain.block(vec![tx]);
    assert!(b.txs[0].success);
    assert_eq!(b.records.len(), 1);
}

#[test]
fn static_and_delegate_calls() {
    let mut s = setup();
    // STATICCALL: inference works, registration is refused.
    let infer = I::inferCall { modelId: s.id, input: s.input.clone().into() }.abi_encode();
    let tx = s.chain.tx(
        BOB,
        TxKind::Call(s.prober),
        Prober::staticWithCall { target: INFERENCE_ADDRESS, data: infer.clone().into() }.abi_encode(),
        2_000_000,
    );
    let out = s.chain.dry_run(&[tx]);
    assert!(Prober::staticWithCall::abi_decode_returns(&out.txs[0].output).unwrap().ok);

    let mut other = s.model.clone();
    other.push(0); // different bytes, so not already registered (and not canonical either)
    for data in [
        R::registerCall { model: s.model.clone().into() }.abi_encode(),
        R::beginUploadCall { modelId: keccak256(&other), size: 10 }.abi_encode(),
    ] {
        let tx = s.chain.tx(
            BOB,
            TxKind::Call(s.prober),
            Prober::staticWithCall { target: REGISTRY_ADDRESS, data: data.into() }.abi_encode(),
            2_000_000,
        );
        let out = s.chain.dry_run(&[tx]);
        let r = Prober::staticWithCall::abi_decode_returns(&out.txs[0].output).unwrap();
        assert!(!r.ok);
        assert_eq!(registry_error(&r.ret), IModelRegistryErrors::StaticCallNotAllowed(R::StaticCallNotAllowed {}));
    }
    // Views work under STATICCALL.
    let tx = s.chain.tx(
        BOB,
        TxKind::Call(s.prober),
        Prober::staticWithCall { target: REGISTRY_ADDRESS, data: R::existsCall { modelId: s.id }.abi_encode().into() }
            .abi_encode(),
        2_000_000,
    );
    let r = Prober::staticWithCall::abi_decode_returns(&s.chain.dry_run(&[tx]).txs[0].output).unwrap();
    assert!(r.ok && R::existsCall::abi_decode_returns(&r.ret).unwrap());

    // DELEGATECALL is refused by both.
    for (target, data) in [(INFERENCE_ADDRESS, infer), (REGISTRY_ADDRESS, R::existsCall { modelId: s.id }.abi_encode())]
    {
        let tx = s.chain.tx(
            BOB,
            TxKind::Call(s.prober),
            Prober::delegateWithCall { target, data: data.into() }.abi_encode(),
            2_000_000,
        );
        let r = Prober::delegateWithCall::abi_decode_returns(&s.chain.dry_run(&[tx]).txs[0].output).unwrap();
        assert!(!r.ok);
        let sel = &r.ret[..4];
        assert!(sel == I::DelegateCallNotAllowed::SELECTOR || sel == R::DelegateCallNotAllowed::SELECTOR);
    }
}

#[test]
fn registry_rejects_bad_models_and_is_idempotent() {
    let mut s = setup();
    // Same bytes again: same id, no new event.
    let tx = s.chain.tx(
        BOB,
        TxKind::Call(REGISTRY_ADDRESS),
        R::registerCall { model: s.model.clone().into() }.abi_encode(),
        5_000_000,
    );
    let out = s.chain.dry_run(&[tx]);
    assert!(out.txs[0].success);
    assert_eq!(B256::from_slice(&out.txs[0].output), s.id);
    assert!(out.txs[0].receipt.logs().is_empty());

    let mut corrupt = s.model.clone();
    corrupt[0] ^= 0xff;
    let truncated = s.model[..100].to_vec();
    for bad in [corrupt, truncated, vec![]] {
        let (ok, ret) = probe(&mut s, REGISTRY_ADDRESS, R::registerCall { model: bad.into() }.abi_encode(), 5_000_000);
        assert!(!ok);
        match registry_error(&ret) {
            IModelRegistryErrors::ModelRejected(e) => assert!(!e.reason.is_empty()),
            e => panic!("unexpected {e:?}"),
        }
    }
    let (ok, ret) = probe(&mut s, REGISTRY_ADDRESS, R::modelInfoCall { modelId: B256::ZERO }.abi_encode(), 100_000);
    assert!(!ok);
    assert_eq!(registry_error(&ret), IModelRegistryErrors::UnknownModel(R::UnknownModel { modelId: B256::ZERO }));
}

#[test]
fn chunked_upload_across_blocks() {
    let case = model_cases("cancer-gbdt").remove(0);
    let id = keccak256(&case.model);
    let size = case.model.len() as u64;
    let mut chain = Chain::new();
    let begin =
        chain.tx(ALICE, TxKind::Call(REGISTRY_ADDRESS), R::beginUploadCall { modelId: id, size }.abi_encode(), 200_000);
    let chunks: Vec<&[u8]> = case.model.chunks(4096).collect();
    let first = chain.tx(
        ALICE,
        TxKind::Call(REGISTRY_ADDRESS),
        R::putChunkCall { modelId: id, offset: 0, chunk: chunks[0].to_vec().into() }.abi_encode(),
        1_000_000,
    );
    let b = chain.block(vec![begin, first]);
    assert!(b.txs.iter().all(|t| t.success), "{:?}", b.txs);

    // Out of order, someone else's upload, and early finalize are refused.
    let wrong = chain.tx(
        ALICE,
        TxKind::Call(REGISTRY_ADDRESS),
        R::putChunkCall { modelId: id, offset: 1, chunk: vec![0].into() }.abi_encode(),
        1_000_000,
    );
    let theirs = chain.tx(
        BOB,
        TxKind::Call(REGISTRY_ADDRESS),
        R::putChunkCall { modelId: id, offset: 4096, chunk: vec![0].into() }.abi_encode(),
        1_000_000,
    );
    let early =
        chain.tx(ALICE, TxKind::Call(REGISTRY_ADDRESS), R::finalizeUploadCall { modelId: id }.abi_encode(), 5_000_000);
    let b = chain.block(vec![wrong, theirs, early]);
    let errs: Vec<IModelRegistryErrors> = b
        .txs
        .iter()
        .map(|t| {
            assert!(!t.success);
            registry_error(&t.output)
        })
        .collect();
    assert_eq!(
        errs[0],
        IModelRegistryErrors::UploadOutOfOrder(R::UploadOutOfOrder { modelId: id, expected: 4096, got: 1 })
    );
    assert_eq!(errs[1], IModelRegistryErrors::UploadNotStarted(R::UploadNotStarted { modelId: id }));
    assert!(matches!(errs[2], IModelRegistryErrors::UploadIncomplete(_)));

    let mut txs = Vec::new();
    for (i, c) in chunks.iter().enumerate().skip(1) {
        txs.push(chain.tx(
            ALICE,
            TxKind::Call(REGISTRY_ADDRESS),
            R::putChunkCall { modelId: id, offset: (i * 4096) as u64, chunk: c.to_vec().into() }.abi_encode(),
            1_000_000,
        ));
    }
    let b = chain.block(txs);
    assert!(b.txs.iter().all(|t| t.success));
    let fin =
        chain.tx(ALICE, TxKind::Call(REGISTRY_ADDRESS), R::finalizeUploadCall { modelId: id }.abi_encode(), 5_000_000);
    let b = chain.block(vec![fin]);
    assert!(b.txs[0].success, "{:?}", b.txs[0]);
    assert_eq!(B256::from_slice(&b.txs[0].output), id);
    assert_eq!(chain.store.get(&id).as_deref(), Some(case.model.as_slice()), "the store holds the model after commit");
    let infer = chain.tx(
        BOB,
        TxKind::Call(INFERENCE_ADDRESS),
        I::inferCall { modelId: id, input: case.input.clone().into() }.abi_encode(),
        2_000_000,
    );
    let b = chain.block(vec![infer]);
    assert_eq!(I::inferCall::abi_decode_returns(&b.txs[0].output).unwrap().to_vec(), case.output);

    // A hash mismatch reverts with a decodable error (the upload stays open).
    let fake = B256::repeat_byte(3);
    let begin = chain.tx(
        BOB,
        TxKind::Call(REGISTRY_ADDRESS),
        R::beginUploadCall { modelId: fake, size: 3 }.abi_encode(),
        200_000,
    );
    let put = chain.tx(
        BOB,
        TxKind::Call(REGISTRY_ADDRESS),
        R::putChunkCall { modelId: fake, offset: 0, chunk: vec![1, 2, 3].into() }.abi_encode(),
        200_000,
    );
    let fin =
        chain.tx(BOB, TxKind::Call(REGISTRY_ADDRESS), R::finalizeUploadCall { modelId: fake }.abi_encode(), 500_000);
    let b = chain.block(vec![begin, put, fin]);
    assert_eq!(
        registry_error(&b.txs[2].output),
        IModelRegistryErrors::HashMismatch(R::HashMismatch { expected: fake, actual: keccak256([1u8, 2, 3]) })
    );
}

/// Issue 11: the inference precompile charges REJECT + warm + cold, read from the stored record,
/// before it loads or prepares the model. A node that lacks the model's bytes fails fatally only
/// once the call has paid for preparing it; with less gas the call runs out of gas first. (On
/// the old order, `engine_for` ran before the charge and the short call was fatal too.)
#[test]
fn preparation_is_charged_before_it_is_done() {
    use fixpoint_precompiles::{ModelStore, gas};
    let mut s = setup();
    let engine = fixpoint_ml::Engine::load(&s.model, &fixpoint_ml::Limits::default()).unwrap();
    let full = gas::REJECT
        + gas::warm_infer_gas(engine.cost(), engine.model().nodes.len() as u64)
        + gas::cold_surcharge(s.model.len() as u64);
    let data = I::inferCall { modelId: s.id, input: s.input.clone().into() }.abi_encode();
    let missing = std::sync::Arc::new(ModelStore::default());
    let call = |s: &mut Setup, gas: u64| {
        let call = Prober::callWithCall { target: INFERENCE_ADDRESS, data: data.clone().into(), gas: U256::from(gas) };
        let tx = s.chain.tx(BOB, TxKind::Call(s.prober), call.abi_encode(), 10_000_000);
        s.chain.nonces.clear();
        fixpoint_evm::execute_block(&s.chain.state, &missing, &s.chain.spec, &s.chain.env(), &[tx])
    };
    let short = call(&mut s, full - 1).expect("out of gas before preparing: no fatal error");
    let r = Prober::callWithCall::abi_decode_returns(&short.txs[0].output).unwrap();
    assert!(!r.ok && r.ret.is_empty(), "out of gas, not a revert");
    assert!(call(&mut s, full + 50_000).is_err(), "with the gas paid, the missing model is fatal");
}
