//! `fixpoint model`: register, cancel, inspect, call, import, run locally, generate with, and
//! write Solidity bindings for models, against a node's JSON-RPC or a model file.

use std::path::{Path, PathBuf};

use alloy_primitives::{B256, Bytes, I256, keccak256};
use alloy_sol_types::{SolCall, SolValue};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use fixpoint_ml::{Engine, Limits};
use fixpoint_node::client::{Client, ClientError, parse_key};
use fixpoint_node::meta::{Meta, ModelView, quantize_decimal};
use fixpoint_node::trace::InferenceTrace;
use fixpoint_precompiles::abi::IInference as I;
use fixpoint_precompiles::abi::IModelRegistry as R;
use fixpoint_precompiles::{INFERENCE_ADDRESS, REGISTRY_ADDRESS};

/// Which node to talk to.
#[derive(clap::Args)]
pub(crate) struct Rpc {
    /// The node's JSON-RPC URL.
    #[arg(long, env = "ETH_RPC_URL", default_value = "http://127.0.0.1:8545")]
    rpc_url: String,
}

/// `fixpoint model` subcommands.
#[derive(Subcommand)]
pub(crate) enum ModelCmd {
    /// Verify a model file locally and register it (in chunks when large).
    Register {
        /// The model file (.fxp, docs/model-format.md).
        file: PathBuf,
        #[command(flatten)]
        rpc: Rpc,
        /// Key of the sending account (hex).
        #[arg(long, env = "ETH_PRIVATE_KEY")]
        private_key: String,
        /// Largest chunk per transaction, bytes; larger models are uploaded in chunks.
        #[arg(long, default_value_t = 96 * 1024)]
        chunk_size: usize,
    },
    /// Cancel your unfinished chunked upload of a model (e.g. one interrupted for good).
    Cancel {
        /// Model id (0x + 64 hex).
        id: B256,
        #[command(flatten)]
        rpc: Rpc,
        /// Key of the account that began the upload (hex).
        #[arg(long, env = "ETH_PRIVATE_KEY")]
        private_key: String,
    },
    /// What the chain records about a model: owner, size, cost, inputs and outputs.
    Info {
        /// Model id (0x + 64 hex).
        id: B256,
        #[command(flatten)]
        rpc: Rpc,
    },
    /// Run a model with eth_call: INPUT is packed bytes as 0x-hex, or integers separated by
    /// commas (one per element); or --csv-row with real features (quantized with the model's
    /// input scales, docs/import.md).
    Call {
        /// Model id.
        id: B256,
        /// Input (packed 0x-hex or integers); omit with --csv-row.
        #[arg(required_unless_present = "csv_row", allow_hyphen_values = true)]
        input: Option<String>,
        /// Real features separated by commas, e.g. 5.1,3.5,1.4,0.2.
        #[arg(long, allow_hyphen_values = true, conflicts_with = "input")]
        csv_row: Option<String>,
        /// The model's sidecar (model.fxp.json from `import`) for class names and image layout.
        #[arg(long)]
        meta: Option<PathBuf>,
        #[command(flatten)]
        rpc: Rpc,
    },
    /// Trace a model run op by op (fixpoint_traceInference, docs/rpc.md §Traces): each op's
    /// output shape, dtype, output hash, counted work and gas. Either a model id and a packed
    /// 0x-hex INPUT (run as registered at --block), or --tx HASH (a recorded call, replayed).
    Trace {
        /// Model id (omit with --tx).
        #[arg(required_unless_present = "tx")]
        id: Option<B256>,
        /// Packed input, 0x-hex (omit with --tx).
        #[arg(required_unless_present = "tx")]
        input: Option<String>,
        /// Trace a recorded call of this transaction instead.
        #[arg(long, conflicts_with_all = ["id", "input"])]
        tx: Option<B256>,
        /// Which inference call of the transaction (from 0).
        #[arg(long, default_value_t = 0, requires = "tx")]
        call: u32,
        /// Block tag or number the model must be registered at.
        #[arg(long, default_value = "latest", conflicts_with = "tx")]
        block: String,
        /// Print the JSON trace with every op's values instead of the table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        rpc: Rpc,
    },
    /// Import an ONNX model: map its ops, calibrate, write the canonical model (.fxp) and its
    /// sidecar (.fxp.json), and print the op mapping, accuracy, cost, gas and model id.
    Import {
        /// The ONNX file.
        model: PathBuf,
        /// Calibration rows: CSV (header optional) or .npy.
        #[arg(long)]
        calibration: PathBuf,
        /// Evaluation rows for the float vs integer report (CSV or .npy).
        #[arg(long)]
        eval: Option<PathBuf>,
        /// The target column, by header name or 0-based index (in both files).
        #[arg(long)]
        target: Option<String>,
        /// Treat the model as a regressor (detected from the graph otherwise).
        #[arg(long)]
        regression: bool,
        /// Where to write the model; the sidecar goes beside it as <out>.json.
        #[arg(long)]
        out: PathBuf,
        /// Name for generated code (default: the output file's or the ONNX folder's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Run a model file locally with the same engine as the chain (no node needed).
    Run {
        /// The model file (.fxp).
        file: PathBuf,
        /// Input: packed 0x-hex or integers (one per element); omit with --csv-row.
        #[arg(required_unless_present = "csv_row", allow_hyphen_values = true)]
        input: Option<String>,
        /// Real features separated by commas (quantized as `call --csv-row` does).
        #[arg(long, allow_hyphen_values = true, conflicts_with = "input")]
        csv_row: Option<String>,
    },
    /// Generate text with a causal byte-level model (docs/model-format.md §9): from a model
    /// file, locally with the chain's engine; or a registered model id, by eth_call of the
    /// inference precompile's `generate` (with --private-key, as a transaction).
    Generate {
        /// A model file, or a model id (then run by the node).
        model: String,
        /// The prompt; its bytes are the first tokens.
        prompt: String,
        /// New tokens (bytes) to generate.
        #[arg(long, default_value_t = 32)]
        tokens: u32,
        /// Send a transaction instead of eth_call (the text is then recorded on chain).
        #[arg(long, env = "ETH_PRIVATE_KEY")]
        private_key: Option<String>,
        #[command(flatten)]
        rpc: Rpc,
    },
    /// Write typed Solidity bindings (a library) for a model: from a file (.fxp, with its
    /// sidecar if present) or a registered model id.
    Solidity {
        /// A model file, or a model id (then read from the chain).
        model: String,
        /// Library name (default: the sidecar's name, or Model_<id prefix>).
        #[arg(long)]
        name: Option<String>,
        /// The model's sidecar, when giving an id.
        #[arg(long)]
        meta: Option<PathBuf>,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        rpc: Rpc,
    },
}

/// Runs a `fixpoint model` subcommand.
pub(crate) async fn model(cmd: ModelCmd) -> Result<()> {
    match cmd {
        ModelCmd::Register { file, rpc, private_key, chunk_size } => {
            register(&file, &rpc.rpc_url, &private_key, chunk_size).await
        }
        ModelCmd::Cancel { id, rpc, private_key } => {
            let client = Client::new(&rpc.rpc_url)?;
            let sent = client
                .send(
                    &parse_key(&private_key)?,
                    REGISTRY_ADDRESS,
                    R::cancelUploadCall { modelId: id }.abi_encode().into(),
                )
                .await?;
            eprintln!("upload of {id} cancelled in block {} (tx {})", sent.block, sent.hash);
            Ok(())
        }
        ModelCmd::Info { id, rpc } => info(id, &rpc.rpc_url).await,
        ModelCmd::Call { id, input, csv_row, meta, rpc } => match csv_row {
            Some(row) => call_csv(id, &row, meta.as_deref(), &rpc.rpc_url).await,
            None => call(id, input.as_deref().unwrap_or_default(), &rpc.rpc_url).await,
        },
        ModelCmd::Import { model, calibration, eval, target, regression, out, name } => {
            let args = fixpoint_node::import::ImportArgs {
                model,
                calibration,
                eval,
                target,
                regression,
                out,
                name,
                progress: true,
            };
            // The import is CPU work (float reference, calibration): keep it off the runtime.
            tokio::task::spawn_blocking(move || fixpoint_node::import::import(&args)).await??;
            Ok(())
        }
        ModelCmd::Trace { id, input, tx, call, block, json, rpc } => {
            let target = match (tx, id, input) {
                (Some(tx), _, _) => serde_json::json!({ "tx": tx, "call": call }),
                (None, Some(id), Some(input)) => {
                    let hex = input.trim().strip_prefix("0x").context("INPUT: packed bytes as 0x-hex")?;
                    hex::decode(hex).context("INPUT: bad hex")?;
                    let block = match block.parse::<u64>() {
                        Ok(n) => serde_json::json!(format!("{n:#x}")),
                        Err(_) => serde_json::json!(block),
                    };
                    serde_json::json!({ "model": id, "input": input.trim(), "block": block })
                }
                _ => anyhow::bail!("give a model id and INPUT, or --tx HASH"),
            };
            trace(target, json, &rpc.rpc_url).await
        }
        ModelCmd::Run { file, input, csv_row } => run_local(&file, input.as_deref(), csv_row.as_deref()),
        ModelCmd::Generate { model, prompt, tokens, private_key, rpc } => {
            generate(&model, &prompt, tokens, private_key.as_deref(), &rpc.rpc_url).await
        }
        ModelCmd::Solidity { model, name, meta, out, rpc } => {
            solidity(&model, name.as_deref(), meta.as_deref(), out.as_deref(), &rpc.rpc_url).await
        }
    }
}

async fn register(file: &Path, url: &str, key: &str, chunk_size: usize) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    // Verify locally first: a model the chain would reject costs nothing to find out here.
    let engine = Engine::load(&bytes, &Limits::default())
        .map_err(|e| anyhow::anyhow!("{} is not a valid model: {e}", file.display()))?;
    let id = keccak256(&bytes);
    let key = parse_key(key)?;
    let client = Client::new(url)?;
    let exists = client.call(REGISTRY_ADDRESS, &R::existsCall { modelId: id }.abi_encode()).await?;
    if bool::abi_decode(&exists).unwrap_or(false) {
        println!("model {id} is already registered");
        return Ok(());
    }
    let cost = engine.cost();
    eprintln!("model {id}: {} bytes, {} MACs per inference", bytes.len(), cost.macs);
    // An upload has at most MAX_UPLOAD_CHUNKS chunks (docs/gas.md): larger chunks if need be.
    let max_chunks = fixpoint_precompiles::gas::MAX_UPLOAD_CHUNKS as usize;
    let chunk_size = chunk_size.max(1).max(bytes.len().div_ceil(max_chunks));
    if bytes.len() > chunk_size && bytes.len() as u64 > fixpoint_precompiles::gas::MAX_UPLOAD_BYTES {
        bail!(
            "{} is {} bytes: a chunked upload may have at most {} bytes (docs/gas.md)",
            file.display(),
            bytes.len(),
            fixpoint_precompiles::gas::MAX_UPLOAD_BYTES
        );
    }
    if bytes.len() <= chunk_size {
        let sent =
            client.send(&key, REGISTRY_ADDRESS, R::registerCall { model: bytes.into() }.abi_encode().into()).await?;
        eprintln!("registered in block {} (tx {}, {} gas)", sent.block, sent.hash, sent.gas_used);
    } else {
        let size = bytes.len() as u64;
        let begin = R::beginUploadCall { modelId: id, size };
        client.send(&key, REGISTRY_ADDRESS, begin.abi_encode().into()).await?;
        let chunks = bytes.len().div_ceil(chunk_size);
        for (i, chunk) in bytes.chunks(chunk_size).enumerate() {
            let put =
                R::putChunkCall { modelId: id, offset: (i * chunk_size) as u64, chunk: Bytes::copy_from_slice(chunk) };
            client.send(&key, REGISTRY_ADDRESS, put.abi_encode().into()).await?;
            eprintln!(
                "  chunk {}/{chunks} ({} of {} bytes)",
                i + 1,
                ((i + 1) * chunk_size).min(bytes.len()),
                bytes.len()
            );
        }
        let sent =
            client.send(&key, REGISTRY_ADDRESS, R::finalizeUploadCall { modelId: id }.abi_encode().into()).await?;
        eprintln!("registered in block {} (tx {}, {chunks} chunks)", sent.block, sent.hash);
    }
    println!("{id}");
    Ok(())
}

