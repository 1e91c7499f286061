//! The block executor: applies a block's transactions in order over an overlay of the parent
//! state and returns the new state with receipts and the three roots a block header commits to.

use std::convert::Infallible;
use std::sync::Arc;

use alloy_consensus::transaction::Recovered;
use alloy_consensus::{Eip658Value, Receipt, ReceiptEnvelope, ReceiptWithBloom, Transaction, TxEnvelope, TxType};
use alloy_eips::eip2718::Encodable2718;
use alloy_evm::eth::{EthEvm, EthEvmContext};
use alloy_evm::precompiles::PrecompilesMap;
use alloy_evm::{Evm, FromRecoveredTx};
use alloy_primitives::{Address, B256, Bloom, Bytes, Log};
use alloy_trie::root::ordered_trie_root_with_encoder;
use fixpoint_precompiles::{InferenceRecord, ModelStore, Scope};
use revm::context::TxEnv;
use revm::context_interface::result::{EVMError, ExecutionResult, Output};
use revm::inspector::{Inspector, NoOpInspector};

pub use crate::chain::BlockEnvInput;
use crate::chain::{ChainSpec, create_evm_with_inspector};
use crate::state::{Overlay, StateChanges, WorldState};

/// Why revm will not execute a transaction on a state: its own checks (nonce, balance, intrinsic
/// gas, fee cap...) or a fatal error a precompile raised. The state overlay never fails to read,
/// hence `Infallible`.
pub type TxRejection = EVMError<Infallible>;

/// Why a block cannot be executed: it is invalid, whoever proposed it.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// A transaction cannot be included (nonce, balance, gas limit, signature type...).
    #[error("transaction {index} is invalid: {reason}")]
    InvalidTx {
        /// Position in the block.
        index: usize,
        /// revm's reason.
        reason: TxRejection,
    },
    /// The transactions' gas limits exceed the block's.
    #[error("transaction {index} exceeds the block gas limit ({used} + {tx_gas} > {limit})")]
    BlockGasLimit {
        /// Position in the block.
        index: usize,
        /// Gas used before it.
        used: u64,
        /// Its gas limit.
        tx_gas: u64,
        /// The block gas limit.
        limit: u64,
    },
}

/// One executed transaction.
#[derive(Debug, Clone)]
pub struct TxOutcome {
    /// Transaction hash.
    pub tx_hash: B256,
    /// Sender.
    pub from: Address,
    /// Whether it succeeded (status 1).
    pub success: bool,
    /// Gas used by this transaction.
    pub gas_used: u64,
    /// The address of a contract it created.
    pub contract_address: Option<Address>,
    /// Return or revert data.
    pub output: Bytes,
    /// The receipt (typed, with bloom).
    pub receipt: ReceiptEnvelope,
}

/// The result of executing a block.
#[derive(Debug)]
pub struct BlockOutcome {
    /// The post-state (the parent's, with `changes` applied).
    pub state: WorldState,
    /// What the block changed.
    pub changes: StateChanges,
    /// Per-transaction results.
    pub txs: Vec<TxOutcome>,
    /// Total gas used.
    pub gas_used: u64,
    /// Root of the post-state.
    pub state_root: B256,
    /// Root of the receipts.
    pub receipts_root: B256,
    /// Root of the inference records.
    pub records_root: B256,
    /// Bloom of all logs.
    pub logs_bloom: Bloom,
    /// Every inference executed, in order.
    pub records: Vec<InferenceRecord>,
    /// Wall time spent in inference calls (for metrics; no result depends on it).
    pub inference_time: std::time::Duration,
    /// The execution's scope: commit it (`scope.commit(height)`) when the node keeps the block,
    /// so the models and upload chunks it received reach the model store.
    pub scope: Arc<Scope>,
}

/// Root of the inference records: the ordered Merkle-Patricia trie (keys `rlp(index)`, values
/// the records' fixed-width encoding), like Ethereum's transactions and receipts roots.
pub fn records_root(records: &[InferenceRecord]) -> B256 {
    ordered_trie_root_with_encoder(records, |r, buf| buf.extend_from_slice(&r.encode()))
}

/// Executes `txs` over `parent`: a proposed block, all or nothing (a validator's
/// re-execution). Any transaction revm refuses, or one past the block gas limit, makes the whole
/// block invalid.
pub fn execute_block(
    parent: &WorldState,
    store: &Arc<ModelStore>,
    chain: &ChainSpec,
    block: &BlockEnvInput,
    txs: &[Recovered<TxEnvelope>],
) -> Result<BlockOutcome, ExecError> {
    execute_block_in(Scope::new(store.clone()), parent, chain, block, txs)
}

