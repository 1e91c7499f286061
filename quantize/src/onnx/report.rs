//! The accuracy report: the integer model (fixpoint-ml engine) against the float reference
//! (the ONNX file run by tract) on an evaluation table, with layer-by-layer error for networks
//! and, for trees, a check of every split at f32 resolution.

use candle_core::Device;
use fixpoint_ml::format::Quant;
use fixpoint_ml::{Engine, Limits};

use super::map::Plan;
use super::reference::Reference;
use super::{Encoding, Imported, Table};
use crate::ensemble::Split;
use crate::error::{Error, Result};
use crate::eval;
use crate::lower::{activation_quant, tree_threshold};
use crate::multiplier::scale_of;
use crate::net::{Binary, Layer};

/// Rows used for the layer-by-layer error (the engine is run once more per row).
const LAYER_ROWS: usize = 256;

/// Regression figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Regression {
    /// Rows evaluated.
    pub rows: usize,
    /// RMSE of the float model against the targets (NaN without targets).
    pub float_rmse: f64,
    /// RMSE of the integer model against the targets (NaN without targets).
    pub int_rmse: f64,
    /// Largest `|integer − float|`.
    pub max_diff: f64,
    /// Rows where `|integer − float|` is within `tolerance`.
    pub agree: usize,
    /// 5% of the standard deviation of the float predictions (int8 inputs alone move a
    /// prediction by a few percent of its spread).
    pub tolerance: f64,
}

impl Regression {
    /// Agreement in percent.
    pub fn agreement(&self) -> f64 {
        100.0 * self.agree as f64 / self.rows.max(1) as f64
    }

    /// Integer RMSE relative to float RMSE, in percent above it (negative when better).
    pub fn rmse_increase(&self) -> f64 {
        100.0 * (self.int_rmse / self.float_rmse - 1.0)
    }
}

/// Float vs integer on one table.
#[derive(Debug, Clone, PartialEq)]
pub enum Accuracy {
    /// Class predictions: accuracy and agreement (without targets only agreement is meaningful).
    Classification(eval::Report),
    /// Values.
    Regression(Regression),
}

/// Relative error of one layer's integer output against the float network's.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerError {
    /// The layer, e.g. `Dense 64→32 +ReLU`.
    pub layer: String,
    /// `rms(integer − float) / rms(float)` over the rows checked.
    pub rel_rms: f64,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Whether the table had targets.
    pub has_targets: bool,
    /// Accuracy figures.
    pub accuracy: Accuracy,
    /// Networks: error after each layer.
    pub layers: Vec<LayerError>,
    /// Trees: how the integer splits decide.
    pub splits: Option<Splits>,
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| if x > bv { (i, x) } else { (bi, bv) }).0
}

fn real(v: i64, q: &Quant) -> f64 {
    (v - i64::from(q.zero_point)) as f64 * scale_of(q)
}

fn layer_name(l: &Layer) -> String {
    match *l {
        Layer::Conv { in_c, out_c, k, stride, relu, .. } => {
            format!("Conv {k}x{k}/{stride} {in_c}→{out_c}{}", if relu { " +ReLU" } else { "" })
        }
        Layer::MaxPool { k, stride } => format!("MaxPool {k}x{k}/{stride}"),
        Layer::GlobalAvgPool => "GlobalAvgPool".into(),
        Layer::AvgPool { k, stride } => format!("AvgPool {k}x{k}/{stride}"),
        Layer::Pointwise(f) => format!("{} (Lut8)", f.name()),
        Layer::Flatten => "Flatten".into(),
        Layer::ConvWindow { in_c, out_c, geometry: g, relu, .. } => format!(
            "Conv {}x{}/{},{} dil {},{} pads {:?} {in_c}→{out_c}{}",
            g.kernel.0,
            g.kernel.1,
            g.stride.0,
            g.stride.1,
            g.dilation.0,
            g.dilation.1,
            g.pads,
            if relu { " +ReLU" } else { "" }
        ),
        Layer::PoolWindow { avg, geometry: g } => format!(
            "{} {}x{}/{},{} pads {:?}",
            if avg { "AvgPool" } else { "MaxPool" },
            g.kernel.0,
            g.kernel.1,
            g.stride.0,
            g.stride.1,
            g.pads
        ),
        Layer::Save => "(kept for a residual Add or a Concat)".into(),
        Layer::Binary { op, relu } => format!(
            "{}{}",
            match op {
                Binary::Add => "Add (two live tensors)",
                Binary::Sub { .. } => "Sub (two live tensors)",
                Binary::Mul => "Mul (two live tensors)",
            },
            if relu { " +ReLU" } else { "" }
        ),
        Layer::Unflatten => "Reshape [C] → [C, 1, 1]".into(),
        Layer::Transpose { perm } => format!("Transpose {perm:?} (of C, H, W)"),
        Layer::Branch => "(branch kept for a Concat)".into(),
        Layer::ConcatSaved { branches, .. } => format!("Concat of {branches} branches (channels)"),
        Layer::Dense { inp, out, relu } => format!("Dense {inp}→{out}{}", if relu { " +ReLU" } else { "" }),
    }
}

