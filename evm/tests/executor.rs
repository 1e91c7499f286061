//! The block executor as consensus uses it: the same parent and block give the same roots on
//! any node (even one that has never seen the model's bytes before the block), receipts and
//! blooms are Ethereum's, invalid blocks are refused without touching the parent, and the header
//! roots commit to exactly what was executed.

mod common;

use alloy_consensus::proofs::calculate_receipt_root;
use alloy_consensus::transaction::Recovered;
use alloy_consensus::{Transaction as _, TxEnvelope, TxReceipt};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{Address, B256, Bloom, BloomInput, TxKind, U256, keccak256, logs_bloom};
use alloy_sol_types::{SolCall, SolEvent, SolValue, sol};
use alloy_trie::EMPTY_ROOT_HASH;
use common::*;
use fixpoint_evm::{
    BlockEnvInput, BlockOutcome, ExecError, RefusedReason, build_block, execute_block, records_root, state_root,
};
use fixpoint_precompiles::abi::IInference as I;
use fixpoint_precompiles::abi::IModelRegistry as R;
use fixpoint_precompiles::{INFERENCE_ADDRESS, ModelStore, REGISTRY_ADDRESS};
use revm::context_interface::result::{EVMError, InvalidTransaction};
use std::sync::Arc;

sol! {
    contract DigitRecognizer {
        event DigitRecognized(bytes32 indexed imageHash, address indexed submitter, uint8 digit, int32 logit);
        function recognize(uint8[64] pixels) external returns (uint8 digit);
    }
}

/// A chain where block 1 registered the digits model and deployed the DigitRecognizer dapp.
struct Setup {
    chain: Chain,
    app: Address,
    id: B256,
    input: Vec<u8>,
    label: i32,
}

/// Block 1's transactions: Alice registers `model` and deploys a DigitRecognizer bound to it.
fn register_and_deploy(chain: &mut Chain, model: Vec<u8>) -> Vec<Recovered<TxEnvelope>> {
    let id = keccak256(&model);
    let reg = chain.tx(
        ALICE,
        TxKind::Call(REGISTRY_ADDRESS),
        R::registerCall { model: model.into() }.abi_encode(),
        5_000_000,
    );
    let mut code = artifact("DigitRecognizer.sol", "DigitRecognizer").to_vec();
    code.extend_from_slice(&id.abi_encode());
    vec![reg, chain.tx(ALICE, TxKind::Create, code, 3_000_000)]
}

fn setup() -> Setup {
    let case = model_cases("digits-mlp").remove(0);
    let id = keccak256(&case.model);
    let mut chain = Chain::new();
    let txs1 = register_and_deploy(&mut chain, case.model);
    let b = chain.block(txs1);
    assert!(b.txs.iter().all(|t| t.success), "setup block");
    let label = i32::from_le_bytes(case.output[..4].try_into().expect("label"));
    Setup { app: b.txs[1].contract_address.expect("created"), chain, id, input: case.input, label }
}

fn pixels(input: &[u8]) -> [u8; 64] {
    input.try_into().expect("64 pixels")
}

/// A mixed block: a transfer, two recognitions through the dapp, a direct inference, a call
/// that reverts inside the precompile (unknown model).
fn mixed_block(s: &mut Setup) -> Vec<Recovered<TxEnvelope>> {
    let recognize = DigitRecognizer::recognizeCall { pixels: pixels(&s.input) }.abi_encode();
    let infer = I::inferCall { modelId: s.id, input: s.input.clone().into() }.abi_encode();
    let unknown = I::inferCall { modelId: B256::repeat_byte(0x22), input: s.input.clone().into() }.abi_encode();
    vec![
        s.chain.tx(ALICE, TxKind::Call(BOB), Vec::new(), 21_000),
        s.chain.tx(ALICE, TxKind::Call(s.app), recognize.clone(), 1_000_000),
        s.chain.tx(BOB, TxKind::Call(s.app), recognize, 1_000_000),
        s.chain.tx(BOB, TxKind::Call(INFERENCE_ADDRESS), infer, 1_000_000),
        s.chain.tx(ALICE, TxKind::Call(INFERENCE_ADDRESS), unknown, 1_000_000),
    ]
}

fn fingerprint(o: &BlockOutcome) -> (B256, B256, B256, u64, Bloom, Vec<Vec<u8>>) {
    let receipts = o.txs.iter().map(|t| t.receipt.encoded_2718()).collect();
    (o.state_root, o.receipts_root, o.records_root, o.gas_used, o.logs_bloom, receipts)
}

