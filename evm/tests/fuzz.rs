//! Property tests over the precompiles' calldata and over model bytes submitted for
//! registration: whatever arrives, the block executes (no panic, no fatal error), the call
//! reverts or halts or succeeds, and gas is charged. Case counts: `PROPTEST_CASES` (default 256
//! per property); the closing note of each issue reports the total run.

mod common;

use alloy_primitives::{B256, TxKind, keccak256};
use alloy_sol_types::{SolCall, SolError};
use common::*;
use fixpoint_precompiles::abi::IInference as I;
use fixpoint_precompiles::abi::IModelRegistry as R;
use fixpoint_precompiles::{INFERENCE_ADDRESS, REGISTRY_ADDRESS};
use proptest::prelude::*;
use std::sync::OnceLock;

/// A chain with the digits model registered, shared by all cases (each case is a dry run).
fn base() -> &'static (std::sync::Mutex<Chain>, Vec<u8>, Vec<u8>) {
    static BASE: OnceLock<(std::sync::Mutex<Chain>, Vec<u8>, Vec<u8>)> = OnceLock::new();
    BASE.get_or_init(|| {
        let case = model_cases("digits-mlp").remove(0);
        let mut chain = Chain::new();
        let reg = chain.tx(
            ALICE,
            TxKind::Call(REGISTRY_ADDRESS),
            R::registerCall { model: case.model.clone().into() }.abi_encode(),
            5_000_000,
        );
        assert!(chain.block(vec![reg]).txs[0].success);
        (std::sync::Mutex::new(chain), case.model, case.input)
    })
}

/// Calldata shaped like real calls (right selector, plausible lengths) with random bytes mixed in.
fn calldata() -> impl Strategy<Value = (bool, Vec<u8>)> {
    let (_, _, input) = base();
    let id = keccak256(&base().1);
    let valid: Vec<Vec<u8>> = vec![
        I::inferCall { modelId: id, input: input.clone().into() }.abi_encode(),
        I::classifyCall { modelId: id, input: input.clone().into() }.abi_encode(),
        R::existsCall { modelId: id }.abi_encode(),
        R::modelInfoCall { modelId: id }.abi_encode(),
        R::modelIOCall { modelId: id }.abi_encode(),
        R::putChunkCall { modelId: B256::ZERO, offset: 0, chunk: vec![1, 2].into() }.abi_encode(),
    ];
    (
        any::<bool>(),
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            (0..valid.len(), proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8), 0usize..400).prop_map(
                move |(i, flips, cut)| {
                    let mut d = valid[i].clone();
                    for (at, v) in flips {
                        let n = d.len();
                        d[at % n] = v;
                    }
                    d.truncate(cut.max(4));
                    d
                }
            ),
        ],
    )
}

proptest! {
    #[test]
    fn any_calldata_is_handled((to_inference, data) in calldata(), gas in 21_000u64..3_000_000) {
        let mut chain = base().0.lock().unwrap_or_else(|e| e.into_inner());
        let to = if to_inference { INFERENCE_ADDRESS } else { REGISTRY_ADDRESS };
        let tx = chain.tx(BOB, TxKind::Call(to), data, gas.max(60_000));
        let out = chain.dry_run(&[tx]);
        prop_assert_eq!(out.txs.len(), 1);
        prop_assert!(out.txs[0].gas_used >= 21_000);
        if !out.txs[0].success {
            // Reverts carry an ABI error (selector + args) or nothing (out of gas).
            let o = &out.txs[0].output;
            prop_assert!(o.is_empty() || o.len() >= 4);
        }
    }

    #[test]
    fn any_model_bytes_are_handled(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in 0usize..20_000) {
        let model = &base().1;
        let mut m = model.clone();
        for (at, v) in flips {
            let n = m.len();
            m[at % n] = v;
        }
        m.truncate(cut.max(1).min(m.len()));
        // What the verifier says of these bytes, independently of the chain.
        let verdict = fixpoint_ml::Engine::load(&m, &fixpoint_ml::Limits::default()).map(|_| ());
        let mut chain = base().0.lock().unwrap_or_else(|e| e.into_inner());
        let tx = chain.tx(BOB, TxKind::Call(REGISTRY_ADDRESS), R::registerCall { model: m.clone().into() }.abi_encode(), 5_000_000);
        let out = chain.dry_run(&[tx]);
        prop_assert!(out.txs[0].gas_used >= 21_000);
        // Registration succeeds exactly when the verifier accepts, and a refusal carries the
        // verifier's reason.
        match verdict {
            Ok(()) => {
                prop_assert!(out.txs[0].success, "accepted by the verifier, refused by the chain");
                prop_assert_eq!(R::registerCall::abi_decode_returns(&out.txs[0].output).unwrap(), keccak256(&m));
            }
            Err(e) => {
                prop_assert!(!out.txs[0].success, "rejected by the verifier ({}), registered by the chain", e);
                let err = R::ModelRejected::abi_decode(&out.txs[0].output);
                prop_assert!(err.is_ok(), "revert is ModelRejected: {:?}", out.txs[0].output);
                prop_assert_eq!(err.unwrap().reason, e.to_string());
            }
        }
    }
}
