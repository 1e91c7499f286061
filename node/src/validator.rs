//! A validator process (`fixpoint node --validator --config FILE`): commonware's tokio runtime,
//! authenticated p2p on TCP (lookup network: validator addresses are known), and the engines of
//! `fixpoint_consensus::engine` over this node's executor. It prints each finalized block.
//!
//! Not yet: JSON-RPC on the finalized state, transaction forwarding, persistence of the
//! application state (a restarted validator resyncs from its peers, see `run`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use commonware_cryptography::{ChaCha20Poly1305, Signer};
use commonware_p2p::authenticated::lookup::{self, Network};
use commonware_p2p::{Address, AddressableManager as _};
use commonware_runtime::{Clock, Quota, Runner as _, Supervisor as _};
use commonware_stream::cups::{self, Cups};
use commonware_stream::sake::{self, Sake};
use commonware_utils::ordered::{Map, Set};
use commonware_utils::{NZU32, NZUsize};
use fixpoint_consensus::app::{Proposer, PublicKey, Shared};
use fixpoint_consensus::engine::{self, Channels, ValidatorConfig, channel};
use fixpoint_consensus::{Block, BlockLimits, Executor};
use fixpoint_evm::ChainSpec;
use fixpoint_precompiles::ModelStore;
use serde::{Deserialize, Serialize};

use crate::chain::INITIAL_BASE_FEE;
use crate::genesis::Genesis;
use crate::keys;

/// A validator's configuration file; paths are relative to the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidatorFile {
    /// The genesis file (with the validator set).
    pub genesis: PathBuf,
    /// This validator's key file (`fixpoint keygen`).
    pub key: PathBuf,
    /// p2p listen address.
    pub listen: SocketAddr,
    /// Every validator's p2p address, by 0x-hex public key (this one's included or not).
    pub peers: BTreeMap<String, SocketAddr>,
    /// Where the consensus storage lives.
    pub datadir: PathBuf,
}

/// Runs a validator until it finalized `exit_after` (forever if `None`).
pub fn run(config: &Path, exit_after: Option<u64>) -> Result<()> {
    let text = std::fs::read(config).with_context(|| format!("cannot read {}", config.display()))?;
    let cfg: ValidatorFile =
        serde_json::from_slice(&text).with_context(|| format!("{} is not a validator config", config.display()))?;
    let base = config.parent().map(Path::to_path_buf).unwrap_or_default();
    let genesis_path = base.join(&cfg.genesis);
    let genesis = Genesis::load(&genesis_path)?;
    let built = genesis.build(genesis_path.parent().unwrap_or(Path::new(".")))?;
    if built.validators.is_empty() {
        bail!("{} lists no validators", genesis_path.display());
    }
    let key = keys::read_key_file(&base.join(&cfg.key))?;
    let me = key.public_key();
    let participants = Set::try_from(built.validators.clone()).map_err(|_| anyhow::anyhow!("duplicate validators"))?;
    if !built.validators.contains(&me) {
        bail!("this key ({}) is not in the genesis validator set", keys::public_key_hex(&me));
    }
    let mut addresses: Vec<(PublicKey, Address)> = Vec::new();
    for (k, addr) in &cfg.peers {
        let pk = keys::parse_public_key(k)?;
        if pk != me {
            addresses.push((pk, (*addr).into()));
        }
    }
    addresses.push((me.clone(), cfg.listen.into()));
    let peers: Map<PublicKey, Address> =
        Map::try_from(addresses).map_err(|_| anyhow::anyhow!("a peer is listed twice"))?;

    let models = Arc::new(ModelStore::default());
    for m in &built.models {
        models.insert(m.clone().into());
    }
    let exec = Executor {
        spec: ChainSpec { chain_id: genesis.chain_id, ..ChainSpec::DEV },
        gas_limit: genesis.gas_limit,
        limits: BlockLimits::default(),
        models,
    };
    let genesis_block =
        Block::genesis(fixpoint_evm::state_root(&built.state), genesis.gas_limit, genesis.timestamp, INITIAL_BASE_FEE);
    let shared = Shared::new(exec, &genesis_block, built.state, Proposer::Honest, alloy_primitives::Address::ZERO);
    // The application state is not persisted yet: start consensus storage afresh and let
    // marshal backfill every finalized block from the peers, re-executing each.
    let datadir = base.join(&cfg.datadir);
    let _ = std::fs::remove_dir_all(&datadir);
    std::fs::create_dir_all(&datadir).with_context(|| format!("creating {}", datadir.display()))?;
    let namespace = format!("fixpoint-{}", genesis.chain_id).into_bytes();
    let n = built.validators.len();
    println!("validator {} of {n}, p2p on {}", keys::public_key_hex(&me), cfg.listen);

    let runtime = commonware_runtime::tokio::Config::new().with_storage_directory(&datadir).with_worker_threads(2);
    commonware_runtime::tokio::Runner::new(runtime).start(|context| async move {
        let handshake = Cups::<_, ChaCha20Poly1305>::new(
            Sake {
                signer: key.clone(),
                synchrony_bound: Duration::from_secs(5),
                max_handshake_age: Duration::from_secs(10),
                version: sake::Version::V1,
            },
            cups::Version::V1,
        );
        let p2p = lookup::Config::local(handshake, &namespace, cfg.listen, NZUsize!(n.max(1)), 8 << 20, NZUsize!(1024));
        let (mut network, mut oracle) = Network::new(context.child("network"), p2p);
        oracle.track(0, peers);
        let quota = Quota::per_second(NZU32!(100_000));
        let mut next = |ch: u64| network.register(ch, quota);
        let channels = Channels {
            votes: next(channel::VOTES),
            certificates: next(channel::CERTIFICATES),
            resolver: next(channel::RESOLVER),
            blocks: next(channel::BLOCKS),
            backfill: next(channel::BACKFILL),
        };
        network.start();
        let vcfg = ValidatorConfig {
            namespace: namespace.clone(),
            key,
            participants,
            genesis: genesis_block,
            partition_prefix: "fixpoint".into(),
        };
        engine::start_validator(context.child("node"), vcfg, shared.clone(), oracle.clone(), oracle, channels).await;
        let mut printed = 0;
        loop {
            context.sleep(Duration::from_millis(100)).await;
            let f = shared.finalized();
            for b in f.iter().skip(printed) {
                println!(
                    "finalized height {} digest 0x{} state {}",
                    b.height,
                    hex::encode(b.digest.as_ref()),
                    b.state_root
                );
            }
            printed = f.len();
            if exit_after.is_some_and(|h| f.last().is_some_and(|b| b.height >= h)) {
                break;
            }
        }
    });
    Ok(())
}
