//! The block executor: applies a block's transactions in order to a copy of the parent state
//! and returns the new state with receipts and the three roots a block header commits to.

use std::sync::Arc;

use alloy_consensus::transaction::Recovered;
use alloy_consensus::{Eip658Value, Receipt, ReceiptEnvelope, ReceiptWithBloom, Transaction, TxEnvelope, TxType};
use alloy_eips::eip2718::Encodable2718;
use alloy_evm::{Evm, FromRecoveredTx};
use alloy_primitives::{Address, B256, Bloom, Bytes, Log};
use alloy_trie::root::ordered_trie_root_with_encoder;
use fixpoint_precompiles::{InferenceRecord, ModelStore, Scope};
use revm::context::TxEnv;
use revm::context_interface::result::{ExecutionResult, Output};

pub use crate::chain::BlockEnvInput;
use crate::chain::{ChainSpec, create_evm};
use crate::state::{MemState, state_root};

/// Why a block cannot be executed: it is invalid, whoever proposed it.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// A transaction cannot be included (nonce, balance, gas limit, signature type...).
    #[error("transaction {index} is invalid: {reason}")]
    InvalidTx {
        /// Position in the block.
        index: usize,
        /// revm's reason.
        reason: String,
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
    /// The post-state.
    pub state: MemState,
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
    /// The execution's scope: commit it (`scope.commit(height)`) when the node keeps the block,
    /// so the models and upload chunks it received reach the model store.
    pub scope: Arc<Scope>,
}

/// Root of the inference records: the ordered Merkle-Patricia trie (keys `rlp(index)`, values
/// the records' fixed-width encoding), like Ethereum's transactions and receipts roots.
pub fn records_root(records: &[InferenceRecord]) -> B256 {
    ordered_trie_root_with_encoder(records, |r, buf| buf.extend_from_slice(&r.encode()))
}

/// Executes `txs` on a copy of `parent`.
pub fn execute_block(
    parent: &MemState,
    store: &Arc<ModelStore>,
    chain: &ChainSpec,
    block: &BlockEnvInput,
    txs: &[Recovered<TxEnvelope>],
) -> Result<BlockOutcome, ExecError> {
    let scope = Scope::new(store.clone());
    let mut evm = create_evm(parent.clone(), chain, block, &scope);
    let mut outcomes = Vec::with_capacity(txs.len());
    let mut cumulative = 0u64;
    let mut bloom = Bloom::ZERO;
    for (index, tx) in txs.iter().enumerate() {
        let tx_gas = tx.inner().gas_limit();
        if cumulative.saturating_add(tx_gas) > block.gas_limit {
            return Err(ExecError::BlockGasLimit { index, used: cumulative, tx_gas, limit: block.gas_limit });
        }
        scope.begin_tx(u32::try_from(index).unwrap_or(u32::MAX));
        let env = TxEnv::from_recovered_tx(tx.inner(), tx.signer());
        let result = evm.transact_commit(env).map_err(|e| ExecError::InvalidTx { index, reason: e.to_string() })?;
        let gas_used = result.tx_gas_used();
        cumulative = cumulative.saturating_add(gas_used);
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
        let receipt = Receipt { status: Eip658Value::Eip658(success), cumulative_gas_used: cumulative, logs };
        let with_bloom = ReceiptWithBloom::from(receipt);
        bloom |= with_bloom.logs_bloom;
        let receipt = match tx.inner().tx_type() {
            TxType::Legacy => ReceiptEnvelope::Legacy(with_bloom),
            TxType::Eip2930 => ReceiptEnvelope::Eip2930(with_bloom),
            TxType::Eip1559 => ReceiptEnvelope::Eip1559(with_bloom),
            TxType::Eip4844 => ReceiptEnvelope::Eip4844(with_bloom),
            TxType::Eip7702 => ReceiptEnvelope::Eip7702(with_bloom),
        };
        outcomes.push(TxOutcome {
            tx_hash: *tx.inner().tx_hash(),
            from: tx.signer(),
            success,
            gas_used,
            contract_address,
            output,
            receipt,
        });
    }
    let state = evm.into_db();
    let receipts_root = ordered_trie_root_with_encoder(&outcomes, |o, buf| o.receipt.encode_2718(buf));
    let records = scope.records();
    Ok(BlockOutcome {
        state_root: state_root(&state),
        state,
        txs: outcomes,
        gas_used: cumulative,
        receipts_root,
        records_root: records_root(&records),
        logs_bloom: bloom,
        records,
        scope,
    })
}
