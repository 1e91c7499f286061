//! Building a block from pending transactions (the leader's `propose`) and re-executing a
//! proposed block (every validator's `verify`), both with the `evm` block executor, inference
//! included. A block is accepted only if everything it claims is what re-execution gives.

use std::sync::Arc;

use alloy_consensus::TxEnvelope;
use alloy_consensus::transaction::{Recovered, SignerRecoverable};
use alloy_eips::eip1559::BaseFeeParams;
use alloy_eips::eip2718::Decodable2718;
use alloy_primitives::{Address, B256, Bytes, keccak256};
use commonware_cryptography::Digestible;
use fixpoint_evm::admission::{Admitted, check_tx};
use fixpoint_evm::{BlockEnvInput, BlockOutcome, ChainSpec, WorldState, build_block, execute_block};

use crate::mempool::Refusal;
use fixpoint_precompiles::ModelStore;

use crate::block::{Block, BlockBody, BlockLimits};

/// Why a proposed block is refused. Each is a fault of the proposer: honest validators never
/// vote for such a block, whoever proposed it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// Not a child of the block it names, or the height does not follow.
    #[error("block does not extend its parent (height {height}, parent height {parent_height})")]
    NotAChild {
        /// Claimed height.
        height: u64,
        /// The parent's height.
        parent_height: u64,
    },
    /// Timestamp before the parent's.
    #[error("timestamp {0} is before the parent's")]
    Timestamp(u64),
    /// Timestamp too far ahead of this validator's clock (checked when voting only).
    #[error("timestamp {got} is more than {MAX_CLOCK_DRIFT} s ahead of this validator's clock ({now})")]
    FutureTimestamp {
        /// Claimed.
        got: u64,
        /// The validator's clock.
        now: u64,
    },
    /// Gas limit other than the chain's.
    #[error("gas limit {got}, the chain's is {want}")]
    GasLimit {
        /// Claimed.
        got: u64,
        /// Required.
        want: u64,
    },
    /// Base fee other than EIP-1559 gives from the parent.
    #[error("base fee {got}, EIP-1559 gives {want}")]
    BaseFee {
        /// Claimed.
        got: u64,
        /// Required.
        want: u64,
    },
    /// Too many transactions or one too large.
    #[error("block exceeds limits: {0}")]
    Limits(String),
    /// A transaction does not decode or its signature does not recover.
    #[error("transaction {index}: {reason}")]
    BadTransaction {
        /// Position.
        index: usize,
        /// Why.
        reason: String,
    },
    /// The executor refused the block (invalid nonce or balance, gas limit...).
    #[error("{0}")]
    Execution(String),
    /// Claimed state root differs from re-execution.
    #[error("state root mismatch: block claims {claimed}, re-execution gives {actual}")]
    StateRoot {
        /// In the block.
        claimed: B256,
        /// Computed.
        actual: B256,
    },
    /// Claimed receipts root differs.
    #[error("receipts root mismatch: block claims {claimed}, re-execution gives {actual}")]
    ReceiptsRoot {
        /// In the block.
        claimed: B256,
        /// Computed.
        actual: B256,
    },
    /// Claimed inference-records root differs (a wrong inference output shows here).
    #[error("inference-records root mismatch: block claims {claimed}, re-execution gives {actual}")]
    RecordsRoot {
        /// In the block.
        claimed: B256,
        /// Computed.
        actual: B256,
    },
    /// Claimed gas used differs.
    #[error("gas used mismatch: block claims {claimed}, re-execution gives {actual}")]
    GasUsed {
        /// In the block.
        claimed: u64,
        /// Computed.
        actual: u64,
    },
}

/// How far (seconds) a proposal's timestamp may be ahead of a voting validator's clock.
pub const MAX_CLOCK_DRIFT: u64 = 15;

/// What execution needs besides the parent: chain rules, the block gas limit, codec limits and
/// the model store.
#[derive(Debug, Clone)]
pub struct Executor {
    /// Chain id and hardfork.
    pub spec: ChainSpec,
    /// Every block's gas limit.
    pub gas_limit: u64,
    /// Limits on block contents.
    pub limits: BlockLimits,
    /// Model bytes (content-addressed).
    pub models: Arc<ModelStore>,
}

