//! The commonware [`Application`]: `propose` builds a block from the pending transactions on the
//! parent's post-state, `verify` re-executes a proposal on its parent's post-state and votes for
//! it only if every claim holds (docs/consensus.md). [`Finalizer`] receives finalized blocks
//! from marshal, in height order, and records them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::UNIX_EPOCH;

use alloy_primitives::{Address, B256, Bytes, keccak256};
use commonware_actor::Feedback;
use commonware_consensus::marshal::Update;
use commonware_consensus::marshal::ancestry::Ancestry;
use commonware_consensus::simplex::types::Context;
use commonware_consensus::{Application, Reporter};
use commonware_cryptography::sha256::Digest;
use commonware_cryptography::{Digested, Digestible};
use commonware_runtime::Clock;
use commonware_utils::Acknowledgement;
use fixpoint_evm::MemState;
use futures::StreamExt;

use crate::block::Block;
use crate::execute::{Executor, VerifyError};

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
    /// Its inference engine "answers differently": claims a records root over altered outputs.
    WrongInferenceOutput,
    /// Claims a wrong inference-records root.
    WrongRecordsRoot,
    /// Slips a transaction with a nonce gap into its block.
    InvalidTransaction,
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
}

/// What a node loses when it crashes: executed-but-not-final states, the pool, its log of
/// refusals.
#[derive(Debug, Default)]
struct Inner {
    /// Post-states of blocks this node built or verified, by digest, with their heights.
    states: HashMap<Digest, (u64, MemState)>,
    /// Pending transactions (EIP-2718).
    mempool: Vec<Bytes>,
    /// Proposals this node refused, with the reason.
    refused: Vec<(u64, VerifyError)>,
    /// Blocks this node proposed, and how many of them it tampered with.
    proposed: (usize, usize),
}

/// What a node keeps across a crash (its database): the last finalized block, the state after
/// it, and the finalized chain.
#[derive(Debug)]
struct Durable {
    block: Block,
    state: MemState,
    finalized: Vec<Finalized>,
}

/// State shared by the application and the finalizer of one node.
#[derive(Debug)]
pub struct Shared {
    exec: Executor,
    proposer: Proposer,
    beneficiary: Address,
    inner: Mutex<Inner>,
    durable: Arc<Mutex<Durable>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// A node's shared state, starting from `genesis` and its post-state.
    pub fn new(
        exec: Executor,
        genesis: &Block,
        state: MemState,
        proposer: Proposer,
        beneficiary: Address,
    ) -> Arc<Self> {
        let mut inner = Inner::default();
        inner.states.insert(genesis.digest(), (0, state.clone()));
        let durable = Durable { block: genesis.clone(), state, finalized: Vec::new() };
        Arc::new(Self { exec, proposer, beneficiary, inner: Mutex::new(inner), durable: Arc::new(Mutex::new(durable)) })
    }

    /// The same node after a crash: what was durable (finalized chain and state, model store)
    /// survives; the pool and unfinalized states are gone.
    pub fn restart(&self) -> Arc<Self> {
        let mut inner = Inner::default();
        {
            let d = lock(&self.durable);
            inner.states.insert(d.block.digest(), (d.block.body().height, d.state.clone()));
        }
        Arc::new(Self {
            exec: self.exec.clone(),
            proposer: self.proposer,
            beneficiary: self.beneficiary,
            inner: Mutex::new(inner),
            durable: self.durable.clone(),
        })
    }

    /// Queues transactions for proposal.
    pub fn submit(&self, txs: impl IntoIterator<Item = Bytes>) {
        lock(&self.inner).mempool.extend(txs);
    }

    /// The finalized blocks so far, in height order.
    pub fn finalized(&self) -> Vec<Finalized> {
        lock(&self.durable).finalized.clone()
    }

    /// Proposals refused so far (height, reason).
    pub fn refused(&self) -> Vec<(u64, VerifyError)> {
        lock(&self.inner).refused.clone()
    }

    /// Blocks this node proposed since it (re)started, and how many it tampered with.
    pub fn proposed(&self) -> (usize, usize) {
        lock(&self.inner).proposed
    }

    /// Pending transactions.
    pub fn pending(&self) -> usize {
        lock(&self.inner).mempool.len()
    }

