//! The commonware [`Application`]: `propose` builds a block from the pending transactions on the
//! parent's post-state, `verify` re-executes a proposal on its parent's post-state and votes for
//! it only if every claim holds (docs/consensus.md). Both work on the node's [`Shared`] state:
//! its executed-state cache ([`crate::executed`]) and its mempool.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use alloy_primitives::B256;
use commonware_consensus::Application;
use commonware_consensus::marshal::ancestry::Ancestry;
use commonware_consensus::simplex::types::Context;
use commonware_cryptography::sha256::Digest;
use commonware_cryptography::{Digested, Digestible};
use commonware_runtime::Clock;
use futures::StreamExt;

use crate::block::Block;
use crate::execute::{MAX_CLOCK_DRIFT, VerifyError};
use crate::executed::{Executed, Timing};
use crate::shared::Shared;
use crate::timing::Kind;

/// Validator public keys.
pub type PublicKey = commonware_cryptography::ed25519::PublicKey;
/// The simplex signing scheme (ed25519 attestations).
pub type Scheme = commonware_consensus::simplex::scheme::ed25519::Scheme;
/// The consensus context a proposal is made in.
pub type Ctx = Context<Digest, PublicKey>;

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
        let base = s
            .states
            .execute_ancestry(&s.exec, &s.timing, || s.finalized_height(), parent.clone(), &mut ancestry)
            .await?;
        let candidates = s.candidates(&base.state);
        let now = runtime.current().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let view = context.round.view().get();
        let ((block, out, refused), took) =
            s.timed(Kind::Build, || s.exec.build(&parent, &base.state, view, now, s.beneficiary, candidates));
        if !refused.is_empty() {
            // Refused by the executor on this state (e.g. the balance no longer covers it): drop
            // them rather than retry them in every block.
            let refused: HashSet<B256> = refused.into_iter().collect();
            s.drop_pending(&refused);
        }
        #[cfg(feature = "mocks")]
        let block = s.byzantine.tamper(block, &out);
        s.count_proposal();
        let executed = Executed::new(block.body().height, out, Timing::built(took));
        let digest = block.digest();
        s.states.insert(digest, executed);
        Some(Digested::precomputed(block, digest))
    }

    async fn verify(&mut self, context: (E, Ctx), mut ancestry: impl Ancestry<Block>) -> bool {
        let Some(candidate) = ancestry.next().await else { return false };
        let candidate = candidate.inner().clone();
        let s = &self.shared;
        if s.states.get(&candidate.digest()).is_some() {
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
        let executed =
            s.states.execute_ancestry(&s.exec, &s.timing, || s.finalized_height(), parent.clone(), &mut ancestry);
        let Some(base) = executed.await else {
            // The parent cannot be executed here: not provably invalid, so abstain.
            return std::future::pending().await;
        };
        let (verified, took) = s.timed(Kind::Verify, || s.exec.verify(&parent, &base.state, &candidate));
        match verified {
            Ok(out) => {
                let executed = Executed::new(candidate.body().height, out, Timing::verified(took));
                s.states.insert(candidate.digest(), executed);
                true
            }
            Err(e) => {
                s.refuse(&candidate, e);
                false
            }
        }
    }
}