/// The EVM environment a block executes in.
pub fn block_env(b: &BlockBody) -> BlockEnvInput {
    BlockEnvInput {
        number: b.height,
        timestamp: b.timestamp,
        gas_limit: b.gas_limit,
        base_fee: b.base_fee,
        beneficiary: b.beneficiary,
        prev_randao: keccak256(b.parent.as_ref()),
    }
}

/// A transaction waiting for a block: its EIP-2718 bytes and the decoded, sender-recovered form
/// (recovered once, on arrival).
#[derive(Debug, Clone)]
pub struct PendingTx {
    /// EIP-2718 encoding, as it goes into a block.
    pub raw: Bytes,
    /// Decoded, with its sender.
    pub tx: Recovered<TxEnvelope>,
}

impl PendingTx {
    /// Decodes `raw` and recovers its sender.
    pub fn decode(raw: Bytes) -> Result<Self, VerifyError> {
        let tx = recover(0, &raw)?;
        Ok(Self { raw, tx })
    }

    /// The transaction hash.
    pub fn hash(&self) -> B256 {
        *self.tx.inner().tx_hash()
    }

    /// The sender.
    pub fn sender(&self) -> Address {
        self.tx.signer()
    }

    /// The nonce.
    pub fn nonce(&self) -> u64 {
        alloy_consensus::Transaction::nonce(self.tx.inner())
    }
}

/// Decodes and recovers each of `raws`, in parallel across cores (rayon): the same results, in
/// the same order, as one after the other. Recovery is most of a block's verification time.
pub fn recover_all(raws: &[Bytes]) -> Vec<Result<Recovered<TxEnvelope>, VerifyError>> {
    use rayon::prelude::*;
    raws.par_iter().enumerate().map(|(i, raw)| recover(i, raw)).collect()
}

impl PendingTx {
    /// [`PendingTx::decode`] of each of `raws`, in parallel, order kept; those that do not
    /// decode or recover are left out.
    pub fn decode_all(raws: Vec<Bytes>) -> Vec<PendingTx> {
        let recovered = recover_all(&raws);
        raws.into_iter().zip(recovered).filter_map(|(raw, tx)| Some(PendingTx { raw, tx: tx.ok()? })).collect()
    }
}

fn recover(index: usize, raw: &[u8]) -> Result<Recovered<TxEnvelope>, VerifyError> {
    let bad = |reason: String| VerifyError::BadTransaction { index, reason };
    // geth's words, which the RPC returns as they are.
    let tx = TxEnvelope::decode_2718(&mut &raw[..]).map_err(|e| bad(format!("invalid transaction: {e}")))?;
    let signer = tx.recover_signer().map_err(|_| bad("invalid sender signature".into()))?;
    Ok(Recovered::new_unchecked(tx, signer))
}

impl Executor {
    /// The base fee a child of `parent` must have.
    pub fn next_base_fee(&self, parent: &BlockBody) -> u64 {
        BaseFeeParams::ethereum().next_block_base_fee(parent.gas_used, parent.gas_limit, parent.base_fee)
    }

    /// Builds a child of `parent` (whose post-state is `state`) from raw `candidates`, leaving
    /// out transactions that do not decode, do not recover or that the executor refuses.
    pub fn propose(
        &self,
        parent: &Block,
        state: &WorldState,
        view: u64,
        timestamp: u64,
        beneficiary: Address,
        candidates: &[Bytes],
    ) -> (Block, BlockOutcome) {
        let pending = PendingTx::decode_all(candidates.to_vec());
        let (block, outcome, _refused) = self.build(parent, state, view, timestamp, beneficiary, pending);
        (block, outcome)
    }

    /// The environment of a child of `parent` built now (for admission checks: the fields that
    /// matter are the base fee and the gas limit).
    pub fn next_env(&self, parent: &Block) -> BlockEnvInput {
        let p = parent.body();
        BlockEnvInput {
            number: p.height.saturating_add(1),
            timestamp: p.timestamp,
            gas_limit: self.gas_limit,
            base_fee: self.next_base_fee(p),
            beneficiary: Address::ZERO,
            prev_randao: keccak256(parent.digest().as_ref()),
        }
    }