    fn tamper(&self, block: Block, out: &fixpoint_evm::BlockOutcome) -> Block {
        let mut body = block.body().clone();
        match self.proposer {
            Proposer::Honest => return block,
            Proposer::WrongStateRoot => body.state_root = keccak256(body.state_root),
            Proposer::WrongInferenceOutput => {
                let mut records = out.records.clone();
                match records.first_mut() {
                    Some(r) => r.output_hash = keccak256(r.output_hash),
                    None => return block,
                }
                body.records_root = fixpoint_evm::records_root(&records);
            }
            Proposer::WrongRecordsRoot => body.records_root = keccak256(body.records_root),
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
        let (state, txs) = {
            let inner = lock(&s.inner);
            (inner.states.get(&parent.digest())?.1.clone(), inner.mempool.clone())
        };
        let now = runtime.current().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let view = context.round.view().get();
        let (block, out) = s.exec.propose(&parent, &state, view, now, s.beneficiary, &txs);
        let honest_digest = block.digest();
        let block = s.tamper(block, &out);
        {
            let mut inner = lock(&s.inner);
            inner.proposed.0 += 1;
            inner.proposed.1 += usize::from(block.digest() != honest_digest);
        }
        // Content-addressed: staging the block's models in the store early cannot change a
        // result (docs/precompiles.md), and children may be built before finalization.
        out.scope.commit();
        lock(&s.inner).states.insert(block.digest(), (block.body().height, out.state));
        let digest = block.digest();
        Some(Digested::precomputed(block, digest))
    }

    async fn verify(&mut self, _context: (E, Ctx), mut ancestry: impl Ancestry<Block>) -> bool {
        let (Some(candidate), Some(parent)) = (ancestry.next().await, ancestry.next().await) else {
            return false;
        };
        let (candidate, parent) = (candidate.inner().clone(), parent.inner().clone());
        let s = &self.shared;
        if lock(&s.inner).states.contains_key(&candidate.digest()) {
            return true; // built or verified here already
        }
        let Some((_, state)) = lock(&s.inner).states.get(&parent.digest()).cloned() else {
            // Parent not executed here: not provably invalid, so abstain.
            return std::future::pending().await;
        };
        match s.exec.verify(&parent, &state, &candidate) {
            Ok(out) => {
                out.scope.commit();
                lock(&s.inner).states.insert(candidate.digest(), (candidate.body().height, out.state));
                true
            }
            Err(e) => {
                lock(&s.inner).refused.push((candidate.body().height, e));
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

impl Reporter for Finalizer {
    type Activity = Update<Block>;

    fn report(&mut self, activity: Update<Block>) -> Feedback {
        let Update::Block(block, ack) = activity else { return Feedback::Ok };
        let b = block.inner();
        let s = &self.shared;
        let height = b.body().height;
        let mut d = lock(&s.durable);
        // Marshal may redeliver after a restart: apply each height once.
        if d.finalized.last().is_some_and(|f| f.height >= height) {
            drop(d);
            ack.acknowledge();
            return Feedback::Ok;
        }
        let known = lock(&s.inner).states.get(&b.digest()).map(|(_, st)| st.clone());
        let state = match known {
            Some(st) => st,
            None if height == 0 => d.state.clone(),
            // Finalized without this node executing it (backfill after a restart or a late
            // start): execute it now on the previous finalized state.
            None => match s.exec.verify(&d.block, &d.state, b) {
                Ok(out) => {
                    out.scope.commit();
                    out.state
                }
                Err(e) => {
                    // A finalized block this node cannot reproduce: stop following (marshal
                    // halts without the acknowledgement) rather than diverge.
                    lock(&s.inner).refused.push((height, e));
                    return Feedback::Ok;
                }
            },
        };
        d.finalized.push(Finalized {
            height,
            digest: b.digest(),
            state_root: b.body().state_root,
            records_root: b.body().records_root,
            txs: b.body().txs.len(),
        });
        d.block = b.clone();
        d.state = state.clone();
        drop(d);
        {
            let mut inner = lock(&s.inner);
            let included: HashSet<&Bytes> = b.body().txs.iter().collect();
            inner.mempool.retain(|t| !included.contains(t));
            let digest = b.digest();
            // Children are built and verified on this state, whether or not this node had
            // executed the block before it was finalized.
            inner.states.insert(digest, (height, state));
            inner.states.retain(|k, (h, _)| *h > height || *k == digest);
        }
        ack.acknowledge();
        Feedback::Ok
    }
}
