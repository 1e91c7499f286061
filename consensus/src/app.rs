//! The commonware [`Application`]: `propose` builds a block from the pending transactions on the
//! parent's post-state, `verify` re-executes a proposal on its parent's post-state and votes for
//! it only if every claim holds (docs/consensus.md). [`Finalizer`] receives finalized blocks
//! from marshal, in height order, and records them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::UNIX_EPOCH;

use alloy_primitives::{Address, B256, Bloom, Bytes, keccak256};
use commonware_actor::Feedback;
use commonware_consensus::marshal::Update;
use commonware_consensus::marshal::ancestry::Ancestry;
use commonware_consensus::simplex::types::Context;
use commonware_consensus::{Application, Reporter};
use commonware_cryptography::sha256::Digest;
use commonware_cryptography::{Digested, Digestible};
use commonware_runtime::Clock;
use commonware_utils::Acknowledgement;
use fixpoint_evm::{BlockOutcome, StateChanges, TxOutcome, WorldState};
use fixpoint_precompiles::{InferenceRecord, ModelStore, REGISTRY_ADDRESS, ScopeOutcome};
use futures::StreamExt;

use crate::block::Block;
use crate::execute::{Executor, MAX_CLOCK_DRIFT, PendingTx, VerifyError};
pub use crate::mempool::{MAX_PENDING, Mempool, Offered, Refusal};

/// How many finalized blocks [`Shared::finalized`] lists (the most recent).
pub const MAX_FINALIZED_LOG: usize = 100_000;

/// Most unexecuted ancestors a node executes to catch up before it can verify or build on a
/// block (after a restart, the notarized blocks above its last finalized one).
pub const MAX_CATCH_UP: usize = 256;

/// A block this node executed: the post-state, and what a node persists with the block.
#[derive(Debug, Default)]
pub struct Executed {
    /// Height of the block.
    pub height: u64,
    /// Post-state.
    pub state: WorldState,
    /// What the block changed (what a node persists).
    pub changes: StateChanges,
    /// Per-transaction results (receipts, outputs, created contracts).
    pub txs: Vec<TxOutcome>,
    /// Bloom of all logs.
    pub logs_bloom: Bloom,
    /// Inference records, in order.
    pub records: Vec<InferenceRecord>,
    /// Models registered and upload chunks received in the block.
    pub scope: ScopeOutcome,
}

impl Executed {
    /// A block's execution; stages its models and upload chunks in the model store.
    pub fn new(height: u64, out: BlockOutcome) -> Arc<Self> {
        // Content-addressed: staging a block's models and chunks early cannot change a result
        // (docs/precompiles.md), and children may be built before finalization. Nothing is
        // removed here: only [`Executed::finalize_models`], for a finalized block.
        let scope = out.scope.commit(height);
        Arc::new(Self {
            height,
            state: out.state,
            changes: out.changes,
            txs: out.txs,
            logs_bloom: out.logs_bloom,
            records: out.records,
            scope,
        })
    }

    /// This block is final: drops from `models` the upload chunks no block that can still be
    /// built on may name (`ModelStore::finalize`). Idempotent.
    pub fn finalize_models(&self, models: &ModelStore) -> usize {
        let read = |slot| self.state.storage(&REGISTRY_ADDRESS, &slot);
        models.finalize(self.height, &self.scope.released, read)
    }

    /// The starting point of a node: block `height`'s post-state, nothing else.
    pub fn start(height: u64, state: WorldState) -> Arc<Self> {
        Arc::new(Self { height, state, ..Default::default() })
    }
}

/// Where a node persists finalized blocks (its database), before marshal is acknowledged.
pub trait Sink: Send + Sync + 'static {
    /// Persists finalized `block`, executed as `executed`. Called once per height, in order,
    /// from height 1; an error halts finalization on this node (marshal is not acknowledged).
    fn finalized(&self, block: &Block, executed: &Executed) -> Result<(), String>;
}

/// Validator public keys.
pub type PublicKey = commonware_cryptography::ed25519::PublicKey;
/// The simplex signing scheme (ed25519 attestations).
pub type Scheme = commonware_consensus::simplex::scheme::ed25519::Scheme;
/// The consensus context a proposal is made in.
pub type Ctx = Context<Digest, PublicKey>;