pub(super) fn evaluate(im: &Imported, t: &Table, mut progress: impl FnMut(usize, usize)) -> Result<Report> {
    let reference = Reference::new(&im.graph, &im.mapped.input_shape)?;
    let engine = Engine::load(&im.bytes, &Limits::default())?;
    let rows = t.rows();
    let (mut fl, mut it) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
    for i in 0..rows {
        let row = t.row(i);
        fl.push(reference.run(row)?);
        it.push(engine.run(im.encoding.encode(row)?)?);
        progress(i + 1, rows);
    }
    let has_targets = t.targets.is_some();
    let accuracy = if im.classify {
        let index_of = |label: &str| -> u32 {
            match &im.classes {
                Some(c) => c.iter().position(|x| x == label).map_or(u32::MAX, |p| p as u32),
                None => label.parse().unwrap_or(u32::MAX),
            }
        };
        let float_pred: Vec<u32> = fl
            .iter()
            .map(|f| match &f.label {
                Some(l) if f.scores.is_empty() => index_of(l),
                _ => argmax(&f.scores) as u32,
            })
            .collect();
        let int_pred: Vec<u32> = it
            .iter()
            .map(|o| o.first().and_then(|t| t.as_i32()).and_then(|v| v.first()).map_or(u32::MAX, |&v| v as u32))
            .collect();
        let labels: Vec<u32> = match &t.targets {
            Some(ts) => ts.iter().map(|s| index_of(s)).collect(),
            None => vec![u32::MAX; rows],
        };
        Accuracy::Classification(eval::Report::new(&float_pred, &int_pred, &labels))
    } else {
        let q = im.model.outputs.last().map(|o| o.quant).unwrap_or(Quant::NONE);
        let fv: Vec<f64> = fl.iter().map(|f| f.scores.first().map_or(f64::NAN, |&v| f64::from(v))).collect();
        let iv: Vec<f64> =
            it.iter().map(|o| o.last().and_then(|t| t.data().get_i64(0)).map_or(f64::NAN, |v| real(v, &q))).collect();
        let targets: Option<Vec<f64>> =
            t.targets.as_ref().map(|ts| ts.iter().map(|s| s.parse().unwrap_or(f64::NAN)).collect());
        let rmse = |p: &[f64]| match &targets {
            Some(y) => (p.iter().zip(y).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / rows.max(1) as f64).sqrt(),
            None => f64::NAN,
        };
        let mean = fv.iter().sum::<f64>() / rows.max(1) as f64;
        let std = (fv.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / rows.max(1) as f64).sqrt();
        let tolerance = 0.05 * std;
        let diffs: Vec<f64> = fv.iter().zip(&iv).map(|(a, b)| (a - b).abs()).collect();
        Accuracy::Regression(Regression {
            rows,
            float_rmse: rmse(&fv),
            int_rmse: rmse(&iv),
            max_diff: diffs.iter().fold(0.0, |m, &d| m.max(d)),
            agree: diffs.iter().filter(|&&d| d <= tolerance).count(),
            tolerance,
        })
    };
    let (layers, splits) = match &im.mapped.plan {
        Plan::Net(net) => (layer_errors(im, net, t)?, None),
        Plan::Quantized(_) => (Vec::new(), None),
        Plan::Trees(tr) => {
            let Encoding::TreeFeatures { bits } = im.encoding else {
                return Err(Error::Quantize("tree model without tree encoding".into()));
            };
            (Vec::new(), Some(split_check(&tr.ensemble, bits)))
        }
    };
    Ok(Report { has_targets, accuracy, layers, splits })
}