#[test]
fn re_execution_on_another_node_gives_identical_roots() {
    let mut s = setup();
    let txs = mixed_block(&mut s);
    let env = s.chain.env();
    let first = execute_block(&s.chain.state, &s.chain.store, &s.chain.spec, &env, &txs).unwrap();
    let again = execute_block(&s.chain.state, &s.chain.store, &s.chain.spec, &env, &txs).unwrap();
    assert_eq!(fingerprint(&first), fingerprint(&again));
    assert_eq!(first.records, again.records);

    // A validator whose model store lost the bytes cannot execute, but one that received the
    // block registering the model (here: replaying both blocks from genesis) agrees exactly.
    let mut fresh = Chain::new();
    let txs1 = register_and_deploy(&mut fresh, model_cases("digits-mlp").remove(0).model);
    fresh.block(txs1);
    assert_eq!(state_root(&fresh.state), state_root(&s.chain.state));
    let replayed = execute_block(&fresh.state, &fresh.store, &fresh.spec, &env, &txs).unwrap();
    assert_eq!(fingerprint(&first), fingerprint(&replayed));

    // The parent is untouched by execution.
    assert_eq!(state_root(&s.chain.state), state_root(&fresh.state));
}

#[test]
fn receipts_gas_fees_and_bloom_are_ethereums() {
    let mut s = setup();
    let txs = mixed_block(&mut s);
    let env = s.chain.env();
    let out = execute_block(&s.chain.state, &s.chain.store, &s.chain.spec, &env, &txs).unwrap();
    let status: Vec<bool> = out.txs.iter().map(|t| t.success).collect();
    assert_eq!(status, [true, true, true, true, false], "the unknown-model call reverts");
    assert_eq!(out.txs[0].gas_used, 21_000, "a plain transfer");

    // Cumulative gas is the running sum of each transaction's gas, ending at the block's.
    let mut sum = 0;
    for t in &out.txs {
        sum += t.gas_used;
        assert_eq!(t.receipt.cumulative_gas_used(), sum);
    }
    assert_eq!(out.gas_used, sum);
    assert_eq!(
        out.receipts_root,
        calculate_receipt_root(&out.txs.iter().map(|t| t.receipt.clone()).collect::<Vec<_>>())
    );
    assert_eq!(out.state_root, state_root(&out.state));

    // Logs: one DigitRecognized per recognition, none from reverted or log-less calls; the
    // block bloom is the union of the receipts' and finds the dapp and the event.
    let logs: Vec<usize> = out.txs.iter().map(|t| t.receipt.logs().len()).collect();
    assert_eq!(logs, [0, 1, 1, 0, 0]);
    let log = &out.txs[1].receipt.logs()[0];
    assert_eq!(log.address, s.app);
    let ev = DigitRecognizer::DigitRecognized::decode_log_data(&log.data).unwrap();
    assert_eq!(ev.submitter, ALICE);
    assert_eq!(i32::from(ev.digit), s.label, "the vector's expected label");
    let union = out.txs.iter().fold(Bloom::ZERO, |b, t| b | t.receipt.bloom());
    assert_eq!(out.logs_bloom, union);
    assert!(out.logs_bloom.contains_input(BloomInput::Raw(s.app.as_slice())));
    assert!(
        out.logs_bloom.contains_input(BloomInput::Raw(DigitRecognizer::DigitRecognized::SIGNATURE_HASH.as_slice()))
    );
    assert!(!out.logs_bloom.contains_input(BloomInput::Raw(Address::repeat_byte(0x77).as_slice())));
    assert_eq!(out.txs[1].receipt.bloom(), logs_bloom(out.txs[1].receipt.logs()));

    // Fees: senders pay gas × (base fee + tip), the beneficiary gets the tips, the base fee burns.
    let before = |a: Address| s.chain.state.balance(&a);
    let after = |a: Address| out.state.balance(&a);
    let paid = |from: Address| -> u64 { out.txs.iter().filter(|t| t.from == from).map(|t| t.gas_used).sum() };
    let price = U256::from(env.base_fee + 1);
    assert_eq!(before(ALICE) - after(ALICE), U256::from(paid(ALICE)) * price);
    assert_eq!(before(BOB) - after(BOB), U256::from(paid(BOB)) * price);
    assert_eq!(after(env.beneficiary) - before(env.beneficiary), U256::from(out.gas_used), "tip of 1 wei per gas");

    // The records: the two recognitions and the direct call, by transaction index; the call to
    // an unknown model ran no inference and has none.
    let by_tx: Vec<u32> = out.records.iter().map(|r| r.tx_index).collect();
    assert_eq!(by_tx, [1, 2, 3]);
    assert!(out.records.iter().all(|r| r.model_id == s.id && r.input_hash == keccak256(&s.input)));
}

