//! Blocks, transactions, receipts and logs of the chain as the Ethereum JSON-RPC shows them
//! (alloy's RPC types), shared by every namespace.

use alloy_consensus::transaction::Recovered;
use alloy_consensus::{Transaction as _, TxEnvelope};
use alloy_primitives::U256;
use alloy_rpc_types_eth::{
    Block as RpcBlock, BlockTransactions, Header as RpcHeader, Log as RpcLog, Transaction as RpcTransaction,
    TransactionReceipt,
};

use crate::chain::Block;

/// Transaction `i` of block `b`, as mined.
pub(crate) fn rpc_tx(b: &Block, i: usize) -> Option<RpcTransaction<TxEnvelope>> {
    let t = b.txs.get(i)?;
    let base = b.header.base_fee_per_gas.unwrap_or(0);
    Some(RpcTransaction {
        inner: t.clone(),
        block_hash: Some(b.hash),
        block_number: Some(b.header.number),
        transaction_index: Some(i as u64),
        effective_gas_price: Some(t.inner().effective_gas_price(Some(base))),
        block_timestamp: Some(b.header.timestamp),
    })
}

/// A pending transaction as the RPC shows it (no block yet).
pub(crate) fn pending_tx(t: &Recovered<TxEnvelope>) -> RpcTransaction<TxEnvelope> {
    RpcTransaction {
        inner: t.clone(),
        block_hash: None,
        block_number: None,
        transaction_index: None,
        effective_gas_price: None,
        block_timestamp: None,
    }
}

/// Log index of the first log of transaction `i` in block `b`.
fn first_log_index(b: &Block, i: usize) -> u64 {
    b.envelopes.iter().take(i).map(|e| e.logs().len() as u64).sum()
}

/// The logs of transaction `i` of block `b`.
pub(crate) fn rpc_logs(b: &Block, i: usize) -> Vec<RpcLog> {
    let Some(env) = b.envelopes.get(i) else { return vec![] };
    let start = first_log_index(b, i);
    env.logs()
        .iter()
        .enumerate()
        .map(|(k, l)| RpcLog {
            inner: l.clone(),
            block_hash: Some(b.hash),
            block_number: Some(b.header.number),
            block_timestamp: Some(b.header.timestamp),
            transaction_hash: b.txs.get(i).map(|t| *t.inner().tx_hash()),
            transaction_index: Some(i as u64),
            log_index: Some(start + k as u64),
            removed: false,
        })
        .collect()
}

/// The receipt of transaction `i` of block `b`.
pub(crate) fn rpc_receipt(b: &Block, i: usize) -> Option<TransactionReceipt> {
    let t = b.txs.get(i)?;
    let r = b.receipts.get(i)?;
    let env = b.envelopes.get(i)?.clone();
    let logs = rpc_logs(b, i);
    let mut it = logs.into_iter();
    let inner = env.map_logs(|_| it.next().unwrap_or_default());
    let base = b.header.base_fee_per_gas.unwrap_or(0);
    Some(TransactionReceipt {
        inner,
        transaction_hash: *t.inner().tx_hash(),
        transaction_index: Some(i as u64),
        block_hash: Some(b.hash),
        block_number: Some(b.header.number),
        gas_used: r.gas_used,
        effective_gas_price: t.inner().effective_gas_price(Some(base)),
        blob_gas_used: None,
        blob_gas_price: None,
        from: t.signer(),
        to: t.inner().to(),
        contract_address: r.contract_address,
    })
}

/// Block `b` as the RPC shows it (with full transactions or their hashes).
pub(crate) fn rpc_block(b: &Block, full: bool) -> RpcBlock<RpcTransaction<TxEnvelope>> {
    let transactions = if full {
        BlockTransactions::Full((0..b.txs.len()).filter_map(|i| rpc_tx(b, i)).collect())
    } else {
        BlockTransactions::Hashes(b.txs.iter().map(|t| *t.inner().tx_hash()).collect())
    };
    let size = alloy_rlp::Encodable::length(&b.header)
        + b.txs.iter().map(|t| alloy_eips::eip2718::Encodable2718::encode_2718_len(t.inner())).sum::<usize>();
    RpcBlock {
        header: RpcHeader {
            hash: b.hash,
            inner: b.header.clone(),
            total_difficulty: Some(U256::ZERO),
            size: Some(U256::from(size)),
        },
        uncles: vec![],
        transactions,
        withdrawals: Some(Default::default()),
    }
}

/// Every log of block `b`, in order.
pub(crate) fn block_logs(b: &Block) -> Vec<RpcLog> {
    (0..b.txs.len()).flat_map(|i| rpc_logs(b, i)).collect()
}