fn dtype_name(code: u8) -> &'static str {
    ["int8", "uint8", "int16", "int32", "int64"].get(usize::from(code)).copied().unwrap_or("?")
}

fn dtype_width(code: u8) -> usize {
    [1, 1, 2, 4, 8].get(usize::from(code)).copied().unwrap_or(1)
}

async fn model_io(client: &Client, id: B256) -> Result<R::modelIOReturn> {
    let io = client
        .call(REGISTRY_ADDRESS, &R::modelIOCall { modelId: id }.abi_encode())
        .await
        .map_err(not_registered(id))?;
    Ok(R::modelIOCall::abi_decode_returns(&io)?)
}

fn not_registered(id: B256) -> impl Fn(ClientError) -> anyhow::Error {
    move |e| match e {
        ClientError::Reverted(r) if r.starts_with("UnknownModel") => {
            anyhow::anyhow!("model {id} is not registered on this chain")
        }
        e => e.into(),
    }
}

async fn info(id: B256, url: &str) -> Result<()> {
    let client = Client::new(url)?;
    let raw = client
        .call(REGISTRY_ADDRESS, &R::modelInfoCall { modelId: id }.abi_encode())
        .await
        .map_err(not_registered(id))?;
    let m = R::modelInfoCall::abi_decode_returns(&raw)?;
    let io = model_io(&client, id).await?;
    println!("model        {id}");
    println!("owner        {}", m.owner);
    println!("size         {} bytes", m.size);
    println!("registered   block {}", m.registeredAt);
    println!(
        "cost         {} MACs, {} element ops, {} bytes read, {} bytes peak activations",
        m.macs, m.elemOps, m.bytesRead, m.peakActivationBytes
    );
    println!("warm gas     {} per inference, input and output words included (docs/gas.md)", m.warmGas);
    let desc = |t: &R::TensorDesc| {
        let shape: Vec<String> = t.shape.iter().map(u32::to_string).collect();
        let scale = if t.multiplier == 0 {
            String::new()
        } else {
            // Display only: the chain never sees this float.
            let scale = f64::from(t.multiplier) / 2f64.powi(i32::from(t.shift));
            format!(", scale {scale:.6e}, zero point {}", t.zeroPoint)
        };
        format!("{}[{}]{scale}", dtype_name(t.dtype), shape.join("x"))
    };
    for (i, t) in io.inputs.iter().enumerate() {
        println!("input {i}      {}", desc(t));
    }
    for (i, t) in io.outputs.iter().enumerate() {
        println!("output {i}     {}", desc(t));
    }
    Ok(())
}

