//! `fixpoint model import`: an ONNX file → the canonical model (`.fxp`, the bytes the registry
//! takes) and its sidecar (`.fxp.json`, see [`crate::meta`]), with the accuracy report. The
//! import itself is `fixpoint_quantize::onnx` (offline tooling; only this CLI links it, never a
//! consensus crate).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use fixpoint_precompiles::gas;
use fixpoint_quantize::onnx::{self, Encoding, TargetColumn};
use indicatif::{ProgressBar, ProgressStyle};

use crate::meta::{META_FORMAT, Meta};

/// What to import.
#[derive(Debug, Clone)]
pub struct ImportArgs {
    /// The ONNX file.
    pub model: PathBuf,
    /// Calibration rows (CSV or .npy).
    pub calibration: PathBuf,
    /// Evaluation rows for the report.
    pub eval: Option<PathBuf>,
    /// Target column (name or 0-based index) in both files.
    pub target: Option<String>,
    /// Force regression.
    pub regression: bool,
    /// Where to write the model; the sidecar goes to `<out>.json`.
    pub out: PathBuf,
    /// Name for generated code (default: from the file names).
    pub name: Option<String>,
    /// Show progress bars.
    pub progress: bool,
}

fn bar(on: bool, len: usize, what: &str) -> ProgressBar {
    if !on {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {elapsed}") {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// The CSV header's feature names (without the target column), if the file has a header.
fn feature_names(path: &Path, dim: usize, target: Option<&TargetColumn>) -> Option<Vec<String>> {
    if path.extension().is_some_and(|e| e == "npy") {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let first = text.lines().find(|l| !l.trim().is_empty())?;
    let cells: Vec<String> = first.split(',').map(|c| c.trim().trim_matches('"').to_string()).collect();
    if cells.iter().all(|c| c.parse::<f64>().is_ok()) {
        return None;
    }
    let drop = match target {
        Some(TargetColumn::Name(n)) => cells.iter().position(|c| c == n),
        Some(TargetColumn::Index(i)) => Some(*i),
        None if cells.len() == dim + 1 => {
            cells.iter().position(|c| ["target", "label", "y", "class", "labels"].contains(&c.to_lowercase().as_str()))
        }
        None => None,
    };
    let names: Vec<String> = cells.into_iter().enumerate().filter(|(i, _)| Some(*i) != drop).map(|(_, c)| c).collect();
    (names.len() == dim).then_some(names)
}

fn default_name(onnx: &Path, out: &Path) -> String {
    let stem = |p: &Path| p.file_stem().and_then(|s| s.to_str()).map(str::to_string);
    match stem(out) {
        Some(s) if s != "model" => s,
        _ => onnx.parent().and_then(|p| p.file_name()).and_then(|s| s.to_str()).unwrap_or("model").to_string(),
    }
}

/// Runs the import and prints the report; returns the sidecar it wrote.
pub fn import(a: &ImportArgs) -> Result<Meta> {
    for (what, p) in [("ONNX model", &a.model), ("calibration file", &a.calibration)]
        .into_iter()
        .chain(a.eval.as_ref().map(|e| ("evaluation file", e)))
    {
        if !p.is_file() {
            bail!("{what} {} does not exist", p.display());
        }
    }
    let opts =
        onnx::Options { target: a.target.as_deref().map(TargetColumn::parse), classify: a.regression.then_some(false) };
    let started = std::time::Instant::now();
    let pb = bar(a.progress, 1, "calibrating");
    let im = onnx::import(&a.model, &a.calibration, &opts, |stage, done, total| {
        pb.set_message(stage.to_string());
        pb.set_length(total as u64);
        pb.set_position(done as u64);
    });
    pb.finish_and_clear();
    let im = im.with_context(|| format!("importing {}", a.model.display()))?;
    let took = started.elapsed();
    println!("op mapping ({}):", a.model.display());
    for s in &im.steps {
        println!("  {:<24} {:<28} → {}", s.op_type, s.node, s.mapped);
    }
    for n in &im.notes {
        println!("{n}");
    }
    println!("imported in {:.2} s", took.as_secs_f64());

    if let Some(e) = &a.eval {
        let table = onnx::data::load(e, im.input_dim, opts.target.as_ref())
            .with_context(|| format!("reading {}", e.display()))?;
        let pb = bar(a.progress, table.rows(), "evaluating");
        let report = im.evaluate(&table, |d, _| pb.set_position(d as u64));
        pb.finish_and_clear();
        print!("{}", report.with_context(|| format!("evaluating on {}", e.display()))?);
    }

    let onnx_bytes = std::fs::read(&a.model).with_context(|| format!("cannot read {}", a.model.display()))?;
    let chw = match im.encoding {
        Encoding::I8 { chw: Some((c, h, w)), .. } if c > 1 => Some([c, h, w]),
        _ => None,
    };
    let meta = Meta {
        format: META_FORMAT.into(),
        name: a.name.clone().unwrap_or_else(|| default_name(&a.model, &a.out)),
        id: im.id.into(),
        task: if im.classify { "classification" } else { "regression" }.into(),
        features: feature_names(&a.calibration, im.input_dim, opts.target.as_ref()),
        classes: im.classes.clone(),
        chw,
        encoding: format!("{:?}", im.encoding),
        source: format!(
            "{} (keccak256 {})",
            a.model.file_name().and_then(|s| s.to_str()).unwrap_or("model.onnx"),
            alloy_primitives::keccak256(&onnx_bytes)
        ),
        warm_gas: im.warm_gas,
        cold_gas: im.cold_gas,
    };
    std::fs::write(&a.out, &im.bytes).with_context(|| format!("writing {}", a.out.display()))?;
    let side = Meta::path_for(&a.out);
    std::fs::write(&side, serde_json::to_string_pretty(&meta)? + "\n")
        .with_context(|| format!("writing {}", side.display()))?;

    let c = &im.cost;
    println!(
        "cost: {} ops, {} MACs, {} element ops, {} steps, {} tree visits; model {} bytes",
        im.model.nodes.len(),
        c.macs,
        c.elem_ops,
        c.steps,
        c.visits,
        im.bytes.len()
    );
    println!(
        "gas per inference: warm {} / cold {} (REJECT {} + the model's warm gas {}; cold adds {} the first time a block uses it)",
        gas::REJECT + im.warm_gas,
        gas::REJECT + im.cold_gas,
        gas::REJECT,
        im.warm_gas,
        im.cold_gas - im.warm_gas
    );
    println!("wrote {} and {}", a.out.display(), side.display());
    println!("model id {}", meta.id);
    Ok(meta)
}
