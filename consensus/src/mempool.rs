//! The transactions a validator holds for proposal: recovered once on arrival, admitted only if
//! revm would accept them on the last finalized state (fee, intrinsic gas with the EIP-7623
//! floor, EIP-7702, code at the sender) with the sender's pending transactions together within
//! its balance, at most [`MAX_PER_SENDER`] per sender and no further ahead of its nonce, and
//! offered per sender in nonce order without gaps (docs/consensus.md).
//!
//! Whatever a peer gossips, a leader's block then costs about one execution per transaction:
//! what would be refused at building time is refused here, for free, instead.

use std::collections::{BTreeMap, HashMap, HashSet};

use alloy_primitives::{Address, B256, U256};
use fixpoint_evm::WorldState;
use fixpoint_evm::admission::{Admitted, check_sender};
use revm::context_interface::result::InvalidTransaction;

use crate::execute::PendingTx;

/// Most transactions a node holds for proposal; later arrivals are refused until blocks drain it.
pub const MAX_PENDING: usize = 100_000;

/// Most pending transactions per sender, and how far ahead of its nonce one may be.
pub const MAX_PER_SENDER: u64 = 1_024;

/// What became of a transaction offered for proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offered {
    /// Pending now.
    Added,
    /// Already pending (e.g. gossiped by another validator first).
    Known,
    /// Refused: it would not be includable.
    Refused(Refusal),
    /// [`MAX_PENDING`] transactions are pending already.
    Full,
}

/// Why a transaction is not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// revm would refuse it on the last finalized state.
    #[error("{0}")]
    Invalid(InvalidTransaction),
    /// It could never be in a block of this chain (size, type).
    #[error("transaction can never be included in a block of this chain: {0}")]
    Never(&'static str),
    /// The sender has [`MAX_PER_SENDER`] pending transactions, or this one is that far ahead.
    #[error("too many pending transactions from {sender}: nonce {nonce}, account nonce {next}, limit {MAX_PER_SENDER}")]
    SenderFull {
        /// The sender.
        sender: Address,
        /// The transaction's nonce.
        nonce: u64,
        /// The account's nonce.
        next: u64,
    },
    /// Same nonce as a pending one without at least 10 % more fee.
    #[error("replacement transaction underpriced")]
    Underpriced,
}

#[derive(Debug, Clone)]
struct Entry {
    tx: PendingTx,
    max_cost: U256,
}

/// Pending transactions by sender and nonce.
#[derive(Debug, Default)]
pub struct Mempool {
    by_sender: HashMap<Address, BTreeMap<u64, Entry>>,
    /// Order of each sender's first arrival (senders are offered in this order).
    first_seen: HashMap<Address, u64>,
    /// Each pending transaction's sender and nonce, by hash.
    known: HashMap<B256, (Address, u64)>,
    arrivals: u64,
}

fn fees(t: &PendingTx) -> (u128, u128) {
    use alloy_consensus::Transaction as _;
    let tx = t.tx.inner();
    (tx.max_fee_per_gas(), tx.max_priority_fee_per_gas().unwrap_or(tx.max_fee_per_gas()))
}

fn nonce_of(state: &WorldState, sender: &Address) -> u64 {
    state.nonce(sender)
}

impl Mempool {
    /// Pending transactions.
    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// A pending transaction by hash.
    pub fn get(&self, hash: &B256) -> Option<&PendingTx> {
        let (sender, nonce) = self.known.get(hash)?;
        self.by_sender.get(sender)?.get(nonce).map(|e| &e.tx)
    }

    /// The nonce `sender`'s next transaction takes counting its pending ones: its nonce in
    /// `state`, then one more for each pending transaction that follows without a gap.
    pub fn pending_nonce(&self, state: &WorldState, sender: &Address) -> u64 {
        let mut next = nonce_of(state, sender);
        if let Some(queue) = self.by_sender.get(sender) {
            while queue.contains_key(&next) {
                next = next.saturating_add(1);
            }
        }
        next
    }