/// How the integer splits of a tree model decide compared with the float tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Splits {
    /// Internal nodes.
    pub total: usize,
    /// Splits whose integer test equals the float test for every grid feature (checked at the
    /// two grid points around the bound, where a flip would show); always all of them.
    pub exact_on_grid: usize,
    /// Splits that also decide like float32 for the f32 values just below, at and just above the
    /// threshold (fails only when the threshold has finer precision than the 2^-F grid).
    pub exact_f32: usize,
}

/// Checks every split of `e` on features with `bits` fractional bits.
pub fn split_check(e: &crate::ensemble::Ensemble, bits: i32) -> Splits {
    let mut r = Splits { total: 0, exact_on_grid: 0, exact_f32: 0 };
    let float = |x: f64, n: &crate::ensemble::Node| match n.split {
        Split::Leq => x <= n.threshold,
        Split::Lt => x < n.threshold,
    };
    for n in e.trees.iter().flatten().filter(|n| n.feature >= 0) {
        r.total += 1;
        let bound = tree_threshold(n.threshold, n.split, bits);
        let grid = [i64::from(bound), i64::from(bound) + 1]
            .iter()
            .all(|&q| (q <= i64::from(bound)) == float(q as f64 * 2f64.powi(-bits), n));
        r.exact_on_grid += usize::from(grid);
        let t = n.threshold as f32;
        let near = [t.next_down(), t, t.next_up()]
            .iter()
            .all(|&x| crate::lower::tree_feature_at(x, bits).is_ok_and(|q| (q <= bound) == float(f64::from(x), n)));
        r.exact_f32 += usize::from(near);
    }
    r
}

