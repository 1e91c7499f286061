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
use crate::executed::{Executed, States, Timing};
use crate::finalizer::{Durable, Finalized, FinalizerFailure, MAX_FINALIZED_LOG, Sink};
use crate::mempool::{Mempool, Offered};
use crate::timing::{ExecutionTime, Kind};

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
    /// Held through [`Shared::finalize`]: blocks are applied one at a time, in order.
    finalizing: Mutex<()>,
    /// Wall-clock time spent building and re-executing blocks.
    pub(crate) timing: Mutex<ExecutionTime>,
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
            finalizing: Mutex::new(()),
            timing: Mutex::default(),
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

    /// A pending transaction by hash.
    pub fn pending_tx(&self, hash: &B256) -> Option<PendingTx> {
        lock(&self.inner).mempool.get(hash).cloned()
    }

    /// The mempool's transactions, each marked executable on the last finalized state or not
    /// ([`crate::mempool::Mempool::content`]).
    pub fn pool_content(&self) -> Vec<(PendingTx, bool)> {
        let executed = self.durable().executed.clone();
        lock(&self.inner).mempool.content(&executed.state)
    }

    /// `sender`'s next nonce counting its pending transactions (on the last finalized state).
    pub fn pending_nonce(&self, sender: &Address) -> u64 {
        let executed = self.durable().executed.clone();
        lock(&self.inner).mempool.pending_nonce(&executed.state, sender)
    }

    /// Applies finalized `block` (a child of the last finalized one, consensus's or this node's
    /// own as a solo sealer): executes it if this node has not, persists it through the sink,
    /// prunes the mempool. `Ok(false)`: the block is already applied (a redelivery). An error
    /// halts finalization here: it is recorded ([`Shared::finalizer_failures`]) and returned.
    pub fn finalize(&self, b: &Block) -> Result<bool, FinalizerFailure> {
        // One finalization at a time; `durable` is held only to read and to update it, so
        // admissions (which read the finalized state) never wait for the sink's database write.
        let _one_at_a_time = lock(&self.finalizing);
        let height = b.body().height;
        let (parent, parent_executed) = {
            let d = self.durable();
            // Marshal may redeliver after a restart: apply each height once.
            if d.finalized.last().is_some_and(|f| f.height >= height) || height < d.block.body().height {
                return Ok(false);
            }
            (d.block.clone(), d.executed.clone())
        };
        let fail = |f: FinalizerFailure| {
            self.finalizer_failed(f.clone());
            Err(f)
        };
        if height > 0 && (b.body().parent != parent.digest() || parent.body().height.checked_add(1) != Some(height)) {
            // Delivered in order; anything else is a bug here: halt, never skip a block.
            return fail(FinalizerFailure::NotAChild(height));
        }
        let executed = match self.states.get(&b.digest()) {
            Some(e) => e,
            None if height == 0 => parent_executed,
            // Finalized without this node executing it (backfill after a restart or a late
            // start): execute it now on the previous finalized state.
            None => match self.timed(Kind::Verify, || self.exec.verify(&parent, &parent_executed.state, b)) {
                (Ok(out), took) => Executed::new(height, out, Timing::verified(took)),
                // A finalized block this node cannot reproduce: stop following rather than
                // diverge.
                (Err(e), _) => return fail(FinalizerFailure::Diverged { height, reason: e }),
            },
        };
        if height > 0
            && let Some(sink) = self.sink()
            && let Err(e) = sink.finalized(b, &executed)
        {
            return fail(FinalizerFailure::Persist { height, reason: e });
        }
        executed.finalize_models(&self.exec.models);
        {
            let mut d = self.durable();
            d.finalized.push(Finalized::of(b));
            if d.finalized.len() > MAX_FINALIZED_LOG + MAX_FINALIZED_LOG / 10 {
                let excess = d.finalized.len() - MAX_FINALIZED_LOG;
                d.finalized.drain(..excess);
            }
            d.block = b.clone();
            d.executed = executed.clone();
        }
        // Included transactions go, and so do those whose nonce is now used.
        self.prune(&executed.state);
        self.states.finalized(b.digest(), height, executed);
        Ok(true)
    }

    /// The wall-clock time this node spent building and re-executing blocks so far.
    pub fn execution_time(&self) -> ExecutionTime {
        *lock(&self.timing)
    }

    /// Runs `f` (one block's execution), timing it as `kind`.
    pub(crate) fn timed<T>(&self, kind: Kind, f: impl FnOnce() -> T) -> (T, std::time::Duration) {
        ExecutionTime::time(&self.timing, kind, f)
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
        tracing::warn!(height = r.height, digest = %alloy_primitives::hex::encode_prefixed(r.digest), reason = %r.reason, "block refused");
        lock(&self.inner).refused.push(r);
    }

    /// Logs a finalized block this node could not apply.
    pub(crate) fn finalizer_failed(&self, f: FinalizerFailure) {
        tracing::error!(failure = %f, "finalized block not applied");
        lock(&self.inner).finalizer_failures.push(f);
    }
}