#[test]
fn an_invalid_transaction_refuses_the_block_and_leaves_the_parent() {
    let mut s = setup();
    let root = state_root(&s.chain.state);
    let env = s.chain.env();
    let ok = s.chain.tx(ALICE, TxKind::Call(BOB), Vec::new(), 21_000);
    let n = ok.inner().nonce(); // ALICE's nonce on the parent
    // Nonce gap: skip one.
    s.chain.tx(ALICE, TxKind::Call(BOB), Vec::new(), 21_000);
    let gap = s.chain.tx(ALICE, TxKind::Call(BOB), Vec::new(), 21_000);
    match execute_block(&s.chain.state, &s.chain.store, &s.chain.spec, &env, &[ok.clone(), gap]) {
        Err(ExecError::InvalidTx {
            index: 1,
            reason: EVMError::Transaction(InvalidTransaction::NonceTooHigh { tx, state }),
        }) if (tx, state) == (n + 2, n + 1) => {}
        other => panic!("expected a nonce error, got {other:?}"),
    }
    // A sender without funds for gas.
    let broke = s.chain.tx(Address::repeat_byte(0x99), TxKind::Call(BOB), Vec::new(), 21_000);
    match execute_block(&s.chain.state, &s.chain.store, &s.chain.spec, &env, &[ok.clone(), broke]) {
        Err(ExecError::InvalidTx {
            index: 1,
            reason: EVMError::Transaction(InvalidTransaction::LackOfFundForMaxFee { .. }),
        }) => {}
        other => panic!("expected insufficient funds, got {other:?}"),
    }
    // A replayed transaction (its nonce is used by the first copy).
    match execute_block(&s.chain.state, &s.chain.store, &s.chain.spec, &env, &[ok.clone(), ok]) {
        Err(ExecError::InvalidTx {
            index: 1,
            reason: EVMError::Transaction(InvalidTransaction::NonceTooLow { tx, state }),
        }) if (tx, state) == (n, n + 1) => {}
        other => panic!("expected the replay refused, got {other:?}"),
    }
    assert_eq!(state_root(&s.chain.state), root, "refused blocks leave the parent as it was");
}

/// A proposer builds in one pass: a refused transaction (nonce gap, no funds, replay) is left
/// out without touching the state or the records, the rest of every sender still goes in, and
/// re-executing what was included gives exactly the built block.
#[test]
fn building_leaves_refused_transactions_out_in_one_pass() {
    let mut s = setup();
    let env = s.chain.env();
    let infer = I::inferCall { modelId: s.id, input: s.input.clone().into() }.abi_encode();
    let a0 = s.chain.tx(ALICE, TxKind::Call(INFERENCE_ADDRESS), infer.clone(), 1_000_000);
    let n = a0.inner().nonce(); // ALICE's nonce on the parent
    s.chain.tx(ALICE, TxKind::Call(BOB), Vec::new(), 21_000); // nonce 1, never sent
    let a_gap = s.chain.tx(ALICE, TxKind::Call(BOB), Vec::new(), 21_000);
    let broke = s.chain.tx(Address::repeat_byte(0x99), TxKind::Call(INFERENCE_ADDRESS), infer.clone(), 1_000_000);
    let b0 = s.chain.tx(BOB, TxKind::Call(INFERENCE_ADDRESS), infer, 1_000_000);
    let huge = s.chain.tx(BOB, TxKind::Call(ALICE), Vec::new(), env.gas_limit + 1);
    let candidates = vec![a0.clone(), a_gap, broke, a0.clone(), b0.clone(), huge];
    let built = build_block(&s.chain.state, &s.chain.store, &s.chain.spec, &env, &candidates, 100);
    assert_eq!(built.included, vec![0, 4]);
    assert_eq!(built.refused.iter().map(|r| r.index).collect::<Vec<_>>(), vec![1, 2, 3, 5]);
    let rejected = |e| RefusedReason::Rejected(EVMError::Transaction(e));
    assert_eq!(built.refused[0].reason, rejected(InvalidTransaction::NonceTooHigh { tx: n + 2, state: n + 1 }));
    assert!(
        matches!(
            &built.refused[1].reason,
            RefusedReason::Rejected(EVMError::Transaction(InvalidTransaction::LackOfFundForMaxFee { balance, .. }))
                if balance.is_zero()
        ),
        "{:?}",
        built.refused[1]
    );
    assert_eq!(built.refused[2].reason, rejected(InvalidTransaction::NonceTooLow { tx: n, state: n + 1 }));
    assert_eq!(built.refused[3].reason, RefusedReason::GasLimit { tx_gas: env.gas_limit + 1, limit: env.gas_limit });
    assert_eq!(built.outcome.records.len(), 2);
    assert_eq!(built.outcome.records[1].tx_index, 1, "records are numbered by position in the block");
    let again = execute_block(&s.chain.state, &s.chain.store, &s.chain.spec, &env, &[a0, b0]).unwrap();
    assert_eq!(fingerprint(&built.outcome), fingerprint(&again));
    assert_eq!(built.outcome.records, again.records);
    // The transaction limit stops building.
    let one = build_block(&s.chain.state, &s.chain.store, &s.chain.spec, &env, &candidates, 1);
    assert_eq!(one.included, vec![0]);
}

