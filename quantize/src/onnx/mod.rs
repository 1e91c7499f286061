//! ONNX import: any float ONNX model the existing integer ops can express → a canonical
//! fixpoint model, with a float-vs-integer accuracy report.
//!
//! Steps (one file each): [`graph`] decodes the file (tract-onnx's protobuf types) and its
//! constants; [`map`] walks the graph into the float models the crate already lowers (a
//! [`Net`](crate::net::Net) or an [`Ensemble`](crate::ensemble::Ensemble)); calibration runs the
//! existing `lower::calibrate` on the rows of [`data`] (CSV or `.npy`); `lower::lower_net` /
//! `lower::lower_ensemble` emit the model; [`report`] compares it with the float reference,
//! the ONNX file run by tract ([`reference`]).
//!
//! Inputs of the imported model: networks and linear models take one i8 tensor, the features
//! quantized with the calibrated scale and zero point (`q = clamp(round(x/s) + zp)`; exactly the
//! values when all calibration features are integers in the i8 range), images in HWC order;
//! tree ensembles take i32 features `floor(x·2^F)`, `F` the largest that keeps twice the
//! calibration range and every threshold in i32. [`Encoding`] does this for a float row.
//! The import is deterministic: the same file and calibration rows give the same bytes.

pub mod data;
pub(crate) mod graph;
pub mod map;
pub(crate) mod pointwise;
pub(crate) mod prequant;
pub(crate) mod reference;
pub mod report;
pub(crate) mod trees;

use std::path::Path;

use fixpoint_ml::format::{Model, ModelId};
use fixpoint_ml::{Cost, Engine, Limits, Tensor, model_id};
use fixpoint_precompiles::gas;

pub use data::{Table, TargetColumn};
pub use map::Step;
pub use report::Report;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::lower::{Ranges, activation_quant, calibrate, lower_ensemble, lower_net};
use crate::net::Head;
use graph::Graph;
use map::{Mapped, Plan};

/// Choices of an import.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The target column of the calibration and evaluation files (optional in both).
    pub target: Option<TargetColumn>,
    /// Force classification (`Some(true)`) or regression; detected from the graph otherwise.
    pub classify: Option<bool>,
}

/// How a row of float features becomes the imported model's input tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Encoding {
    /// i8 `q = clamp(round(x/scale) + zero_point)`; `chw` = `(C, H, W)` when rows are images in
    /// ONNX's CHW order and the model reads HWC.
    I8 {
        /// Real value of one step.
        scale: f64,
        /// The integer that stands for 0.0.
        zero_point: i32,
        /// Image layout to transpose, if any.
        chw: Option<(usize, usize, usize)>,
    },
    /// One i8 `[1]` tensor per feature, each `clamp(round(x_k/scale_k) + zero_point_k)`.
    Features {
        /// `(scale, zero point)` per feature.
        quants: Vec<(f64, i32)>,
    },
    /// i32 tree features `floor(x·2^bits)`.
    TreeFeatures {
        /// Fractional bits.
        bits: i32,
    },
}

impl Encoding {
    /// The input tensors for one row.
    pub fn encode(&self, row: &[f32]) -> Result<Vec<Tensor>> {
        match *self {
            Encoding::Features { ref quants } => row
                .iter()
                .zip(quants)
                .map(|(&x, &(s, zp))| Ok(Tensor::i8(vec![1], vec![quantize_i8(x, s, zp)])?))
                .collect(),
            Encoding::I8 { scale, zero_point, chw } => {
                let mut v: Vec<i8> = row.iter().map(|&x| quantize_i8(x, scale, zero_point)).collect();
                let shape = match chw {
                    Some((c, h, w)) => {
                        let mut hwc = vec![0i8; v.len()];
                        for ch in 0..c {
                            for y in 0..h {
                                for x in 0..w {
                                    hwc[(y * w + x) * c + ch] = v[(ch * h + y) * w + x];
                                }
                            }
                        }
                        v = hwc;
                        vec![h, w, c]
                    }
                    None => vec![row.len()],
                };
                Ok(vec![Tensor::i8(shape, v)?])
            }
            Encoding::TreeFeatures { bits } => {
                let f = row.iter().map(|&x| crate::lower::tree_feature_at(x, bits)).collect::<Result<Vec<_>>>()?;
                Ok(vec![Tensor::i32(vec![f.len()], f)?])
            }
        }
    }
}