async fn call(id: B256, input: &str, url: &str) -> Result<()> {
    let client = Client::new(url)?;
    let io = model_io(&client, id).await?;
    if let Some(hex) = input.trim().strip_prefix("0x") {
        let packed = hex::decode(hex).context("INPUT: bad hex")?;
        let out =
            client.call(INFERENCE_ADDRESS, &I::inferCall { modelId: id, input: packed.into() }.abi_encode()).await?;
        let out = I::inferCall::abi_decode_returns(&out)?;
        // Unpack each output by its dtype (little-endian, docs/model-format.md §8).
        let mut at = 0usize;
        for (i, t) in io.outputs.iter().enumerate() {
            let n: usize = t.shape.iter().map(|d| *d as usize).product();
            let w = dtype_width(t.dtype);
            let vals: Vec<String> = (0..n)
                .filter_map(|k| out.get(at + k * w..at + (k + 1) * w))
                .map(|b| {
                    let mut buf = [if t.dtype != 1 && b.last().is_some_and(|x| x & 0x80 != 0) { 0xff } else { 0 }; 8];
                    buf[..w].copy_from_slice(b);
                    i64::from_le_bytes(buf).to_string()
                })
                .collect();
            at += n * w;
            println!("output {i}: [{}]", vals.join(", "));
        }
        println!("packed:   {out}");
    } else {
        let ints = input
            .split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(|s| s.trim().parse::<i64>().map(I256::try_from).map_err(|e| anyhow::anyhow!("INPUT: `{s}`: {e}")))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let out = client.call(INFERENCE_ADDRESS, &I::inferIntsCall { modelId: id, input: ints }.abi_encode()).await?;
        let out = I::inferIntsCall::abi_decode_returns(&out)?;
        let vals: Vec<String> = out.iter().map(I256::to_string).collect();
        println!("output: [{}]", vals.join(", "));
    }
    Ok(())
}

