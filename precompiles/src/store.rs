//! Where model bytes live off the state: a content-addressed [`ModelStore`] shared by the node,
//! and a per-execution [`Scope`] (one block, or one `eth_call`) that stages what the execution
//! adds, tracks which models are warm, and collects the inference records.
//!
//! The state decides what exists (the registry's storage); the store only holds bytes whose
//! keccak256 is (part of) their key, so a stray entry can never change a result, and any fork may
//! be executed and dropped without changing what another fork reads:
//! - model bytes by id (`keccak256(model)`): append-only;
//! - upload chunks by [`ChunkKey`] `(id, owner, index, keccak256(chunk))`, the key the state names
//!   at the chunk's slot (`state.rs`). Chunks reach the store when a scope commits (any executed
//!   block, final or not) and leave it only when a block is **finalized**
//!   ([`ModelStore::finalize`]): a chunk goes once no block that may still be built on can name
//!   it, i.e. the finalized state does not name it and no block above the finalized height
//!   committed it. So every chunk the state of a live block names is in the store, on every
//!   honest node, whatever forks it executed.
//! - prepared engines by id: a cache of the model bytes above. Engines of models a scope
//!   registered but did not commit (an `eth_call` or estimate of `register`, a dropped build)
//!   are evicted when the scope ends, so simulations leave nothing behind; those of committed
//!   models stay, like their bytes.
//!
//! A scope's staged bytes reach the store only when the node commits the block, so simulations
//! leave no trace.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use alloy_primitives::{Address, B256, U256, keccak256};
use fixpoint_ml::{Engine, Limits};

use crate::records::InferenceRecord;
use crate::state::chunk_slot;

/// Key of an upload chunk: what the state names at the chunk's slot, plus where that slot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkKey {
    /// Model id of the upload.
    pub id: B256,
    /// Uploader.
    pub owner: Address,
    /// Position of the chunk in the upload (0, 1, ...).
    pub index: u64,
    /// keccak256 of the chunk's bytes.
    pub hash: B256,
}

impl ChunkKey {
    /// Whether a state whose registry storage reads as `read` names this chunk.
    pub fn named_by(&self, read: impl Fn(U256) -> U256) -> bool {
        read(chunk_slot(self.id, self.owner, self.index)) == U256::from_be_bytes(self.hash.0)
    }
}

/// An upload chunk with its bytes.
pub type Chunk = (ChunkKey, Arc<[u8]>);

/// Upload chunks held off the state (see the module docs).
#[derive(Debug, Default)]
struct Chunks {
    /// Bytes, and the highest height of a block that committed them (0: restored as final).
    held: HashMap<ChunkKey, (Arc<[u8]>, u64)>,
    /// Keys to check when each height is finalized.
    maturing: BTreeMap<u64, Vec<ChunkKey>>,
}

