//! The transaction pool: full validation on entry (signature, EIP-155 chain id, nonce, balance,
//! intrinsic gas, EIP-1559 fees, size), per-sender nonce queues with gaps, and replacement by a
//! higher fee (at least +10 %). Error messages follow geth's, which clients match on.

use std::collections::{BTreeMap, HashMap, HashSet};

use alloy_consensus::transaction::Recovered;
use alloy_consensus::{Transaction, TxEnvelope};
use alloy_primitives::{Address, B256, U256};

use crate::chain::Chain;

/// Largest accepted encoded transaction.
pub const MAX_TX_BYTES: usize = 1 << 20;

/// Why a transaction is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Undecodable bytes or signature.
    #[error("{0}")]
    Invalid(String),
    /// Wrong or missing chain id.
    #[error("invalid chain id")]
    ChainId,
    /// Nonce below the account's.
    #[error("nonce too low: next nonce {next}, tx nonce {got}")]
    NonceTooLow {
        /// The account's nonce.
        next: u64,
        /// The transaction's.
        got: u64,
    },
    /// Cannot pay `gas * price + value`.
    #[error("insufficient funds for gas * price + value: balance {balance}, tx cost {cost}")]
    InsufficientFunds {
        /// Balance.
        balance: U256,
        /// Maximum cost.
        cost: U256,
    },
    /// Gas limit under the intrinsic cost.
    #[error("intrinsic gas too low: have {have}, want {want}")]
    IntrinsicGas {
        /// Given.
        have: u64,
        /// Needed.
        want: u64,
    },
    /// Gas limit above the block's.
    #[error("exceeds block gas limit")]
    GasLimit,
    /// Max fee under the next base fee.
    #[error("max fee per gas less than block base fee: maxFeePerGas: {max_fee}, baseFee: {base_fee}")]
    FeeTooLow {
        /// Offered.
        max_fee: u128,
        /// Required.
        base_fee: u64,
    },
    /// Same nonce, not enough more fee.
    #[error("replacement transaction underpriced")]
    Underpriced,
    /// Already in the pool.
    #[error("already known")]
    Known,
    /// Too big.
    #[error("oversized data: transaction size {0}, limit {MAX_TX_BYTES}")]
    Oversized(usize),
    /// Blob transactions are not supported.
    #[error("transaction type not supported")]
    Unsupported,
}

/// Pending transactions by sender and nonce.
#[derive(Debug, Default)]
pub struct Pool {
    by_sender: BTreeMap<Address, BTreeMap<u64, Recovered<TxEnvelope>>>,
    hashes: HashMap<B256, (Address, u64)>,
    /// Taken into the block being built, not yet in the chain: their hashes, and each
    /// sender's nonce after them.
    building: HashSet<B256>,
    building_nonce: HashMap<Address, u64>,
}

fn intrinsic_gas(tx: &TxEnvelope) -> u64 {
    let data = tx.input();
    let zeros = data.iter().filter(|b| **b == 0).count() as u64;
    let nonzeros = data.len() as u64 - zeros;
    let mut g = 21_000 + zeros * 4 + nonzeros * 16;
    if tx.kind().is_create() {
        g += 32_000 + 2 * (data.len() as u64).div_ceil(32);
    }
    if let Some(list) = tx.access_list() {
        g += list.iter().map(|i| 2_400 + 1_900 * i.storage_keys.len() as u64).sum::<u64>();
    }
    g
}

impl Pool {
    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// `sender`'s next nonce counting the block being built.
    fn base_nonce(&self, chain: &Chain, sender: &Address) -> u64 {
        chain.nonce(sender).max(self.building_nonce.get(sender).copied().unwrap_or(0))
    }

    /// The block being built is now in the chain (or was abandoned).
    pub fn built(&mut self) {
        self.building.clear();
        self.building_nonce.clear();
    }

    /// Pending transactions from `sender` (for the "pending" nonce).
    pub fn pending_nonce(&self, chain: &Chain, sender: &Address) -> u64 {
        let mut n = self.base_nonce(chain, sender);
        if let Some(q) = self.by_sender.get(sender) {
            while q.contains_key(&n) {
                n += 1;
            }
        }
        n
    }

    /// A pending transaction by hash.
    pub fn get(&self, hash: &B256) -> Option<&Recovered<TxEnvelope>> {
        let (s, n) = self.hashes.get(hash)?;
        self.by_sender.get(s)?.get(n)
    }