async fn trace(target: serde_json::Value, json: bool, url: &str) -> Result<()> {
    let client = Client::new(url)?;
    let options = serde_json::json!({ "full": json });
    let t: InferenceTrace = client.request("fixpoint_traceInference", vec![target, options]).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&t)?);
        return Ok(());
    }
    println!("model  {}", t.model_id);
    println!("input  {} ({} bytes)", t.input_hash, t.input.len());
    println!(
        "{:>4}  {:<16} {:<14} {:<5} {:<20} {:>12} {:>10} {:>10}",
        "op", "name", "shape", "dtype", "output hash", "macs", "elem ops", "gas"
    );
    for o in &t.ops {
        let shape: Vec<String> = o.shape.iter().map(usize::to_string).collect();
        let h = o.output_hash.to_string();
        let short = format!("{}…{}", &h[..10], &h[h.len() - 8..]);
        println!(
            "{:>4}  {:<16} {:<14} {:<5} {:<20} {:>12} {:>10} {:>10}",
            o.index,
            o.op,
            shape.join("x"),
            o.dtype,
            short,
            o.work.macs,
            o.work.elem_ops,
            o.gas
        );
    }
    if let Some(last) = t.ops.last().and_then(|o| o.values.as_ref()) {
        let v: Vec<String> = last.iter().map(i64::to_string).collect();
        println!("last op's values: [{}]", v.join(", "));
    }
    println!("output {} ({} bytes)", t.output_hash, t.output.len());
    if let Some(r) = &t.record {
        let verdict = if r.recorded_output_hash == t.output_hash { "matches" } else { "DIFFERS FROM" };
        println!(
            "the run {verdict} the record of call {} of {} (block {}, {} gas)",
            r.call_index, r.tx_hash, r.block_number, r.gas_used
        );
    }
    Ok(())
}

