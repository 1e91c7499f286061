//! Where a node's transactions go: its mode, chosen once at startup as a type behind [`Submit`].
//! A dev chain seals them itself ([`DevSealer`]: a solo sealer on the validators' path), a
//! validator offers them to its consensus mempool and gossips them ([`ValidatorSubmit`]), a
//! follower checks them like a validator would and forwards them upstream ([`FollowerSubmit`]).
//! Every mode admits with the same code (the consensus mempool's, revm's own checks); refusals
//! carry geth's messages, which clients match on.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy_consensus::TxEnvelope;
use alloy_consensus::transaction::Recovered;
use alloy_primitives::{Address, B256, U256};
use fixpoint_consensus::mempool::{Mempool, Offered, Refusal};
use fixpoint_consensus::sealer::Sealer;
use fixpoint_consensus::{Executor, PendingTx, Shared};
use fixpoint_evm::{BlockEnvInput, WorldState};
use revm::context_interface::result::InvalidTransaction;

use crate::chain::Chain;

/// Largest accepted encoded transaction.
pub const MAX_TX_BYTES: usize = 1 << 20;

/// Why a transaction is refused, in geth's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxRefused {
    /// Undecodable bytes or signature, or another of revm's reasons.
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
        base_fee: u128,
    },
    /// Same nonce, not enough more fee.
    #[error("replacement transaction underpriced")]
    Underpriced,
    /// Already pending or included.
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
    /// The sender has too many pending transactions, or this nonce is too far ahead.
    #[error("too many pending transactions from this sender (limit {})", fixpoint_consensus::mempool::MAX_PER_SENDER)]
    SenderFull,
    /// The node holds as many pending transactions as it may.
    #[error("txpool is full")]
    PoolFull,
    /// The node is stopping.
    #[error("the node is stopping")]
    Stopping,
    /// The node is starting (its mode is not set yet).
    #[error("the node is starting")]
    Starting,
}

impl From<InvalidTransaction> for TxRefused {
    /// revm's reasons, in geth's words where clients match on them.
    fn from(e: InvalidTransaction) -> Self {
        match e {
            InvalidTransaction::InvalidChainId | InvalidTransaction::MissingChainId => Self::ChainId,
            InvalidTransaction::CallerGasLimitMoreThanBlock | InvalidTransaction::TxGasLimitGreaterThanCap { .. } => {
                Self::GasLimit
            }
            InvalidTransaction::CallGasCostMoreThanGasLimit { gas_limit, initial_gas } => {
                Self::IntrinsicGas { have: gas_limit, want: initial_gas }
            }
            InvalidTransaction::GasFloorMoreThanGasLimit { gas_floor, gas_limit } => {
                Self::FloorDataGas { have: gas_limit, want: gas_floor }
            }
            InvalidTransaction::NonceTooLow { tx, state } => Self::NonceTooLow { next: state, got: tx },
            InvalidTransaction::LackOfFundForMaxFee { fee, balance } => {
                Self::InsufficientFunds { balance: *balance, cost: *fee }
            }
            InvalidTransaction::GasPriceLessThanBasefee => {
                Self::Invalid("max fee per gas less than block base fee".into())
            }
            other => Self::Invalid(other.to_string()),
        }
    }
}

impl From<Refusal> for TxRefused {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Invalid(e) => e.into(),
            Refusal::Never("blob transactions are not supported") => Self::Unsupported,
            Refusal::Never(why) => Self::Invalid(why.to_string()),
            Refusal::SenderFull { .. } => Self::SenderFull,
            Refusal::Underpriced => Self::Underpriced,
        }
    }
}

/// What became of an offered transaction, as the RPC answers it.
fn answer(o: Offered) -> Result<(), TxRefused> {
    {
        match o {
            Offered::Added => Ok(()),
            // Resent while pending: geth answers "already known".
            Offered::Known => Err(TxRefused::Known),
            Offered::Full => Err(TxRefused::PoolFull),
            Offered::Refused(r) => Err(r.into()),
        }
    }
}

/// Decodes a raw transaction and recovers its sender (size limit first).
pub fn decode(raw: alloy_primitives::Bytes) -> Result<PendingTx, TxRefused> {
    if raw.len() > MAX_TX_BYTES {
        return Err(TxRefused::Oversized(raw.len()));
    }
    PendingTx::decode(raw).map_err(|e| match e {
        fixpoint_consensus::VerifyError::BadTransaction { reason, .. } => TxRefused::Invalid(reason),
        other => TxRefused::Invalid(other.to_string()),
    })
}