/// How this node behaves as a proposer: honestly, or one of the faults the tests inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proposer {
    /// Builds what the executor computes.
    Honest,
    /// Claims a wrong state root.
    WrongStateRoot,
    /// Its inference engine "answers differently": claims a records root over an output with one
    /// byte changed (one token of a generation).
    WrongInferenceOutput,
    /// Claims a wrong inference-records root.
    WrongRecordsRoot,
    /// Slips a transaction with a nonce gap into its block.
    InvalidTransaction,
    /// Stamps its block an hour ahead of its clock (pushing block time ahead for every child).
    FutureTimestamp,
}

/// The `bytes` an ABI-encoded `(bytes)` return holds (offset, length, data), if it is one.
fn abi_bytes(ret: &[u8]) -> Option<&[u8]> {
    let word = |at: usize| -> Option<usize> {
        let w = ret.get(at..at + 32)?;
        let (high, low) = w.split_at(24);
        if high.iter().any(|&b| b != 0) {
            return None;
        }
        usize::try_from(u64::from_be_bytes(low.try_into().ok()?)).ok()
    };
    let offset = word(0)?;
    let len = word(offset)?;
    ret.get(offset.checked_add(32)?..offset.checked_add(32)?.checked_add(len)?)
}

/// A finalized block as this node recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finalized {
    /// Height.
    pub height: u64,
    /// Digest.
    pub digest: Digest,
    /// State root after it.
    pub state_root: B256,
    /// Its inference-records root.
    pub records_root: B256,
    /// Transactions in it.
    pub txs: usize,
    /// Its timestamp (seconds).
    pub timestamp: u64,
}

/// A proposal this node refused to vote for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Its height.
    pub height: u64,
    /// Its digest.
    pub digest: Digest,
    /// Why.
    pub reason: VerifyError,
}

/// Why a finalized block could not be applied here (each halts finalization on this node).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FinalizerFailure {
    /// Not a child of this node's last finalized block.
    #[error("finalized block {0} does not extend this node's last finalized block")]
    NotAChild(u64),
    /// It does not re-execute to what it claims here.
    #[error("finalized block {height} does not re-execute here: {reason}")]
    Diverged {
        /// Height.
        height: u64,
        /// What re-execution found.
        reason: VerifyError,
    },
    /// The sink (database) refused it.
    #[error("cannot persist finalized block {height}: {reason}")]
    Persist {
        /// Height.
        height: u64,
        /// The sink's error.
        reason: String,
    },
}

/// The unfinalized side of a node: executed-but-not-final states, the pool, its log of
/// refusals.
#[derive(Debug, Default)]
struct Inner {
    /// Blocks this node built or verified, by digest.
    states: HashMap<Digest, Arc<Executed>>,
    /// Pending transactions.
    mempool: Mempool,
    /// Proposals this node refused, with the reason.
    refused: Vec<Refused>,
    /// Finalized blocks this node could not apply.
    finalizer_failures: Vec<FinalizerFailure>,
    /// Blocks this node proposed, and how many of them it tampered with.
    proposed: (usize, usize),
    /// The proposals it tampered with: height and digest.
    tampered: Vec<(u64, Digest)>,
}

/// The finalized side of a node: the last finalized block, the state after it, and the chain
/// finalized since the node started (what survives a crash is what [`Sink`] persisted; a node
/// restarts from it with [`Shared::new`]).
#[derive(Debug)]
struct Durable {
    block: Block,
    executed: Arc<Executed>,
    finalized: Vec<Finalized>,
}

/// State shared by the application and the finalizer of one node.
pub struct Shared {
    exec: Executor,
    proposer: Proposer,
    beneficiary: Address,
    inner: Mutex<Inner>,
    durable: Mutex<Durable>,
    sink: OnceLock<Arc<dyn Sink>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("proposer", &self.proposer).finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// A node's shared state, starting from `start` (genesis, or the last finalized block a
    /// node persisted) and its post-state.
    pub fn new(
        exec: Executor,
        start: &Block,
        state: WorldState,
        proposer: Proposer,
        beneficiary: Address,
    ) -> Arc<Self> {
        let height = start.body().height;
        let executed = Executed::start(height, state);
        let mut inner = Inner::default();
        inner.states.insert(start.digest(), executed.clone());
        // Marshal redelivers finalized blocks above its last acknowledgement: those at or below
        // `start` are skipped.
        let finalized = if height == 0 { Vec::new() } else { vec![Finalized::of(start)] };
        let durable = Durable { block: start.clone(), executed, finalized };
        Arc::new(Self {
            exec,
            proposer,
            beneficiary,
            inner: Mutex::new(inner),
            durable: Mutex::new(durable),
            sink: OnceLock::new(),
        })
    }

