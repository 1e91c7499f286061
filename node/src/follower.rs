//! A follower (`fixpoint node --follow URL --genesis FILE --datadir DIR`): a node that does not
//! vote but keeps the whole chain and serves JSON-RPC. It fetches each finalized block with its
//! finalization certificate from a validator (`fixpoint_certifiedBlock`), accepts it only if the
//! certificate verifies against the genesis validator set and the block re-executes on its own
//! state to the roots it claims (inference included), and writes it to its database like a
//! validator does. Transactions sent to it are checked by its pool and forwarded to the validator.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::Bytes;
use anyhow::{Context as _, Result, bail};
use commonware_cryptography::Digestible as _;
use commonware_runtime::{Clock as _, Runner as _, Spawner as _, Supervisor as _};
use fixpoint_consensus::PendingTx;
use fixpoint_consensus::follow::Checker;
use fixpoint_consensus::{Executed, Sink as _};
use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::client::Client;
use crate::metrics::Readiness;
use crate::rpc::Node;
use crate::startup::{Opened, open, start_rpc};
use crate::submit::FollowerSubmit;

/// What a follower needs.
#[derive(Debug, Clone)]
pub struct FollowConfig {
    /// A validator's JSON-RPC URL.
    pub upstream: String,
    /// The genesis file (with the validator set).
    pub genesis: PathBuf,
    /// Data directory.
    pub datadir: PathBuf,
    /// JSON-RPC listen address.
    pub rpc: SocketAddr,
    /// Stop once this height is in the database.
    pub exit_after: Option<u64>,
    /// Where to serve metrics and health checks (crate::metrics), if anywhere.
    pub metrics: Option<SocketAddr>,
}

/// How often a follower asks its upstream for its head (what `eth_syncing` reports as the
/// highest block).
const HEAD_POLL: Duration = Duration::from_secs(1);

/// Runs a follower until it fails or reaches `exit_after`.
pub fn run(cfg: &FollowConfig) -> Result<()> {
    let Opened { chain, participants, namespace, start: mut parent, executor: exec, .. } =
        open(&cfg.genesis, &cfg.datadir)?;
    let checker = Checker::new(&namespace, participants);
    let mut state = Executed::start(parent.body().height, (*chain.state).clone());
    let upstream = Arc::new(Client::new(&cfg.upstream)?);
    let (tx_out, mut tx_in) = futures::channel::mpsc::unbounded::<PendingTx>();
    let node = Node::new(chain);
    // Checked here, forwarded asynchronously: the validator's own refusal is logged, not returned.
    node.set_submit(Box::new(FollowerSubmit::new(exec.clone(), tx_out)));
    println!("following {} from height {}", cfg.upstream, parent.body().height);
    let _rpc = start_rpc(node.clone(), cfg.rpc)?;
    if let Some(m) = cfg.metrics {
        let database = cfg.datadir.join("chain.redb");
        crate::metrics::serve(
            crate::metrics::Endpoints { node: node.clone(), readiness: Readiness::Network, database },
            m,
        )?;
    }

    let runtime = commonware_runtime::tokio::Config::new()
        .with_storage_directory(cfg.datadir.join("runtime"))
        .with_worker_threads(2);
    let exit_after = cfg.exit_after;
    commonware_runtime::tokio::Runner::new(runtime).start(|mut context| async move {
        let forward_to = upstream.clone();
        context.child("forward").spawn(move |_| async move {
            while let Some(t) = tx_in.next().await {
                if let Err(e) = forward_to.request::<Value>("eth_sendRawTransaction", vec![json!(t.raw)]).await {
                    eprintln!("forwarding {}: {e}", t.hash());
                }
            }
        });
        let mut last_error = String::new();
        let mut asked_head: Option<std::time::Instant> = None;
        loop {
            if exit_after.is_some_and(|h| parent.body().height >= h) {
                return Ok(());
            }
            // How far the upstream is, for `eth_syncing` (at most once per HEAD_POLL).
            if asked_head.is_none_or(|t| t.elapsed() >= HEAD_POLL) {
                asked_head = Some(std::time::Instant::now());
                if let Ok(h) = upstream.request::<alloy_primitives::U64>("eth_blockNumber", vec![]).await {
                    node.saw_height(h.to());
                }
            }
            let height = parent.body().height + 1;
            let served = match upstream.request::<Option<Value>>("fixpoint_certifiedBlock", vec![json!(height)]).await {
                Ok(Some(v)) => v,
                Ok(None) => {
                    context.sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => {
                    let e = e.to_string();
                    if e != last_error {
                        eprintln!("upstream: {e} (retrying)");
                        last_error = e;
                    }
                    context.sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let blocks = serde_json::from_value::<Vec<Bytes>>(served["blocks"].clone());
            let certificate = serde_json::from_value::<Bytes>(served["certificate"].clone());
            let (Ok(blocks), Ok(certificate)) = (blocks, certificate) else {
                bail!("the upstream served a malformed certified block at height {height}");
            };
            let blocks = checker
                .check_chain(&mut context, blocks.into_iter().map(|b| b.to_vec()).collect(), certificate.to_vec())
                .with_context(|| format!("the upstream's blocks from height {height} are not finalized"))?;
            for block in blocks {
                let h = block.body().height;
                if block.body().parent != parent.digest() || parent.body().height.checked_add(1) != Some(h) {
                    bail!("the certified block at height {h} does not extend this node's chain");
                }
                // Certified by a quorum, yet it must re-execute here: otherwise stop, never diverge.
                let started = std::time::Instant::now();
                let out = exec
                    .verify(&parent, &state.state, &block)
                    .with_context(|| format!("finalized block {h} does not re-execute on this node"))?;
                let executed = Executed::new(h, out, fixpoint_consensus::Timing::verified(started.elapsed()));
                node.finalized(&block, &executed).map_err(|e| anyhow::anyhow!("writing block {h}: {e}"))?;
                executed.finalize_models(&exec.models);
                println!(
                    "followed height {h} digest 0x{} state {} txs {}",
                    hex::encode(block.digest().as_ref()),
                    block.body().state_root,
                    block.body().txs.len()
                );
                parent = block;
                state = executed;
            }
        }
    })
}
