//! [`Shared`]: the state of one node that its application ([`App`](crate::app::App)) and its
//! [`Finalizer`](crate::finalizer::Finalizer) share: the executed-state cache, the mempool, the
//! finalized side, and the logs of refused proposals and failed finalizations.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use alloy_primitives::{Address, B256, Bytes};
use commonware_cryptography::Digestible;
use fixpoint_evm::WorldState;
use fixpoint_precompiles::ModelStore;

use crate::app::Refused;
use crate::block::Block;
use crate::execute::{Executor, PendingTx, VerifyError};
use crate::executed::{Executed, States};
use crate::finalizer::{Durable, Finalized, FinalizerFailure, Sink};
use crate::mempool::{Mempool, Offered};

/// The unfinalized side of a node besides its executed states: the pool, its logs.
#[derive(Debug, Default)]
struct Inner {
    /// Pending transactions.
    mempool: Mempool,
    /// Proposals this node refused, with the reason.
    refused: Vec<Refused>,
    /// Finalized blocks this node could not apply.
    finalizer_failures: Vec<FinalizerFailure>,
    /// Blocks this node proposed.
    proposed: usize,
}

/// State shared by the application and the finalizer of one node.
pub struct Shared {
    /// The block executor.
    pub(crate) exec: Executor,
    /// Who receives the fees of the blocks this node builds.
    pub(crate) beneficiary: Address,
    /// Blocks this node built, verified or finalized, by digest.
    pub(crate) states: States,
    inner: Mutex<Inner>,
    durable: Mutex<Durable>,
    sink: OnceLock<Arc<dyn Sink>>,
    /// A byzantine test proposer's fault and log (honest unless a mocks constructor set it).
    #[cfg(feature = "mocks")]
    pub(crate) byzantine: crate::mocks::Byzantine,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("beneficiary", &self.beneficiary).finish_non_exhaustive()
    }
}

/// Locks `m`, whether or not a panicking holder poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// A node's shared state, starting from `start` (genesis, or the last finalized block a
    /// node persisted) and its post-state; the blocks it builds pay `beneficiary`.
    pub fn new(exec: Executor, start: &Block, state: WorldState, beneficiary: Address) -> Arc<Self> {
        Arc::new(Self::build(exec, start, state, beneficiary))
    }

    /// [`Shared::new`], not yet shared.
    pub(crate) fn build(exec: Executor, start: &Block, state: WorldState, beneficiary: Address) -> Self {
        let executed = Executed::start(start.body().height, state);
        let states = States::default();
        states.insert(start.digest(), executed.clone());
        Self {
            exec,
            beneficiary,
            states,
            inner: Mutex::default(),
            durable: Mutex::new(Durable::new(start, executed)),
            sink: OnceLock::new(),
            #[cfg(feature = "mocks")]
            byzantine: crate::mocks::Byzantine::default(),
        }
    }

    /// Persists finalized blocks through `sink` from now on (set once).
    pub fn set_sink(&self, sink: Arc<dyn Sink>) {
        let _ = self.sink.set(sink);
    }

    /// The sink, once set.
    pub(crate) fn sink(&self) -> Option<&Arc<dyn Sink>> {
        self.sink.get()
    }

    /// Queues transactions for proposal (decoded and sender-recovered here, once, in parallel); returns how
    /// many were new. Undecodable ones, duplicates and those [`Shared::offer`] refuses are dropped.
    pub fn submit(&self, txs: impl IntoIterator<Item = Bytes>) -> usize {
        self.submit_decoded(PendingTx::decode_all(txs.into_iter().collect()))
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
            let d = self.durable();
            (self.exec.next_env(&d.block), d.executed.clone())
        };
        let admitted = match self.exec.admits(&t, &env) {
            Ok(a) => a,
            Err(r) => return Offered::Refused(r),
        };
        lock(&self.inner).mempool.offer(t, admitted, &executed.state)
    }

    /// The transactions to offer a block on `state` ([`Mempool::candidates`]).
    pub fn candidates(&self, state: &WorldState) -> Vec<PendingTx> {
        lock(&self.inner).mempool.candidates(state)
    }

    /// The finalized blocks so far (the last [`MAX_FINALIZED_LOG`](crate::finalizer::MAX_FINALIZED_LOG)),
    /// in height order.
    pub fn finalized(&self) -> Vec<Finalized> {
        self.durable().finalized.clone()
    }

    /// The finalized blocks above `height`, in height order.
    pub fn finalized_above(&self, height: Option<u64>) -> Vec<Finalized> {
        let d = self.durable();
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

    /// Blocks this node proposed since it (re)started.
    pub fn proposed(&self) -> usize {
        lock(&self.inner).proposed
    }

    /// The last finalized block this node holds, and the state after it.
    pub fn head(&self) -> (Block, Arc<Executed>) {
        let d = self.durable();
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

    /// The finalized side, locked (taken before `inner` and the executed states, never after).
    pub(crate) fn durable(&self) -> MutexGuard<'_, Durable> {
        lock(&self.durable)
    }

    /// The height of the last finalized block.
    pub(crate) fn finalized_height(&self) -> u64 {
        self.durable().block.body().height
    }

    /// Counts a block this node proposed.
    pub(crate) fn count_proposal(&self) {
        lock(&self.inner).proposed += 1;
    }

    /// Drops pending transactions the executor refused on a block's state.
    pub(crate) fn drop_pending(&self, hashes: &HashSet<B256>) {
        lock(&self.inner).mempool.remove(hashes);
    }

    /// Drops pending transactions `state` includes or whose nonce it used.
    pub(crate) fn prune(&self, state: &WorldState) {
        lock(&self.inner).mempool.prune(state);
    }

    /// Logs a refused proposal.
    pub(crate) fn refuse(&self, block: &Block, reason: VerifyError) {
        let r = Refused { height: block.body().height, digest: block.digest(), reason };
        lock(&self.inner).refused.push(r);
    }

    /// Logs a finalized block this node could not apply.
    pub(crate) fn finalizer_failed(&self, f: FinalizerFailure) {
        eprintln!("{f}");
        lock(&self.inner).finalizer_failures.push(f);
    }
}