/// `clamp(round(x/scale) + zero_point, -128, 127)`.
fn quantize_i8(x: f32, scale: f64, zero_point: i32) -> i8 {
    let q = (f64::from(x) / scale).round().clamp(-1e9, 1e9) as i64 + i64::from(zero_point);
    q.clamp(-128, 127) as i8
}

/// Up to this many features, a flat input gets one quantization per feature (one model input
/// each, concatenated); beyond, one per tensor (the format allows 16 inputs).
pub const MAX_PER_FEATURE: usize = 16;

/// The largest per-row input the importer accepts (the engine's tensor cap, model-format.md §7).
pub const MAX_INPUT_ELEMENTS: usize = 1 << 24;

/// `(scale, zero point)` of each feature.
type FeatureQuants = Vec<(f64, i32)>;

/// Folds per-feature input quantization into the first dense layer: `x_k = s_k·(q_k − zp_k)`,
/// so `W·x + b = (W∘s)·q + (b − (W∘s)·zp)`; returns the calibration rows as the integers `q`.
fn per_feature(net: &mut crate::net::Net, calib: &Table) -> Result<(FeatureQuants, Vec<f32>)> {
    let dim = calib.dim;
    let quants: Vec<(f64, i32)> = (0..dim)
        .map(|k| {
            let (lo, hi) = (0..calib.rows())
                .map(|r| calib.row(r)[k])
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
            activation_quant(lo, hi)
        })
        .collect();
    let (w, b) = net.param_values(0)?;
    let out = b.len();
    let mut w2 = w.clone();
    let mut b2 = b.clone();
    for n in 0..out {
        let mut shift = 0f64;
        for (k, &(s, zp)) in quants.iter().enumerate() {
            let v = f64::from(w[n * dim + k]) * s;
            w2[n * dim + k] = v as f32;
            shift += v * f64::from(zp);
        }
        b2[n] = (f64::from(b[n]) - shift) as f32;
    }
    let dev = candle_core::Device::Cpu;
    let wv = candle_core::Var::from_tensor(&candle_core::Tensor::from_vec(w2, (out, dim), &dev)?)?;
    let bv = candle_core::Var::from_tensor(&candle_core::Tensor::from_vec(b2, out, &dev)?)?;
    if let Some(p) = net.params.first_mut() {
        *p = (wv, bv);
    }
    let rows: Vec<f32> = calib
        .features
        .chunks(dim)
        .flat_map(|r| r.iter().zip(&quants).map(|(&x, &(s, zp))| f32::from(quantize_i8(x, s, zp))))
        .collect();
    Ok((quants, rows))
}

/// An imported model and everything the report needs.
#[derive(Debug)]
pub struct Imported {
    /// The canonical integer model.
    pub model: Model,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// keccak256 of the bytes.
    pub id: ModelId,
    /// What each ONNX node became.
    pub steps: Vec<Step>,
    /// How float rows become the model's input.
    pub encoding: Encoding,
    /// Class labels in score order (classifiers; `None` means the index is the label).
    pub classes: Option<Vec<String>>,
    /// Classification or regression.
    pub classify: bool,
    /// Features per row.
    pub input_dim: usize,
    /// The verifier's cost of one inference.
    pub cost: Cost,
    /// Gas of a warm inference (fixpoint-precompiles' schedule, docs/gas.md).
    pub warm_gas: u64,
    /// Gas of a cold inference: warm plus the first-use surcharge for the model's size.
    pub cold_gas: u64,
    /// Observations worth printing (input quantization, tree grid).
    pub notes: Vec<String>,
    mapped: Mapped,
    graph: Graph,
    ranges: Ranges,
}