/// Prints decoded outputs: the label (and its name) for a classifier, every output otherwise.
fn print_outputs(view: &ModelView, meta: Option<&Meta>, outs: &[Vec<i64>]) {
    if view.is_classifier()
        && let Some(&label) = outs.first().and_then(|o| o.first())
    {
        let name = usize::try_from(label).ok().and_then(|l| meta.and_then(|m| m.label(l)));
        match name {
            Some(n) => println!("label: {label} ({n})"),
            None => println!("label: {label}"),
        }
    }
    for (i, (o, t)) in outs.iter().zip(&view.outputs).enumerate() {
        let ints: Vec<String> = o.iter().map(i64::to_string).collect();
        match t.scale() {
            // Display only: the chain never sees these floats.
            Some(s) => {
                let reals: Vec<String> =
                    o.iter().map(|&v| format!("{:.4}", (v - i64::from(t.zero_point)) as f64 * s)).collect();
                println!("output {i}: [{}] (real ≈ [{}])", ints.join(", "), reals.join(", "));
            }
            None => println!("output {i}: [{}]", ints.join(", ")),
        }
    }
}

/// A registered model's inputs, outputs and record, read from the chain.
async fn chain_view(client: &Client, id: B256) -> Result<ModelView> {
    let io = model_io(client, id).await?;
    let raw = client
        .call(REGISTRY_ADDRESS, &R::modelInfoCall { modelId: id }.abi_encode())
        .await
        .map_err(not_registered(id))?;
    let info = R::modelInfoCall::abi_decode_returns(&raw)?;
    Ok(ModelView::from_chain(id, &info, &io))
}