    /// Persists finalized blocks through `sink` from now on (set once).
    pub fn set_sink(&self, sink: Arc<dyn Sink>) {
        let _ = self.sink.set(sink);
    }

    /// Queues transactions for proposal (decoded and sender-recovered here, once); returns how
    /// many were new. Undecodable ones, duplicates and those [`Shared::offer`] refuses are dropped.
    pub fn submit(&self, txs: impl IntoIterator<Item = Bytes>) -> usize {
        self.submit_decoded(txs.into_iter().filter_map(|raw| PendingTx::decode(raw).ok()).collect())
    }

    /// [`Shared::submit`] for transactions already decoded and recovered.
    pub fn submit_decoded(&self, decoded: Vec<PendingTx>) -> usize {
        decoded.into_iter().filter(|t| self.offer(t.clone()) == Offered::Added).count()
    }

    /// Offers one transaction for proposal, saying what became of it: admitted only if revm
    /// would accept it on the last finalized state, with the sender's other pending
    /// transactions (docs/consensus.md, mempool).
    pub fn offer(&self, t: PendingTx) -> Offered {
        // The finalizer takes `durable` then `inner`: never the other way round.
        let (env, executed) = {
            let d = lock(&self.durable);
            (self.exec.next_env(&d.block), d.executed.clone())
        };
        let admitted = match self.exec.admits(&t, &env) {
            Ok(a) => a,
            Err(r) => return Offered::Refused(r),
        };
        lock(&self.inner).mempool.offer(t, admitted, &executed.state)
    }

    /// The executed block `digest`, if this node has it.
    fn executed(&self, digest: &Digest) -> Option<Arc<Executed>> {
        lock(&self.inner).states.get(digest).cloned()
    }

    /// The execution of `first`, executing it and the ancestors this node has not executed (from
    /// `ancestry`, newest first) on the newest one it has. `None` when that takes more than
    /// [`MAX_CATCH_UP`] blocks or an ancestor does not re-execute.
    async fn execute_ancestry(&self, first: Block, ancestry: &mut impl Ancestry<Block>) -> Option<Arc<Executed>> {
        let mut pending = vec![first];
        let (mut parent, mut base) = loop {
            let newest = pending.last()?;
            if let Some(e) = self.executed(&newest.digest()) {
                break (pending.pop()?, e);
            }
            if pending.len() >= MAX_CATCH_UP || newest.body().height <= lock(&self.durable).block.body().height {
                return None;
            }
            pending.push(ancestry.next().await?.inner().clone());
        };
        while let Some(block) = pending.pop() {
            let out = self.exec.verify(&parent, &base.state, &block).ok()?;
            base = Executed::new(block.body().height, out);
            lock(&self.inner).states.insert(block.digest(), base.clone());
            parent = block;
        }
        Some(base)
    }

    /// The transactions to offer a block on `state` ([`Mempool::candidates`]).
    pub fn candidates(&self, state: &WorldState) -> Vec<PendingTx> {
        lock(&self.inner).mempool.candidates(state)
    }

    /// The finalized blocks so far (the last [`MAX_FINALIZED_LOG`]), in height order.
    pub fn finalized(&self) -> Vec<Finalized> {
        lock(&self.durable).finalized.clone()
    }

    /// The finalized blocks above `height`, in height order.
    pub fn finalized_above(&self, height: Option<u64>) -> Vec<Finalized> {
        let d = lock(&self.durable);
        let from = height.map_or(0, |h| d.finalized.partition_point(|f| f.height <= h));
        d.finalized.get(from..).unwrap_or_default().to_vec()
    }

    /// Proposals refused so far.
    pub fn refused(&self) -> Vec<Refused> {
        lock(&self.inner).refused.clone()
    }

    /// Finalized blocks this node could not apply (empty on an honest, healthy node).
    pub fn finalizer_failures(&self) -> Vec<FinalizerFailure> {
        lock(&self.inner).finalizer_failures.clone()
    }

    /// The proposals this node tampered with, as (height, digest) (a byzantine test proposer).
    pub fn tampered(&self) -> Vec<(u64, Digest)> {
        lock(&self.inner).tampered.clone()
    }

