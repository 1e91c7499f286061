//! `fixpoint-model`: train, quantize, inspect, run and verify canonical fixpoint models.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use fixpoint_ml::format::{Model, Quant};
use fixpoint_ml::{DType, Engine, Limits, Tensor, TensorData, io, model_id};
use fixpoint_quantize::gpt;
use fixpoint_quantize::multiplier::scale_of;
use fixpoint_quantize::task::evaluate;
use fixpoint_quantize::{FloatModel, Task};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(name = "fixpoint-model", version, about = "Train, quantize, inspect, run and verify fixpoint integer models")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train a task's float model on its training split and save it as safetensors.
    Train {
        /// digits-mlp, digits-cnn or cancer-gbdt.
        #[arg(long)]
        task: String,
        /// Where to write the weights.
        #[arg(long)]
        out: PathBuf,
        /// Epochs (networks) or trees (ensemble); the task's default if omitted.
        #[arg(long)]
        rounds: Option<usize>,
        /// Seed for initialisation and batch order.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Quantize float weights into a canonical integer model (calibrated on the training split).
    Quantize {
        /// Safetensors weights written by `train`.
        #[arg(long)]
        weights: PathBuf,
        /// The task; read from the weights' metadata if omitted.
        #[arg(long)]
        task: Option<String>,
        /// Where to write the model.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a model's id, inputs, outputs, ops with shapes, and cost.
    Inspect {
        /// The model file.
        model: PathBuf,
    },
    /// Run a model on one input and print its outputs.
    Run {
        /// The model file.
        model: PathBuf,
        /// Comma-separated integers filling the inputs in order.
        #[arg(long, conflicts_with = "hex")]
        input: Option<String>,
        /// The packed little-endian input bytes, hex-encoded.
        #[arg(long)]
        hex: Option<String>,
    },
    /// Check a model file; exits non-zero and says why if it would be rejected.
    Verify {
        /// The model file.
        model: PathBuf,
    },
    /// Float vs integer accuracy on the task's test split.
    Eval {
        /// The integer model.
        #[arg(long)]
        model: PathBuf,
        /// The float weights it came from.
        #[arg(long)]
        weights: PathBuf,
        /// The task; read from the weights' metadata if omitted.
        #[arg(long)]
        task: Option<String>,
    },
    /// Train, quantize and evaluate every example task, then classify a few test digits.
    Demo {
        /// Where to write weights and models.
        #[arg(long, default_value = "artifacts")]
        out_dir: PathBuf,
    },
    /// The tiny byte-level GPT (issue 15): train, quantize, evaluate.
    Gpt {
        /// What to do.
        #[command(subcommand)]
        cmd: GptCmd,
    },
    /// Write conformance vectors for the example models (tests/vectors/models).
    Vectors {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Test rows per model.
        #[arg(long, default_value_t = 8)]
        cases: usize,
    },
}

#[derive(Subcommand)]
enum GptCmd {
    /// Train the float GPT on the corpus's training slice (one thread) and save it as safetensors.
    Train {
        /// Where to write the weights.
        #[arg(long, default_value = "quantize/data/tiny-gpt-base.safetensors")]
        out: PathBuf,
        /// Optimizer steps.
        #[arg(long, default_value_t = gpt::train::Settings::default().steps)]
        steps: usize,
        /// Windows per step.
        #[arg(long, default_value_t = gpt::train::Settings::default().batch)]
        batch: usize,
        /// Peak learning rate.
        #[arg(long, default_value_t = gpt::train::Settings::default().lr)]
        lr: f64,
        /// Seed for initialisation and window sampling.
        #[arg(long, default_value_t = gpt::train::Settings::default().seed)]
        seed: u64,
    },
    /// Quantization-aware fine-tuning of trained weights (activations on their calibrated i8
    /// grids in the forward pass, straight-through gradients), written as a new float model.
    Finetune {
        /// The float weights to start from.
        #[arg(long, default_value = "quantize/data/tiny-gpt-base.safetensors")]
        weights: PathBuf,
        /// Where to write the fine-tuned weights.
        #[arg(long, default_value = "quantize/data/tiny-gpt.safetensors")]
        out: PathBuf,
        /// Optimizer steps.
        #[arg(long, default_value_t = 300)]
        steps: usize,
        /// Peak learning rate.
        #[arg(long, default_value_t = 3e-4)]
        lr: f64,
        /// Seed for window sampling.
        #[arg(long, default_value_t = 2)]
        seed: u64,
    },
    /// Calibrate on the calibration slice and write the canonical integer model.
    Quantize {
        /// The float weights.
        #[arg(long, default_value = "quantize/data/tiny-gpt.safetensors")]
        weights: PathBuf,
        /// Where to write the model.
        #[arg(long, default_value = "node/assets/tiny-gpt.fxp")]
        out: PathBuf,
        /// Calibration windows.
        #[arg(long, default_value_t = gpt::calibrate::Settings::default().windows)]
        windows: usize,
        /// Percentile of |activation| kept (100 = max-abs / min-max).
        #[arg(long, default_value_t = gpt::calibrate::Settings::default().percentile)]
        percentile: f64,
        /// How far below the smallest row maximum the attention scores' range starts (0 = the
        /// smallest score).
        #[arg(long, default_value_t = gpt::calibrate::Settings::default().score_margin)]
        score_margin: f64,
        /// Shrink each range to the least-squares one (see gpt::calibrate::Settings::mse);
        /// `--mse false` keeps min/max (or the percentile).
        #[arg(long, default_value_t = gpt::calibrate::Settings::default().mse, action = clap::ArgAction::Set)]
        mse: bool,
        /// Also report, on calibration text after the calibration windows, how much agreement
        /// each kind of activation grid costs on its own (float weights).
        #[arg(long)]
        ablate: bool,
    },
    /// Float vs integer on held-out windows: agreement, perplexity, accuracy, cost and gas.
    Eval {
        /// The float weights.
        #[arg(long, default_value = "quantize/data/tiny-gpt.safetensors")]
        weights: PathBuf,
        /// The integer model.
        #[arg(long, default_value = "node/assets/tiny-gpt.fxp")]
        model: PathBuf,
        /// At most this many non-overlapping windows (context + 1 bytes) to evaluate; the
        /// default covers the whole slice.
        #[arg(long, default_value_t = 10_000)]
        windows: usize,
        /// Evaluate on the calibration slice after its calibration windows instead (for choosing
        /// calibration settings without looking at the held-out text).
        #[arg(long)]
        on_calibration: bool,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Train { task, out, rounds, seed } => {
            let task = Task::from_name(&task)?;
            train(task, &out, rounds, seed)?;
            Ok(())
        }
        Cmd::Quantize { weights, task, out } => {
            let task = task.as_deref().map(Task::from_name).transpose()?;
            let (task, float) =
                FloatModel::load(&weights, task).with_context(|| format!("loading {}", weights.display()))?;
            let model = quantize(task, &float)?;
            write_model(&out, &model)?;
            Ok(())
        }
        Cmd::Inspect { model } => inspect(&model),
        Cmd::Run { model, input, hex } => run_model(&model, input.as_deref(), hex.as_deref()),
        Cmd::Verify { model } => {
            let (engine, bytes) = load(&model)?;
            let c = engine.cost();
            println!("OK {}: id 0x{}", model.display(), hex::encode(model_id(&bytes)));
            println!(
                "  {} ops, {} MACs, {} element ops, {} bytes read",
                engine.model().nodes.len(),
                c.macs,
                c.elem_ops,
                c.bytes_read
            );
            Ok(())
        }
        Cmd::Eval { model, weights, task } => {
            let task = task.as_deref().map(Task::from_name).transpose()?;
            let (task, float) = FloatModel::load(&weights, task)?;
            let (engine, _) = load(&model)?;
            let (_, test) = task.split()?;
            println!("{}: {}", task.name(), evaluate(task, &float, &engine, &test)?);
            Ok(())
        }
        Cmd::Demo { out_dir } => demo(&out_dir),
        Cmd::Vectors { out, cases } => vectors(&out, cases),
        Cmd::Gpt { cmd } => gpt_cmd(cmd),
    }
}

fn bar(len: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {elapsed}") {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

fn train(task: Task, out: &Path, rounds: Option<usize>, seed: u64) -> Result<FloatModel> {
    let (train, test) = task.split()?;
    let rounds = rounds.unwrap_or_else(|| task.default_rounds());
    let pb = bar(rounds, "training");
    let model = task.train(&train, rounds, seed, |_, loss| {
        if let Some(l) = loss {
            pb.set_message(format!("loss {l:.4}"));
        }
        pb.inc(1);
    })?;
    pb.finish_and_clear();
    let pred = model.predict(&test)?;
    let correct = pred.iter().zip(&test.labels).filter(|(a, b)| a == b).count();
    model.save(out, task).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{}: trained on {} rows; float test accuracy {:.2}% ({correct}/{}); wrote {}",
        task.name(),
        train.len(),
        100.0 * correct as f64 / test.len().max(1) as f64,
        test.len(),
        out.display()
    );
    Ok(model)
}

fn quantize(task: Task, float: &FloatModel) -> Result<Model> {
    let (train, _) = task.split()?;
    let pb = bar(train.len(), "calibrating");
    let model = float.quantize(&train, |done| pb.set_position(done as u64))?;
    pb.finish_and_clear();
    Ok(model)
}

fn write_model(out: &Path, model: &Model) -> Result<()> {
    let bytes = model.to_bytes();
    std::fs::write(out, &bytes).with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {} ({} bytes, id 0x{})", out.display(), bytes.len(), hex::encode(model_id(&bytes)));
    Ok(())
}

fn load(path: &Path) -> Result<(Engine, Vec<u8>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let engine = Engine::load(&bytes, &Limits::default()).with_context(|| format!("{} is rejected", path.display()))?;
    Ok((engine, bytes))
}

fn quant_str(q: &Quant) -> String {
    if q.multiplier == 0 {
        "no scale".into()
    } else {
        format!("scale {:.6e} ({}·2^-{}), zero point {}", scale_of(q), q.multiplier, q.shift, q.zero_point)
    }
}

fn inspect(path: &Path) -> Result<()> {
    let (engine, bytes) = load(path)?;
    let m = engine.model();
    let v = engine.verified();
    println!("model {}", path.display());
    println!("  id      0x{}", hex::encode(model_id(&bytes)));
    println!("  size    {} bytes, {} tensors", bytes.len(), m.tensors.len());
    for (i, inp) in m.inputs.iter().enumerate() {
        println!("  input  #{i}: {} {:?}, {}", inp.dtype.name(), inp.shape, quant_str(&inp.quant));
    }
    println!("  ops:");
    for (i, (node, cost)) in m.nodes.iter().zip(v.op_costs()).enumerate() {
        let value = m.inputs.len() + i;
        let out = v.values().get(value).map(|vi| format!("{} {:?}", vi.dtype.name(), vi.shape)).unwrap_or_default();
        println!("    %{value:<3} = {:<15} {:?} -> {out:<18} {} MACs", node.op.name(), node.inputs, cost.macs);
    }
    for (i, o) in m.outputs.iter().enumerate() {
        let info = v
            .values()
            .get(o.value as usize)
            .map(|vi| format!("{} {:?}", vi.dtype.name(), vi.shape))
            .unwrap_or_default();
        println!("  output #{i}: %{} {info}, {}", o.value, quant_str(&o.quant));
    }
    let c = engine.cost();
    println!(
        "  cost    {} MACs, {} element ops, {} weight bytes, {} bytes read, peak activations {} bytes",
        c.macs, c.elem_ops, c.weight_bytes, c.bytes_read, c.peak_activation_bytes
    );
    Ok(())
}

/// Parses comma-separated integers into the model's inputs, in order.
fn parse_values(model: &Model, text: &str) -> Result<Vec<Tensor>> {
    let vals: Vec<i64> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<i64>().map_err(|_| anyhow!("{s:?} is not an integer")))
        .collect::<Result<_>>()?;
    let want: usize = model.inputs.iter().map(|i| i.shape.iter().product::<usize>()).sum();
    if vals.len() != want {
        bail!("the model takes {want} input values, got {}", vals.len());
    }
    let mut it = vals.into_iter();
    let mut out = Vec::new();
    for (k, inp) in model.inputs.iter().enumerate() {
        let n: usize = inp.shape.iter().product();
        let chunk: Vec<i64> = it.by_ref().take(n).collect();
        let range = |lo: i64, hi: i64| -> Result<()> {
            match chunk.iter().find(|v| !(lo..=hi).contains(v)) {
                Some(v) => bail!("input #{k} is {}: value {v} is out of range", inp.dtype.name()),
                None => Ok(()),
            }
        };
        let data = match inp.dtype {
            DType::I8 => range(-128, 127).map(|_| TensorData::I8(chunk.iter().map(|&v| v as i8).collect()))?,
            DType::U8 => range(0, 255).map(|_| TensorData::U8(chunk.iter().map(|&v| v as u8).collect()))?,
            DType::I16 => range(-32768, 32767).map(|_| TensorData::I16(chunk.iter().map(|&v| v as i16).collect()))?,
            DType::I32 => range(i32::MIN.into(), i32::MAX.into())
                .map(|_| TensorData::I32(chunk.iter().map(|&v| v as i32).collect()))?,
            DType::I64 => TensorData::I64(chunk),
        };
        out.push(Tensor::new(inp.shape.clone(), data)?);
    }
    Ok(out)
}

