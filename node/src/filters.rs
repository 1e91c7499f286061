//! What dapps watch (docs/rpc.md §Filters and subscriptions): polled filters
//! (`eth_newFilter`, `eth_newBlockFilter`, `eth_newPendingTransactionFilter`,
//! `eth_getFilterChanges`, `eth_getFilterLogs`, `eth_uninstallFilter`), which viem's and
//! ethers' watchers use over HTTP, and WebSocket subscriptions (`eth_subscribe` to `newHeads`,
//! `logs` and `newPendingTransactions`; `eth_unsubscribe`) on the same port.
//!
//! Both are fed by the node's events ([`Event`]): a block becoming the head, a transaction
//! admitted to this node's mempool. A filter keeps a cursor (the last block it reported) and
//! the pending hashes since its last poll; one not polled for [`FILTER_TIMEOUT`] is removed, as
//! geth does, and at most [`MAX_FILTERS`] are installed at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use alloy_primitives::{B256, U256};
use alloy_rpc_types_eth::{BlockNumberOrTag, Filter, Log as RpcLog};
use jsonrpsee::RpcModule;
use jsonrpsee::core::RegisterMethodError;
use jsonrpsee::types::ErrorObjectOwned;
use serde_json::Value;

use crate::chain::Chain;
use crate::rpc::{Node, block_logs, log_range, rpc_block};

/// A filter not polled for this long is removed (geth's timeout).
pub const FILTER_TIMEOUT: Duration = Duration::from_secs(300);

/// Most filters installed at once (across all clients).
pub const MAX_FILTERS: usize = 10_000;

/// Most pending hashes a pending-transaction filter holds between polls (older ones are dropped).
pub const MAX_PENDING_PER_FILTER: usize = 10_000;

/// Something that happened on the node, for filters and subscriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Block `number` is the new head.
    Head(u64),
    /// A transaction entered this node's mempool.
    Pending(B256),
}

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

type RpcResult<T> = Result<T, ErrorObjectOwned>;

fn invalid(msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32602, msg.into(), None::<()>)
}

fn server(msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32000, msg.into(), None::<()>)
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
            out.extend(block_logs(b).into_iter().filter(|l| f.matches(&l.inner)));
        }
        if out.len() > crate::rpc::MAX_LOGS {
            return Err(server(format!("query returned more than {} results", crate::rpc::MAX_LOGS)));
        }
    }
    Ok(out)
}

fn read(node: &Node) -> std::sync::RwLockReadGuard<'_, Chain> {
    node.chain.read().unwrap_or_else(PoisonError::into_inner)
}

fn params(p: &jsonrpsee::types::Params<'_>) -> RpcResult<Vec<Value>> {
    if p.is_object() {
        return Err(invalid("params must be an array"));
    }
    Ok(p.parse::<Option<Vec<Value>>>().map_err(|e| invalid(e.to_string()))?.unwrap_or_default())
}

fn arg<T: serde::de::DeserializeOwned>(v: &[Value], i: usize, name: &str) -> RpcResult<T> {
    let x = v.get(i).ok_or_else(|| invalid(format!("missing {name}")))?;
    serde_json::from_value(x.clone()).map_err(|e| invalid(format!("bad {name}: {e}")))
}

