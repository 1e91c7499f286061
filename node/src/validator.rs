//! A validator process (`fixpoint node --validator --config FILE`): commonware's tokio runtime,
//! authenticated p2p on TCP (lookup network: validator addresses are known), and the engines of
//! `fixpoint_consensus::engine` over this node's executor. It prints each finalized block.
//! Finalized blocks go into the node's chain database (redb), from which JSON-RPC serves; a
//! restarted validator resumes from its last finalized block. Transactions admitted by its
//! RPC go to its own proposals and, by gossip, to every other validator.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use commonware_cryptography::{ChaCha20Poly1305, Signer};
use commonware_p2p::authenticated::{discovery, lookup};
use commonware_p2p::{Address, AddressableManager as _, Ingress, Manager as _};
use commonware_runtime::Spawner as _;
use commonware_runtime::{Clock, Quota, Runner as _, Supervisor as _};
use commonware_stream::cups::{self, Cups};
use commonware_stream::sake::{self, Sake};
use commonware_utils::ordered::Map;
use commonware_utils::{NZU32, NZUsize};
use fixpoint_consensus::app::PublicKey;
use fixpoint_consensus::engine::{self, Channels, ValidatorConfig, channel};
use fixpoint_consensus::{PendingTx, Shared, gossip};
use serde::{Deserialize, Serialize};

use crate::keys;
use crate::metrics::Readiness;
use crate::rpc::{CertifiedBlock, Finality, Node};
use crate::startup::{Opened, open, start_rpc};
use crate::submit::ValidatorSubmit;

/// A validator's configuration file; paths are relative to the file (docs/consensus.md,
/// "Validator processes"; docs/operations.md, "Deploying a network").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidatorFile {
    /// The genesis file (with the validator set).
    pub genesis: PathBuf,
    /// This validator's key file (`fixpoint keygen`).
    pub key: PathBuf,
    /// p2p listen (bind) address: `0.0.0.0:PORT` on a host with a public address.
    pub listen: SocketAddr,
    /// The address the other validators dial to reach this one, when it is not `listen` (a
    /// wildcard listen address, or a host behind a port mapping that keeps its IP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialable: Option<SocketAddr>,
    /// Every validator's p2p address, by 0x-hex public key (this one's included or not): the
    /// whole address book. Empty when `bootstrappers` is given.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub peers: BTreeMap<String, SocketAddr>,
    /// Validators to learn the others' addresses from (by 0x-hex public key): the addresses of
    /// the rest of the genesis validator set are then discovered (signed by their owners) and
    /// `peers` is not needed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bootstrappers: BTreeMap<String, SocketAddr>,
    /// commonware's production p2p settings (`true`: private and loopback addresses of peers
    /// refused, slower redials) rather than the quick local ones (`false`, the default).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public: bool,
    /// Where the chain database and the consensus storage live.
    pub datadir: PathBuf,
    /// JSON-RPC listen address (none: no RPC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc: Option<SocketAddr>,
}

/// The p2p address book of a validator: every address known (lookup), or a few to learn the
/// others from (discovery).
enum Peering {
    /// Every validator's address.
    Lookup(Map<PublicKey, Address>),
    /// Bootstrappers' addresses; the others' are learned.
    Discovery(Vec<(PublicKey, Ingress)>),
}

impl ValidatorFile {
    /// Parses `peers` or `bootstrappers` into the address book; `me` dials as `dialable`.
    fn peering(&self, me: &PublicKey) -> Result<Peering> {
        if !self.peers.is_empty() && !self.bootstrappers.is_empty() {
            bail!("give either `peers` (every validator's address) or `bootstrappers`, not both");
        }
        if !self.bootstrappers.is_empty() {
            let mut list = Vec::new();
            for (k, addr) in &self.bootstrappers {
                let pk = keys::parse_public_key(k)?;
                if pk != *me {
                    list.push((pk, Ingress::Socket(*addr)));
                }
            }
            return Ok(Peering::Discovery(list));
        }
        let mut addresses: Vec<(PublicKey, Address)> = Vec::new();
        for (k, addr) in &self.peers {
            let pk = keys::parse_public_key(k)?;
            if pk != *me {
                addresses.push((pk, (*addr).into()));
            }
        }
        addresses.push((me.clone(), self.dialable_address().into()));
        let peers = Map::try_from(addresses).map_err(|_| anyhow::anyhow!("a peer is listed twice"))?;
        Ok(Peering::Lookup(peers))
    }

    /// The address the other validators dial to reach this one.
    pub fn dialable_address(&self) -> SocketAddr {
        self.dialable.unwrap_or(self.listen)
    }
}

