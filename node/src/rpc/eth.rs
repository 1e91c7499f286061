//! The `eth` namespace: chain, state, calls, transactions, blocks and logs, as geth and anvil
//! answer them (docs/rpc.md). Filters are in [`super::filter`], subscriptions in
//! [`super::pubsub`].

use std::sync::Arc;

use alloy_consensus::Transaction as _;
use alloy_consensus::TxEnvelope;
use alloy_eips::BlockId;
use alloy_primitives::{Address, B256, Bytes, U64, U256};
use alloy_rpc_types_eth::state::StateOverride;
use alloy_rpc_types_eth::{
    Block as RpcBlock, BlockNumberOrTag, FeeHistory, Filter, Log as RpcLog, SyncStatus, Transaction as RpcTransaction,
    TransactionReceipt, TransactionRequest,
};
use jsonrpsee::proc_macros::rpc;
use revm::context_interface::result::ExecutionResult;
use serde_json::{Value, json};

use super::convert::{pending_tx, rpc_block, rpc_receipt, rpc_tx};
use super::query::{block_number, call, estimate, logs, state_for};
use super::{Event, MAX_PROOF_KEYS, Node, RpcResult, invalid, reverted, server};
use crate::chain::Block;
use crate::submit::{Head, TxRefused};

/// A block as the RPC shows it.
type BlockView = RpcBlock<RpcTransaction<TxEnvelope>>;

/// The `eth` methods (geth's names and parameters).
#[rpc(server, namespace = "eth")]
pub trait EthApi {
    /// The chain id.
    #[method(name = "chainId")]
    fn chain_id(&self) -> RpcResult<U64>;
    /// `false`, or how far a catching-up follower is.
    #[method(name = "syncing")]
    fn syncing(&self) -> RpcResult<SyncStatus>;
    /// No accounts: the node holds no keys.
    #[method(name = "accounts")]
    fn accounts(&self) -> RpcResult<Vec<Address>>;
    /// The head block's number.
    #[method(name = "blockNumber")]
    fn block_number(&self) -> RpcResult<U64>;
    /// The next block's base fee plus the suggested tip.
    #[method(name = "gasPrice")]
    fn gas_price(&self) -> RpcResult<U256>;
    /// The suggested tip (1 gwei).
    #[method(name = "maxPriorityFeePerGas")]
    fn max_priority_fee_per_gas(&self) -> RpcResult<U256>;
    /// Base fees, gas used ratios and tip percentiles of recent blocks.
    #[method(name = "feeHistory")]
    fn fee_history(&self, count: U64, newest: BlockNumberOrTag, percentiles: Option<Vec<f64>>)
    -> RpcResult<FeeHistory>;
    /// An account's balance.
    #[method(name = "getBalance")]
    fn balance(&self, address: Address, block: Option<BlockId>) -> RpcResult<U256>;
    /// An account's nonce (with `pending`, counting its transactions in the mempool).
    #[method(name = "getTransactionCount")]
    fn transaction_count(&self, address: Address, block: Option<BlockId>) -> RpcResult<U64>;
    /// An account's code.
    #[method(name = "getCode")]
    fn code(&self, address: Address, block: Option<BlockId>) -> RpcResult<Bytes>;
    /// A storage slot.
    #[method(name = "getStorageAt")]
    fn storage_at(&self, address: Address, slot: U256, block: Option<BlockId>) -> RpcResult<B256>;
    /// An account and storage proof against the state root (EIP-1186).
    #[method(name = "getProof", blocking)]
    fn proof(&self, address: Address, keys: Option<Vec<B256>>, block: Option<BlockId>) -> RpcResult<Value>;
    /// Runs a call on a block's state.
    #[method(name = "call", blocking)]
    fn call(
        &self,
        tx: TransactionRequest,
        block: Option<BlockId>,
        overrides: Option<StateOverride>,
    ) -> RpcResult<Bytes>;
    /// The least gas a call succeeds with.
    #[method(name = "estimateGas", blocking)]
    fn estimate_gas(
        &self,
        tx: TransactionRequest,
        block: Option<BlockId>,
        overrides: Option<StateOverride>,
    ) -> RpcResult<U64>;
    /// Admits a signed transaction.
    #[method(name = "sendRawTransaction", blocking)]
    fn send_raw_transaction(&self, raw: Bytes) -> RpcResult<B256>;
    /// A transaction by hash, mined or pending.
    #[method(name = "getTransactionByHash")]
    fn transaction_by_hash(&self, hash: B256) -> RpcResult<Option<RpcTransaction<TxEnvelope>>>;
    /// A transaction by block number and index.
    #[method(name = "getTransactionByBlockNumberAndIndex")]
    fn transaction_by_number_and_index(
        &self,
        block: BlockNumberOrTag,
        index: U64,
    ) -> RpcResult<Option<RpcTransaction<TxEnvelope>>>;
    /// A transaction by block hash and index.
    #[method(name = "getTransactionByBlockHashAndIndex")]
    fn transaction_by_hash_and_index(&self, block: B256, index: U64) -> RpcResult<Option<RpcTransaction<TxEnvelope>>>;
    /// A mined transaction's receipt.
    #[method(name = "getTransactionReceipt")]
    fn transaction_receipt(&self, hash: B256) -> RpcResult<Option<TransactionReceipt>>;
    /// Every receipt of a block.
    #[method(name = "getBlockReceipts")]
    fn block_receipts(&self, block: BlockId) -> RpcResult<Option<Vec<TransactionReceipt>>>;
    /// A block by number or tag.
    #[method(name = "getBlockByNumber")]
    fn block_by_number(&self, block: BlockNumberOrTag, full: Option<bool>) -> RpcResult<Option<BlockView>>;
    /// A block by hash.
    #[method(name = "getBlockByHash")]
    fn block_by_hash(&self, hash: B256, full: Option<bool>) -> RpcResult<Option<BlockView>>;
    /// How many transactions a block (by number or tag) has.
    #[method(name = "getBlockTransactionCountByNumber")]
    fn block_tx_count_by_number(&self, block: BlockNumberOrTag) -> RpcResult<Option<U64>>;
    /// How many transactions a block (by hash) has.
    #[method(name = "getBlockTransactionCountByHash")]
    fn block_tx_count_by_hash(&self, hash: B256) -> RpcResult<Option<U64>>;
    /// Logs matching a filter.
    #[method(name = "getLogs")]
    fn logs(&self, filter: Filter) -> RpcResult<Vec<RpcLog>>;
}