fn run_model(path: &Path, values: Option<&str>, hex_in: Option<&str>) -> Result<()> {
    let (engine, _) = load(path)?;
    let m = engine.model();
    let inputs = match (values, hex_in) {
        (Some(v), _) => parse_values(m, v)?,
        (None, Some(h)) => {
            let bytes = hex::decode(h.trim().trim_start_matches("0x")).context("--hex is not valid hex")?;
            io::unpack_inputs(m, &bytes)?
        }
        (None, None) => bail!("give the input with --input 1,2,3 or --hex <bytes>"),
    };
    let outs = engine.run(inputs)?;
    for (i, (t, desc)) in outs.iter().zip(&m.outputs).enumerate() {
        let vals: Vec<i64> = (0..t.len()).filter_map(|j| t.data().get_i64(j)).collect();
        println!("output #{i} {} {:?}: {vals:?}", t.dtype().name(), t.shape());
        if desc.quant.multiplier != 0 {
            let s = scale_of(&desc.quant);
            let real: Vec<String> =
                vals.iter().map(|&v| format!("{:.4}", (v - i64::from(desc.quant.zero_point)) as f64 * s)).collect();
            println!("  real: [{}]", real.join(", "));
        }
    }
    Ok(())
}

fn digit_art(row: &[f32]) -> Vec<String> {
    row.chunks(8).map(|r| r.iter().map(|&v| [' ', '.', ':', '+', '#'][(v as usize / 4).min(4)]).collect()).collect()
}

