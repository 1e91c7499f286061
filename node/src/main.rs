//! `fixpoint`: run a node (`fixpoint node --dev` or `--genesis FILE`), write a starter genesis
//! (`fixpoint init`), and register, inspect and call models on a running node (`fixpoint model`).
//! This file holds the command line and `fixpoint node`; each other command has its own module.

mod init;
mod model_cli;
mod testnet;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy_primitives::keccak256;
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use fixpoint_evm::ChainSpec;
use fixpoint_node::chain::Chain;
use fixpoint_node::dev::{EXAMPLE_MODEL, EXAMPLE_WRITER, dev_accounts};
use fixpoint_node::genesis::Genesis;
use fixpoint_node::metrics::{Endpoints, Readiness};
use fixpoint_node::startup::start_solo;
use fixpoint_node::storage::Store;
use fixpoint_node::submit::Sealing;
use fixpoint_precompiles::{INFERENCE_ADDRESS, REGISTRY_ADDRESS};

use init::{InitArgs, init, keygen};
use model_cli::{ModelCmd, model};
use testnet::{TestnetArgs, testnet};

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
    /// Write a starter genesis file (dev accounts, the example model) into a directory.
    Init(InitArgs),
    /// Register, inspect and call models on a running node.
    #[command(subcommand)]
    Model(ModelCmd),
    /// Generate a validator key (ed25519) into a new file; prints the public key for the
    /// genesis validator set.
    Keygen {
        /// Where to write the key file (never overwritten).
        #[arg(long, default_value = "validator-key.json")]
        out: PathBuf,
    },
    /// Start a local network of validators on 127.0.0.1 (keys, genesis, configs, processes).
    Testnet(TestnetArgs),
}

#[derive(clap::Args)]
struct NodeArgs {
    /// Development chain: prefunded accounts (keys printed) and the example model at genesis.
    #[arg(long, conflicts_with = "genesis")]
    dev: bool,
    /// Run as a validator of a multi-validator network (see `fixpoint testnet`).
    #[arg(long, requires = "config", conflicts_with_all = ["dev", "genesis"])]
    validator: bool,
    /// The validator configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Follow a validator network through this validator's JSON-RPC URL (with --genesis and
    /// --datadir): checks every block's finalization certificate and re-executes it.
    #[arg(long, requires_all = ["genesis", "datadir"], conflicts_with_all = ["dev", "validator"])]
    follow: Option<String>,
    /// Validator or follower: stop once this height is finalized.
    #[arg(long)]
    exit_after: Option<u64>,
    /// Start from this genesis file (see `fixpoint init`).
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// Where to keep the database; a fresh temporary directory if omitted.
    #[arg(long)]
    datadir: Option<PathBuf>,
    /// JSON-RPC listen address.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// JSON-RPC port.
    #[arg(long, default_value_t = 8545)]
    port: u16,
    /// Seconds between blocks; 0 mines a block as soon as transactions arrive.
    #[arg(long, default_value_t = 0)]
    block_time: u64,
    /// Most gas an eth_call, eth_estimateGas or fixpoint_infer may use (0: the block gas limit).
    #[arg(long, default_value_t = 0)]
    rpc_gas_cap: u64,
    /// Chain id (--dev; a genesis file sets its own).
    #[arg(long, conflicts_with = "genesis")]
    chain_id: Option<u64>,
    /// Number of dev accounts (--dev).
    #[arg(long, default_value_t = 10, conflicts_with = "genesis")]
    accounts: usize,
    /// Block gas limit (--dev; a genesis file sets its own).
    #[arg(long, conflicts_with = "genesis")]
    gas_limit: Option<u64>,
    /// Serve Prometheus metrics (/metrics) and health checks (/health, /ready) on this address,
    /// e.g. 127.0.0.1:9100 (off by default; docs/operations.md).
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// Log format on standard error: one line per event as text, or as JSON objects.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

/// How log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

/// Installs the log subscriber: `RUST_LOG` filters (default `info`), on standard error.
fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi && format == LogFormat::Text);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Block gas limit of a new dev chain or starter genesis.
const DEFAULT_GAS_LIMIT: u64 = 60_000_000;