    /// Every transaction held, by sender then nonce, each marked executable (`true`: its nonce
    /// follows the sender's nonce in `state` without a gap, geth's "pending") or not ("queued").
    pub fn content(&self, state: &WorldState) -> Vec<(PendingTx, bool)> {
        let mut senders: Vec<(&Address, &BTreeMap<u64, Entry>)> = self.by_sender.iter().collect();
        senders.sort_by_key(|(sender, _)| **sender);
        let mut out = Vec::with_capacity(self.known.len());
        for (sender, queue) in senders {
            let mut next = nonce_of(state, sender);
            for (nonce, e) in queue {
                let executable = *nonce == next;
                if executable {
                    next = next.saturating_add(1);
                }
                out.push((e.tx.clone(), executable));
            }
        }
        out
    }

    /// Admits `t` (which revm's stateless checks passed as `admitted`) on `state`, the last
    /// finalized state.
    pub fn offer(&mut self, t: PendingTx, admitted: Admitted, state: &WorldState) -> Offered {
        let hash = t.hash();
        if self.known.contains_key(&hash) {
            return Offered::Known;
        }
        let sender = t.sender();
        let nonce = t.nonce();
        let account = state.account(&sender).map(|a| &a.info);
        let next = account.map_or(0, |a| a.nonce);
        let queue = self.by_sender.get(&sender);
        let replaced = queue.and_then(|q| q.get(&nonce));
        let others = queue.map_or(0, |q| q.range(next..).count()).saturating_sub(usize::from(replaced.is_some()));
        if nonce >= next.saturating_add(MAX_PER_SENDER) || others as u64 >= MAX_PER_SENDER {
            return Offered::Refused(Refusal::SenderFull { sender, nonce, next });
        }
        if let Some(old) = replaced {
            let ((of, op), (nf, np)) = (fees(&old.tx), fees(&t));
            if nf < of.saturating_add(of / 10) || np < op.saturating_add(op / 10) {
                return Offered::Refused(Refusal::Underpriced);
            }
        }
        let ahead = queue.map_or(U256::ZERO, |q| q.range(next..nonce).fold(U256::ZERO, |a, (_, e)| a + e.max_cost));
        if let Err(e) = check_sender(account, nonce, admitted.max_cost, ahead) {
            return Offered::Refused(Refusal::Invalid(e));
        }
        if replaced.is_none() && self.len() >= MAX_PENDING {
            return Offered::Full;
        }
        let arrivals = &mut self.arrivals;
        self.first_seen.entry(sender).or_insert_with(|| {
            *arrivals += 1;
            *arrivals
        });
        let queue = self.by_sender.entry(sender).or_default();
        if let Some(old) = queue.insert(nonce, Entry { tx: t, max_cost: admitted.max_cost }) {
            self.known.remove(&old.tx.hash());
        }
        self.known.insert(hash, (sender, nonce));
        Offered::Added
    }

    /// The transactions to offer a block on `state`: each sender's in nonce order from its nonce
    /// in `state` without gaps (others wait), senders in order of first arrival.
    pub fn candidates(&self, state: &WorldState) -> Vec<PendingTx> {
        let mut senders: Vec<(&Address, u64)> =
            self.by_sender.keys().map(|s| (s, self.first_seen.get(s).copied().unwrap_or(u64::MAX))).collect();
        senders.sort_by_key(|(s, seen)| (*seen, **s));
        let mut out = Vec::new();
        for (sender, _) in senders {
            let Some(queue) = self.by_sender.get(sender) else { continue };
            let mut next = nonce_of(state, sender);
            for (n, e) in queue.range(next..) {
                if *n != next {
                    break;
                }
                out.push(e.tx.clone());
                next = next.saturating_add(1);
            }
        }
        out
    }

    /// Forgets transactions by hash (refused by the executor: they never become includable).
    pub fn remove(&mut self, hashes: &HashSet<B256>) {
        for queue in self.by_sender.values_mut() {
            queue.retain(|_, e| !hashes.contains(&e.tx.hash()));
        }
        self.known.retain(|h, _| !hashes.contains(h));
        self.drop_empty();
    }

    /// Forgets the transactions whose nonce `state` (a finalized state) has used.
    pub fn prune(&mut self, state: &WorldState) {
        for (sender, queue) in &mut self.by_sender {
            let next = nonce_of(state, sender);
            let kept = queue.split_off(&next);
            for e in std::mem::replace(queue, kept).into_values() {
                self.known.remove(&e.tx.hash());
            }
        }
        self.drop_empty();
    }

    fn drop_empty(&mut self) {
        self.by_sender.retain(|_, q| !q.is_empty());
        let by_sender = &self.by_sender;
        self.first_seen.retain(|s, _| by_sender.contains_key(s));
    }
}