async fn call_csv(id: B256, row: &str, meta: Option<&Path>, url: &str) -> Result<()> {
    let client = Client::new(url)?;
    let view = chain_view(&client, id).await?;
    let meta = meta.map(|p| Meta::load(p, id)).transpose()?;
    let (ints, packed) = quantize_decimal(&view, row, meta.as_ref().and_then(|m| m.chw))?;
    let ints: Vec<String> = ints.iter().map(i64::to_string).collect();
    println!("input: [{}]", ints.join(", "));
    let out = client.call(INFERENCE_ADDRESS, &I::inferCall { modelId: id, input: packed.into() }.abi_encode()).await?;
    let out = I::inferCall::abi_decode_returns(&out)?;
    print_outputs(&view, meta.as_ref(), &view.unpack_outputs(&out)?);
    Ok(())
}

/// Text for a terminal: printable ASCII and newlines as they are, other bytes escaped.
fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|&b| {
            if b == b'\n' || (0x20..0x7f).contains(&b) {
                vec![b as char]
            } else {
                format!("\\x{b:02x}").chars().collect()
            }
        })
        .collect()
}

async fn generate(model: &str, prompt: &str, tokens: u32, key: Option<&str>, url: &str) -> Result<()> {
    let path = Path::new(model);
    if path.exists() {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let engine = Engine::load(&bytes, &Limits::default())
            .map_err(|e| anyhow::anyhow!("{} is not a valid model: {e}", path.display()))?;
        let plan = engine.plan().map_err(|e| anyhow::anyhow!("{} cannot generate: {e}", path.display()))?;
        let steps = plan.steps(prompt.len(), tokens as usize)?;
        let step =
            fixpoint_precompiles::gas::step_gas(plan, engine.model().nodes.len() as u64, engine.cost().weight_bytes);
        let gas = fixpoint_precompiles::gas::REJECT
            + fixpoint_precompiles::gas::generate_gas(plan, step, steps as u64, prompt.len() as u64, u64::from(tokens));
        let ids: Vec<u32> = prompt.bytes().map(u32::from).collect();
        let started = std::time::Instant::now();
        let text = engine.generate(&ids, tokens as usize, &fixpoint_ml::Counter::new())?;
        let took = started.elapsed();
        let text: Vec<u8> = text.into_iter().map(|t| u8::try_from(t).unwrap_or(b'?')).collect();
        println!("{}{}", printable(prompt.as_bytes()), printable(&text));
        eprintln!(
            "{tokens} tokens, {steps} positions in {:.1} ms on the {:?} path; on chain: {gas} gas ({step} per position, warm), model {}",
            took.as_secs_f64() * 1e3,
            engine.path(),
            B256::from(engine.id())
        );
        return Ok(());
    }
    let id: B256 = model.parse().map_err(|_| anyhow::anyhow!("MODEL: {model} is neither a file nor a model id"))?;
    let client = Client::new(url)?;
    let data =
        I::generateCall { modelId: id, prompt: prompt.as_bytes().to_vec().into(), maxTokens: tokens }.abi_encode();
    let text = match key {
        None => I::generateCall::abi_decode_returns(&client.call(INFERENCE_ADDRESS, &data).await?)?.to_vec(),
        Some(key) => {
            let sent = client.send(&parse_key(key)?, INFERENCE_ADDRESS, data.clone().into()).await?;
            eprintln!("generated in block {} (tx {}, {} gas)", sent.block, sent.hash, sent.gas_used);
            // A receipt carries no output; generation is a pure function of the model and the
            // prompt, so the same call answers the same text.
            I::generateCall::abi_decode_returns(&client.call(INFERENCE_ADDRESS, &data).await?)?.to_vec()
        }
    };
    println!("{}{}", printable(prompt.as_bytes()), printable(&text));
    Ok(())
}

