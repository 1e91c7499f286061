//! Chunked uploads are fork-safe (issue 11, finding 3): a validator executes blocks that are never
//! finalized (proposals it verified, forks that lost), and none of them may change what the
//! canonical chain computes. Each test runs a node that executed a dropped fork next to a node
//! that never saw it; both must agree on every canonical block.

mod common;

use alloy_consensus::TxEnvelope;
use alloy_consensus::transaction::Recovered;
use alloy_primitives::{Address, B256, TxKind, keccak256};
use alloy_sol_types::{SolCall, SolEvent, SolInterface};
use common::{ALICE, Chain, model_cases};
use fixpoint_evm::{BlockOutcome, execute_block};
use fixpoint_precompiles::REGISTRY_ADDRESS;
use fixpoint_precompiles::abi::IModelRegistry as R;

const CHUNK: usize = 4096;

fn call(chain: &mut Chain, from: Address, data: Vec<u8>) -> Recovered<TxEnvelope> {
    chain.tx(from, TxKind::Call(REGISTRY_ADDRESS), data, 5_000_000)
}

fn put(chain: &mut Chain, id: B256, i: usize, chunk: &[u8]) -> Recovered<TxEnvelope> {
    let data = R::putChunkCall { modelId: id, offset: (i * CHUNK) as u64, chunk: chunk.to_vec().into() }.abi_encode();
    call(chain, ALICE, data)
}

/// Executes `txs` on the node's current head as a block that is committed to the model store
/// (as consensus does for every block it builds or verifies) and then dropped.
fn dropped_fork(chain: &mut Chain, txs: &[Recovered<TxEnvelope>]) -> BlockOutcome {
    chain.nonces.clear();
    let out = execute_block(&chain.state, &chain.store, &chain.spec, &chain.env(), txs).expect("fork executes");
    common::commit_scope(&out, chain.number + 1);
    out
}

/// Executes `txs` as the next canonical block, or says why the node cannot.
fn canonical(chain: &mut Chain, txs: Vec<Recovered<TxEnvelope>>) -> BlockOutcome {
    let out = execute_block(&chain.state, &chain.store, &chain.spec, &chain.env(), &txs);
    assert!(out.is_ok(), "the canonical block fails on this node: {:?}", out.err());
    chain.block(txs)
}

/// Two nodes with ALICE's upload of the GBDT model open and its first chunk received.
fn two_nodes() -> (Chain, Chain, B256, Vec<u8>) {
    let model = model_cases("cancer-gbdt").remove(0).model;
    assert!(model.len() > 2 * CHUNK);
    let id = keccak256(&model);
    let mut nodes = [Chain::new(), Chain::new()].map(|mut c| {
        let begin = call(&mut c, ALICE, R::beginUploadCall { modelId: id, size: model.len() as u64 }.abi_encode());
        let first = put(&mut c, id, 0, &model[..CHUNK]);
        let b = c.block(vec![begin, first]);
        assert!(b.txs.iter().all(|t| t.success), "{:?}", b.txs);
        c
    });
    let [a, b] = std::mem::take(&mut nodes);
    (a, b, id, model)
}

fn rest(chain: &mut Chain, id: B256, model: &[u8]) -> Vec<Recovered<TxEnvelope>> {
    model.chunks(CHUNK).enumerate().skip(1).map(|(i, c)| put(chain, id, i, c)).collect()
}

fn same(a: &BlockOutcome, b: &BlockOutcome) {
    assert_eq!(a.state_root, b.state_root);
    assert_eq!(a.receipts_root, b.receipts_root);
    assert_eq!(a.gas_used, b.gas_used);
}

#[test]
fn a_dropped_fork_that_finalized_an_upload_does_not_change_the_canonical_block() {
    let (mut seen, mut clean, id, model) = two_nodes();
    for c in [&mut seen, &mut clean] {
        let txs = rest(c, id, &model);
        let b = c.block(txs);
        assert!(b.txs.iter().all(|t| t.success));
    }
    // Block A on P finalizes the upload; `seen` verified it, then the network moved on.
    let fin = call(&mut seen, ALICE, R::finalizeUploadCall { modelId: id }.abi_encode());
    let a = dropped_fork(&mut seen, std::slice::from_ref(&fin));
    assert!(a.txs[0].success, "{:?}", a.txs[0]);
    // The canonical block B on P has the same transaction.
    let b_seen = canonical(&mut seen, vec![fin.clone()]);
    let b_clean = canonical(&mut clean, vec![fin]);
    assert!(b_seen.txs[0].success, "{:?}", b_seen.txs[0]);
    assert_eq!(B256::from_slice(&b_seen.txs[0].output), id);
    same(&b_seen, &b_clean);
    assert_eq!(seen.store.get(&id).as_deref(), Some(model.as_slice()));
    assert_eq!(seen.store.chunk_count(), 0, "a finalized upload's chunks are dropped");
}