/// The `eth` namespace over a node.
#[derive(Debug, Clone)]
pub struct EthRpc(pub Arc<Node>);

impl EthRpc {
    /// The block `id` names, if this node has it.
    fn with_block<T>(&self, id: BlockId, f: impl FnOnce(&Block) -> T) -> Option<T> {
        let chain = self.0.chain();
        let b = match id {
            BlockId::Number(t) => chain.block(block_number(&chain, Some(t))),
            BlockId::Hash(h) => chain.block_by_hash(&h.block_hash),
        };
        b.map(|b| f(&b))
    }
}

impl EthApiServer for EthRpc {
    fn chain_id(&self) -> RpcResult<U64> {
        Ok(U64::from(self.0.chain().spec.chain_id))
    }

    fn syncing(&self) -> RpcResult<SyncStatus> {
        Ok(self.0.sync_status())
    }

    fn accounts(&self) -> RpcResult<Vec<Address>> {
        Ok(Vec::new())
    }

    fn block_number(&self) -> RpcResult<U64> {
        Ok(U64::from(self.0.head_number()))
    }

    fn gas_price(&self) -> RpcResult<U256> {
        Ok(U256::from(self.0.chain().next_base_fee()) + U256::from(SUGGESTED_TIP))
    }

    fn max_priority_fee_per_gas(&self) -> RpcResult<U256> {
        Ok(U256::from(SUGGESTED_TIP))
    }