    /// Decodes a raw transaction and recovers its sender (size limit first).
    pub fn recover_raw(raw: &[u8]) -> Result<Recovered<TxEnvelope>, PoolError> {
        if raw.len() > MAX_TX_BYTES {
            return Err(PoolError::Oversized(raw.len()));
        }
        Chain::recover(raw).map_err(PoolError::Invalid)
    }

    /// Validates and adds a recovered transaction.
    pub fn add(&mut self, chain: &Chain, tx: Recovered<TxEnvelope>) -> Result<B256, PoolError> {
        let hash = *tx.inner().tx_hash();
        if self.hashes.contains_key(&hash) || self.building.contains(&hash) || chain.tx_index.contains_key(&hash) {
            return Err(PoolError::Known);
        }
        let t = tx.inner();
        if t.is_eip4844() {
            return Err(PoolError::Unsupported);
        }
        if t.chain_id() != Some(chain.spec.chain_id) {
            return Err(PoolError::ChainId);
        }
        let sender = tx.signer();
        let next = self.base_nonce(chain, &sender);
        if t.nonce() < next {
            return Err(PoolError::NonceTooLow { next, got: t.nonce() });
        }
        if t.gas_limit() > chain.gas_limit {
            return Err(PoolError::GasLimit);
        }
        let want = intrinsic_gas(t);
        if t.gas_limit() < want {
            return Err(PoolError::IntrinsicGas { have: t.gas_limit(), want });
        }
        let base_fee = chain.next_base_fee();
        if t.max_fee_per_gas() < u128::from(base_fee) {
            return Err(PoolError::FeeTooLow { max_fee: t.max_fee_per_gas(), base_fee });
        }
        let cost = U256::from(t.gas_limit()) * U256::from(t.max_fee_per_gas()) + t.value();
        let balance = chain.balance(&sender);
        if cost > balance {
            return Err(PoolError::InsufficientFunds { balance, cost });
        }
        let queue = self.by_sender.entry(sender).or_default();
        if let Some(old) = queue.get(&t.nonce()) {
            let (o, n) = (old.inner().max_fee_per_gas(), t.max_fee_per_gas());
            let (op, np) =
                (old.inner().max_priority_fee_per_gas().unwrap_or(o), t.max_priority_fee_per_gas().unwrap_or(n));
            if n < o + o / 10 || np < op + op / 10 {
                return Err(PoolError::Underpriced);
            }
            self.hashes.remove(old.inner().tx_hash());
        }
        self.hashes.insert(hash, (sender, t.nonce()));
        queue.insert(t.nonce(), tx);
        Ok(hash)
    }

    /// Forgets a pending transaction (consensus refused it).
    pub fn remove(&mut self, hash: &B256) {
        if let Some((sender, nonce)) = self.hashes.remove(hash)
            && let Some(q) = self.by_sender.get_mut(&sender)
        {
            q.remove(&nonce);
            if q.is_empty() {
                self.by_sender.remove(&sender);
            }
        }
    }

    /// Drops what the chain has made stale (nonces now used), after a block from consensus.
    pub fn prune(&mut self, chain: &Chain) {
        for (sender, queue) in &mut self.by_sender {
            let n = chain.nonce(sender);
            let stale: Vec<u64> = queue.range(..n).map(|(k, _)| *k).collect();
            for k in stale {
                if let Some(t) = queue.remove(&k) {
                    self.hashes.remove(t.inner().tx_hash());
                }
            }
        }
        self.by_sender.retain(|_, q| !q.is_empty());
    }

    /// Removes and returns the executable transactions (consecutive nonces from each sender's
    /// state nonce), senders in address order, up to `gas_limit` of gas limits.
    pub fn take_executable(&mut self, chain: &Chain, gas_limit: u64) -> Vec<Recovered<TxEnvelope>> {
        let mut out = Vec::new();
        let mut gas = 0u64;
        self.prune(chain);
        for (sender, queue) in &mut self.by_sender {
            let mut n = chain.nonce(sender);
            while let Some(t) = queue.get(&n) {
                if gas + t.inner().gas_limit() > gas_limit {
                    break;
                }
                gas += t.inner().gas_limit();
                if let Some(t) = queue.remove(&n) {
                    self.hashes.remove(t.inner().tx_hash());
                    self.building.insert(*t.inner().tx_hash());
                    out.push(t);
                }
                n += 1;
                self.building_nonce.insert(*sender, n);
            }
        }
        self.by_sender.retain(|_, q| !q.is_empty());
        out
    }
}