#[test]
fn a_stale_chunk_from_a_dropped_fork_cannot_change_a_canonical_upload() {
    let (mut seen, mut clean, id, model) = two_nodes();
    let parent = seen.state.clone();
    // Canonical block 2 sends the remaining chunks.
    let txs = rest(&mut seen, id, &model);
    let b = canonical(&mut seen, txs);
    assert!(b.txs.iter().all(|t| t.success));
    let txs = rest(&mut clean, id, &model);
    clean.block(txs);
    // A fork on block 1 (a late proposal for height 2) sends other bytes at the same offsets;
    // `seen` verifies it after the canonical block.
    let canonical_state = std::mem::replace(&mut seen.state, parent);
    seen.number -= 1;
    let junk: Vec<u8> = model.iter().map(|b| b ^ 0x5A).collect();
    let txs = rest(&mut seen, id, &junk);
    let fork = dropped_fork(&mut seen, &txs);
    assert!(fork.txs.iter().all(|t| t.success));
    seen.state = canonical_state;
    seen.number += 1;
    // The canonical chain finalizes the upload it received.
    let fin = call(&mut seen, ALICE, R::finalizeUploadCall { modelId: id }.abi_encode());
    let b_seen = canonical(&mut seen, vec![fin.clone()]);
    let b_clean = canonical(&mut clean, vec![fin]);
    assert!(b_clean.txs[0].success);
    assert!(b_seen.txs[0].success, "the fork's chunk replaced the canonical one: {:?}", b_seen.txs[0]);
    same(&b_seen, &b_clean);
    assert_eq!(seen.store.chunk_count(), 0, "the dropped fork's chunks are gone once its height is final");
}

fn registry_error(out: &[u8]) -> R::IModelRegistryErrors {
    R::IModelRegistryErrors::abi_decode(out).expect("a registry error")
}

#[test]
fn restarting_an_upload_drops_what_it_received_and_cancel_ends_it() {
    let (mut c, _, id, model) = two_nodes();
    // Restart: the first chunk goes; junk sent before the restart cannot leak into the model.
    let begin = call(&mut c, ALICE, R::beginUploadCall { modelId: id, size: model.len() as u64 }.abi_encode());
    let junk = put(&mut c, id, 0, &vec![0xEE; CHUNK]);
    let again = call(&mut c, ALICE, R::beginUploadCall { modelId: id, size: model.len() as u64 }.abi_encode());
    let b = c.block(vec![begin, junk, again]);
    assert!(b.txs.iter().all(|t| t.success));
    assert_eq!(c.store.chunk_count(), 0, "a restart releases every chunk received");
    let mut txs = vec![put(&mut c, id, 0, &model[..CHUNK])];
    txs.extend(rest(&mut c, id, &model));
    txs.push(call(&mut c, ALICE, R::finalizeUploadCall { modelId: id }.abi_encode()));
    let b = c.block(txs);
    assert!(b.txs.iter().all(|t| t.success), "{:?}", b.txs.last());
    assert_eq!(c.store.chunk_count(), 0);

    // Cancel: only the owner's upload, which then is gone.
    let other = B256::repeat_byte(9);
    let begin = call(&mut c, ALICE, R::beginUploadCall { modelId: other, size: 10 }.abi_encode());
    let one = call(&mut c, ALICE, R::putChunkCall { modelId: other, offset: 0, chunk: vec![1; 4].into() }.abi_encode());
    let theirs = call(&mut c, common::BOB, R::cancelUploadCall { modelId: other }.abi_encode());
    let b = c.block(vec![begin, one, theirs]);
    assert!(b.txs[0].success && b.txs[1].success);
    assert_eq!(
        registry_error(&b.txs[2].output),
        R::IModelRegistryErrors::UploadNotStarted(R::UploadNotStarted { modelId: other })
    );
    assert_eq!(c.store.chunk_count(), 1);
    let cancel = call(&mut c, ALICE, R::cancelUploadCall { modelId: other }.abi_encode());
    let late =
        call(&mut c, ALICE, R::putChunkCall { modelId: other, offset: 4, chunk: vec![1; 6].into() }.abi_encode());
    let b = c.block(vec![cancel, late]);
    assert!(b.txs[0].success, "{:?}", b.txs[0]);
    assert!(b.txs[0].gas_used <= 21_000 + 36 * 16 + 1_000 + fixpoint_precompiles::gas::cancel_gas(1) + 200);
    assert_eq!(
        registry_error(&b.txs[1].output),
        R::IModelRegistryErrors::UploadNotStarted(R::UploadNotStarted { modelId: other })
    );
    assert_eq!(c.store.chunk_count(), 0, "a cancelled upload's chunks are dropped when the block is final");
    let ev = R::UploadCancelled::SIGNATURE_HASH;
    let logs = match &b.txs[0].receipt {
        alloy_consensus::ReceiptEnvelope::Eip1559(r) => r.receipt.logs.clone(),
        _ => unreachable!(),
    };
    assert_eq!(logs[0].topics()[0], ev);
}