    fn fee_history(
        &self,
        count: U64,
        newest: BlockNumberOrTag,
        percentiles: Option<Vec<f64>>,
    ) -> RpcResult<FeeHistory> {
        let chain = self.0.chain();
        let newest = block_number(&chain, Some(newest)).min(chain.head().header.number);
        let count = count.to::<u64>().clamp(1, 1024).min(newest + 1);
        let oldest = newest + 1 - count;
        let mut base = Vec::new();
        let mut ratio = Vec::new();
        let bps =
            percentiles.as_deref().map(crate::fees::basis_points).transpose().map_err(|e| invalid(e.to_string()))?;
        let mut rewards = Vec::new();
        for b in (oldest..=newest).filter_map(|i| chain.block(i)) {
            rewards.extend(bps.as_deref().map(|bps| crate::fees::rewards(&b, bps)));
            base.push(u128::from(b.header.base_fee_per_gas.unwrap_or(0)));
            // An RPC answer, not consensus: the ratio is reported as a float, as geth does.
            ratio.push(b.header.gas_used as f64 / b.header.gas_limit.max(1) as f64);
        }
        base.push(u128::from(chain.next_base_fee()));
        Ok(FeeHistory {
            oldest_block: oldest,
            base_fee_per_gas: base,
            gas_used_ratio: ratio,
            reward: bps.map(|_| rewards),
            base_fee_per_blob_gas: vec![],
            blob_gas_used_ratio: vec![],
        })
    }

    fn balance(&self, address: Address, block: Option<BlockId>) -> RpcResult<U256> {
        let chain = self.0.chain();
        Ok(state_for(&chain, block)?.1.balance(&address))
    }

    fn transaction_count(&self, address: Address, block: Option<BlockId>) -> RpcResult<U64> {
        if block == Some(BlockId::Number(BlockNumberOrTag::Pending)) {
            let head = Head::of(&self.0.chain());
            return Ok(U64::from(self.0.submitter()?.pending_nonce(&head, &address)));
        }
        let chain = self.0.chain();
        Ok(U64::from(state_for(&chain, block)?.1.nonce(&address)))
    }

    fn code(&self, address: Address, block: Option<BlockId>) -> RpcResult<Bytes> {
        let chain = self.0.chain();
        Ok(state_for(&chain, block)?.1.code(&address))
    }

    fn storage_at(&self, address: Address, slot: U256, block: Option<BlockId>) -> RpcResult<B256> {
        let chain = self.0.chain();
        Ok(B256::from(state_for(&chain, block)?.1.storage(&address, &slot).to_be_bytes::<32>()))
    }

    fn proof(&self, address: Address, keys: Option<Vec<B256>>, block: Option<BlockId>) -> RpcResult<Value> {
        let keys = keys.unwrap_or_default();
        if keys.len() > MAX_PROOF_KEYS {
            return Err(invalid(format!("at most {MAX_PROOF_KEYS} storage keys")));
        }
        let st = {
            let chain = self.0.chain();
            state_for(&chain, block)?.1.clone()
        };
        let p = crate::proof::prove(&st, address, &keys);
        Ok(json!({
            "address": p.address,
            "balance": p.account.balance,
            "codeHash": p.account.code_hash,
            "nonce": U64::from(p.account.nonce),
            "storageHash": p.account.storage_root,
            "accountProof": p.proof,
            "storageProof": p.storage.iter().map(|s| json!({ "key": s.key, "value": s.value, "proof": s.proof })).collect::<Vec<_>>(),
        }))
    }

    fn call(
        &self,
        tx: TransactionRequest,
        block: Option<BlockId>,
        overrides: Option<StateOverride>,
    ) -> RpcResult<Bytes> {
        let at = self.0.at(block, overrides.as_ref())?;
        match call(&at, &tx)?.0 {
            ExecutionResult::Success { output, .. } => Ok(output.into_data()),
            ExecutionResult::Revert { output, .. } => Err(reverted(&output)),
            ExecutionResult::Halt { reason, .. } => Err(server(format!("execution failed: {reason:?}"))),
        }
    }

    fn estimate_gas(
        &self,
        tx: TransactionRequest,
        block: Option<BlockId>,
        overrides: Option<StateOverride>,
    ) -> RpcResult<U64> {
        let at = self.0.at(block, overrides.as_ref())?;
        Ok(U64::from(estimate(&at, &tx)?))
    }

