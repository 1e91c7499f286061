//! `fixpoint testnet`: a local network of validators on 127.0.0.1, run as child processes of
//! this one (keys, genesis and configs written on first use), supervised until a height or a
//! signal.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use fixpoint_evm::ChainSpec;
use fixpoint_node::genesis::Genesis;

use crate::DEFAULT_GAS_LIMIT;
use crate::init::{InitArgs, init};

/// `fixpoint testnet` arguments.
#[derive(clap::Args)]
pub(crate) struct TestnetArgs {
    /// Number of validators.
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// A new directory for keys, genesis, configs and data.
    #[arg(long)]
    dir: PathBuf,
    /// Stop once every validator finalized this height (and check they agree).
    #[arg(long)]
    exit_after: Option<u64>,
    /// JSON-RPC port of the first validator; the others take the next ones (0: any free ports).
    #[arg(long, default_value_t = 8545)]
    rpc_port: u16,
    /// Serve each validator's metrics and health checks on 127.0.0.1 from this port on (the
    /// others take the next ones; 0: any free ports). Off unless given.
    #[arg(long)]
    metrics_port: Option<u16>,
}

/// Starts (or resumes) the testnet in `a.dir` and supervises it.
pub(crate) async fn testnet(a: TestnetArgs) -> Result<()> {
    use std::io::BufRead as _;
    if a.validators == 0 {
        bail!("--validators must be at least 1");
    }
    let configs = if a.dir.join("genesis.json").exists() && a.dir.join("v0.config.json").exists() {
        // A testnet made before: run it again from where it stopped.
        let configs: Vec<PathBuf> =
            (0..).map(|i| a.dir.join(format!("v{i}.config.json"))).take_while(|p| p.exists()).collect();
        println!("testnet: resuming the {} validators in {}", configs.len(), a.dir.display());
        configs
    } else if a.dir.exists() && std::fs::read_dir(&a.dir)?.next().is_some() {
        bail!("{} is not empty and holds no testnet: give a new directory", a.dir.display());
    } else {
        new_testnet(&a)?
    };
    let exe = std::env::current_exe()?;
    let n = configs.len();
    let finals = std::sync::Arc::new(std::sync::Mutex::new(vec![Vec::<(u64, String)>::new(); n]));
    let mut children = Vec::new();
    let mut readers = Vec::new();
    for (i, path) in configs.iter().enumerate() {
        let mut cmd = std::process::Command::new(&exe);
        cmd.args(["node", "--validator", "--config"]).arg(path);
        if let Some(base) = a.metrics_port {
            let port = if base == 0 { 0 } else { base.saturating_add(u16::try_from(i).unwrap_or(u16::MAX)) };
            cmd.args(["--metrics", &format!("127.0.0.1:{port}")]);
        }
        let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().context("starting a validator")?;
        let out = child.stdout.take().context("validator stdout")?;
        let finals = finals.clone();
        readers.push(std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                println!("[v{i}] {line}");
                let w: Vec<&str> = line.split_whitespace().collect();
                if let ["finalized", "height", h, "digest", d, ..] = w.as_slice()
                    && let Ok(h) = h.parse()
                    && let Ok(mut f) = finals.lock()
                {
                    f[i].push((h, d.to_string()));
                }
            }
        }));
        children.push(child);
    }
    println!("testnet: {n} validators, configs and data in {}", a.dir.display());
    let Some(height) = a.exit_after else {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        for c in &mut children {
            let _ = c.kill();
            let _ = c.wait();
        }
        return Ok(());
    };
    // Validators keep running until all of them reached the height (one that stopped early
    // could leave a slower one without peers); then stop them all.
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let reached = finals.lock().map(|f| f.iter().all(|v| v.iter().any(|(h, _)| *h >= height))).unwrap_or(false);
        let exited = children.iter_mut().any(|c| matches!(c.try_wait(), Ok(Some(_))));
        if reached || exited || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for c in &mut children {
        let _ = c.kill();
        let _ = c.wait();
    }
    for r in readers {
        let _ = r.join();
    }
    let f = finals.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let at: Vec<Option<&String>> = f.iter().map(|v| v.iter().find(|(h, _)| *h == height).map(|(_, d)| d)).collect();
    match at.first().copied().flatten() {
        Some(d) if at.iter().all(|x| *x == Some(d)) => {
            println!("all {n} validators finalized height {height} with digest {d}");
            Ok(())
        }
        _ => bail!("the validators disagree or did not reach height {height}: {at:?}"),
    }
}

/// Writes a new testnet into `a.dir` (keys, genesis, one config per validator on free loopback
/// ports); returns the config paths.
fn new_testnet(a: &TestnetArgs) -> Result<Vec<PathBuf>> {
    init(InitArgs {
        dir: a.dir.clone(),
        chain_id: ChainSpec::DEV.chain_id,
        accounts: 10,
        gas_limit: DEFAULT_GAS_LIMIT,
        force: false,
        validators: a.validators,
        p2p: Vec::new(),
        bootstrappers: 0,
        public: false,
        rpc: None,
    })?;
    let genesis = Genesis::load(&a.dir.join("genesis.json"))?;
    let free = || std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|x| x.port());
    let ports: Vec<u16> = (0..a.validators).map(|_| free()).collect::<std::io::Result<_>>()?;
    let peers: std::collections::BTreeMap<String, SocketAddr> = genesis
        .validators
        .iter()
        .zip(&ports)
        .map(|(k, p)| (k.clone(), SocketAddr::from(([127, 0, 0, 1], *p))))
        .collect();
    let mut paths = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let rpc = match a.rpc_port {
            0 => free()?,
            p => u16::try_from(usize::from(p) + i).context("--rpc-port too high")?,
        };
        let cfg = fixpoint_node::validator::ValidatorFile {
            genesis: "genesis.json".into(),
            key: format!("validators/v{i}.json").into(),
            listen: SocketAddr::from(([127, 0, 0, 1], *port)),
            dialable: None,
            peers: peers.clone(),
            bootstrappers: Default::default(),
            public: false,
            datadir: format!("data/v{i}").into(),
            rpc: Some(SocketAddr::from(([127, 0, 0, 1], rpc))),
        };
        let path = a.dir.join(format!("v{i}.config.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&cfg)? + "\n")?;
        paths.push(path);
    }
    Ok(paths)
}