fn demo(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    println!("fixpoint example models: float (candle / f64) vs deterministic integer engine\n");
    for task in Task::ALL {
        println!("== {} — {}", task.name(), task.describe());
        let weights = dir.join(format!("{}.safetensors", task.name()));
        let float = train(task, &weights, None, 1)?;
        let model = quantize(task, &float)?;
        let path = dir.join(format!("{}.fxp", task.name()));
        write_model(&path, &model)?;
        let engine = Engine::load(&model.to_bytes(), &Limits::default())?;
        let (_, test) = task.split()?;
        println!("test split ({} rows): {}", test.len(), evaluate(task, &float, &engine, &test)?);
        println!("integer kernel path: {:?}\n", engine.path());
        if task == Task::DigitsMlp {
            inspect(&path)?;
            println!("\nthree test digits through the integer model:");
            let mut lines = vec![String::new(); 9];
            for i in 0..3 {
                let out = engine.run(vec![task.encode(test.row(i))?])?;
                let label = out.first().and_then(|t| t.as_i32()).and_then(|v| v.first()).copied().unwrap_or(-1);
                for (l, art) in lines.iter_mut().zip(digit_art(test.row(i))) {
                    l.push_str(&format!("  |{art}|  "));
                }
                lines[8].push_str(&format!("  pred {label} (true {})", test.labels.get(i).copied().unwrap_or(0)));
            }
            for l in lines {
                println!("{l}");
            }
            println!();
        }
    }
    println!("artifacts in {}/ (weights .safetensors, integer models .fxp)", dir.display());
    Ok(())
}