/// The chain's head as a mode needs it, taken under the chain's read lock in O(1) and used
/// after it is released: a mode takes its own locks (the consensus node's), which block
/// production holds while it waits for the chain's write lock.
#[derive(Debug, Clone)]
pub struct Head {
    /// The next block's environment (base fee, gas limit).
    pub env: BlockEnvInput,
    /// The head's post-state.
    pub state: Arc<WorldState>,
}

impl Head {
    /// `chain`'s head.
    pub fn of(chain: &Chain) -> Self {
        Self { env: chain.next_env(chain.head().header.timestamp), state: chain.state.clone() }
    }
}

/// Where the RPC's transactions go: one implementation per node mode.
pub trait Submit: Send + Sync + 'static {
    /// Admits `tx` (decoded and recovered) for inclusion: `Ok` once it is pending here, the
    /// refusal otherwise (`Known` if it already was).
    fn submit(&self, head: &Head, tx: PendingTx) -> Result<(), TxRefused>;

    /// A pending transaction by hash.
    fn pending_tx(&self, hash: &B256) -> Option<Recovered<TxEnvelope>>;

    /// `sender`'s next nonce counting its pending transactions.
    fn pending_nonce(&self, head: &Head, sender: &Address) -> u64;

    /// A block is now the chain's head (its post-state `state`).
    fn finalized(&self, _state: &WorldState) {}

    /// Transactions pending here (the mempool's size).
    fn pending_count(&self) -> usize;

    /// Every transaction held here, each marked executable (geth's "pending") or waiting for
    /// an earlier nonce ("queued"), by sender then nonce.
    fn content(&self, head: &Head) -> Vec<(PendingTx, bool)>;
}

impl TxRefused {
    /// A short, bounded name for the refusal (the `reason` label of the refusal metric).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid",
            Self::ChainId => "chain_id",
            Self::NonceTooLow { .. } => "nonce_too_low",
            Self::InsufficientFunds { .. } => "insufficient_funds",
            Self::IntrinsicGas { .. } => "intrinsic_gas",
            Self::GasLimit => "gas_limit",
            Self::FeeTooLow { .. } => "fee_too_low",
            Self::Underpriced => "underpriced",
            Self::Known => "known",
            Self::Oversized(_) => "oversized",
            Self::Unsupported => "unsupported",
            Self::FloorDataGas { .. } => "floor_data_gas",
            Self::SenderFull => "sender_full",
            Self::PoolFull => "pool_full",
            Self::Stopping => "stopping",
            Self::Starting => "starting",
        }
    }
}

impl std::fmt::Debug for dyn Submit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Submit")
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// How a dev chain seals: as soon as transactions arrive (each block takes whatever accumulated
/// while the previous one was built), or one block every interval, empty or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealing {
    /// On arrival (like anvil's automine).
    Instant,
    /// Every interval.
    Interval(Duration),
}

/// A dev chain: its transactions go to the consensus mempool and a thread seals them into
/// blocks alone ([`Sealer`]), finalized through the node's sink like a validator's.
#[derive(Debug)]
pub struct DevSealer {
    shared: Arc<Shared>,
    wake: SyncSender<()>,
}

impl DevSealer {
    /// Starts the sealing thread over `shared` (whose sink must be set before the first block).
    pub fn start(shared: Arc<Shared>, sealing: Sealing) -> Self {
        let (wake, rx) = std::sync::mpsc::sync_channel(1);
        let sealer = Sealer::new(shared.clone());
        std::thread::spawn(move || seal_loop(&sealer, &rx, sealing));
        Self { shared, wake }
    }
}

