//! The validator's check, block by block: an honest proposal re-executes to the same roots on
//! a validator that has never seen the model before the block, and each byzantine variant (a
//! wrong state root, a wrong inference output, a wrong records root, a wrong gas figure, an
//! invalid or forged transaction, a block that does not extend its parent) is refused with its
//! reason. Block encoding round-trips and never panics on garbage.

mod common;

use std::sync::Arc;

use common::{model_case, signed_call as tx};

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_signer_local::PrivateKeySigner;
use alloy_sol_types::SolCall;
use commonware_codec::{Decode, Encode};
use commonware_cryptography::Digestible;
use fixpoint_consensus::{Block, BlockBody, BlockLimits, Executor, VerifyError};
use fixpoint_evm::{ChainSpec, WorldState};
use fixpoint_precompiles::abi::IInference as I;
use fixpoint_precompiles::abi::IModelRegistry as R;
use fixpoint_precompiles::{INFERENCE_ADDRESS, ModelStore, REGISTRY_ADDRESS};
use proptest::prelude::*;

fn key(i: u8) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&keccak256([i])).unwrap()
}

/// A validator: its own model store (empty at genesis), the genesis block and state.
struct Node {
    exec: Executor,
    genesis: Block,
    state: WorldState,
}

fn node() -> Node {
    let mut state = WorldState::new();
    for i in 0..3 {
        state.fund(key(i).address(), U256::from(10u128.pow(22)));
    }
    let exec = Executor {
        spec: ChainSpec::DEV,
        gas_limit: 30_000_000,
        limits: BlockLimits::default(),
        models: Arc::new(ModelStore::default()),
    };
    let genesis = Block::genesis(fixpoint_evm::state_root(&state), exec.gas_limit, 1_700_000_000, 1_000_000_000);
    Node { exec, genesis, state }
}

/// Block 1: register the model, call it (same block), call it again from another account.
fn txs() -> Vec<Bytes> {
    let (model, input, _) = model_case("digits-mlp");
    let id = keccak256(&model);
    let infer = I::inferCall { modelId: id, input: input.into() }.abi_encode();
    vec![
        tx(&key(0), 0, REGISTRY_ADDRESS, R::registerCall { model: model.into() }.abi_encode(), 10_000_000),
        tx(&key(1), 0, INFERENCE_ADDRESS, infer.clone(), 1_000_000),
        tx(&key(2), 0, INFERENCE_ADDRESS, infer, 1_000_000),
    ]
}

fn honest() -> (Block, Vec<fixpoint_precompiles::InferenceRecord>) {
    let leader = node();
    let (block, out) = leader.exec.propose(&leader.genesis, &leader.state, 1, 1_700_000_001, key(0).address(), &txs());
    assert_eq!(block.body().txs.len(), 3);
    assert_eq!(out.records.len(), 2);
    (block, out.records)
}

/// A proposer that tampers with its block after building it (re-sealing, so the digest matches).
fn tampered(block: &Block, f: impl FnOnce(&mut BlockBody)) -> Block {
    let mut body = block.body().clone();
    f(&mut body);
    Block::new(body)
}

#[test]
fn an_honest_block_verifies_on_a_validator_that_never_saw_the_model() {
    let (block, _) = honest();
    let v = node();
    let out = v.exec.verify(&v.genesis, &v.state, &block).expect("honest block");
    assert_eq!(out.state_root, block.body().state_root);
    let (_, _, output) = model_case("digits-mlp");
    assert!(out.records.iter().all(|r| r.output_hash == keccak256(&output)), "the vector's output");
    // Once verified and committed, the model is in that validator's store too.
    out.scope.commit(1);
    assert!(v.exec.models.get(&keccak256(model_case("digits-mlp").0)).is_some());
}