/// Imports `onnx`, calibrating on the rows of `calibration` (CSV or `.npy`); `progress(stage,
/// done, total)` is called as calibration advances.
pub fn import(
    onnx: &Path,
    calibration: &Path,
    opts: &Options,
    mut progress: impl FnMut(&str, usize, usize),
) -> Result<Imported> {
    let graph = Graph::load(onnx)?;
    let mut mapped = if prequant::is_prequantized(&graph) {
        prequant::map(&graph, opts.classify)?
    } else {
        map::map(&graph, opts.classify)?
    };
    let dim: usize = mapped.input_shape.iter().product();
    let calib = data::load(calibration, dim, opts.target.as_ref())?;
    let mut notes = std::mem::take(&mut mapped.notes);
    let (model, encoding, ranges) = match &mut mapped.plan {
        Plan::Quantized(q) => {
            // The file's own quantization: calibration rows are only checked for their shape.
            progress("lowering", 1, 1);
            (q.model.clone(), q.encoding.clone(), Vec::new())
        }
        Plan::Net(net) => {
            let (lo, hi) = calib.range();
            let integral = calib.features.iter().all(|&v| v.fract() == 0.0 && (-128.0..=127.0).contains(&v));
            let flat_dense =
                net.input.len() == 1 && matches!(net.layers.first(), Some(crate::net::Layer::Dense { .. }));
            let (encoding, rows) = if !integral && flat_dense && (2..=MAX_PER_FEATURE).contains(&dim) {
                let (quants, rows) = per_feature(net, &calib)?;
                notes.push(format!("input: {dim} features, each its own i8 input with its calibrated scale and zero point (folded into the first layer)"));
                net.input_quant = Some((1.0, 0));
                net.feature_quant = Some(quants.clone());
                (Encoding::Features { quants }, rows)
            } else {
                let (scale, zero_point) = if integral { (1.0, 0) } else { activation_quant(lo, hi) };
                notes.push(if integral {
                    "input: calibration features are integers in [-128, 127]: passed to the model exactly (scale 1)"
                        .into()
                } else {
                    format!("input: calibrated range [{lo}, {hi}] → i8 scale {scale:.6e}, zero point {zero_point}")
                });
                net.input_quant = Some((scale, zero_point));
                let chw = match net.input[..] {
                    [c, h, w] => Some((c, h, w)),
                    _ => None,
                };
                (Encoding::I8 { scale, zero_point, chw }, calib.features.clone())
            };
            if flat_dense {
                let n = calib.rows().max(1) as f64;
                let mut m = vec![0f64; dim];
                for r in rows.chunks(dim) {
                    m.iter_mut().zip(r).for_each(|(mk, &x)| *mk += f64::from(x).powi(2) / n);
                }
                net.input_moments = Some(m);
            }
            let ds = Dataset { features: rows, labels: vec![0; calib.rows()], dim, classes: 1 };
            let total = calib.rows();
            let ranges = calibrate(net, &ds, |d| progress("calibrating", d, total))?;
            (lower_net(net, &ranges)?, encoding, ranges)
        }
        Plan::Trees(t) => {
            let (lo, hi) = calib.range();
            let m = f64::from(lo.abs().max(hi.abs())).max(t.ensemble.max_abs_threshold()).max(1e-30);
            let bits = ((f64::from(i32::MAX) / (2.0 * m)).log2().floor() as i32).clamp(-30, 30);
            let bound = t.ensemble.score_bound();
            let score_bits = if bound > 0.0 { ((51.0 - bound.log2()).floor() as i32).min(32) } else { 32 };
            notes.push(format!(
                "tree features: floor(x·2^{bits}) as i32 (|x| up to {m:.4} fits twice over); scores at 2^-{score_bits}"
            ));
            let head = if mapped.classify { Head::Classes } else { Head::Values };
            progress("lowering", 1, 1);
            (lower_ensemble(&t.ensemble, bits, score_bits, head)?, Encoding::TreeFeatures { bits }, Vec::new())
        }
    };
    let bytes = model.to_bytes();
    let engine = Engine::load(&bytes, &Limits::default())?;
    let cost = *engine.cost();
    let warm_gas = gas::warm_infer_gas(&cost, model.nodes.len() as u64);
    let cold_gas = warm_gas.saturating_add(gas::cold_surcharge(bytes.len() as u64));
    Ok(Imported {
        id: model_id(&bytes),
        model,
        bytes,
        steps: mapped.steps.clone(),
        encoding,
        classes: mapped.classes.clone(),
        classify: mapped.classify,
        input_dim: dim,
        cost,
        warm_gas,
        cold_gas,
        notes,
        mapped,
        graph,
        ranges,
    })
}

impl Imported {
    /// The class label of score index `i`.
    pub fn label(&self, i: usize) -> String {
        self.classes.as_ref().and_then(|c| c.get(i).cloned()).unwrap_or_else(|| i.to_string())
    }

    /// Compares the integer model with the float reference (the ONNX file run by tract) on
    /// `eval`; `progress(done, total)`.
    pub fn evaluate(&self, eval: &Table, progress: impl FnMut(usize, usize)) -> Result<Report> {
        if eval.dim != self.input_dim {
            return Err(Error::Input {
                path: "evaluation data".into(),
                msg: format!("{} features per row, the model takes {}", eval.dim, self.input_dim),
            });
        }
        report::evaluate(self, eval, progress)
    }
}