/// Error after each layer: the lowered model with every layer's value added as an output, run
/// by the engine and dequantized, against the candle network's trace (NCHW permuted to HWC).
fn layer_errors(im: &Imported, net: &crate::net::Net, t: &Table) -> Result<Vec<LayerError>> {
    let n_layers = net.layers.len();
    // The scale and zero point of each layer's output, as the lowering chose them.
    let mut quants = Vec::with_capacity(n_layers);
    let (mut s, mut zp) = net.input_quant.unwrap_or((net.input_scale, 0));
    let logits = im.model.outputs.last().map(|o| o.quant).unwrap_or(Quant::NONE);
    let mut kept = Vec::new();
    for (i, l) in net.layers.iter().enumerate() {
        match l {
            Layer::Save => kept.push((s, zp)),
            Layer::Branch => {
                let start = kept.pop().unwrap_or((s, zp));
                kept.push((s, zp));
                kept.push(start);
                (s, zp) = start;
            }
            Layer::Binary { .. } | Layer::ConcatSaved { .. } => {
                let drop = if let Layer::ConcatSaved { branches, .. } = l { *branches } else { 1 };
                kept.truncate(kept.len().saturating_sub(drop));
                let (lo, hi) = im.ranges.get(i).copied().unwrap_or((0.0, 0.0));
                (s, zp) = activation_quant(lo, hi);
            }
            Layer::Dense { .. } if i + 1 == n_layers => {
                (s, zp) = (scale_of(&logits), logits.zero_point);
            }
            Layer::Conv { .. } | Layer::ConvWindow { .. } | Layer::Dense { .. } | Layer::Pointwise(_) => {
                let (lo, hi) = im.ranges.get(i).copied().unwrap_or((0.0, 0.0));
                (s, zp) = activation_quant(lo, hi);
            }
            _ => {}
        }
        quants.push((s, zp));
    }
    // The value of each layer's output, as the lowering placed it (`Save` and `Branch` add no
    // op: not compared). A model has at most MAX_IO outputs: the layers are read in groups,
    // each group the outputs of one copy of the model.
    let (_, values) = crate::lower::lower_net_traced(net, &im.ranges)?;
    let compared: Vec<(usize, u32)> = values.iter().enumerate().filter_map(|(i, v)| v.map(|v| (i, v))).collect();
    // Every value must stay used (canonical form): the model's own outputs stay.
    let per_group = fixpoint_ml::format::MAX_IO.saturating_sub(im.model.outputs.len()).max(1);
    let mut groups = Vec::new();
    for group in compared.chunks(per_group) {
        let mut diag = im.model.clone();
        let mut slots = Vec::with_capacity(group.len());
        for &(i, value) in group {
            let slot = diag.outputs.iter().position(|o| o.value == value).unwrap_or_else(|| {
                diag.outputs.push(fixpoint_ml::format::OutputDesc { value, quant: Quant::NONE });
                diag.outputs.len() - 1
            });
            slots.push((i, slot));
        }
        groups.push((Engine::load(&diag.to_bytes(), &Limits::default())?, slots));
    }
    let rows = t.rows().min(LAYER_ROWS);
    let (mut err, mut norm) = (vec![0f64; n_layers], vec![0f64; n_layers]);
    let idx: Vec<usize> = (0..rows).collect();
    // With per-feature inputs the network reads the quantized integers.
    let features: Vec<f32> = match &im.encoding {
        Encoding::Features { quants } => t.features[..rows * t.dim]
            .chunks(t.dim)
            .flat_map(|r| r.iter().zip(quants).map(|(&x, &(s, zp))| f32::from(super::quantize_i8(x, s, zp))))
            .collect(),
        _ => t.features[..rows * t.dim].to_vec(),
    };
    let ds = crate::data::Dataset { features, labels: vec![0; rows], dim: t.dim, classes: 1 };
    let trace = net.trace(&net.batch(&ds, &idx)?)?;
    for r in 0..rows {
        for (engine, group) in &groups {
            let outs = engine.run(im.encoding.encode(t.row(r))?)?;
            for &(i, slot) in group {
                let (Some(ft), Some(o)) = (trace.get(i), outs.get(slot)) else { continue };
                let f = ft.get(r)?;
                let f = if f.rank() == 3 { f.permute((1, 2, 0))? } else { f };
                let fv: Vec<f32> = f.flatten_all()?.to_device(&Device::Cpu)?.to_vec1()?;
                let (s, zp) = quants[i];
                for (j, &x) in fv.iter().enumerate() {
                    let q = o.data().get_i64(j).unwrap_or(0);
                    let v = (q - i64::from(zp)) as f64 * s;
                    err[i] += (v - f64::from(x)).powi(2);
                    norm[i] += f64::from(x).powi(2);
                }
            }
        }
    }
    Ok(net
        .layers
        .iter()
        .enumerate()
        // `Save` and `Branch` are bookkeeping, not ops.
        .filter(|(_, l)| !matches!(l, Layer::Save | Layer::Branch))
        .map(|(i, l)| LayerError { layer: layer_name(l), rel_rms: (err[i] / norm[i].max(1e-30)).sqrt() })
        .collect())
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.accuracy {
            Accuracy::Classification(r) if self.has_targets => writeln!(f, "classification: {r}")?,
            Accuracy::Classification(r) => {
                writeln!(f, "classification (no targets): agreement {:.2}% ({}/{})", r.agreement(), r.agree, r.rows)?
            }
            Accuracy::Regression(r) => writeln!(
                f,
                "regression: float RMSE {:.4}, integer RMSE {:.4} ({:+.2}%), max |int − float| {:.4}, agreement {:.2}% within {:.4}",
                r.float_rmse,
                r.int_rmse,
                r.rmse_increase(),
                r.max_diff,
                r.agreement(),
                r.tolerance
            )?,
        }
        if !self.layers.is_empty() {
            writeln!(f, "layer-by-layer error (rms(int − float) / rms(float)):")?;
            for l in &self.layers {
                writeln!(f, "  {:<28} {:.4}", l.layer, l.rel_rms)?;
            }
        }
        if let Some(s) = self.splits {
            writeln!(
                f,
                "tree splits: {}/{} exact on the feature grid; {}/{} also exact for f32 values next to the threshold",
                s.exact_on_grid, s.total, s.exact_f32, s.total
            )?;
        }
        Ok(())
    }
}
