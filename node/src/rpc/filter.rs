//! Polled filters, the `eth` methods viem's and ethers' watchers use over HTTP (docs/rpc.md
//! §Filters and subscriptions): `eth_newFilter`, `eth_newBlockFilter`,
//! `eth_newPendingTransactionFilter`, `eth_getFilterChanges`, `eth_getFilterLogs`,
//! `eth_uninstallFilter`. WebSocket subscriptions are in [`super::pubsub`].
//!
//! A filter keeps a cursor (the last block it reported) and the pending hashes admitted since its
//! last poll; one not polled for [`FILTER_TIMEOUT`] is removed, as geth does, and at most
//! [`MAX_FILTERS`] are installed at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use alloy_primitives::{B256, U256};
use alloy_rpc_types_eth::{BlockNumberOrTag, Filter, Log as RpcLog};
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::types::ErrorObjectOwned;
use serde_json::Value;

use super::convert::block_logs;
use super::query::log_range;
use super::{MAX_LOGS, Node, RpcResult, invalid, server};
use crate::chain::Chain;

/// A filter not polled for this long is removed (geth's timeout).
pub const FILTER_TIMEOUT: Duration = Duration::from_secs(300);

/// Most filters installed at once (across all clients).
pub const MAX_FILTERS: usize = 10_000;

/// Most pending hashes a pending-transaction filter holds between polls (older ones are dropped).
pub const MAX_PENDING_PER_FILTER: usize = 10_000;

#[derive(Debug)]
enum Kind {
    Logs(Box<Filter>),
    Blocks,
    Pending(Vec<B256>),
}

#[derive(Debug)]
struct Installed {
    kind: Kind,
    /// The last block reported.
    cursor: u64,
    polled: Instant,
}

/// Installed filters.
#[derive(Debug, Default)]
pub struct Filters {
    installed: Mutex<HashMap<U256, Installed>>,
    next: Mutex<u64>,
}

fn not_found() -> ErrorObjectOwned {
    server("filter not found")
}

impl Filters {
    fn install(&self, kind: Kind, head: u64) -> RpcResult<U256> {
        let mut all = self.installed.lock().unwrap_or_else(PoisonError::into_inner);
        all.retain(|_, f| f.polled.elapsed() < FILTER_TIMEOUT);
        if all.len() >= MAX_FILTERS {
            return Err(server(format!("too many filters installed (at most {MAX_FILTERS})")));
        }
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        *next = next.wrapping_add(1);
        // Ids are unguessable enough not to be polled by accident by another client.
        let id = U256::from_be_bytes(alloy_primitives::keccak256(format!("{} {:?}", *next, Instant::now())).0) >> 128;
        all.insert(id, Installed { kind, cursor: head, polled: Instant::now() });
        Ok(id)
    }

    /// Tells pending-transaction filters about `hash`.
    pub fn pending(&self, hash: B256) {
        let mut all = self.installed.lock().unwrap_or_else(PoisonError::into_inner);
        for f in all.values_mut() {
            if let Kind::Pending(hashes) = &mut f.kind {
                if hashes.len() >= MAX_PENDING_PER_FILTER {
                    hashes.remove(0);
                }
                hashes.push(hash);
            }
        }
    }

    fn uninstall(&self, id: U256) -> bool {
        self.installed.lock().unwrap_or_else(PoisonError::into_inner).remove(&id).is_some()
    }

    /// What filter `id` saw since its last poll, up to the head of `chain`.
    fn changes(&self, id: U256, chain: &Chain) -> RpcResult<Value> {
        let head = chain.head().header.number;
        let mut all = self.installed.lock().unwrap_or_else(PoisonError::into_inner);
        let f = all.get_mut(&id).filter(|f| f.polled.elapsed() < FILTER_TIMEOUT).ok_or_else(not_found)?;
        f.polled = Instant::now();
        let from = f.cursor.saturating_add(1);
        let out = match &mut f.kind {
            Kind::Blocks => {
                let hashes: Vec<B256> = (from..=head).filter_map(|n| chain.block(n).map(|b| b.hash)).collect();
                serde_json::to_value(hashes)
            }
            Kind::Pending(hashes) => serde_json::to_value(std::mem::take(hashes)),
            Kind::Logs(filter) => {
                let (lo, hi) = bounds(chain, filter, head)?;
                let logs = collect_logs(chain, filter, lo.max(from), hi.min(head))?;
                serde_json::to_value(logs)
            }
        };
        f.cursor = head;
        out.map_err(|e| server(e.to_string()))
    }
}

