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
    /// i32 tree features `floor(x·2^bits)`.
    TreeFeatures {
        /// Fractional bits.
        bits: i32,
    },
}

impl Encoding {
    /// The input tensor for one row.
    pub fn encode(&self, row: &[f32]) -> Result<Tensor> {
        match *self {
            Encoding::I8 { scale, zero_point, chw } => {
                let q = |x: f32| (f64::from(x) / scale).round().clamp(-1e9, 1e9) as i64 + i64::from(zero_point);
                let mut v: Vec<i8> = row.iter().map(|&x| q(x).clamp(-128, 127) as i8).collect();
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
                Ok(Tensor::i8(shape, v)?)
            }
            Encoding::TreeFeatures { bits } => {
                let f = row.iter().map(|&x| crate::lower::tree_feature_at(x, bits)).collect::<Result<Vec<_>>>()?;
                Ok(Tensor::i32(vec![f.len()], f)?)
            }
        }
    }
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
    let mut mapped = map::map(&graph, opts.classify)?;
    let dim: usize = mapped.input_shape.iter().product();
    let calib = data::load(calibration, dim, opts.target.as_ref())?;
    let mut notes = Vec::new();
    let (model, encoding, ranges) = match &mut mapped.plan {
        Plan::Net(net) => {
            let ds = Dataset { features: calib.features.clone(), labels: vec![0; calib.rows()], dim, classes: 1 };
            let (lo, hi) = calib.range();
            let integral = calib.features.iter().all(|&v| v.fract() == 0.0 && (-128.0..=127.0).contains(&v));
            let (scale, zero_point) = if integral { (1.0, 0) } else { activation_quant(lo, hi) };
            notes.push(if integral {
                "input: calibration features are integers in [-128, 127]: passed to the model exactly (scale 1)".into()
            } else {
                format!("input: calibrated range [{lo}, {hi}] → i8 scale {scale:.6e}, zero point {zero_point}")
            });
            net.input_quant = Some((scale, zero_point));
            let total = calib.rows();
            let ranges = calibrate(net, &ds, |d| progress("calibrating", d, total))?;
            let model = lower_net(net, &ranges)?;
            let chw = match net.input[..] {
                [c, h, w] => Some((c, h, w)),
                _ => None,
            };
            (model, Encoding::I8 { scale, zero_point, chw }, ranges)
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
    let cost = engine.cost().clone();
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