    /// Whether `t` could be in a child block with environment `env`: within the size limit, not
    /// a blob transaction, and revm's own checks of the transaction ([`check_tx`]: chain id, fee
    /// against the base fee, gas limit, intrinsic gas with the EIP-7623 floor, EIP-7702).
    /// Pending transactions that are not are refused on arrival.
    pub fn admits(&self, t: &PendingTx, env: &BlockEnvInput) -> Result<Admitted, Refusal> {
        if t.raw.len() > self.limits.max_tx_bytes {
            return Err(Refusal::Never("larger than the block's transaction size limit"));
        }
        if t.tx.inner().is_eip4844() {
            return Err(Refusal::Never("blob transactions are not supported"));
        }
        check_tx(&self.spec, env, &t.tx).map_err(Refusal::Invalid)
    }

    /// Builds a child of `parent` (whose post-state is `state`) from recovered `candidates`, in
    /// their order, in one pass ([`build_block`]): oversized ones and those revm refuses are left
    /// out, ones that no longer fit wait, and at most the transaction limit go in. Also returns
    /// the hashes of the refused ones, which can never be included on this state.
    pub fn build(
        &self,
        parent: &Block,
        state: &WorldState,
        view: u64,
        timestamp: u64,
        beneficiary: Address,
        candidates: Vec<PendingTx>,
    ) -> (Block, BlockOutcome, Vec<B256>) {
        let p = parent.body();
        let mut refused = Vec::new();
        let mut txs = Vec::with_capacity(candidates.len());
        let mut raws = Vec::with_capacity(candidates.len());
        for c in candidates {
            if c.raw.len() <= self.limits.max_tx_bytes {
                txs.push(c.tx);
                raws.push(c.raw);
            } else {
                refused.push(c.hash());
            }
        }
        let mut body = BlockBody {
            parent: parent.digest(),
            height: p.height.saturating_add(1),
            view,
            // Not before the parent's; equal when blocks come faster than one a second.
            timestamp: timestamp.max(p.timestamp),
            gas_limit: self.gas_limit,
            base_fee: self.next_base_fee(p),
            beneficiary,
            ..Default::default()
        };
        let env = block_env(&body);
        let built = build_block(state, &self.models, &self.spec, &env, &txs, self.limits.max_txs);
        refused.extend(built.refused.iter().map(|r| r.hash));
        body.txs = built.included.iter().filter_map(|&i| raws.get(i).cloned()).collect();
        let outcome = built.outcome;
        body.state_root = outcome.state_root;
        body.receipts_root = outcome.receipts_root;
        body.records_root = outcome.records_root;
        body.gas_used = outcome.gas_used;
        (Block::new(body), outcome, refused)
    }

    /// Re-executes `block` on `parent`'s post-state `state`; the outcome if every claim holds.
    pub fn verify(&self, parent: &Block, state: &WorldState, block: &Block) -> Result<BlockOutcome, VerifyError> {
        let (p, b) = (parent.body(), block.body());
        if b.parent != parent.digest() || p.height.checked_add(1) != Some(b.height) {
            return Err(VerifyError::NotAChild { height: b.height, parent_height: p.height });
        }
        if b.timestamp < p.timestamp {
            return Err(VerifyError::Timestamp(b.timestamp));
        }
        if b.gas_limit != self.gas_limit {
            return Err(VerifyError::GasLimit { got: b.gas_limit, want: self.gas_limit });
        }
        let want = self.next_base_fee(p);
        if b.base_fee != want {
            return Err(VerifyError::BaseFee { got: b.base_fee, want });
        }
        if b.txs.len() > self.limits.max_txs {
            return Err(VerifyError::Limits(format!("{} transactions", b.txs.len())));
        }
        let txs = recover_all(&b.txs).into_iter().collect::<Result<Vec<_>, _>>()?;
        let out = execute_block(state, &self.models, &self.spec, &block_env(b), &txs)
            .map_err(|e| VerifyError::Execution(e.to_string()))?;
        if out.state_root != b.state_root {
            return Err(VerifyError::StateRoot { claimed: b.state_root, actual: out.state_root });
        }
        if out.receipts_root != b.receipts_root {
            return Err(VerifyError::ReceiptsRoot { claimed: b.receipts_root, actual: out.receipts_root });
        }
        if out.records_root != b.records_root {
            return Err(VerifyError::RecordsRoot { claimed: b.records_root, actual: out.records_root });
        }
        if out.gas_used != b.gas_used {
            return Err(VerifyError::GasUsed { claimed: b.gas_used, actual: out.gas_used });
        }
        Ok(out)
    }
}
