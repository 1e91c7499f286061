//! WebSocket subscriptions on the RPC port (docs/rpc.md §Filters and subscriptions):
//! `eth_subscribe` to `newHeads`, `logs` (with a filter) and `newPendingTransactions`, and
//! `eth_unsubscribe`. Fed by the node's [`Event`]s; a client that falls more than the event
//! buffer behind skips ahead rather than holding the node's memory.

use std::sync::Arc;

use alloy_rpc_types_eth::Filter;
use jsonrpsee::PendingSubscriptionSink;
use jsonrpsee::core::SubscriptionResult;
use jsonrpsee::proc_macros::rpc;
use serde_json::Value;

use super::convert::{block_logs, rpc_block};
use super::{Event, Node, invalid};

/// The `eth` subscription methods.
#[rpc(server, namespace = "eth")]
pub trait EthPubSubApi {
    /// Subscribes to `newHeads`, `logs` (optionally filtered) or `newPendingTransactions`;
    /// notifications arrive as `eth_subscription`.
    #[subscription(name = "subscribe" => "subscription", unsubscribe = "unsubscribe", item = Value)]
    async fn subscribe(&self, kind: String, filter: Option<Filter>) -> SubscriptionResult;
}

/// The `eth` subscriptions over a node.
#[derive(Debug, Clone)]
pub struct EthPubSubRpc(pub Arc<Node>);

#[jsonrpsee::core::async_trait]
impl EthPubSubApiServer for EthPubSubRpc {
    async fn subscribe(
        &self,
        pending: PendingSubscriptionSink,
        kind: String,
        filter: Option<Filter>,
    ) -> SubscriptionResult {
        let what = match kind.as_str() {
            "newHeads" => Subscription::Heads,
            "newPendingTransactions" => Subscription::Pending,
            "logs" => Subscription::Logs(Box::new(filter.unwrap_or_default())),
            other => {
                let why = format!("unsupported subscription {other:?}: newHeads, logs or newPendingTransactions");
                pending.reject(invalid(why)).await;
                return Ok(());
            }
        };
        let n = self.0.clone();
        let Ok(sink) = pending.accept().await else { return Ok(()) };
        let mut events = n.events.subscribe();
        loop {
            let event = tokio::select! {
                _ = sink.closed() => return Ok(()),
                e = events.recv() => e,
            };
            let messages = match event {
                Ok(e) => notifications(&n, &what, e),
                // A slow client missed events: it goes on from the next one.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
            };
            for msg in messages {
                let Ok(raw) = serde_json::value::to_raw_value(&msg) else { continue };
                if sink.send(raw).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

/// What a subscription asked for.
enum Subscription {
    Heads,
    Logs(Box<Filter>),
    Pending,
}

/// The notifications `event` makes for subscription `what`.
fn notifications(n: &Node, what: &Subscription, event: Event) -> Vec<Value> {
    match (what, event) {
        (Subscription::Pending, Event::Pending(h)) => vec![Value::String(h.to_string())],
        (Subscription::Heads, Event::Head(number)) => {
            let chain = n.chain();
            chain
                .block(number)
                .and_then(|b| serde_json::to_value(rpc_block(&b, false).header).ok())
                .into_iter()
                .collect()
        }
        (Subscription::Logs(f), Event::Head(number)) => {
            let chain = n.chain();
            let Some(b) = chain.block(number) else { return vec![] };
            block_logs(&b)
                .into_iter()
                .filter(|l| f.matches(&l.inner))
                .filter_map(|l| serde_json::to_value(l).ok())
                .collect()
        }
        _ => vec![],
    }
}
