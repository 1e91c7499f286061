//! `fixpoint`: run a node (`fixpoint node --dev`), query models on a node.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use fixpoint_evm::ChainSpec;
use fixpoint_node::chain::Chain;
use fixpoint_node::dev::{dev_accounts, dev_genesis};
use fixpoint_node::pool::Pool;
use fixpoint_node::rpc::{Node, module};
use fixpoint_node::storage::Store;

#[derive(Parser)]
#[command(
    name = "fixpoint",
    version,
    about = "An EVM chain whose contracts call ML models, re-executed bit for bit by every validator"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a node.
    Node(NodeArgs),
}

#[derive(clap::Args)]
struct NodeArgs {
    /// Development chain: prefunded accounts and the example model registered at genesis.
    #[arg(long)]
    dev: bool,
    /// Where to keep the database; a fresh temporary directory if omitted.
    #[arg(long)]
    datadir: Option<PathBuf>,
    /// JSON-RPC listen address.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// JSON-RPC port.
    #[arg(long, default_value_t = 8545)]
    port: u16,
    /// Seconds between blocks; 0 mines a block for every transaction.
    #[arg(long, default_value_t = 0)]
    block_time: u64,
    /// Chain id.
    #[arg(long, default_value_t = ChainSpec::DEV.chain_id)]
    chain_id: u64,
    /// Number of dev accounts.
    #[arg(long, default_value_t = 10)]
    accounts: usize,
    /// Block gas limit.
    #[arg(long, default_value_t = 60_000_000)]
    gas_limit: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Node(a) => run_node(a).await,
    }
}

async fn run_node(a: NodeArgs) -> Result<()> {
    if !a.dev {
        anyhow::bail!("only --dev chains are supported so far: run `fixpoint node --dev`");
    }
    let (datadir, _tmp) = match &a.datadir {
        Some(d) => (d.clone(), None),
        None => {
            let d = std::env::temp_dir().join(format!("fixpoint-dev-{}", std::process::id()));
            (d.clone(), Some(TempDir(d)))
        }
    };
    std::fs::create_dir_all(&datadir).with_context(|| format!("creating {}", datadir.display()))?;
    let store = Store::open(&datadir.join("chain.redb")).context("opening the database")?;
    let accounts = dev_accounts(a.accounts);
    let (genesis, model_id) = dev_genesis(&accounts).context("building the dev genesis")?;
    let spec = ChainSpec { chain_id: a.chain_id, ..ChainSpec::DEV };
    let chain = Chain::open(spec, a.gas_limit, store, || {
        (genesis, vec![fixpoint_node::dev::EXAMPLE_MODEL.to_vec()], 1_700_000_000)
    })?;
    let head = chain.head().header.number;
    let node =
        Arc::new(Node { chain: Mutex::new(chain), pool: Mutex::new(Pool::default()), automine: a.block_time == 0 });

    let addr: SocketAddr = format!("{}:{}", a.host, a.port).parse().context("bad --host/--port")?;
    let config = jsonrpsee::server::ServerConfig::builder()
        .max_request_body_size(8 << 20)
        .max_response_body_size(64 << 20)
        .build();
    let server = jsonrpsee::server::Server::builder()
        .set_config(config)
        .build(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = server.local_addr()?;
    let handle = server.start(module(node.clone())?);

    println!("fixpoint dev chain (chain id {}), head block {head}, data in {}", a.chain_id, datadir.display());
    println!("\nAvailable accounts (10,000 ETH each)\n==================");
    for (i, acc) in accounts.iter().enumerate() {
        println!("({i}) {}", acc.address);
    }
    println!("\nPrivate keys\n==================");
    for (i, acc) in accounts.iter().enumerate() {
        println!("({i}) {}", acc.key);
    }
    println!("\nExample model (8x8 digit classifier, input 64 int8 pixels 0..16, outputs [label, logits])");
    println!("  model id  {model_id}");
    println!(
        "  registry  {}   inference  {}",
        fixpoint_precompiles::REGISTRY_ADDRESS,
        fixpoint_precompiles::INFERENCE_ADDRESS
    );
    println!(
        "  try:      cast call {} 'classify(bytes32,bytes)(uint256)' {model_id} 0x{} --rpc-url http://{bound}",
        fixpoint_precompiles::INFERENCE_ADDRESS,
        include_str!("../assets/test-digit.hex").trim()
    );
    println!("\nListening on http://{bound}");

    if a.block_time > 0 {
        let n = node.clone();
        let every = Duration::from_secs(a.block_time);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = n.mine(true) {
                    eprintln!("block production failed: {e}");
                }
            }
        });
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => println!("shutting down"),
        _ = handle.clone().stopped() => {}
    }
    let _ = handle.stop();
    Ok(())
}

/// Removes a temporary data directory on exit.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