#[test]
fn byzantine_proposals_are_refused_with_their_reason() {
    let (block, records) = honest();
    let v = node();
    let check = |b: &Block| v.exec.verify(&v.genesis, &v.state, b);

    let r = check(&tampered(&block, |b| b.state_root = B256::repeat_byte(1)));
    assert!(matches!(r, Err(VerifyError::StateRoot { .. })), "{r:?}");
    // A wrong inference output: the proposer's engine answered differently, so the records it
    // commits to differ (for a direct call that stores nothing, only they do).
    let mut forged = records.clone();
    forged[0].output_hash = keccak256(b"another answer");
    let r = check(&tampered(&block, |b| b.records_root = fixpoint_evm::records_root(&forged)));
    assert!(matches!(r, Err(VerifyError::RecordsRoot { .. })), "{r:?}");
    let r = check(&tampered(&block, |b| b.receipts_root = B256::repeat_byte(2)));
    assert!(matches!(r, Err(VerifyError::ReceiptsRoot { .. })), "{r:?}");
    let r = check(&tampered(&block, |b| b.gas_used += 1));
    assert!(matches!(r, Err(VerifyError::GasUsed { .. })), "{r:?}");
    let r = check(&tampered(&block, |b| b.base_fee += 1));
    assert!(matches!(r, Err(VerifyError::BaseFee { .. })), "{r:?}");
    let r = check(&tampered(&block, |b| b.gas_limit += 1));
    assert!(matches!(r, Err(VerifyError::GasLimit { .. })), "{r:?}");
    let r = check(&tampered(&block, |b| b.height = 2));
    assert!(matches!(r, Err(VerifyError::NotAChild { .. })), "{r:?}");
    let r = check(&tampered(&block, |b| b.timestamp = 1_699_999_999));
    assert!(matches!(r, Err(VerifyError::Timestamp(_))), "{r:?}");
    // An invalid transaction: a nonce gap (the executor refuses it), a forged signature, junk.
    let gap = tx(&key(1), 5, Address::ZERO, vec![], 21_000);
    let r = check(&tampered(&block, |b| b.txs.push(gap)));
    assert!(
        matches!(&r, Err(VerifyError::Execution(m)) if m.contains("transaction 3") && m.contains("nonce")),
        "{r:?}"
    );
    let r = check(&tampered(&block, |b| b.txs.push(Bytes::from_static(b"\x02\xc0"))));
    assert!(matches!(r, Err(VerifyError::BadTransaction { index: 3, .. })), "{r:?}");
    // A damaged signature recovers another sender (an unfunded account, refused by the executor)
    // or none at all (refused on decoding): which one is fixed by the bytes, so check exactly it.
    let mut forged_sig = block.body().txs[1].to_vec();
    let last = forged_sig.len() - 2;
    forged_sig[last] ^= 0xff;
    let recovered = {
        use alloy_consensus::transaction::SignerRecoverable;
        use alloy_eips::eip2718::Decodable2718;
        alloy_consensus::TxEnvelope::decode_2718(&mut forged_sig.as_slice()).ok().and_then(|t| t.recover_signer().ok())
    };
    let r = check(&tampered(&block, |b| b.txs[1] = forged_sig.into()));
    match recovered {
        Some(other) => {
            assert_ne!(other, key(1).address());
            assert!(
                matches!(&r, Err(VerifyError::Execution(m)) if m.contains("transaction 1") && m.contains("funds")),
                "{r:?}"
            );
        }
        None => assert!(matches!(r, Err(VerifyError::BadTransaction { index: 1, .. })), "{r:?}"),
    }
    // And the honest block still verifies after all of it (nothing was mutated).
    assert!(check(&block).is_ok());
}

#[test]
fn the_leader_leaves_out_what_cannot_be_included() {
    let leader = node();
    let mut candidates = txs();
    candidates.insert(1, Bytes::from_static(b"junk"));
    candidates.push(tx(&key(1), 7, Address::ZERO, vec![], 21_000)); // nonce gap
    let (block, _) = leader.exec.propose(&leader.genesis, &leader.state, 1, 0, Address::ZERO, &candidates);
    assert_eq!(block.body().txs, txs());
    assert_eq!(block.body().timestamp, leader.genesis.body().timestamp, "never before the parent's");
    let v = node();
    assert!(v.exec.verify(&v.genesis, &v.state, &block).is_ok());
}

#[test]
fn transactions_that_could_never_fit_are_refused_not_the_rest_of_the_block() {
    let leader = node();
    let pending = |raw: Bytes| fixpoint_consensus::PendingTx::decode(raw).unwrap();
    // A gas limit above the block's: never admitted to the pending set, and if offered anyway,
    // the leader drops it and still includes what follows.
    let huge = tx(&key(0), 0, Address::ZERO, vec![], 40_000_000);
    let env = leader.exec.next_env(&leader.genesis);
    assert!(leader.exec.admits(&pending(huge.clone()), &env).is_err());
    assert!(leader.exec.admits(&pending(tx(&key(0), 0, Address::ZERO, vec![], 21_000)), &env).is_ok());
    let candidates: Vec<_> = [huge.clone(), tx(&key(1), 0, Address::ZERO, vec![], 21_000)].map(pending).into();
    let (block, _, refused) = leader.exec.build(&leader.genesis, &leader.state, 1, 0, Address::ZERO, candidates);
    assert_eq!(block.body().txs, vec![tx(&key(1), 0, Address::ZERO, vec![], 21_000)]);
    assert_eq!(refused, vec![pending(huge).hash()]);
    // One the executor refuses (key 5 holds nothing) is reported; the block is full otherwise.
    let broke = tx(&key(5), 0, Address::ZERO, vec![], 21_000);
    let (block, _, refused) =
        leader.exec.build(&leader.genesis, &leader.state, 1, 0, Address::ZERO, vec![pending(broke.clone())]);
    assert!(block.body().txs.is_empty());
    assert_eq!(refused, vec![pending(broke).hash()]);
}