/// The blocks a polled log filter may report from: its block hash's, or its explicit numbers
/// (a tag or no bound means "as blocks come": the cursor decides).
fn bounds(chain: &Chain, f: &Filter, head: u64) -> RpcResult<(u64, u64)> {
    if f.get_block_hash().is_some() {
        return log_range(chain, f);
    }
    let from = match f.block_option.get_from_block() {
        Some(BlockNumberOrTag::Number(n)) => *n,
        _ => 0,
    };
    let to = match f.block_option.get_to_block() {
        Some(BlockNumberOrTag::Number(n)) => *n,
        _ => head,
    };
    Ok((from, to))
}

/// The logs of blocks `from..=to` matching `f` (nothing if the range is empty).
fn collect_logs(chain: &Chain, f: &Filter, from: u64, to: u64) -> RpcResult<Vec<RpcLog>> {
    let mut out = Vec::new();
    for n in from..=to {
        if let Some(b) = chain.block(n) {
            out.extend(block_logs(&b).into_iter().filter(|l| f.matches(&l.inner)));
        }
        if out.len() > MAX_LOGS {
            return Err(server(format!("query returned more than {MAX_LOGS} results")));
        }
    }
    Ok(out)
}

/// The `eth` filter methods.
#[rpc(server, namespace = "eth")]
pub trait EthFilterApi {
    /// Installs a log filter; its id.
    #[method(name = "newFilter")]
    fn new_filter(&self, filter: Filter) -> RpcResult<U256>;
    /// Installs a filter of new blocks; its id.
    #[method(name = "newBlockFilter")]
    fn new_block_filter(&self) -> RpcResult<U256>;
    /// Installs a filter of transactions entering the mempool; its id.
    #[method(name = "newPendingTransactionFilter")]
    fn new_pending_transaction_filter(&self) -> RpcResult<U256>;
    /// What a filter saw since its last poll: block hashes, transaction hashes or logs.
    #[method(name = "getFilterChanges")]
    fn filter_changes(&self, id: U256) -> RpcResult<Value>;
    /// Every log a log filter matches.
    #[method(name = "getFilterLogs")]
    fn filter_logs(&self, id: U256) -> RpcResult<Vec<RpcLog>>;
    /// Removes a filter; whether it was installed.
    #[method(name = "uninstallFilter")]
    fn uninstall_filter(&self, id: U256) -> RpcResult<bool>;
}

/// The `eth` filter methods over a node.
#[derive(Debug, Clone)]
pub struct EthFilterRpc(pub Arc<Node>);

impl EthFilterApiServer for EthFilterRpc {
    fn new_filter(&self, f: Filter) -> RpcResult<U256> {
        let n = &self.0;
        let chain = n.chain();
        log_range(&chain, &f)?; // a range the node cannot serve is refused now, not at the poll
        let head = chain.head().header.number;
        // Logs from `fromBlock` on are changes too when it is in the past.
        let start = match f.block_option.get_from_block() {
            Some(BlockNumberOrTag::Number(x)) => x.saturating_sub(1).min(head),
            Some(BlockNumberOrTag::Earliest) => 0,
            _ => head,
        };
        n.filters.install(Kind::Logs(Box::new(f)), start)
    }

    fn new_block_filter(&self) -> RpcResult<U256> {
        self.0.filters.install(Kind::Blocks, self.0.head_number())
    }

    fn new_pending_transaction_filter(&self) -> RpcResult<U256> {
        self.0.filters.install(Kind::Pending(Vec::new()), self.0.head_number())
    }

    fn filter_changes(&self, id: U256) -> RpcResult<Value> {
        let chain = self.0.chain();
        self.0.filters.changes(id, &chain)
    }

    fn filter_logs(&self, id: U256) -> RpcResult<Vec<RpcLog>> {
        let filter = {
            let mut all = self.0.filters.installed.lock().unwrap_or_else(PoisonError::into_inner);
            let f = all.get_mut(&id).filter(|f| f.polled.elapsed() < FILTER_TIMEOUT).ok_or_else(not_found)?;
            f.polled = Instant::now();
            match &f.kind {
                Kind::Logs(filter) => filter.clone(),
                _ => return Err(invalid("not a log filter")),
            }
        };
        let chain = self.0.chain();
        let (lo, hi) = log_range(&chain, &filter)?;
        collect_logs(&chain, &filter, lo, hi)
    }

    fn uninstall_filter(&self, id: U256) -> RpcResult<bool> {
        Ok(self.0.filters.uninstall(id))
    }
}
