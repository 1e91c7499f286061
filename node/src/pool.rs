//! The transaction pool: full validation on entry (signature, EIP-155 chain id, nonce, balance,
//! intrinsic gas, EIP-1559 fees, size), per-sender nonce queues with gaps, and replacement by a
//! higher fee (at least +10 %). Error messages follow geth's, which clients match on.

use std::collections::{BTreeMap, HashMap, HashSet};

use alloy_consensus::transaction::Recovered;
use alloy_consensus::{Transaction, TxEnvelope};
use alloy_primitives::{Address, B256, U256};

use fixpoint_evm::admission::{check_sender, check_tx};
use revm::context_interface::result::InvalidTransaction;

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
    /// Gas limit under the EIP-7623 calldata floor.
    #[error("insufficient gas for floor data gas cost: have {have}, want {want}")]
    FloorDataGas {
        /// Given.
        have: u64,
        /// Needed.
        want: u64,
    },
    /// The sender has [`MAX_PER_SENDER`] pending transactions, or this nonce is that far ahead.
    #[error("too many pending transactions from this sender (limit {MAX_PER_SENDER})")]
    SenderFull,
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
    /// What the block being built may spend of each sender's balance.
    building_spend: HashMap<Address, U256>,
}

/// What revm requires the sender's balance to cover for `tx`.
fn max_cost(tx: &Recovered<TxEnvelope>) -> U256 {
    U256::from(tx.inner().gas_limit())
        .saturating_mul(U256::from(tx.inner().max_fee_per_gas()))
        .saturating_add(tx.inner().value())
}

/// Most pending transactions per sender, and how far ahead of its nonce one may be (the
/// consensus mempool's limit, so what a validator's RPC admits its mempool admits too).
pub const MAX_PER_SENDER: u64 = fixpoint_consensus::mempool::MAX_PER_SENDER;

impl From<InvalidTransaction> for PoolError {
    /// revm's reasons, in geth's words where clients match on them.
    fn from(e: InvalidTransaction) -> Self {
        match e {
            InvalidTransaction::InvalidChainId | InvalidTransaction::MissingChainId => PoolError::ChainId,
            InvalidTransaction::CallerGasLimitMoreThanBlock => PoolError::GasLimit,
            InvalidTransaction::CallGasCostMoreThanGasLimit { gas_limit, initial_gas } => {
                PoolError::IntrinsicGas { have: gas_limit, want: initial_gas }
            }
            InvalidTransaction::GasFloorMoreThanGasLimit { gas_floor, gas_limit } => {
                PoolError::FloorDataGas { have: gas_limit, want: gas_floor }
            }
            InvalidTransaction::NonceTooLow { tx, state } => PoolError::NonceTooLow { next: state, got: tx },
            InvalidTransaction::LackOfFundForMaxFee { fee, balance } => {
                PoolError::InsufficientFunds { balance: *balance, cost: *fee }
            }
            other => PoolError::Invalid(other.to_string()),
        }
    }
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
        self.building_spend.clear();
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
        // revm's own checks for the next block: fees, gas limit, intrinsic gas with the
        // EIP-7623 floor, EIP-7702 (fixpoint_evm::admission).
        let env = chain.next_env(chain.head().header.timestamp);
        let base_fee = env.base_fee;
        if t.max_fee_per_gas() < u128::from(base_fee) {
            return Err(PoolError::FeeTooLow { max_fee: t.max_fee_per_gas(), base_fee });
        }
        let admitted = check_tx(&chain.spec, &env, &tx)?;
        let queue = self.by_sender.get(&sender);
        let others = queue
            .map_or(0, |q| q.range(next..).count() as u64)
            .saturating_sub(u64::from(queue.is_some_and(|q| q.contains_key(&t.nonce()))));
        if t.nonce() >= next.saturating_add(MAX_PER_SENDER) || others >= MAX_PER_SENDER {
            return Err(PoolError::SenderFull);
        }
        // The sender's pending transactions ahead of this one and this one, together, within
        // the balance (revm checks each against what the ones before it left).
        let ahead = queue.map_or(U256::ZERO, |q| {
            q.range(next..t.nonce()).fold(U256::ZERO, |a, (_, p)| a.saturating_add(max_cost(p)))
        });
        let account = chain.state.account(&sender).map(|a| &a.info);
        let building = self.building_spend.get(&sender).copied().unwrap_or_default();
        check_sender(account, t.nonce(), admitted.max_cost, ahead.saturating_add(building))?;
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
                    let spend = self.building_spend.entry(*sender).or_default();
                    *spend = spend.saturating_add(max_cost(&t));
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