#[test]
fn offered_transactions_are_pending_once_and_never_fitting_ones_refused() {
    use fixpoint_consensus::Shared;
    use fixpoint_consensus::mempool::Offered;
    let n = node();
    let shared = Shared::new(n.exec, &n.genesis, n.state, Address::ZERO);
    let pending = |raw: Bytes| fixpoint_consensus::PendingTx::decode(raw).unwrap();
    let t = pending(tx(&key(0), 0, Address::ZERO, vec![], 21_000));
    assert_eq!(shared.offer(t.clone()), Offered::Added);
    assert_eq!(shared.offer(t), Offered::Known, "gossiped twice");
    assert!(matches!(shared.offer(pending(tx(&key(0), 1, Address::ZERO, vec![], 40_000_000))), Offered::Refused(_)));
    assert_eq!(shared.pending(), 1);
}

/// Finding 4 of issue 11: a lightly funded account floods the validators with transactions it
/// cannot pay for together. Admission checks the sender's pending transactions cumulatively
/// (as revm will when it executes them one after the other), so only those it can pay for are
/// pending and the leader's block holds exactly them, refusing nothing.
#[test]
fn a_flood_of_unaffordable_transactions_is_refused_on_arrival() {
    use fixpoint_consensus::Shared;
    use fixpoint_consensus::mempool::{Offered, Refusal};
    use revm::context_interface::result::InvalidTransaction;
    let mut n = node();
    let poor = key(6);
    let per_tx = U256::from(21_000u64) * U256::from(100_000_000_000u64); // gas · max fee
    n.state.fund(poor.address(), per_tx * U256::from(10));
    let (genesis_state, genesis) = (n.state.clone(), n.genesis.clone());
    let leader = node();
    let shared = Shared::new(n.exec, &genesis, n.state, Address::ZERO);
    let pending = |raw: Bytes| fixpoint_consensus::PendingTx::decode(raw).unwrap();
    let mut added = 0;
    for nonce in 0..10_000u64 {
        match shared.offer(pending(tx(&poor, nonce, Address::ZERO, vec![], 21_000))) {
            Offered::Added => added += 1,
            Offered::Refused(Refusal::Invalid(InvalidTransaction::LackOfFundForMaxFee { .. })) => {
                assert!(nonce >= 10)
            }
            Offered::Refused(Refusal::SenderFull { .. }) => assert!(nonce >= 1_024),
            other => panic!("nonce {nonce}: {other:?}"),
        }
    }
    assert_eq!(added, 10);
    assert_eq!(shared.pending(), 10);
    let candidates = shared.candidates(&genesis_state);
    let (block, _, refused) = leader.exec.build(&genesis, &genesis_state, 1, 0, Address::ZERO, candidates);
    assert_eq!(block.body().txs.len(), 10);
    assert!(refused.is_empty());
}

/// A sender may hold at most MAX_PER_SENDER pending transactions, however rich.
#[test]
fn pending_transactions_per_sender_are_capped() {
    use fixpoint_consensus::Shared;
    use fixpoint_consensus::mempool::MAX_PER_SENDER;
    use fixpoint_consensus::mempool::{Offered, Refusal};
    let n = node();
    let shared = Shared::new(n.exec, &n.genesis, n.state, Address::ZERO);
    let pending = |raw: Bytes| fixpoint_consensus::PendingTx::decode(raw).unwrap();
    for nonce in 0..MAX_PER_SENDER {
        assert_eq!(shared.offer(pending(tx(&key(0), nonce, Address::ZERO, vec![], 21_000))), Offered::Added);
    }
    let over = shared.offer(pending(tx(&key(0), MAX_PER_SENDER, Address::ZERO, vec![], 21_000)));
    assert!(matches!(over, Offered::Refused(Refusal::SenderFull { .. })), "{over:?}");
    // A replacement at a pending nonce needs 10 % more fee, then takes the slot.
    let same_fee = shared.offer(pending(tx(&key(0), 5, Address::repeat_byte(1), vec![], 21_000)));
    assert_eq!(same_fee, Offered::Refused(Refusal::Underpriced));
    assert_eq!(shared.pending(), MAX_PER_SENDER as usize);
}

#[test]
fn encoding_round_trips_and_respects_limits() {
    let (block, _) = honest();
    let bytes = block.encode();
    let back = Block::decode_cfg(bytes.to_vec(), &BlockLimits::default()).unwrap();
    assert_eq!(back, block);
    assert_eq!(back.digest(), block.digest());
    assert_eq!(back.encode(), bytes, "canonical");
    let tight = BlockLimits { max_txs: 2, max_tx_bytes: 1 << 20 };
    assert!(Block::decode_cfg(bytes.to_vec(), &tight).is_err());
    let small = BlockLimits { max_txs: 10, max_tx_bytes: 100 };
    assert!(Block::decode_cfg(bytes.to_vec(), &small).is_err());
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert!(Block::decode_cfg(longer, &BlockLimits::default()).is_err(), "trailing bytes");
    for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
        assert!(Block::decode_cfg(bytes[..cut].to_vec(), &BlockLimits::default()).is_err());
    }
}