#[test]
fn block_gas_limit_counts_gas_used_before_and_the_next_limit() {
    let mut s = setup();
    let env = BlockEnvInput { gas_limit: 100_000, ..s.chain.env() };
    // Each transfer uses 21,000 but reserves 40,000: 0 + 40k, 21k + 40k, 42k + 40k fit;
    // 63k + 40k = 103k does not, although 4 × 21k = 84k would.
    let txs: Vec<_> = (0..4).map(|_| s.chain.tx(ALICE, TxKind::Call(BOB), Vec::new(), 40_000)).collect();
    let ok = execute_block(&s.chain.state, &s.chain.store, &s.chain.spec, &env, &txs[..3]).unwrap();
    assert_eq!(ok.gas_used, 63_000);
    match execute_block(&s.chain.state, &s.chain.store, &s.chain.spec, &env, &txs) {
        Err(ExecError::BlockGasLimit { index: 3, used: 63_000, tx_gas: 40_000, limit: 100_000 }) => {}
        other => panic!("expected the block gas limit, got {other:?}"),
    }
}

#[test]
fn roots_commit_to_the_records_and_an_empty_block_has_empty_roots() {
    let mut s = setup();
    let env = s.chain.env();
    let empty = execute_block(&s.chain.state, &s.chain.store, &s.chain.spec, &env, &[]).unwrap();
    assert_eq!(empty.receipts_root, EMPTY_ROOT_HASH);
    assert_eq!(empty.records_root, EMPTY_ROOT_HASH);
    assert_eq!(empty.gas_used, 0);
    assert_eq!(empty.logs_bloom, Bloom::ZERO);
    assert_eq!(empty.state_root, state_root(&s.chain.state), "nothing changed");

    let txs = mixed_block(&mut s);
    let out = execute_block(&s.chain.state, &s.chain.store, &s.chain.spec, &env, &txs).unwrap();
    assert_eq!(out.records.len(), 3);
    assert_eq!(out.records_root, records_root(&out.records));
    assert_ne!(out.records_root, EMPTY_ROOT_HASH);
    // Any change to a record, or to their order, changes the root a header commits to.
    let mut forged = out.records.clone();
    forged[1].output_hash = B256::repeat_byte(0x01);
    assert_ne!(records_root(&forged), out.records_root);
    let mut swapped = out.records.clone();
    swapped.swap(0, 2);
    assert_ne!(records_root(&swapped), out.records_root);
    // A block with one inference fewer commits to fewer records.
    let shorter = execute_block(&s.chain.state, &s.chain.store, &s.chain.spec, &env, &txs[..3]).unwrap();
    assert_eq!(shorter.records, out.records[..2]);
    assert_ne!(shorter.records_root, out.records_root);
}

#[test]
fn a_model_registered_in_the_block_is_usable_later_in_the_same_block() {
    // A node with an empty model store executes a block that registers then uses a model:
    // the bytes travel in the block, so any node can verify it.
    let case = model_cases("digits-mlp").remove(0);
    let id = keccak256(&case.model);
    let mut chain = Chain::new();
    let reg = chain.tx(
        ALICE,
        TxKind::Call(REGISTRY_ADDRESS),
        R::registerCall { model: case.model.into() }.abi_encode(),
        5_000_000,
    );
    let use_it = chain.tx(
        BOB,
        TxKind::Call(INFERENCE_ADDRESS),
        I::inferCall { modelId: id, input: case.input.into() }.abi_encode(),
        1_000_000,
    );
    let env = chain.env();
    let store = Arc::new(ModelStore::default());
    let out = execute_block(&chain.state, &store, &chain.spec, &env, &[reg, use_it]).unwrap();
    assert!(out.txs.iter().all(|t| t.success));
    assert_eq!(out.txs[1].output, I::inferCall::abi_encode_returns(&case.output.clone().into()));
    assert_eq!(out.records.len(), 1);
    assert_eq!(out.records[0].output_hash, keccak256(&case.output));
    assert!(store.get(&id).is_none(), "nothing reaches the store before the block is committed");
    out.scope.commit(1);
    assert!(store.get(&id).is_some());
}
