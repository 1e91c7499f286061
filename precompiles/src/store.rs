//! Where model bytes live off the state: a content-addressed [`ModelStore`] shared by the node,
//! and a per-execution [`Scope`] (one block, or one `eth_call`) that stages what the execution
//! adds, tracks which models are warm, and collects the inference records.
//!
//! The state decides what exists (the registry's storage); the store only holds bytes whose
//! keccak256 is their key, so a stray entry can never change a result. A scope's staged bytes
//! reach the store only when the node commits the block, so simulations leave no trace.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use alloy_primitives::{Address, B256, keccak256};
use fixpoint_ml::{Engine, Limits};

use crate::records::InferenceRecord;

/// Key of an upload chunk: model id, uploader, offset.
pub type ChunkKey = (B256, Address, u64);

/// Content-addressed model bytes, their prepared engines, and the chunks of open uploads.
#[derive(Debug)]
pub struct ModelStore {
    bytes: RwLock<HashMap<B256, Arc<[u8]>>>,
    chunks: Mutex<HashMap<ChunkKey, Arc<[u8]>>>,
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

    /// Restores a committed upload chunk (a node reopening its database).
    pub fn insert_chunk(&self, key: ChunkKey, bytes: Arc<[u8]>) {
        lock(&self.chunks).insert(key, bytes);
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
}

#[derive(Debug, Default)]
struct ScopeState {
    staged: HashMap<B256, Arc<[u8]>>,
    chunks: HashMap<ChunkKey, Arc<[u8]>>,
    finished_uploads: Vec<(B256, Address)>,
    warm: HashSet<B256>,
    records: Vec<InferenceRecord>,
    tx_index: u32,
    call_index: u32,
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
    /// Upload chunks received (on commit only), sorted by key, for the node to persist.
    pub chunks: Vec<(ChunkKey, Arc<[u8]>)>,
    /// Uploads finished (on commit only): the node drops their persisted chunks.
    pub finished_uploads: Vec<(B256, Address)>,
}

impl Scope {
    /// A fresh scope over `store`.
    pub fn new(store: Arc<ModelStore>) -> Arc<Self> {
        Arc::new(Self { store, state: Mutex::default() })
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
        lock(&self.state).staged.insert(id, bytes);
        id
    }

    /// Stages an upload chunk.
    pub fn put_chunk(&self, key: ChunkKey, chunk: Arc<[u8]>) {
        lock(&self.state).chunks.insert(key, chunk);
    }

    /// Reassembles `size` bytes of `owner`'s upload of `id` from its chunks (staged here, else
    /// committed), walking offsets from 0; `None` if a chunk is missing or they overrun `size`.
    pub fn assemble(&self, id: B256, owner: Address, size: u64) -> Option<Vec<u8>> {
        let s = lock(&self.state);
        let committed = lock(&self.store.chunks);
        let mut out = Vec::with_capacity(usize::try_from(size).ok()?);
        while (out.len() as u64) < size {
            let key = (id, owner, out.len() as u64);
            let c = s.chunks.get(&key).or_else(|| committed.get(&key))?;
            if c.is_empty() {
                return None;
            }
            out.extend_from_slice(c);
        }
        (out.len() as u64 == size).then_some(out)
    }

    /// Marks `owner`'s upload of `id` finished: its chunks are dropped when the scope commits.
    pub fn finish_upload(&self, id: B256, owner: Address) {
        let mut s = lock(&self.state);
        s.chunks.retain(|(i, o, _), _| (*i, *o) != (id, owner));
        s.finished_uploads.push((id, owner));
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

    /// Ends the scope and moves what it staged into the store (block commit): registered
    /// models, and upload chunks (dropping those of finished uploads). The outcome lists the
    /// chunks and finished uploads too, so a node can persist them.
    pub fn commit(&self) -> ScopeOutcome {
        let (chunks, finished) = {
            let mut s = lock(&self.state);
            (std::mem::take(&mut s.chunks), std::mem::take(&mut s.finished_uploads))
        };
        let mut out = self.finish();
        for (_, bytes) in &out.models {
            self.store.insert(bytes.clone());
        }
        let mut committed = lock(&self.store.chunks);
        let mut listed: Vec<(ChunkKey, Arc<[u8]>)> = chunks.into_iter().collect();
        listed.sort_by_key(|(k, _)| *k);
        committed.extend(listed.iter().cloned());
        if !finished.is_empty() {
            committed.retain(|(i, o, _), _| !finished.contains(&(*i, *o)));
        }
        out.chunks = listed;
        out.finished_uploads = finished;
        out
    }
}