/// Runs a validator until it finalized `exit_after` (forever if `None`), serving metrics and
/// health checks on `metrics` if given.
pub fn run(config: &Path, exit_after: Option<u64>, metrics: Option<SocketAddr>) -> Result<()> {
    let text = std::fs::read(config).with_context(|| format!("cannot read {}", config.display()))?;
    let cfg: ValidatorFile =
        serde_json::from_slice(&text).with_context(|| format!("{} is not a validator config", config.display()))?;
    let base = config.parent().map(Path::to_path_buf).unwrap_or_default();
    let key = keys::read_key_file(&base.join(&cfg.key))?;
    let me = key.public_key();
    let datadir = base.join(&cfg.datadir);
    let consensus_dir = datadir.join("consensus");
    let Opened { chain, participants, namespace, genesis_block, start, executor: exec, fresh } =
        open(&base.join(&cfg.genesis), &datadir)?;
    if participants.position(&me).is_none() {
        bail!("this key ({}) is not in the genesis validator set", keys::public_key_hex(&me));
    }
    let peering = cfg.peering(&me)?;
    if fresh {
        // Consensus storage without the chain it belongs to (the database was deleted): start
        // both afresh, marshal backfills from the peers.
        let _ = std::fs::remove_dir_all(&consensus_dir);
    }
    let shared = Shared::new(exec, &start, (*chain.state).clone(), alloy_primitives::Address::ZERO);
    let (gossip_tx, gossip_rx) = futures::channel::mpsc::unbounded::<PendingTx>();
    let node = Node::new(chain);
    node.set_submit(Box::new(ValidatorSubmit::new(shared.clone(), gossip_tx)));
    shared.set_sink(node.clone());
    let n = participants.len();
    println!(
        "validator {} of {n}, p2p on {}, finalized height {}",
        keys::public_key_hex(&me),
        cfg.listen,
        start.body().height
    );
    let _rpc = match cfg.rpc {
        Some(addr) => Some(start_rpc(node.clone(), addr)?),
        None => None,
    };
    if let Some(m) = metrics {
        let database = datadir.join("chain.redb");
        crate::metrics::serve(
            crate::metrics::Endpoints { node: node.clone(), readiness: Readiness::Network, database },
            m,
        )?;
    }

    let runtime =
        commonware_runtime::tokio::Config::new().with_storage_directory(&consensus_dir).with_worker_threads(2);
    commonware_runtime::tokio::Runner::new(runtime).start(|context| async move {
        // Consensus and p2p metrics (simplex, marshal, the network) from commonware's registry.
        let registry = context.child("metrics");
        crate::metrics::get().set_consensus(Box::new(move || commonware_runtime::Metrics::encode(&registry)));
        let handshake = Cups::<_, ChaCha20Poly1305>::new(
            Sake {
                signer: key.clone(),
                synchrony_bound: Duration::from_secs(5),
                max_handshake_age: Duration::from_secs(10),
                version: sake::Version::V1,
            },
            cups::Version::V1,
        );
        let engines = Engines {
            namespace: namespace.clone(),
            key,
            participants,
            genesis: genesis_block,
            shared,
            node,
            gossip: gossip_rx,
            consensus_dir,
            exit_after,
        };
        let (max_peers, max_size, mailbox) = (NZUsize!(n.max(1)), 8 << 20, NZUsize!(1024));
        let (listen, dialable) = (cfg.listen, cfg.dialable_address());
        match peering {
            Peering::Lookup(peers) => {
                // commonware's production settings, or the quick local ones (docs/consensus.md).
                let settings = if cfg.public { lookup::Config::recommended } else { lookup::Config::local };
                let p2p = settings(handshake, &namespace, listen, max_peers, max_size, mailbox);
                let (mut network, mut oracle) = lookup::Network::new(context.child("network"), p2p);
                oracle.track(0, peers);
                let channels = register(|ch, quota| network.register(ch, quota));
                network.start();
                serve(&context, engines, channels, oracle.clone(), oracle).await
            }
            Peering::Discovery(bootstrappers) => {
                let settings = if cfg.public { discovery::Config::recommended } else { discovery::Config::local };
                let p2p =
                    settings(handshake, &namespace, listen, dialable, bootstrappers, max_peers, max_size, mailbox);
                let (mut network, mut oracle) = discovery::Network::new(context.child("network"), p2p);
                oracle.track(0, engines.participants.clone());
                let channels = register(|ch, quota| network.register(ch, quota));
                network.start();
                serve(&context, engines, channels, oracle.clone(), oracle).await
            }
        }
    })
}