#[test]
fn the_largest_upload_finalizes_within_a_30m_gas_block() {
    use fixpoint_precompiles::gas::{MAX_UPLOAD_BYTES, MAX_UPLOAD_CHUNKS};
    let mut c = Chain::new();
    let size = MAX_UPLOAD_BYTES as usize;
    let chunk = size / MAX_UPLOAD_CHUNKS as usize;
    let bytes: Vec<u8> = (0..size).map(|i| (i * 7 + i / 4096) as u8).collect();
    let id = keccak256(&bytes);
    let begin = call(&mut c, ALICE, R::beginUploadCall { modelId: id, size: size as u64 }.abi_encode());
    let too_big = call(&mut c, common::BOB, R::beginUploadCall { modelId: id, size: size as u64 + 1 }.abi_encode());
    let b = c.block(vec![begin, too_big]);
    assert!(b.txs[0].success);
    assert!(matches!(registry_error(&b.txs[1].output), R::IModelRegistryErrors::ModelTooLarge(_)));
    for part in bytes.chunks(chunk).enumerate().collect::<Vec<_>>().chunks(100) {
        let txs = part
            .iter()
            .map(|(i, b)| {
                let data = R::putChunkCall { modelId: id, offset: (i * chunk) as u64, chunk: b.to_vec().into() };
                call(&mut c, ALICE, data.abi_encode())
            })
            .collect();
        let b = c.block(txs);
        assert!(b.txs.iter().all(|t| t.success));
    }
    // One more chunk than the cap is refused (the upload is complete anyway).
    let extra =
        call(&mut c, ALICE, R::putChunkCall { modelId: id, offset: size as u64, chunk: vec![1].into() }.abi_encode());
    let b = c.block(vec![extra]);
    assert!(!b.txs[0].success);
    // The finalize transaction, alone in a 30M-gas block, is charged in full up front: it
    // reverts only because these bytes are no model, never for gas.
    let fin =
        c.tx(ALICE, TxKind::Call(REGISTRY_ADDRESS), R::finalizeUploadCall { modelId: id }.abi_encode(), 30_000_000);
    let mut env = c.env();
    env.gas_limit = 30_000_000;
    let out = execute_block(&c.state, &c.store, &c.spec, &env, &[fin]).expect("fits in the block");
    let t = &out.txs[0];
    assert!(matches!(registry_error(&t.output), R::IModelRegistryErrors::ModelRejected(_)), "{:?}", t.output);
    let precompile = fixpoint_precompiles::gas::finalize_gas(MAX_UPLOAD_BYTES, MAX_UPLOAD_CHUNKS) + 1_000;
    assert!(t.gas_used >= precompile && t.gas_used <= 30_000_000, "{} gas", t.gas_used);
    assert!(t.gas_used <= precompile + fixpoint_precompiles::gas::FINALIZE_TX_OVERHEAD);
}

#[test]
fn an_eth_call_of_register_leaves_no_engine_in_the_shared_cache() {
    let model = model_cases("digits-cnn").remove(0).model;
    let id = keccak256(&model);
    let mut c = Chain::new();
    let reg = call(&mut c, ALICE, R::registerCall { model: model.clone().into() }.abi_encode());
    // A simulation (eth_call, estimateGas): executed, never committed.
    let out = c.dry_run(std::slice::from_ref(&reg));
    assert!(out.txs[0].success);
    drop(out);
    assert!(c.store.get(&id).is_none());
    assert!(!c.store.has_engine(&id), "the simulation's engine stayed in the shared cache");
    // A committed block keeps both.
    let b = c.block(vec![reg]);
    assert!(b.txs[0].success);
    assert!(c.store.has_engine(&id) && c.store.get(&id).is_some());
}
