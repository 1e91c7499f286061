//! Transaction gossip between validators (p2p channel [`crate::engine::channel::TXS`]): a node
//! that admits a transaction sends it to every validator, so whoever leads next can include it.
//! A message is a batch: `count (u32 BE)` then, per transaction, `length (u32 BE) ‖ EIP-2718
//! bytes` (docs/consensus.md §gossip).

use alloy_primitives::Bytes;
use commonware_p2p::{Receiver, Recipients, Sender};
use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;
use std::sync::Arc;

use crate::app::PublicKey;
use crate::execute::PendingTx;
use crate::shared::Shared;

/// Largest batch sent in one message (the p2p message limit is larger).
pub const MAX_BATCH_BYTES: usize = 2 << 20;

/// Most transactions in one message.
pub const MAX_BATCH_TXS: usize = 4096;

/// Encodes a batch of transactions.
pub fn encode(txs: &[Bytes]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + txs.iter().map(|t| 4 + t.len()).sum::<usize>());
    out.extend_from_slice(&(txs.len() as u32).to_be_bytes());
    for t in txs {
        out.extend_from_slice(&(t.len() as u32).to_be_bytes());
        out.extend_from_slice(t);
    }
    out
}

/// Decodes a batch; `None` if malformed or above the limits (the whole message is dropped).
pub fn decode(mut buf: &[u8]) -> Option<Vec<Bytes>> {
    fn take_u32(buf: &mut &[u8]) -> Option<usize> {
        let (head, rest) = buf.split_first_chunk::<4>()?;
        *buf = rest;
        usize::try_from(u32::from_be_bytes(*head)).ok()
    }
    let count = take_u32(&mut buf)?;
    if count > MAX_BATCH_TXS {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let len = take_u32(&mut buf)?;
        let (tx, rest) = buf.split_at_checked(len)?;
        out.push(Bytes::copy_from_slice(tx));
        buf = rest;
    }
    buf.is_empty().then_some(out)
}

/// Sends what this node admits (`local`) to every peer, batched: whatever arrived while the
/// previous message was sent goes in the next one. Runs until `local` closes.
pub async fn send_loop<S: Sender<PublicKey = PublicKey>>(mut sender: S, mut local: UnboundedReceiver<PendingTx>) {
    while let Some(first) = local.next().await {
        let mut batch = vec![first.raw];
        let mut size = batch.iter().map(|t| t.len()).sum::<usize>();
        while batch.len() < MAX_BATCH_TXS && size < MAX_BATCH_BYTES {
            match local.try_recv() {
                Ok(t) => {
                    size += t.raw.len();
                    batch.push(t.raw);
                }
                _ => break,
            }
        }
        sender.send(Recipients::All, encode(&batch), false);
    }
}

/// Receives peers' batches into `shared`'s pending transactions. Runs until the network stops.
pub async fn receive_loop<R: Receiver<PublicKey = PublicKey>>(mut receiver: R, shared: Arc<Shared>) {
    while let Ok((_peer, message)) = receiver.recv().await {
        if let Some(batch) = decode(message.as_ref()) {
            shared.submit(batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_round_trip_and_malformed_ones_are_refused() {
        let txs = vec![Bytes::from_static(b"\x02abc"), Bytes::new(), Bytes::from(vec![7u8; 300])];
        let enc = encode(&txs);
        assert_eq!(decode(&enc), Some(txs));
        assert_eq!(decode(&enc[..enc.len() - 1]), None, "truncated");
        let mut extra = enc.clone();
        extra.push(0);
        assert_eq!(decode(&extra), None, "trailing bytes");
        assert_eq!(decode(&[0, 0, 0xff, 0xff]), None, "count above the limit");
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[0, 0, 0, 0]), Some(vec![]));
    }
}