proptest! {
    #[test]
    fn decoding_garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Block::decode_cfg(data, &BlockLimits::default());
    }

    /// Random bytes rarely get past the length prefixes: mutate a valid encoding instead (flip,
    /// overwrite, insert, cut), so decoding is exercised deep inside. Whatever decodes is
    /// canonical: it re-encodes to exactly the bytes it came from.
    #[test]
    fn decoding_mutated_blocks_never_panics_and_what_decodes_is_canonical(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..8)
    ) {
        let mut bytes = encoded_honest().to_vec();
        for (at, byte, kind) in edits {
            if bytes.is_empty() { break; }
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] ^= byte | 1,
                1 => bytes[i] = byte,
                2 => bytes.insert(i, byte),
                _ => bytes.truncate(i),
            }
        }
        if let Ok(b) = Block::decode_cfg(bytes.clone(), &BlockLimits::default()) {
            prop_assert_eq!(b.encode().to_vec(), bytes);
        }
    }
}

/// The honest block's encoding, built once.
fn encoded_honest() -> &'static [u8] {
    static ENCODED: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    ENCODED.get_or_init(|| honest().0.encode().to_vec())
}

/// Issue 11, finding 3, at the executor: validator A verifies a proposal that finalizes an upload
/// (and keeps it, as every validator does for a block it votes for); the proposal is never
/// finalized. Leader B's canonical block on the same parent has the same transaction: A verifies
/// it and reaches B's roots, and once it is final A holds no chunk any more.
#[test]
fn a_verified_but_dropped_finalize_does_not_stop_the_validator_verifying_the_canonical_one() {
    use fixpoint_consensus::Executed;
    let (model, _, _) = model_case("digits-mlp");
    let id = keccak256(&model);
    let mut upload = vec![tx(
        &key(0),
        0,
        REGISTRY_ADDRESS,
        R::beginUploadCall { modelId: id, size: model.len() as u64 }.abi_encode(),
        1_000_000,
    )];
    for (i, c) in model.chunks(4096).enumerate() {
        let put = R::putChunkCall { modelId: id, offset: (i * 4096) as u64, chunk: c.to_vec().into() };
        upload.push(tx(&key(0), upload.len() as u64, REGISTRY_ADDRESS, put.abi_encode(), 2_000_000));
    }
    let fin = tx(
        &key(0),
        upload.len() as u64,
        REGISTRY_ADDRESS,
        R::finalizeUploadCall { modelId: id }.abi_encode(),
        10_000_000,
    );
    let (a, b) = (node(), node());
    // Block 1 (final on both): the upload.
    let (b1, out) = b.exec.propose(&b.genesis, &b.state, 1, 1_700_000_001, key(1).address(), &upload);
    assert_eq!(b1.body().txs.len(), upload.len());
    let on_b = Executed::new(1, out, Default::default());
    on_b.finalize_models(&b.exec.models);
    let on_a = Executed::new(1, a.exec.verify(&a.genesis, &a.state, &b1).expect("block 1"), Default::default());
    on_a.finalize_models(&a.exec.models);
    // Block 2 from a leader that reached only A: verified and kept there, never finalized.
    let (fork, _) = a.exec.propose(&b1, &on_a.state, 2, 1_700_000_002, key(2).address(), std::slice::from_ref(&fin));
    let kept = Executed::new(2, a.exec.verify(&b1, &on_a.state, &fork).expect("fork verifies"), Default::default());
    assert!(kept.txs[0].success);
    assert!(a.exec.models.get(&id).is_some(), "A executed the dropped finalize");
    // The canonical block 2, built by B who never saw the fork.
    let (b2, out) = b.exec.propose(&b1, &on_b.state, 3, 1_700_000_003, key(1).address(), &[fin]);
    assert_eq!(b2.body().txs.len(), 1, "B includes the finalize");
    assert!(out.txs[0].success);
    let verified = a.exec.verify(&b1, &on_a.state, &b2);
    assert!(verified.is_ok(), "A refuses the canonical block: {:?}", verified.err());
    // `verify` succeeding means A re-executed B's block to B's state, receipts and records roots.
    let final_a = Executed::new(2, verified.unwrap(), Default::default());
    assert!(final_a.txs[0].success);
    final_a.finalize_models(&a.exec.models);
    assert_eq!(a.exec.models.chunk_count(), 0, "the finalized upload's chunks are gone");
}