/// [`execute_block`] in a given scope (e.g. [`Scope::tracing`], to replay a block and read the
/// inputs of its inference calls).
pub fn execute_block_in(
    scope: Arc<Scope>,
    parent: &WorldState,
    chain: &ChainSpec,
    block: &BlockEnvInput,
    txs: &[Recovered<TxEnvelope>],
) -> Result<BlockOutcome, ExecError> {
    let mut run = Run::new(parent, scope, chain, block, txs.len(), NoOpInspector);
    for (index, tx) in txs.iter().enumerate() {
        run.apply_checked(index, tx, block)?;
    }
    Ok(run.finish())
}

/// Replays a block prefix over `parent` and runs `inspector` over its last transaction only
/// (`debug_traceTransaction`): the transactions before it are applied exactly as
/// [`execute_block_in`] applies them, without the inspector. Returns the traced transaction's
/// outcome and the inspector; `None` if `txs` is empty.
pub fn inspect_last_in<I: Inspector<EthEvmContext<Overlay>>>(
    scope: Arc<Scope>,
    parent: &WorldState,
    chain: &ChainSpec,
    block: &BlockEnvInput,
    txs: &[Recovered<TxEnvelope>],
    inspector: I,
) -> Result<Option<(TxOutcome, I)>, ExecError> {
    let Some((last, before)) = txs.split_last() else { return Ok(None) };
    let mut run = Run::new(parent, scope, chain, block, txs.len(), inspector);
    for (index, tx) in before.iter().enumerate() {
        run.apply_checked(index, tx, block)?;
    }
    run.evm.enable_inspector();
    run.apply_checked(before.len(), last, block)?;
    let outcome = run.outcomes.pop();
    Ok(outcome.map(|o| (o, run.evm.into_inner().inspector)))
}

/// A block built from candidates by [`build_block`].
#[derive(Debug)]
pub struct BuiltBlock {
    /// The execution of the included transactions.
    pub outcome: BlockOutcome,
    /// Positions in the candidate list of the transactions included, in block order.
    pub included: Vec<usize>,
    /// Candidates that can never be in a block on this parent (revm refused them, or their gas
    /// limit exceeds the block's), with the reason.
    pub refused: Vec<Refused>,
}

/// A candidate [`build_block`] left out for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Position in the candidate list.
    pub index: usize,
    /// Transaction hash.
    pub hash: B256,
    /// Why.
    pub reason: RefusedReason,
}

/// Why [`build_block`] left a candidate out for good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefusedReason {
    /// Its gas limit exceeds the block's, so no block on this chain can hold it.
    #[error("gas limit {tx_gas} above the block's {limit}")]
    GasLimit {
        /// The transaction's gas limit.
        tx_gas: u64,
        /// The block gas limit.
        limit: u64,
    },
    /// revm will not execute it on the state the earlier candidates left.
    #[error(transparent)]
    Rejected(TxRejection),
}

/// Builds a block from `candidates` in one pass (a proposer): each candidate is executed on the
/// state the previous ones left; one revm refuses (nonce, balance, intrinsic gas...) is left out
/// without touching the state, one whose gas limit no longer fits waits for a later block, and
/// building stops after `max_txs` inclusions. Re-executing the included transactions with
/// [`execute_block`] gives the same outcome: a refused transaction changes nothing.
pub fn build_block(
    parent: &WorldState,
    store: &Arc<ModelStore>,
    chain: &ChainSpec,
    block: &BlockEnvInput,
    candidates: &[Recovered<TxEnvelope>],
    max_txs: usize,
) -> BuiltBlock {
    let mut run =
        Run::new(parent, Scope::new(store.clone()), chain, block, candidates.len().min(max_txs), NoOpInspector);
    let mut included = Vec::new();
    let mut refused = Vec::new();
    for (index, tx) in candidates.iter().enumerate() {
        if included.len() >= max_txs {
            break;
        }
        let tx_gas = tx.inner().gas_limit();
        let hash = *tx.inner().tx_hash();
        if tx_gas > block.gas_limit {
            refused.push(Refused { index, hash, reason: RefusedReason::GasLimit { tx_gas, limit: block.gas_limit } });
            continue;
        }
        if run.cumulative.saturating_add(tx_gas) > block.gas_limit {
            continue; // fits in a later block
        }
        match run.apply(tx) {
            Ok(()) => included.push(index),
            Err(reason) => refused.push(Refused { index, hash, reason: RefusedReason::Rejected(reason) }),
        }
    }
    BuiltBlock { outcome: run.finish(), included, refused }
}