    /// Blocks this node proposed since it (re)started, and how many it tampered with.
    pub fn proposed(&self) -> (usize, usize) {
        lock(&self.inner).proposed
    }

    /// The last finalized block this node holds, and the state after it.
    pub fn head(&self) -> (Block, Arc<Executed>) {
        let d = lock(&self.durable);
        (d.block.clone(), d.executed.clone())
    }

    /// This node's model store (models by id, upload chunks).
    pub fn models(&self) -> &Arc<ModelStore> {
        &self.exec.models
    }

    /// Pending transactions.
    pub fn pending(&self) -> usize {
        lock(&self.inner).mempool.len()
    }

    fn refuse(&self, block: &Block, reason: VerifyError) {
        let r = Refused { height: block.body().height, digest: block.digest(), reason };
        lock(&self.inner).refused.push(r);
    }

    fn finalizer_failed(&self, f: FinalizerFailure) {
        eprintln!("{f}");
        lock(&self.inner).finalizer_failures.push(f);
    }

    fn tamper(&self, block: Block, out: &fixpoint_evm::BlockOutcome) -> Block {
        let mut body = block.body().clone();
        match self.proposer {
            Proposer::Honest => return block,
            Proposer::WrongStateRoot => body.state_root = keccak256(body.state_root),
            Proposer::WrongInferenceOutput => {
                let mut records = out.records.clone();
                let Some(r) = records.first_mut() else { return block };
                // One byte of the output changed (one token of a generation) when the call was
                // the transaction itself and its output is at hand; any other change otherwise.
                let tx_output = out.txs.get(r.tx_index as usize).map(|t| &t.output);
                r.output_hash = match tx_output.and_then(|o| abi_bytes(o)) {
                    Some(bytes) if r.call_index == 0 && keccak256(bytes) == r.output_hash => {
                        let mut altered = bytes.to_vec();
                        if let Some(last) = altered.last_mut() {
                            *last ^= 1;
                        }
                        keccak256(&altered)
                    }
                    _ => keccak256(r.output_hash),
                };
                body.records_root = fixpoint_evm::records_root(&records);
            }
            Proposer::WrongRecordsRoot => body.records_root = keccak256(body.records_root),
            Proposer::FutureTimestamp => body.timestamp = body.timestamp.saturating_add(3600),
            Proposer::InvalidTransaction => match body.txs.first().cloned() {
                // A copy of a transaction already in the block: its nonce is used by then.
                Some(t) => body.txs.push(t),
                None => return block,
            },
        }
        Block::new(body)
    }
}

/// The consensus-facing application of one node.
#[derive(Debug, Clone)]
pub struct App {
    shared: Arc<Shared>,
}

impl App {
    /// The application over `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl<E: Clock + Send + 'static> Application<E> for App {
    type SigningScheme = Scheme;
    type Context = Ctx;
    type Block = Block;
    type Input = ();

    async fn propose(
        &mut self,
        (runtime, context): (E, Ctx),
        ancestry: impl Ancestry<Block>,
        _input: (),
    ) -> Option<Digested<Block>> {
        let mut ancestry = ancestry;
        let parent = ancestry.next().await?.inner().clone();
        let s = &self.shared;
        let base = s.execute_ancestry(parent.clone(), &mut ancestry).await?;
        let candidates = s.candidates(&base.state);
        let now = runtime.current().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let view = context.round.view().get();
        let (block, out, refused) = s.exec.build(&parent, &base.state, view, now, s.beneficiary, candidates);
        if !refused.is_empty() {
            // Refused by the executor on this state (e.g. the balance no longer covers it): drop
            // them rather than retry them in every block.
            let refused: HashSet<B256> = refused.into_iter().collect();
            lock(&s.inner).mempool.remove(&refused);
        }
        let honest_digest = block.digest();
        let block = s.tamper(block, &out);
        {
            let mut inner = lock(&s.inner);
            inner.proposed.0 += 1;
            if block.digest() != honest_digest {
                inner.proposed.1 += 1;
                inner.tampered.push((block.body().height, block.digest()));
            }
        }
        let executed = Executed::new(block.body().height, out);
        let digest = block.digest();
        lock(&s.inner).states.insert(digest, executed);
        Some(Digested::precomputed(block, digest))
    }