fn seal_loop(sealer: &Sealer, rx: &Receiver<()>, sealing: Sealing) {
    let mut next_tick = sealing_tick(sealing);
    loop {
        let force = match sealing {
            Sealing::Instant => match rx.recv() {
                Ok(()) => false,
                Err(_) => return,
            },
            // Arrivals do not seal (nor postpone the next block): only the interval does.
            Sealing::Interval(every) => {
                let wait = next_tick.map_or(every, |t| t.saturating_duration_since(Instant::now()));
                match rx.recv_timeout(wait) {
                    Ok(()) => continue,
                    Err(RecvTimeoutError::Timeout) => {
                        next_tick = sealing_tick(sealing);
                        true
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        };
        // Seal until nothing is pending: what arrived meanwhile goes in the next block.
        let mut force = force;
        loop {
            match sealer.seal(now(), force) {
                Ok(Some(_)) if sealing == Sealing::Instant => force = false,
                Ok(_) => break,
                Err(e) => {
                    // Recorded by the sealer's finalization; the chain stays at its head.
                    eprintln!("block production halted: {e}");
                    return;
                }
            }
        }
    }
}

/// When the next interval block is due (none for instant sealing).
fn sealing_tick(sealing: Sealing) -> Option<Instant> {
    match sealing {
        Sealing::Instant => None,
        Sealing::Interval(every) => Some(Instant::now() + every),
    }
}

impl Submit for DevSealer {
    fn submit(&self, _head: &Head, tx: PendingTx) -> Result<(), TxRefused> {
        let added = self.shared.offer(tx);
        if added == Offered::Added {
            // A full channel means a wake-up is already pending: nothing is lost.
            let _ = self.wake.try_send(());
        }
        answer(added)
    }

    fn pending_tx(&self, hash: &B256) -> Option<Recovered<TxEnvelope>> {
        self.shared.pending_tx(hash).map(|t| t.tx)
    }

    fn pending_nonce(&self, _head: &Head, sender: &Address) -> u64 {
        self.shared.pending_nonce(sender)
    }

    fn pending_count(&self) -> usize {
        self.shared.pending()
    }

    fn content(&self, _head: &Head) -> Vec<(PendingTx, bool)> {
        self.shared.pool_content()
    }
}

/// A validator: its transactions go to its consensus mempool (its own proposals) and, by
/// gossip, to every other validator.
pub struct ValidatorSubmit {
    shared: Arc<Shared>,
    gossip: futures::channel::mpsc::UnboundedSender<PendingTx>,
}

impl std::fmt::Debug for ValidatorSubmit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidatorSubmit").finish_non_exhaustive()
    }
}

impl ValidatorSubmit {
    /// Offers to `shared`'s mempool, gossips through `gossip`.
    pub fn new(shared: Arc<Shared>, gossip: futures::channel::mpsc::UnboundedSender<PendingTx>) -> Self {
        Self { shared, gossip }
    }
}

impl Submit for ValidatorSubmit {
    fn submit(&self, _head: &Head, tx: PendingTx) -> Result<(), TxRefused> {
        let offered = self.shared.offer(tx.clone());
        if offered == Offered::Added {
            let _ = self.gossip.unbounded_send(tx);
        }
        answer(offered)
    }

    fn pending_tx(&self, hash: &B256) -> Option<Recovered<TxEnvelope>> {
        self.shared.pending_tx(hash).map(|t| t.tx)
    }

    fn pending_nonce(&self, _head: &Head, sender: &Address) -> u64 {
        self.shared.pending_nonce(sender)
    }

    fn pending_count(&self) -> usize {
        self.shared.pending()
    }

    fn content(&self, _head: &Head) -> Vec<(PendingTx, bool)> {
        self.shared.pool_content()
    }
}

/// A follower: admits what a validator would (the same mempool rules, on its own finalized
/// state), keeps it until a block includes it, and forwards it to its upstream validator.
pub struct FollowerSubmit {
    exec: Executor,
    pending: Mutex<Mempool>,
    upstream: futures::channel::mpsc::UnboundedSender<PendingTx>,
}

impl std::fmt::Debug for FollowerSubmit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FollowerSubmit").finish_non_exhaustive()
    }
}

impl FollowerSubmit {
    /// Checks with `exec`'s rules, forwards through `upstream`.
    pub fn new(exec: Executor, upstream: futures::channel::mpsc::UnboundedSender<PendingTx>) -> Self {
        Self { exec, pending: Mutex::default(), upstream }
    }
}

impl Submit for FollowerSubmit {
    fn submit(&self, head: &Head, tx: PendingTx) -> Result<(), TxRefused> {
        let admitted = self.exec.admits(&tx, &head.env).map_err(TxRefused::from)?;
        let offered =
            self.pending.lock().unwrap_or_else(PoisonError::into_inner).offer(tx.clone(), admitted, &head.state);
        if offered == Offered::Added {
            self.upstream.unbounded_send(tx).map_err(|_| TxRefused::Stopping)?;
        }
        answer(offered)
    }

    fn pending_tx(&self, hash: &B256) -> Option<Recovered<TxEnvelope>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).get(hash).map(|t| t.tx.clone())
    }

    fn pending_nonce(&self, head: &Head, sender: &Address) -> u64 {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).pending_nonce(&head.state, sender)
    }

    fn finalized(&self, state: &WorldState) {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).prune(state);
    }

    fn pending_count(&self) -> usize {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    fn content(&self, head: &Head) -> Vec<(PendingTx, bool)> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).content(&head.state)
    }
}