/// One block's execution in progress: the EVM over an overlay of the parent state (which it
/// only reads), the receipts so far, and the scope collecting inference records.
struct Run<I = NoOpInspector> {
    evm: EthEvm<Overlay, I, PrecompilesMap>,
    scope: Arc<Scope>,
    outcomes: Vec<TxOutcome>,
    cumulative: u64,
    bloom: Bloom,
}

impl<I: Inspector<EthEvmContext<Overlay>>> Run<I> {
    /// A run whose `inspector` is off until `evm.enable_inspector()`.
    fn new(
        parent: &WorldState,
        scope: Arc<Scope>,
        chain: &ChainSpec,
        block: &BlockEnvInput,
        txs: usize,
        inspector: I,
    ) -> Self {
        let mut evm = create_evm_with_inspector(Overlay::new(parent.clone()), chain, block, &scope, inspector);
        evm.disable_inspector();
        Self { evm, scope, outcomes: Vec::with_capacity(txs), cumulative: 0, bloom: Bloom::ZERO }
    }

    /// [`Run::apply`] as a block's `index`th transaction, which must fit the block gas limit.
    fn apply_checked(
        &mut self,
        index: usize,
        tx: &Recovered<TxEnvelope>,
        block: &BlockEnvInput,
    ) -> Result<(), ExecError> {
        let tx_gas = tx.inner().gas_limit();
        if self.cumulative.saturating_add(tx_gas) > block.gas_limit {
            return Err(ExecError::BlockGasLimit { index, used: self.cumulative, tx_gas, limit: block.gas_limit });
        }
        self.apply(tx).map_err(|reason| ExecError::InvalidTx { index, reason })
    }

    /// Executes `tx` as the next transaction of the block; `Err` (revm's reason) leaves the
    /// state, the records and the receipts as they were.
    fn apply(&mut self, tx: &Recovered<TxEnvelope>) -> Result<(), TxRejection> {
        let index = self.outcomes.len();
        self.scope.begin_tx(u32::try_from(index).unwrap_or(u32::MAX));
        let env = TxEnv::from_recovered_tx(tx.inner(), tx.signer());
        let result = self.evm.transact_commit(env)?;
        let gas_used = result.tx_gas_used();
        self.cumulative = self.cumulative.saturating_add(gas_used);
        let (success, logs, output, contract_address): (bool, Vec<Log>, Bytes, Option<Address>) = match result {
            ExecutionResult::Success { logs, output, .. } => {
                let created = match &output {
                    Output::Create(_, addr) => *addr,
                    Output::Call(_) => None,
                };
                (true, logs, output.into_data(), created)
            }
            ExecutionResult::Revert { output, .. } => (false, Vec::new(), output, None),
            ExecutionResult::Halt { .. } => (false, Vec::new(), Bytes::new(), None),
        };
        let receipt = Receipt { status: Eip658Value::Eip658(success), cumulative_gas_used: self.cumulative, logs };
        let with_bloom = ReceiptWithBloom::from(receipt);
        self.bloom |= with_bloom.logs_bloom;
        let receipt = match tx.inner().tx_type() {
            TxType::Legacy => ReceiptEnvelope::Legacy(with_bloom),
            TxType::Eip2930 => ReceiptEnvelope::Eip2930(with_bloom),
            TxType::Eip1559 => ReceiptEnvelope::Eip1559(with_bloom),
            TxType::Eip4844 => ReceiptEnvelope::Eip4844(with_bloom),
            TxType::Eip7702 => ReceiptEnvelope::Eip7702(with_bloom),
        };
        self.outcomes.push(TxOutcome {
            tx_hash: *tx.inner().tx_hash(),
            from: tx.signer(),
            success,
            gas_used,
            contract_address,
            output,
            receipt,
        });
        Ok(())
    }

    fn finish(self) -> BlockOutcome {
        let overlay = self.evm.into_db();
        let changes = overlay.db.changes(&overlay.cache);
        let mut state = overlay.db;
        state.apply(&changes);
        let receipts_root = ordered_trie_root_with_encoder(&self.outcomes, |o, buf| o.receipt.encode_2718(buf));
        let records = self.scope.records();
        BlockOutcome {
            state_root: state.root(),
            state,
            changes,
            txs: self.outcomes,
            gas_used: self.cumulative,
            receipts_root,
            records_root: records_root(&records),
            logs_bloom: self.bloom,
            records,
            inference_time: self.scope.inference_time(),
            scope: self.scope,
        }
    }
}