/// What a validator's engines run on, besides its network.
struct Engines {
    namespace: Vec<u8>,
    key: commonware_cryptography::ed25519::PrivateKey,
    participants: commonware_utils::ordered::Set<PublicKey>,
    genesis: fixpoint_consensus::Block,
    shared: Arc<Shared>,
    node: Arc<Node>,
    gossip: futures::channel::mpsc::UnboundedReceiver<PendingTx>,
    consensus_dir: PathBuf,
    exit_after: Option<u64>,
}

/// Messages each peer may send on each channel per second. commonware sizes every channel's
/// inbound mailbox, and the shared outbound one, for one burst of this quota from every peer it
/// may track, and allocates them up front: at 100,000/s a 4-validator debug build held about
/// 5 GB per validator. Consensus sends a few messages per view per peer and gossip batches
/// transactions (consensus/src/gossip.rs), so 1,024/s is ample; a peer above it is throttled.
pub const CHANNEL_QUOTA: Quota = Quota::per_second(NZU32!(1_024));

/// The consensus channels and the gossip channel, registered with `register`.
fn register<S, R>(mut register: impl FnMut(u64, Quota) -> (S, R)) -> (Channels<S, R>, (S, R)) {
    let mut next = |ch: u64| register(ch, CHANNEL_QUOTA);
    let channels = Channels {
        votes: next(channel::VOTES),
        certificates: next(channel::CERTIFICATES),
        resolver: next(channel::RESOLVER),
        blocks: next(channel::BLOCKS),
        backfill: next(channel::BACKFILL),
    };
    (channels, next(channel::TXS))
}

/// Runs gossip and the engines on a started network; prints each finalized block until
/// `exit_after`.
async fn serve<S, R, B, P>(
    context: &commonware_runtime::tokio::Context,
    e: Engines,
    (channels, (txs_out, txs_in)): (Channels<S, R>, (S, R)),
    blocker: B,
    peers: P,
) -> Result<()>
where
    S: commonware_p2p::Sender<PublicKey = PublicKey>,
    R: commonware_p2p::Receiver<PublicKey = PublicKey>,
    B: commonware_p2p::Blocker<PublicKey = PublicKey>,
    P: commonware_p2p::Provider<PublicKey = PublicKey>,
{
    let Engines { namespace, key, participants, genesis, shared, node, gossip: gossip_rx, consensus_dir, exit_after } =
        e;
    context.child("gossip_out").spawn(move |_| gossip::send_loop(txs_out, gossip_rx));
    let receiver_shared = shared.clone();
    context.child("gossip_in").spawn(move |_| gossip::receive_loop(txs_in, receiver_shared));
    let vcfg = ValidatorConfig { namespace, key, participants, genesis, partition_prefix: "fixpoint".into() };
    let marshal = engine::start_validator(context.child("node"), vcfg, shared.clone(), blocker, peers, channels).await;
    let Some(m) = marshal else {
        bail!("consensus did not start (its storage in {} could not be opened)", consensus_dir.display());
    };
    node.set_finality(Arc::new(MarshalFinality(std::sync::Mutex::new(m))));
    let mut printed = None;
    loop {
        context.sleep(Duration::from_millis(100)).await;
        let f = shared.finalized_above(printed);
        for b in &f {
            println!(
                "finalized height {} digest 0x{} state {} txs {}",
                b.height,
                hex::encode(b.digest.as_ref()),
                b.state_root,
                b.txs
            );
        }
        if let Some(last) = f.last() {
            printed = Some(last.height);
        }
        if exit_after.is_some_and(|h| printed.is_some_and(|p| p >= h)) {
            return Ok(());
        }
    }
}

/// Finalized blocks and certificates from marshal's archives.
struct MarshalFinality(std::sync::Mutex<engine::Marshal>);

impl Finality for MarshalFinality {
    fn certified(&self, height: u64) -> std::pin::Pin<Box<dyn Future<Output = Option<CertifiedBlock>> + Send>> {
        let m = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        Box::pin(async move {
            use commonware_consensus::types::Height;
            // Finalizing a block finalizes its ancestors, and not every height has its own
            // certificate: serve the blocks up to the next certified one.
            let mut blocks = Vec::new();
            for h in height..height.saturating_add(MAX_UNCERTIFIED) {
                let block = m.get_block(Height::new(h)).await?;
                blocks.push(commonware_codec::Encode::encode(&block).to_vec());
                if let Some(cert) = m.get_finalization(Height::new(h)).await {
                    return Some((blocks, fixpoint_consensus::follow::encode_certificate(&cert)));
                }
            }
            None
        })
    }
}

/// Most blocks served together up to a certified one.
const MAX_UNCERTIFIED: u64 = 64;