    async fn verify(&mut self, context: (E, Ctx), mut ancestry: impl Ancestry<Block>) -> bool {
        let Some(candidate) = ancestry.next().await else { return false };
        let candidate = candidate.inner().clone();
        let s = &self.shared;
        if s.executed(&candidate.digest()).is_some() {
            return true; // built or verified here already
        }
        let now = context.0.current().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if candidate.body().timestamp > now.saturating_add(MAX_CLOCK_DRIFT) {
            let reason = VerifyError::FutureTimestamp { got: candidate.body().timestamp, now };
            s.refuse(&candidate, reason);
            return false;
        }
        let Some(parent) = ancestry.next().await else { return false };
        let parent = parent.inner().clone();
        let Some(base) = s.execute_ancestry(parent.clone(), &mut ancestry).await else {
            // The parent cannot be executed here: not provably invalid, so abstain.
            return std::future::pending().await;
        };
        match s.exec.verify(&parent, &base.state, &candidate) {
            Ok(out) => {
                let executed = Executed::new(candidate.body().height, out);
                lock(&s.inner).states.insert(candidate.digest(), executed);
                true
            }
            Err(e) => {
                s.refuse(&candidate, e);
                false
            }
        }
    }
}

/// Receives finalized blocks from marshal.
#[derive(Debug, Clone)]
pub struct Finalizer {
    shared: Arc<Shared>,
}

impl Finalizer {
    /// The finalizer over `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl Finalized {
    fn of(b: &Block) -> Self {
        Self {
            height: b.body().height,
            digest: b.digest(),
            state_root: b.body().state_root,
            records_root: b.body().records_root,
            txs: b.body().txs.len(),
            timestamp: b.body().timestamp,
        }
    }
}

impl Reporter for Finalizer {
    type Activity = Update<Block>;

    fn report(&mut self, activity: Update<Block>) -> Feedback {
        let Update::Block(block, ack) = activity else { return Feedback::Ok };
        let b = block.inner();
        let s = &self.shared;
        let height = b.body().height;
        let mut d = lock(&s.durable);
        // Marshal may redeliver after a restart: apply each height once.
        if d.finalized.last().is_some_and(|f| f.height >= height) || height < d.block.body().height {
            drop(d);
            ack.acknowledge();
            return Feedback::Ok;
        }
        if height > 0 && (b.body().parent != d.block.digest() || d.block.body().height.checked_add(1) != Some(height)) {
            // Marshal delivers in order; anything else is a bug here: halt, never skip a block.
            s.finalizer_failed(FinalizerFailure::NotAChild(height));
            return Feedback::Ok;
        }
        let executed = match s.executed(&b.digest()) {
            Some(e) => e,
            None if height == 0 => d.executed.clone(),
            // Finalized without this node executing it (backfill after a restart or a late
            // start): execute it now on the previous finalized state.
            None => match s.exec.verify(&d.block, &d.executed.state, b) {
                Ok(out) => Executed::new(height, out),
                Err(e) => {
                    // A finalized block this node cannot reproduce: stop following (marshal
                    // halts without the acknowledgement) rather than diverge.
                    s.finalizer_failed(FinalizerFailure::Diverged { height, reason: e });
                    return Feedback::Ok;
                }
            },
        };
        if height > 0
            && let Some(sink) = s.sink.get()
            && let Err(e) = sink.finalized(b, &executed)
        {
            s.finalizer_failed(FinalizerFailure::Persist { height, reason: e.to_string() });
            return Feedback::Ok;
        }
        executed.finalize_models(&s.exec.models);
        d.finalized.push(Finalized::of(b));
        if d.finalized.len() > MAX_FINALIZED_LOG + MAX_FINALIZED_LOG / 10 {
            let excess = d.finalized.len() - MAX_FINALIZED_LOG;
            d.finalized.drain(..excess);
        }
        d.block = b.clone();
        d.executed = executed.clone();
        drop(d);
        {
            let mut inner = lock(&s.inner);
            let digest = b.digest();
            // Included transactions go, and so do those whose nonce is now used.
            inner.mempool.prune(&executed.state);
            // Children are built and verified on this state, whether or not this node had
            // executed the block before it was finalized.
            inner.states.insert(digest, executed);
            inner.states.retain(|k, e| e.height > height || *k == digest);
        }
        ack.acknowledge();
        Feedback::Ok
    }
}
