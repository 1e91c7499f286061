//! What a consensus node (validator or follower) does before it runs: open its chain from the
//! genesis file and the database ([`open`]), find the consensus block it resumes from
//! ([`resume_point`]), and serve JSON-RPC from a thread of its own ([`start_rpc`]).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use commonware_codec::Decode as _;
use commonware_utils::ordered::Set;
use fixpoint_consensus::app::PublicKey;
use fixpoint_consensus::{Block, BlockLimits, Executor, Shared};
use fixpoint_evm::ChainSpec;

use crate::chain::{Chain, INITIAL_BASE_FEE};
use crate::genesis::Genesis;
use crate::rpc::Node;
use crate::storage::Store;
use crate::submit::{DevSealer, Sealing};

/// A consensus node's chain (validator or follower), opened from its genesis and data directory.
pub struct Opened {
    /// The chain database, opened (genesis written if new).
    pub chain: Chain,
    /// The genesis validator set.
    pub participants: Set<PublicKey>,
    /// The signing namespace, `fixpoint-<chain id>`.
    pub namespace: Vec<u8>,
    /// Block 0 of the consensus chain.
    pub genesis_block: Block,
    /// The consensus block to resume from ([`resume_point`]).
    pub start: Block,
    /// The block executor over the chain's model store.
    pub executor: Executor,
    /// Whether the database was created just now.
    pub fresh: bool,
}

/// Opens the chain of a validator or follower: the genesis file (which must list validators)
/// and the database in `datadir`.
pub fn open(genesis_path: &Path, datadir: &Path) -> Result<Opened> {
    let genesis = Genesis::load(genesis_path)?;
    let built = genesis.build(genesis_path.parent().unwrap_or(Path::new(".")))?;
    if built.validators.is_empty() {
        bail!("{} lists no validators", genesis_path.display());
    }
    let participants = Set::try_from(built.validators.clone()).map_err(|_| anyhow::anyhow!("duplicate validators"))?;
    std::fs::create_dir_all(datadir).with_context(|| format!("creating {}", datadir.display()))?;
    let store = Store::open(&datadir.join("chain.redb"))
        .with_context(|| format!("opening the database in {} (is another node using it?)", datadir.display()))?;
    let fresh = store.head()?.is_none();
    let spec = ChainSpec { chain_id: genesis.chain_id, ..ChainSpec::DEV };
    let chain = Chain::open(spec, genesis.gas_limit, store, &built, genesis.timestamp)?;
    let genesis_block =
        Block::genesis(fixpoint_evm::state_root(&built.state), genesis.gas_limit, genesis.timestamp, INITIAL_BASE_FEE);
    let start = resume_point(&chain, &genesis_block, datadir)?;
    let executor = Executor {
        spec: chain.spec,
        gas_limit: genesis.gas_limit,
        limits: BlockLimits::default(),
        models: chain.models.clone(),
    };
    let namespace = format!("fixpoint-{}", genesis.chain_id).into_bytes();
    Ok(Opened { chain, participants, namespace, genesis_block, start, executor, fresh })
}

/// The consensus block a node resumes from: the one stored with its database head (checked
/// against it), or genesis for a new database.
pub fn resume_point(chain: &Chain, genesis_block: &Block, datadir: &Path) -> Result<Block> {
    match chain.store.consensus_block()? {
        Some(bytes) => {
            let b = Block::decode_cfg(bytes, &BlockLimits::default())
                .map_err(|e| anyhow::anyhow!("the stored consensus block does not decode: {e}"))?;
            let head = &chain.head().header;
            if b.body().height != head.number || b.body().state_root != head.state_root {
                bail!(
                    "the stored consensus block (height {}) is not the database's head {}",
                    b.body().height,
                    head.number
                );
            }
            Ok(b)
        }
        None if chain.head().header.number == 0 => Ok(genesis_block.clone()),
        None => bail!("{} holds a chain not made by consensus (a dev chain?): use another datadir", datadir.display()),
    }
}

/// A dev (or single-node) chain's node: one sealer on the validators' path (the same mempool,
/// block building, header rules and finalization, with the node as the sink), resuming from the
/// consensus block stored with the database's head. `genesis_root`, `gas_limit` and
/// `timestamp` are the genesis's.
pub fn start_solo(
    chain: Chain,
    genesis_root: alloy_primitives::B256,
    timestamp: u64,
    datadir: &Path,
    sealing: Sealing,
) -> Result<Arc<Node>> {
    let genesis_block = Block::genesis(genesis_root, chain.gas_limit, timestamp, INITIAL_BASE_FEE);
    let start = resume_point(&chain, &genesis_block, datadir)?;
    let exec = Executor {
        spec: chain.spec,
        gas_limit: chain.gas_limit,
        limits: BlockLimits::default(),
        models: chain.models.clone(),
    };
    let shared = Shared::new(exec, &start, (*chain.state).clone(), alloy_primitives::Address::ZERO);
    let node = Node::new(chain);
    shared.set_sink(node.clone());
    node.set_submit(Box::new(DevSealer::start(shared, sealing)));
    Ok(node)
}

/// Serves JSON-RPC for `node` on `addr` from a thread of its own (commonware's runtime owns the
/// caller's); returns once it listens.
pub fn start_rpc(node: Arc<Node>, addr: SocketAddr) -> Result<std::thread::JoinHandle<()>> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready_tx.send(Err(anyhow::anyhow!("starting the RPC runtime: {e}")));
                return;
            }
        };
        rt.block_on(async move {
            match crate::rpc::serve(node, addr).await {
                Ok((handle, bound)) => {
                    let _ = ready_tx.send(Ok(bound));
                    handle.stopped().await;
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        });
    });
    let bound = ready_rx.recv().context("the RPC thread stopped")??;
    println!("JSON-RPC on http://{bound} (finalized state)");
    Ok(handle)
}