fn vectors(out: &Path, cases: usize) -> Result<()> {
    std::fs::create_dir_all(out)?;
    for task in Task::ALL {
        let (train, test) = task.split()?;
        let float = task.train(&train, task.default_rounds(), 1, |_, _| {})?;
        let model = float.quantize(&train, |_| {})?;
        let bytes = model.to_bytes();
        let engine = Engine::load_with_path(&bytes, &Limits::default(), fixpoint_ml::kernels::Path::Reference)?;
        let mut list = Vec::new();
        for i in 0..cases.min(test.len()) {
            let input = io::pack(&[task.encode(test.row(i))?]);
            let output = engine.run_packed(&input)?;
            list.push(serde_json::json!({
                "name": format!("{}-{i}", task.name()),
                "model": hex::encode(&bytes),
                "model_id": hex::encode(model_id(&bytes)),
                "input": hex::encode(&input),
                "output": hex::encode(&output),
            }));
        }
        let doc = serde_json::json!({
            "format": "fixpoint-vectors/1",
            "profile": 1,
            "model": task.name(),
            "source": "fixpoint-model vectors (trained with seed 1 on the fixed split; test rows in order)",
            "cases": list,
        });
        let path = out.join(format!("{}.json", task.name()));
        std::fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")?;
        println!("wrote {} ({} cases)", path.display(), cases.min(test.len()));
    }
    Ok(())
}