/// Registers the filter methods and the subscriptions.
pub fn register(m: &mut RpcModule<Arc<Node>>) -> Result<(), RegisterMethodError> {
    m.register_method("eth_newFilter", |p, n, _| {
        let v = params(&p)?;
        let f: Filter = arg(&v, 0, "filter")?;
        let chain = read(n);
        log_range(&chain, &f)?; // a range the node cannot serve is refused now, not at the poll
        let head = chain.head().header.number;
        // Logs from `fromBlock` on are changes too when it is in the past.
        let start = match f.block_option.get_from_block() {
            Some(BlockNumberOrTag::Number(x)) => x.saturating_sub(1).min(head),
            Some(BlockNumberOrTag::Earliest) => 0,
            _ => head,
        };
        n.filters.install(Kind::Logs(Box::new(f)), start)
    })?;
    m.register_method("eth_newBlockFilter", |_, n, _| {
        let head = read(n).head().header.number;
        n.filters.install(Kind::Blocks, head)
    })?;
    m.register_method("eth_newPendingTransactionFilter", |_, n, _| {
        let head = read(n).head().header.number;
        n.filters.install(Kind::Pending(Vec::new()), head)
    })?;
    m.register_method("eth_getFilterChanges", |p, n, _| {
        let id: U256 = arg(&params(&p)?, 0, "filter id")?;
        let chain = read(n);
        n.filters.changes(id, &chain)
    })?;
    m.register_method("eth_getFilterLogs", |p, n, _| {
        let id: U256 = arg(&params(&p)?, 0, "filter id")?;
        let filter = {
            let mut all = n.filters.installed.lock().unwrap_or_else(PoisonError::into_inner);
            let f = all.get_mut(&id).filter(|f| f.polled.elapsed() < FILTER_TIMEOUT).ok_or_else(not_found)?;
            f.polled = Instant::now();
            match &f.kind {
                Kind::Logs(filter) => filter.clone(),
                _ => return Err(invalid("not a log filter")),
            }
        };
        let chain = read(n);
        let (lo, hi) = log_range(&chain, &filter)?;
        collect_logs(&chain, &filter, lo, hi)
    })?;
    m.register_method("eth_uninstallFilter", |p, n, _| {
        let id: U256 = arg(&params(&p)?, 0, "filter id")?;
        RpcResult::Ok(n.filters.uninstall(id))
    })?;
    m.register_subscription("eth_subscribe", "eth_subscription", "eth_unsubscribe", |p, pending, n, _| async move {
        let what = match subscription(&p) {
            Ok(w) => w,
            Err(e) => {
                pending.reject(e).await;
                return;
            }
        };
        let Ok(sink) = pending.accept().await else { return };
        let mut events = n.events.subscribe();
        loop {
            let event = tokio::select! {
                _ = sink.closed() => return,
                e = events.recv() => e,
            };
            let messages = match event {
                Ok(e) => notifications(&n, &what, e),
                // A slow client missed events: it goes on from the next one.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            for msg in messages {
                let Ok(raw) = serde_json::value::to_raw_value(&msg) else { continue };
                if sink.send(raw).await.is_err() {
                    return;
                }
            }
        }
    })?;
    Ok(())
}

/// What a subscription asked for.
enum Subscription {
    Heads,
    Logs(Box<Filter>),
    Pending,
}

fn subscription(p: &jsonrpsee::types::Params<'_>) -> RpcResult<Subscription> {
    let v = params(p)?;
    let kind: String = arg(&v, 0, "subscription")?;
    match kind.as_str() {
        "newHeads" => Ok(Subscription::Heads),
        "newPendingTransactions" => Ok(Subscription::Pending),
        "logs" => {
            let f: Filter = if v.len() > 1 { arg(&v, 1, "filter")? } else { Filter::default() };
            Ok(Subscription::Logs(Box::new(f)))
        }
        other => Err(invalid(format!("unsupported subscription {other:?}: newHeads, logs or newPendingTransactions"))),
    }
}

/// The notifications `event` makes for subscription `what`.
fn notifications(n: &Node, what: &Subscription, event: Event) -> Vec<Value> {
    match (what, event) {
        (Subscription::Pending, Event::Pending(h)) => vec![Value::String(h.to_string())],
        (Subscription::Heads, Event::Head(number)) => {
            let chain = read(n);
            chain
                .block(number)
                .and_then(|b| serde_json::to_value(rpc_block(b, false).header).ok())
                .into_iter()
                .collect()
        }
        (Subscription::Logs(f), Event::Head(number)) => {
            let chain = read(n);
            let Some(b) = chain.block(number) else { return vec![] };
            block_logs(b)
                .into_iter()
                .filter(|l| f.matches(&l.inner))
                .filter_map(|l| serde_json::to_value(l).ok())
                .collect()
        }
        _ => vec![],
    }
}