/// Content-addressed model bytes, their prepared engines, and the chunks of open uploads.
#[derive(Debug)]
pub struct ModelStore {
    bytes: RwLock<HashMap<B256, Arc<[u8]>>>,
    chunks: Mutex<Chunks>,
    engines: Mutex<HashMap<B256, Arc<Engine>>>,
    limits: Limits,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere cannot leave these maps inconsistent (each update is one insert).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for ModelStore {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl ModelStore {
    /// An empty store whose engines are verified against `limits`.
    pub fn new(limits: Limits) -> Self {
        Self { bytes: RwLock::default(), chunks: Mutex::default(), engines: Mutex::default(), limits }
    }

    /// The verifier limits models are held to.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Stores `bytes` under their keccak256 and returns it.
    pub fn insert(&self, bytes: Arc<[u8]>) -> B256 {
        let id = keccak256(&bytes);
        self.bytes.write().unwrap_or_else(PoisonError::into_inner).insert(id, bytes);
        id
    }

    /// The bytes stored under `id`.
    pub fn get(&self, id: &B256) -> Option<Arc<[u8]>> {
        self.bytes.read().unwrap_or_else(PoisonError::into_inner).get(id).cloned()
    }

    /// Restores a chunk the finalized state names (a node reopening its database); `false`, and
    /// nothing stored, if the bytes do not hash to the key.
    pub fn restore_chunk(&self, key: ChunkKey, bytes: Arc<[u8]>) -> bool {
        if keccak256(&bytes) != key.hash {
            return false;
        }
        lock(&self.chunks).held.entry(key).or_insert((bytes, 0));
        true
    }

    /// The bytes of chunk `key`, if held.
    pub fn chunk(&self, key: &ChunkKey) -> Option<Arc<[u8]>> {
        lock(&self.chunks).held.get(key).map(|(b, _)| b.clone())
    }

    /// How many chunks are held.
    pub fn chunk_count(&self) -> usize {
        lock(&self.chunks).held.len()
    }

    /// Block `height` is final, with post-state registry storage `read` and `released` the chunks
    /// its execution cleared: drops every chunk no block that can still be built on may name
    /// (committed at or below `height`, or released by it, not named by the finalized state, and
    /// not committed by a block above `height`). Returns how many went. Calling it again for the
    /// same block changes nothing.
    pub fn finalize(&self, height: u64, released: &[ChunkKey], read: impl Fn(U256) -> U256) -> usize {
        let mut c = lock(&self.chunks);
        let due = match height.checked_add(1) {
            Some(next) => {
                let above = c.maturing.split_off(&next);
                std::mem::replace(&mut c.maturing, above)
            }
            None => std::mem::take(&mut c.maturing),
        };
        let mut removed = 0;
        for key in due.into_values().flatten().chain(released.iter().copied()) {
            let Some((_, h)) = c.held.get(&key) else { continue };
            // A block above `height` committed it: a live fork may name it; checked again when
            // that height is final.
            if *h > height || key.named_by(&read) {
                continue;
            }
            c.held.remove(&key);
            removed += 1;
        }
        removed
    }

    /// Every stored id, sorted.
    pub fn ids(&self) -> Vec<B256> {
        let mut v: Vec<B256> = self.bytes.read().unwrap_or_else(PoisonError::into_inner).keys().copied().collect();
        v.sort();
        v
    }

    /// The prepared engine for `id`, loading `bytes` (which must hash to `id`) on first use.
    pub fn engine(&self, id: B256, bytes: &[u8]) -> Result<Arc<Engine>, fixpoint_ml::Error> {
        if let Some(e) = lock(&self.engines).get(&id) {
            return Ok(e.clone());
        }
        let e = Arc::new(Engine::load(bytes, &self.limits)?);
        lock(&self.engines).insert(id, e.clone());
        Ok(e)
    }

    /// Whether a prepared engine for `id` is cached.
    pub fn has_engine(&self, id: &B256) -> bool {
        lock(&self.engines).contains_key(id)
    }

    fn commit_chunks(&self, height: u64, chunks: &[Chunk]) {
        if chunks.is_empty() {
            return;
        }
        let mut c = lock(&self.chunks);
        for (key, bytes) in chunks {
            let e = c.held.entry(*key).or_insert_with(|| (bytes.clone(), height));
            e.1 = e.1.max(height);
        }
        c.maturing.entry(height).or_default().extend(chunks.iter().map(|(k, _)| *k));
    }
}

#[derive(Debug, Default)]
struct ScopeState {
    staged: HashMap<B256, Arc<[u8]>>,
    chunks: BTreeMap<ChunkKey, Arc<[u8]>>,
    released: Vec<ChunkKey>,
    /// Models whose engine this scope may have put in the shared cache.
    loaded: HashSet<B256>,
    warm: HashSet<B256>,
    records: Vec<InferenceRecord>,
    tx_index: u32,
    call_index: u32,
    /// Each recorded call's packed input, when tracing ([`Scope::tracing`]).
    inputs: Option<Vec<(u32, u32, Vec<u8>)>>,
    /// Wall time spent in inference calls (metrics only; never read by execution).
    inference_time: std::time::Duration,
}

/// One execution's view of the model store (see the module docs).
#[derive(Debug)]
pub struct Scope {
    store: Arc<ModelStore>,
    state: Mutex<ScopeState>,
}

/// What a finished scope leaves behind.
#[derive(Debug, Default)]
pub struct ScopeOutcome {
    /// Inference records in execution order.
    pub records: Vec<InferenceRecord>,
    /// Model bytes registered during the execution, by id.
    pub models: Vec<(B256, Arc<[u8]>)>,
    /// Upload chunks received (on commit only), sorted by key, including those of transactions
    /// that reverted: the post-state says which ones count.
    pub chunks: Vec<Chunk>,
    /// Chunks whose slots the execution cleared (on commit only; a reverted clear is listed too).
    pub released: Vec<ChunkKey>,
}

impl ScopeOutcome {
    /// What a node persists with this block once it is final, given its post-state registry
    /// storage `read`: the chunks it received that the state names, and the released chunks
    /// that the state no longer names (to delete).
    pub fn persistence(&self, read: impl Fn(U256) -> U256) -> (Vec<Chunk>, Vec<ChunkKey>) {
        let keep = self.chunks.iter().filter(|(k, _)| k.named_by(&read)).cloned().collect();
        let drop = self.released.iter().filter(|k| !k.named_by(&read)).copied().collect();
        (keep, drop)
    }
}

impl Scope {
    /// A fresh scope over `store`.
    pub fn new(store: Arc<ModelStore>) -> Arc<Self> {
        Arc::new(Self { store, state: Mutex::default() })
    }

    /// A scope that also keeps every recorded call's input, for traces (a replay of a block for
    /// `fixpoint_traceInference`, never a block the chain keeps).
    pub fn tracing(store: Arc<ModelStore>) -> Arc<Self> {
        let state = ScopeState { inputs: Some(Vec::new()), ..Default::default() };
        Arc::new(Self { store, state: Mutex::new(state) })
    }

    /// The input of call `call_index` of transaction `tx_index`, if this scope traces and
    /// recorded it.
    pub fn traced_input(&self, tx_index: u32, call_index: u32) -> Option<Vec<u8>> {
        let s = lock(&self.state);
        let inputs = s.inputs.as_ref()?;
        inputs.iter().find(|(t, c, _)| *t == tx_index && *c == call_index).map(|(_, _, i)| i.clone())
    }

    /// Adds `t` to the wall time spent in inference calls (observed for metrics; no result
    /// depends on it).
    pub fn add_inference_time(&self, t: std::time::Duration) {
        let mut s = lock(&self.state);
        s.inference_time = s.inference_time.saturating_add(t);
    }

    /// Wall time spent in inference calls so far.
    pub fn inference_time(&self) -> std::time::Duration {
        lock(&self.state).inference_time
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<ModelStore> {
        &self.store
    }

    /// Marks the start of transaction `index`: later records carry it, call indices restart.
    pub fn begin_tx(&self, index: u32) {
        let mut s = lock(&self.state);
        s.tx_index = index;
        s.call_index = 0;
    }

    /// Model bytes by id: staged in this scope, else in the store.
    pub fn model_bytes(&self, id: &B256) -> Option<Arc<[u8]>> {
        lock(&self.state).staged.get(id).cloned().or_else(|| self.store.get(id))
    }

    /// Stages registered model bytes (keyed by their hash).
    pub fn stage_model(&self, bytes: Arc<[u8]>) -> B256 {
        let id = keccak256(&bytes);
        let mut s = lock(&self.state);
        s.loaded.insert(id);
        s.staged.insert(id, bytes);
        id
    }

    /// The prepared engine of model `id` (`bytes` hash to it), through the store's cache; if this
    /// scope ends without committing, the engine is evicted again unless the model is stored.
    pub fn engine(&self, id: B256, bytes: &[u8]) -> Result<Arc<Engine>, fixpoint_ml::Error> {
        lock(&self.state).loaded.insert(id);
        self.store.engine(id, bytes)
    }

    /// Stages chunk `index` of `owner`'s upload of `id`; returns its key (which the state must
    /// name for the chunk to count).
    pub fn put_chunk(&self, id: B256, owner: Address, index: u64, chunk: Arc<[u8]>) -> ChunkKey {
        let key = ChunkKey { id, owner, index, hash: keccak256(&chunk) };
        lock(&self.state).chunks.insert(key, chunk);
        key
    }

    /// The bytes of chunk `key`: staged here, else in the store.
    pub fn chunk(&self, key: &ChunkKey) -> Option<Arc<[u8]>> {
        let staged = lock(&self.state).chunks.get(key).cloned();
        staged.or_else(|| self.store.chunk(key))
    }

    /// Notes that the execution cleared chunk `key`'s slot; the store may drop the bytes when a
    /// block doing so is final.
    pub fn release(&self, key: ChunkKey) {
        lock(&self.state).released.push(key);
    }

    /// Marks `id` warm; returns whether it was cold.
    pub fn touch(&self, id: B256) -> bool {
        lock(&self.state).warm.insert(id)
    }

    /// Whether `id` is warm in this scope.
    pub fn is_warm(&self, id: &B256) -> bool {
        lock(&self.state).warm.contains(id)
    }

    /// Appends a record for a call of `model_id`; returns it.
    pub fn record(&self, model_id: B256, input: &[u8], output: &[u8], gas_used: u64) -> InferenceRecord {
        let mut s = lock(&self.state);
        let r = InferenceRecord::new(s.tx_index, s.call_index, model_id, input, output, gas_used);
        let (t, c) = (s.tx_index, s.call_index);
        if let Some(inputs) = &mut s.inputs {
            inputs.push((t, c, input.to_vec()));
        }
        s.call_index = s.call_index.saturating_add(1);
        s.records.push(r);
        r
    }

    /// Records so far.
    pub fn records(&self) -> Vec<InferenceRecord> {
        lock(&self.state).records.clone()
    }

    /// Ends the scope: its records and the models it registered (sorted by id).
    pub fn finish(&self) -> ScopeOutcome {
        let mut s = lock(&self.state);
        let mut models: Vec<(B256, Arc<[u8]>)> = s.staged.drain().collect();
        models.sort_by_key(|(id, _)| *id);
        ScopeOutcome { records: std::mem::take(&mut s.records), models, ..Default::default() }
    }

    /// Ends the scope of the block at `height` (any block the node executed and keeps, final or
    /// not) and moves what it staged into the store: registered models, and upload chunks (which
    /// only [`ModelStore::finalize`] removes). The outcome lists the chunks and released chunks
    /// too, so a node can persist them when the block is final.
    pub fn commit(&self, height: u64) -> ScopeOutcome {
        let (chunks, released) = {
            let mut s = lock(&self.state);
            (std::mem::take(&mut s.chunks), std::mem::take(&mut s.released))
        };
        let mut out = self.finish();
        for (_, bytes) in &out.models {
            self.store.insert(bytes.clone());
        }
        let chunks: Vec<Chunk> = chunks.into_iter().collect();
        self.store.commit_chunks(height, &chunks);
        out.chunks = chunks;
        out.released = released;
        out
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        // A committed scope's models are in the store by now: only the others' engines go.
        let s = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        let gone: Vec<B256> = s.loaded.iter().filter(|id| self.store.get(id).is_none()).copied().collect();
        if !gone.is_empty() {
            let mut engines = lock(&self.store.engines);
            for id in &gone {
                engines.remove(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(index: u64, bytes: &[u8]) -> ChunkKey {
        ChunkKey { id: B256::repeat_byte(1), owner: Address::repeat_byte(2), index, hash: keccak256(bytes) }
    }

    /// A state naming exactly `named`.
    fn state(named: &[ChunkKey]) -> impl Fn(U256) -> U256 + '_ {
        move |slot| {
            named
                .iter()
                .find(|k| chunk_slot(k.id, k.owner, k.index) == slot)
                .map_or(U256::ZERO, |k| U256::from_be_bytes(k.hash.0))
        }
    }

    fn commit(store: &Arc<ModelStore>, height: u64, chunks: &[(u64, &[u8])]) -> ScopeOutcome {
        let scope = Scope::new(store.clone());
        for (i, b) in chunks {
            scope.put_chunk(B256::repeat_byte(1), Address::repeat_byte(2), *i, Arc::from(*b));
        }
        scope.commit(height)
    }

    #[test]
    fn chunks_go_only_when_no_live_block_can_name_them() {
        let store = Arc::new(ModelStore::default());
        let (good, junk, next) = (key(0, b"good"), key(0, b"junk"), key(1, b"next"));
        commit(&store, 2, &[(0, b"good")]); // canonical block 2
        commit(&store, 2, &[(0, b"junk")]); // a fork at height 2
        commit(&store, 3, &[(1, b"next")]); // block 3, not final yet
        assert_eq!(store.chunk_count(), 3);
        // Block 2 is final and names `good`: the fork's chunk goes, block 3's stays.
        assert_eq!(store.finalize(2, &[], state(&[good])), 1);
        assert!(store.chunk(&junk).is_none());
        assert_eq!(store.chunk(&good).as_deref(), Some(&b"good"[..]));
        assert!(store.chunk(&next).is_some());
        // Block 4 (child of 3) re-sends `good` after restarting, then block 3 is final having
        // released `good`: it stays, since block 4 may name it.
        commit(&store, 4, &[(0, b"good")]);
        assert_eq!(store.finalize(3, &[good], state(&[next])), 0);
        assert!(store.chunk(&good).is_some());
        // Block 4 final, naming both; block 5 final, releasing both.
        assert_eq!(store.finalize(4, &[], state(&[good, next])), 0);
        assert_eq!(store.finalize(5, &[good, next], state(&[])), 2);
        assert_eq!(store.chunk_count(), 0);
        // Idempotent, and a restored chunk must match its hash.
        assert_eq!(store.finalize(5, &[good, next], state(&[])), 0);
        assert!(!store.restore_chunk(good, Arc::from(&b"junk"[..])));
        assert!(store.restore_chunk(good, Arc::from(&b"good"[..])));
    }

    #[test]
    fn a_scope_that_does_not_commit_leaves_no_chunk() {
        let store = Arc::new(ModelStore::default());
        let scope = Scope::new(store.clone());
        let k = scope.put_chunk(B256::ZERO, Address::ZERO, 0, Arc::from(&b"x"[..]));
        assert!(scope.chunk(&k).is_some());
        drop(scope.finish());
        drop(scope);
        assert_eq!(store.chunk_count(), 0);
        let out = commit(&store, 1, &[(0, b"a")]);
        assert_eq!(out.persistence(state(&[])).0.len(), 0, "a chunk the state does not name is not persisted");
        assert_eq!(out.persistence(state(&[key(0, b"a")])).0.len(), 1);
    }
}
