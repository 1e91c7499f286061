//! `fixpoint init` (a starter genesis: dev accounts, the example models, optionally validator
//! keys) and `fixpoint keygen` (one validator key).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use alloy_primitives::{Address, keccak256};
use anyhow::{Context, Result, bail};
use fixpoint_evm::ChainSpec;
use fixpoint_node::dev::{EXAMPLE_MODEL, EXAMPLE_WRITER, dev_accounts};
use fixpoint_node::genesis::{Genesis, GenesisModel};
use fixpoint_node::keys;
use fixpoint_node::validator::ValidatorFile;

use crate::DEFAULT_GAS_LIMIT;

/// `fixpoint init` arguments.
#[derive(clap::Args)]
pub(crate) struct InitArgs {
    /// Directory to write genesis.json and the example model into.
    #[arg(long, default_value = ".")]
    pub(crate) dir: PathBuf,
    /// Chain id.
    #[arg(long, default_value_t = ChainSpec::DEV.chain_id)]
    pub(crate) chain_id: u64,
    /// Number of funded dev accounts.
    #[arg(long, default_value_t = 10)]
    pub(crate) accounts: usize,
    /// Block gas limit.
    #[arg(long, default_value_t = DEFAULT_GAS_LIMIT)]
    pub(crate) gas_limit: u64,
    /// Overwrite an existing genesis.json.
    #[arg(long)]
    pub(crate) force: bool,
    /// Generate this many validator keys (DIR/validators/vI.json) and list them in the genesis.
    #[arg(long, default_value_t = 0)]
    pub(crate) validators: usize,
    /// With --validators: each validator's public p2p address (IP:PORT, the one the others
    /// dial), comma-separated, in key order; writes DIR/vI.config.json for each (listening on
    /// 0.0.0.0 at that port).
    #[arg(long, value_delimiter = ',')]
    pub(crate) p2p: Vec<SocketAddr>,
    /// With --p2p: the configs list only the first K validators' addresses, as bootstrappers
    /// (the others' addresses are discovered); 0 lists every address.
    #[arg(long, default_value_t = 0)]
    pub(crate) bootstrappers: usize,
    /// With --p2p: commonware's production p2p settings (peers' private addresses refused).
    #[arg(long)]
    pub(crate) public: bool,
    /// With --p2p: every validator's JSON-RPC listen address (e.g. 0.0.0.0:8545).
    #[arg(long)]
    pub(crate) rpc: Option<SocketAddr>,
}

/// Writes a new validator key to `out` and prints its public key.
pub(crate) fn keygen(out: &Path) -> Result<()> {
    let key = keys::generate();
    keys::write_key_file(out, &key)?;
    println!("{}", keys::public_key_hex(&commonware_cryptography::Signer::public_key(&key)));
    eprintln!("wrote {} (keep it secret; put the public key above in the genesis `validators`)", out.display());
    Ok(())
}

/// Writes a starter genesis (and the example models, and validator keys) into `a.dir`.
pub(crate) fn init(a: InitArgs) -> Result<()> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let path = a.dir.join("genesis.json");
    if path.exists() && !a.force {
        bail!("{} exists (use --force to overwrite)", path.display());
    }
    let accounts = dev_accounts(a.accounts);
    let mut g = Genesis::dev(a.chain_id, a.gas_limit, &accounts);
    let owner = g.models.first().map_or(Address::ZERO, |m| m.owner);
    g.models = Vec::new();
    for (file, bytes) in [("digits-mlp.fxp", EXAMPLE_MODEL), ("tiny-gpt.fxp", EXAMPLE_WRITER)] {
        std::fs::write(a.dir.join(file), bytes).with_context(|| format!("writing the example model {file}"))?;
        g.models.push(GenesisModel { file: Some(file.into()), bytes: None, owner, id: Some(keccak256(bytes)) });
    }
    if a.validators > 0 {
        let vdir = a.dir.join("validators");
        std::fs::create_dir_all(&vdir).with_context(|| format!("creating {}", vdir.display()))?;
        for i in 0..a.validators {
            let key = keys::generate();
            keys::write_key_file(&vdir.join(format!("v{i}.json")), &key)?;
            g.validators.push(keys::public_key_hex(&commonware_cryptography::Signer::public_key(&key)));
        }
        println!("wrote {} validator keys into {}", a.validators, vdir.display());
    }
    if !a.p2p.is_empty() {
        write_configs(&a, &g.validators)?;
    } else if a.bootstrappers > 0 || a.public || a.rpc.is_some() {
        bail!("--bootstrappers, --public and --rpc need --p2p");
    }
    g.build(&a.dir).context("the starter genesis does not build")?;
    std::fs::write(&path, serde_json::to_string_pretty(&g)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {} and the example models in {}", path.display(), a.dir.display());
    println!(
        "funded {} dev accounts (keys are public: keccak256(\"fixpoint dev account <i>\")), chain id {}",
        accounts.len(),
        a.chain_id
    );
    println!("start it with: fixpoint node --genesis {} --datadir <dir>", path.display());
    Ok(())
}

/// Writes `a.dir/vI.config.json` for each of the `validators` (0x-hex public keys, in key-file
/// order) from the addresses in `a.p2p`.
fn write_configs(a: &InitArgs, validators: &[String]) -> Result<()> {
    if a.p2p.len() != a.validators || validators.len() != a.validators {
        bail!("--p2p lists {} addresses for {} validators", a.p2p.len(), a.validators);
    }
    if a.bootstrappers > a.validators {
        bail!("--bootstrappers {} exceeds --validators {}", a.bootstrappers, a.validators);
    }
    let book: BTreeMap<String, SocketAddr> = validators.iter().cloned().zip(a.p2p.iter().copied()).collect();
    let (peers, bootstrappers) = match a.bootstrappers {
        0 => (book, BTreeMap::new()),
        k => (BTreeMap::new(), validators.iter().take(k).map(|v| (v.clone(), book[v])).collect()),
    };
    for (i, addr) in a.p2p.iter().enumerate() {
        let cfg = ValidatorFile {
            genesis: "genesis.json".into(),
            key: format!("validators/v{i}.json").into(),
            listen: SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), addr.port()),
            dialable: Some(*addr),
            peers: peers.clone(),
            bootstrappers: bootstrappers.clone(),
            public: a.public,
            datadir: format!("data/v{i}").into(),
            rpc: a.rpc,
        };
        let path = a.dir.join(format!("v{i}.config.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&cfg)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "wrote {} validator configs (DIR/vI.config.json); on host i run: fixpoint node --validator --config vI.config.json",
        a.validators
    );
    Ok(())
}