#[tokio::main]
async fn main() {
    let r = match Cli::parse().cmd {
        Cmd::Node(a) => run_node(a).await,
        Cmd::Init(a) => init(a),
        Cmd::Model(m) => model(m).await,
        Cmd::Keygen { out } => keygen(&out),
        Cmd::Testnet(a) => testnet(a).await,
    };
    if let Err(e) = r {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run_node(a: NodeArgs) -> Result<()> {
    init_logs(a.log_format);
    if a.validator {
        let (config, exit_after, metrics) = (a.config.clone().unwrap_or_default(), a.exit_after, a.metrics);
        // commonware runs its own tokio runtime: give it a thread of its own.
        return std::thread::spawn(move || fixpoint_node::validator::run(&config, exit_after, metrics))
            .join()
            .map_err(|_| anyhow::anyhow!("the validator stopped abnormally"))?;
    }
    if let (Some(upstream), Some(genesis), Some(datadir)) = (&a.follow, &a.genesis, &a.datadir) {
        let cfg = fixpoint_node::follower::FollowConfig {
            upstream: upstream.clone(),
            genesis: genesis.clone(),
            datadir: datadir.clone(),
            rpc: format!("{}:{}", a.host, a.port).parse().context("bad --host/--port")?,
            exit_after: a.exit_after,
            metrics: a.metrics,
        };
        return std::thread::spawn(move || fixpoint_node::follower::run(&cfg))
            .join()
            .map_err(|_| anyhow::anyhow!("the follower stopped abnormally"))?;
    }
    let accounts = dev_accounts(if a.dev { a.accounts } else { 0 });
    let (genesis, base) = match (&a.genesis, a.dev) {
        (Some(p), _) => (Genesis::load(p)?, p.parent().map(Path::to_path_buf).unwrap_or_default()),
        (None, true) => (
            Genesis::dev(
                a.chain_id.unwrap_or(ChainSpec::DEV.chain_id),
                a.gas_limit.unwrap_or(DEFAULT_GAS_LIMIT),
                &accounts,
            ),
            PathBuf::new(),
        ),
        (None, false) => {
            bail!("pass --dev for a development chain, or --genesis FILE (write one with `fixpoint init`)")
        }
    };
    let built = genesis.build(&base).context("bad genesis")?;
    let (datadir, _tmp) = match &a.datadir {
        Some(d) => (d.clone(), None),
        None => {
            let d = std::env::temp_dir().join(format!("fixpoint-dev-{}", std::process::id()));
            (d.clone(), Some(TempDir(d)))
        }
    };
    std::fs::create_dir_all(&datadir).with_context(|| format!("creating {}", datadir.display()))?;
    let store = Store::open(&datadir.join("chain.redb")).context("opening the database")?;
    let spec = ChainSpec { chain_id: genesis.chain_id, ..ChainSpec::DEV };
    let chain = Chain::open(spec, genesis.gas_limit, store, &built, genesis.timestamp)?;
    let head = chain.head().header.number;
    let sealing = match a.block_time {
        0 => Sealing::Instant,
        s => Sealing::Interval(Duration::from_secs(s)),
    };
    let node = start_solo(chain, built.state.root(), genesis.timestamp, &datadir, sealing)?;
    node.set_gas_cap(a.rpc_gas_cap);

    let addr: SocketAddr = format!("{}:{}", a.host, a.port).parse().context("bad --host/--port")?;
    let (handle, bound) = fixpoint_node::rpc::serve(node.clone(), addr).await?;
    if let Some(m) = a.metrics {
        let endpoints =
            Endpoints { node: node.clone(), readiness: Readiness::Dev, database: datadir.join("chain.redb") };
        fixpoint_node::metrics::serve(endpoints, m)?;
    }

    let kind = if a.dev { "dev chain" } else { "chain" };
    println!("fixpoint {kind} (chain id {}), head block {head}, data in {}", genesis.chain_id, datadir.display());
    if a.dev {
        println!("\nAvailable accounts (10,000 ETH each)\n==================");
        for (i, acc) in accounts.iter().enumerate() {
            println!("({i}) {}", acc.address);
        }
        println!("\nPrivate keys\n==================");
        for (i, acc) in accounts.iter().enumerate() {
            println!("({i}) {}", acc.key);
        }
    } else {
        println!("{} funded accounts in the genesis", genesis.alloc.len());
    }
    for id in &built.model_ids {
        if *id == keccak256(EXAMPLE_MODEL) {
            println!("\nExample model (8x8 digit classifier, input 64 int8 pixels 0..16, outputs [label, logits])");
            println!("  model id  {id}");
            println!("  registry  {REGISTRY_ADDRESS}   inference  {INFERENCE_ADDRESS}");
            println!(
                "  try:      cast call {INFERENCE_ADDRESS} 'classify(bytes32,bytes)(uint256)' {id} 0x{} --rpc-url http://{bound}",
                include_str!("../assets/test-digit.hex").trim()
            );
        } else if *id == keccak256(EXAMPLE_WRITER) {
            println!("\nExample language model (tiny byte-level GPT, window 128: generate(bytes32,bytes,uint32))");
            println!("  model id  {id}");
            println!(
                "  try:      cast call {INFERENCE_ADDRESS} 'generate(bytes32,bytes,uint32)(bytes)' {id} \
                 $(cast from-utf8 'And God said, Let there be') 24 --rpc-url http://{bound} | cast to-ascii"
            );
            println!("            or: fixpoint model generate {id} 'And God said, Let there be' --tokens 24");
        } else {
            println!("  model id  {id}");
        }
    }
    println!("\nListening on http://{bound}");

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