    fn send_raw_transaction(&self, raw: Bytes) -> RpcResult<B256> {
        send_raw(&self.0, raw).map_err(|e| {
            crate::metrics::get().refused(e.reason());
            tracing::info!(reason = e.reason(), error = %e, "transaction refused");
            server(e.to_string())
        })
    }

    fn transaction_by_hash(&self, hash: B256) -> RpcResult<Option<RpcTransaction<TxEnvelope>>> {
        if let Some(t) = self.0.chain().locate(&hash).and_then(|(b, i)| rpc_tx(&b, i)) {
            return Ok(Some(t));
        }
        Ok(self.0.submitter()?.pending_tx(&hash).as_ref().map(pending_tx))
    }

    fn transaction_by_number_and_index(
        &self,
        block: BlockNumberOrTag,
        index: U64,
    ) -> RpcResult<Option<RpcTransaction<TxEnvelope>>> {
        Ok(self.with_block(BlockId::Number(block), |b| rpc_tx(b, index.to())).flatten())
    }

    fn transaction_by_hash_and_index(&self, block: B256, index: U64) -> RpcResult<Option<RpcTransaction<TxEnvelope>>> {
        Ok(self.with_block(BlockId::from(block), |b| rpc_tx(b, index.to())).flatten())
    }

    fn transaction_receipt(&self, hash: B256) -> RpcResult<Option<TransactionReceipt>> {
        Ok(self.0.chain().locate(&hash).and_then(|(b, i)| rpc_receipt(&b, i)))
    }

    fn block_receipts(&self, block: BlockId) -> RpcResult<Option<Vec<TransactionReceipt>>> {
        Ok(self.with_block(block, |b| (0..b.txs.len()).filter_map(|i| rpc_receipt(b, i)).collect()))
    }

    fn block_by_number(&self, block: BlockNumberOrTag, full: Option<bool>) -> RpcResult<Option<BlockView>> {
        Ok(self.with_block(BlockId::Number(block), |b| rpc_block(b, full.unwrap_or(false))))
    }

    fn block_by_hash(&self, hash: B256, full: Option<bool>) -> RpcResult<Option<BlockView>> {
        Ok(self.with_block(BlockId::from(hash), |b| rpc_block(b, full.unwrap_or(false))))
    }

    fn block_tx_count_by_number(&self, block: BlockNumberOrTag) -> RpcResult<Option<U64>> {
        Ok(self.with_block(BlockId::Number(block), |b| U64::from(b.txs.len())))
    }

    fn block_tx_count_by_hash(&self, hash: B256) -> RpcResult<Option<U64>> {
        Ok(self.with_block(BlockId::from(hash), |b| U64::from(b.txs.len())))
    }

    fn logs(&self, filter: Filter) -> RpcResult<Vec<RpcLog>> {
        logs(&self.0.chain(), &filter)
    }
}

/// The tip `eth_maxPriorityFeePerGas` suggests, wei (1 gwei).
pub const SUGGESTED_TIP: u64 = 1_000_000_000;

/// Admits a raw transaction (`eth_sendRawTransaction`): its hash, or why it is refused.
fn send_raw(n: &Node, raw: Bytes) -> Result<B256, TxRefused> {
    // Decode and recover the sender before taking any lock: it is the costly part.
    let tx = crate::submit::decode(raw)?;
    let hash = tx.hash();
    let head = {
        let chain = n.chain();
        if chain.contains_tx(&hash) {
            return Err(TxRefused::Known);
        }
        Head::of(&chain)
    };
    let (max_fee, base_fee) = (tx.tx.inner().max_fee_per_gas(), u128::from(head.env.base_fee));
    if max_fee < base_fee {
        return Err(TxRefused::FeeTooLow { max_fee, base_fee });
    }
    // Without the chain's lock: the mode takes the consensus node's locks.
    let submit = n.submit.get().ok_or(TxRefused::Starting)?;
    if let Err(e) = submit.submit(&head, tx) {
        // Included since the check above (its nonce is used now): known, as geth says.
        let known = n.chain().contains_tx(&hash);
        return Err(if known { TxRefused::Known } else { e });
    }
    n.filters.pending(hash);
    let _ = n.events.send(Event::Pending(hash));
    Ok(hash)
}
