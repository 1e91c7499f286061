//! geth's `txpool` namespace (docs/rpc.md §txpool): what this node's mempool holds. `pending` are
//! the transactions that can run next (their nonces follow the sender's without a gap), `queued`
//! those waiting for an earlier nonce; both by sender, then nonce.

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy_consensus::Transaction as _;
use alloy_primitives::{Address, U64};
use jsonrpsee::proc_macros::rpc;
use serde_json::{Value, json};

use super::convert::pending_tx;
use super::{Node, RpcResult, server};
use crate::submit::Head;

/// The `txpool` methods (geth's).
#[rpc(server, namespace = "txpool")]
pub trait TxpoolApi {
    /// How many transactions are pending and queued.
    #[method(name = "status")]
    fn status(&self) -> RpcResult<Value>;
    /// Every pooled transaction, by sender and nonce.
    #[method(name = "content")]
    fn content(&self) -> RpcResult<Value>;
    /// A one-line summary of every pooled transaction, by sender and nonce.
    #[method(name = "inspect")]
    fn inspect(&self) -> RpcResult<Value>;
}

/// The `txpool` namespace over a node.
#[derive(Debug, Clone)]
pub struct TxpoolRpc(pub Arc<Node>);

/// The mempool's transactions, split into (pending, queued), each by sender then nonce.
type Split<T> = (BTreeMap<Address, BTreeMap<u64, T>>, BTreeMap<Address, BTreeMap<u64, T>>);

fn split<T>(n: &Node, f: impl Fn(&fixpoint_consensus::PendingTx) -> T) -> RpcResult<Split<T>> {
    let head = Head::of(&n.chain());
    let submit = n.submit.get().ok_or_else(|| server("the node is starting"))?;
    let (mut pending, mut queued) = (BTreeMap::new(), BTreeMap::new());
    for (t, executable) in submit.content(&head) {
        let side: &mut BTreeMap<Address, BTreeMap<u64, T>> = if executable { &mut pending } else { &mut queued };
        side.entry(t.tx.signer()).or_default().insert(t.tx.inner().nonce(), f(&t));
    }
    Ok((pending, queued))
}

/// geth's keys: nonces as decimal strings.
fn by_nonce<T: serde::Serialize>(m: BTreeMap<Address, BTreeMap<u64, T>>) -> Value {
    let m: BTreeMap<Address, BTreeMap<String, T>> =
        m.into_iter().map(|(a, txs)| (a, txs.into_iter().map(|(n, t)| (n.to_string(), t)).collect())).collect();
    json!(m)
}

impl TxpoolApiServer for TxpoolRpc {
    fn status(&self) -> RpcResult<Value> {
        let (pending, queued) = split(&self.0, |_| ())?;
        let count = |s: &BTreeMap<Address, BTreeMap<u64, ()>>| U64::from(s.values().map(BTreeMap::len).sum::<usize>());
        Ok(json!({ "pending": count(&pending), "queued": count(&queued) }))
    }

    fn content(&self) -> RpcResult<Value> {
        let (pending, queued) = split(&self.0, |t| pending_tx(&t.tx))?;
        Ok(json!({ "pending": by_nonce(pending), "queued": by_nonce(queued) }))
    }

    fn inspect(&self) -> RpcResult<Value> {
        // geth's one-line summaries: "to: value wei + gas × gasPrice wei".
        let line = |t: &fixpoint_consensus::PendingTx| {
            let tx = t.tx.inner();
            let to = tx.to().map_or_else(|| "contract creation".to_string(), |a| a.to_string());
            format!("{to}: {} wei + {} gas × {} wei", tx.value(), tx.gas_limit(), tx.max_fee_per_gas())
        };
        let (pending, queued) = split(&self.0, line)?;
        Ok(json!({ "pending": by_nonce(pending), "queued": by_nonce(queued) }))
    }
}