fn gpt_cmd(cmd: GptCmd) -> Result<()> {
    let corpus = gpt::corpus::Corpus::load(&gpt::corpus::default_path())?;
    match cmd {
        GptCmd::Train { out, steps, batch, lr, seed } => {
            let cfg = gpt::Config::default();
            let s = gpt::train::Settings { steps, batch, lr, seed, ..Default::default() };
            println!(
                "tiny GPT {cfg:?}: {} parameters, {} MACs/token at 64 cached positions ({} at {}); {} train / {} calibration / {} held-out bytes",
                cfg.params(),
                cfg.macs_per_token(64),
                cfg.macs_per_token(cfg.context),
                cfg.context,
                corpus.train.len(),
                corpus.calibration.len(),
                corpus.held_out.len()
            );
            let m = gpt::train::train(cfg, &corpus, &s, 50, |p| {
                println!(
                    "step {:>5}  train {:.4}  held-out {:.4} nats/byte  {:.0} s ({:.2} steps/s)",
                    p.step,
                    p.train_loss,
                    p.held_out_loss,
                    p.seconds,
                    p.step as f64 / p.seconds
                );
            })?;
            m.save(&out).with_context(|| format!("writing {}", out.display()))?;
            println!("wrote {}", out.display());
            Ok(())
        }
        GptCmd::Finetune { weights, out, steps, lr, seed } => {
            let m = gpt::Gpt::load(&weights).with_context(|| format!("loading {}", weights.display()))?;
            let ranges = gpt::calibrate::calibrate(&m, &corpus.calibration, &Default::default())?;
            let s = gpt::train::Settings { steps, lr, seed, warmup: steps / 10, ..Default::default() };
            gpt::train::finetune_quantized(&m, &corpus, &ranges, &s, 50, |p| {
                println!(
                    "step {:>5}  train (quantized forward) {:.4}  held-out (float) {:.4} nats/byte  {:.0} s",
                    p.step, p.train_loss, p.held_out_loss, p.seconds
                );
            })?;
            m.save(&out).with_context(|| format!("writing {}", out.display()))?;
            println!("wrote {}", out.display());
            Ok(())
        }
        GptCmd::Quantize { weights, out, windows, percentile, score_margin, mse, ablate } => {
            let m = gpt::Gpt::load(&weights).with_context(|| format!("loading {}", weights.display()))?;
            let s = gpt::calibrate::Settings { windows, percentile, score_margin, mse };
            let ranges = gpt::calibrate::calibrate(&m, &corpus.calibration, &s)?;
            for (site, (lo, hi)) in &ranges {
                println!("  {site:?}: [{lo:.3}, {hi:.3}]");
            }
            if ablate {
                let skip = windows * m.config.context;
                let text = corpus.calibration.get(skip..).unwrap_or_default();
                for (kind, agreement) in gpt::report::ablate(&m, &ranges, text, 64)? {
                    println!("  only {kind} on its grid: top-1 agreement with float {agreement:.2}%");
                }
            }
            let model = gpt::lower::lower(&m, &ranges)?;
            write_model(&out, &model)?;
            Ok(())
        }
        GptCmd::Eval { weights, model, windows, on_calibration } => {
            let m = gpt::Gpt::load(&weights).with_context(|| format!("loading {}", weights.display()))?;
            let (engine, bytes) = load(&model)?;
            let c = engine.cost();
            let ops = engine.model().nodes.len() as u64;
            println!(
                "{}: {} bytes, {} ops; one full-window run ({} positions): {} MACs, {} element ops, {} steps, peak activations {} bytes; warm gas {}",
                model.display(),
                bytes.len(),
                ops,
                m.config.context,
                c.macs,
                c.elem_ops,
                c.steps,
                c.peak_activation_bytes,
                fixpoint_precompiles::gas::warm_infer_gas(c, ops)
            );
            let g = |n: u64, per: u64| n.saturating_mul(per);
            let words = fixpoint_precompiles::gas::words;
            println!(
                "  gas terms: MACs {} + element ops {} + steps {} + calls {} + I/O {} + alloc {} + read {} + per-op {}",
                c.macs.div_ceil(fixpoint_precompiles::gas::MACS_PER_GAS),
                g(c.elem_ops, fixpoint_precompiles::gas::GAS_PER_ELEM),
                g(c.steps, fixpoint_precompiles::gas::GAS_PER_STEP),
                g(c.calls, fixpoint_precompiles::gas::GAS_PER_CALL),
                g(words(c.input_bytes + c.output_bytes), fixpoint_precompiles::gas::PER_WORD_IO),
                g(words(c.alloc_bytes), fixpoint_precompiles::gas::PER_WORD_ALLOC),
                g(words(c.bytes_read), fixpoint_precompiles::gas::PER_WORD_READ),
                g(ops, fixpoint_precompiles::gas::PER_OP),
            );
            // Where the gas goes, by op kind: MACs, element ops, steps.
            let mut by_op: std::collections::BTreeMap<&str, (u64, u64, u64)> = Default::default();
            for (node, w) in engine.model().nodes.iter().zip(engine.verified().op_costs()) {
                let e = by_op.entry(node.op.name()).or_default();
                (e.0, e.1, e.2) = (e.0 + w.macs, e.1 + w.elem_ops, e.2 + w.steps);
            }
            for (name, (macs, elem, steps)) in by_op {
                println!("  {name:>14}: {macs:>9} MACs {elem:>8} element ops {steps:>7} steps");
            }
            println!(
                "model: {} parameters; {} MACs per generated token with a KV cache of 64 positions, {} at {}",
                m.config.params(),
                m.config.macs_per_token(64),
                m.config.macs_per_token(m.config.context),
                m.config.context
            );
            if on_calibration {
                let skip = gpt::calibrate::Settings::default().windows * m.config.context;
                let text = corpus.calibration.get(skip..).unwrap_or_default();
                println!("calibration slice after byte {skip}: {}", gpt::report::evaluate(&m, &engine, text, windows)?);
            } else {
                println!("held-out: {}", gpt::report::evaluate(&m, &engine, &corpus.held_out, windows)?);
            }
            Ok(())
        }
    }
}