fn run_local(file: &Path, input: Option<&str>, csv_row: Option<&str>) -> Result<()> {
    let (bytes, view, meta) = fixpoint_node::meta::load_file(file)?;
    let engine = Engine::load(&bytes, &Limits::default())?;
    let packed = match (csv_row, input) {
        (Some(row), _) => {
            let (ints, packed) = quantize_decimal(&view, row, meta.as_ref().and_then(|m| m.chw))?;
            let ints: Vec<String> = ints.iter().map(i64::to_string).collect();
            println!("input: [{}]", ints.join(", "));
            packed
        }
        (None, Some(i)) if i.trim().starts_with("0x") => {
            hex::decode(i.trim().trim_start_matches("0x")).context("INPUT: bad hex")?
        }
        (None, Some(i)) => {
            let vals = i
                .split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(|s| s.trim().parse::<i64>().map_err(|e| anyhow::anyhow!("INPUT: `{s}`: {e}")))
                .collect::<Result<Vec<_>>>()?;
            if vals.len() != view.features() {
                bail!("INPUT has {} integers, the model takes {}", vals.len(), view.features());
            }
            let mut packed = Vec::new();
            for (v, t) in vals.iter().zip(view.feature_tensors()) {
                let (lo, hi) = t.range();
                if !(lo..=hi).contains(&i128::from(*v)) {
                    bail!("INPUT: {v} does not fit {}", t.dtype_name());
                }
                packed.extend_from_slice(&v.to_le_bytes()[..t.width()]);
            }
            packed
        }
        (None, None) => bail!("give INPUT or --csv-row"),
    };
    let out = engine.run_packed(&packed).map_err(|e| anyhow::anyhow!("the model refused the input: {e}"))?;
    print_outputs(&view, meta.as_ref(), &view.unpack_outputs(&out)?);
    Ok(())
}

async fn solidity(model: &str, name: Option<&str>, meta: Option<&Path>, out: Option<&Path>, url: &str) -> Result<()> {
    let path = Path::new(model);
    let (view, meta) = match model.parse::<B256>() {
        Ok(id) if !path.exists() => {
            let client = Client::new(url)?;
            (chain_view(&client, id).await?, meta.map(|p| Meta::load(p, id)).transpose()?)
        }
        _ => {
            if !path.exists() {
                bail!("{model} is neither a model file nor a model id (0x + 64 hex)");
            }
            let (_, view, side) = fixpoint_node::meta::load_file(path)?;
            let meta = match meta {
                Some(p) => Some(Meta::load(p, view.id)?),
                None => side,
            };
            (view, meta)
        }
    };
    let fallback = format!("Model_{}", hex::encode(&view.id[..4]));
    let name = name.map(str::to_string).or_else(|| meta.as_ref().map(|m| m.name.clone())).unwrap_or(fallback);
    let src = fixpoint_node::solidity::generate(&view, meta.as_ref(), &name);
    match out {
        Some(p) => std::fs::write(p, src).with_context(|| format!("writing {}", p.display()))?,
        None => print!("{src}"),
    }
    Ok(())
}
