//! ONNX graph → a float model the existing lowering takes: a [`Net`] (networks and linear
//! models, lowered by `lower::lower_net`) or an [`Ensemble`](crate::ensemble::Ensemble) (tree
//! ops, lowered by `lower::lower_ensemble`). Float-side folds happen here, exactly:
//! a leading scaler (`Scaler`, or `Sub`/`Div`/`Mul`/`Add` by constants) goes into the first
//! layer's weights and bias, `BatchNormalization` and constant `Add`/`Mul` after a layer into
//! that layer, and ONNX's CHW flatten order into the columns of the dense layer after it.
//!
//! The walk starts at the graph's one input and follows its single chain of compute nodes (a
//! tensor that also feeds an `Add`/`Sub`/`Mul` further down the chain is kept, `Layer::Save`,
//! and combined there with the integer Add or Mul op, `Layer::Binary`, broadcasting an axis of 1:
//! a residual connection or a squeeze-excite gate; two branches from one
//! tensor that end in one `Concat` are walked one after the other, `Layer::Branch` between them,
//! and joined by the integer Concat, `Layer::ConcatSaved`; a `Transpose` to NHWC right before a
//! flatten is folded into it, since the engine flattens HWC);
//! `ArgMax`, `ZipMap` and `ArrayFeatureExtractor` (the label and probability post-processing
//! skl2onnx emits) end it, and Softmax/LogSoftmax are accepted only at the end (monotone, so the
//! argmax is unchanged). Every node that cannot be mapped fails with
//! [`Error::UnsupportedOp`], naming the op, the node and what would make it supported.

use tract_onnx::pb::NodeProto;

use super::graph::{Const, ConstData, Graph, attr, attr_f, attr_floats, attr_i, attr_ints, attr_s, attr_strings, elem};
use super::trees::{self, Trees};
use crate::error::{Error, Result};
use crate::net::{Binary, Geometry, Head, Layer, MAX_BRANCHES, Net};
use crate::pointwise::Pointwise;

/// One ONNX node and what it became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// ONNX op type.
    pub op_type: String,
    /// Node name.
    pub node: String,
    /// The fixpoint op(s) it maps to, or how it was folded.
    pub mapped: String,
}

/// The float model the graph maps to.
#[derive(Debug)]
pub(crate) enum Plan {
    /// A network or linear model.
    Net(Net),
    /// A tree ensemble.
    Trees(Trees),
    /// A pre-quantized graph, already lowered with the file's scales.
    Quantized(super::prequant::Quantized),
}

/// The result of mapping.
#[derive(Debug)]
pub(crate) struct Mapped {
    /// The float model.
    pub(crate) plan: Plan,
    /// Class labels in score order, when the graph names them.
    pub(crate) classes: Option<Vec<String>>,
    /// Classification (true) or regression.
    pub(crate) classify: bool,
    /// Per-row input shape in ONNX layout (batch dimension removed).
    pub(crate) input_shape: Vec<usize>,
    /// The node-by-node mapping.
    pub(crate) steps: Vec<Step>,
    /// Observations for the import report.
    pub(crate) notes: Vec<String>,
}

/// Ops the walk passes through unchanged.
const PASS: [&str; 3] = ["Identity", "Dropout", "Cast"];
/// Post-processing that ends the walk (labels and probability maps).
const HEADS: [&str; 3] = ["ArgMax", "ZipMap", "ArrayFeatureExtractor"];
/// Everything the walk maps, for the hint on an unknown op.
const SUPPORTED: &str = "Gemm, MatMul, Add/Sub/Mul/Div by constants, Add/Sub/Mul of two live tensors (residual, gate; broadcasting an axis of 1), Concat of 2-8 branches on channels (ending in a Conv/activation/sum, optionally then max pools), Relu, BatchNormalization, Conv, Pad (into Conv), Conv with rectangular kernels/strides/dilations/asymmetric pads/auto_pad, MaxPool and \
AveragePool (pads, auto_pad, ceil_mode; no dilation; AveragePool count_include_pad=0 with pads), GlobalAveragePool, ReduceMean over H and W, Clip/LeakyRelu/Sigmoid/Tanh/Softplus/Gelu/SiLU/HardSwish/HardSigmoid/Elu/Softsign (Lut8), Flatten/Reshape/Squeeze/Unsqueeze, Transpose of [N, C, H, W] tensors (batch axis first; NCHW→NHWC before a flatten folded), Identity/Dropout/Cast, Softmax/LogSoftmax at the output, \
Scaler, LinearClassifier, LinearRegressor, TreeEnsembleClassifier, TreeEnsembleRegressor, ArgMax/ZipMap/ArrayFeatureExtractor";

fn unsupported(n: &NodeProto, hint: impl Into<String>) -> Error {
    Error::UnsupportedOp { op_type: n.op_type.clone(), node: n.name.clone(), hint: hint.into() }
}

/// The mutable state of the walk.
struct Walk<'g> {
    g: &'g Graph,
    shape: Vec<usize>,
    net_input: Option<Vec<usize>>,
    layers: Vec<Layer>,
    params: Vec<(Vec<f32>, Vec<f32>)>,
    /// `x' = a∘x + b` per input feature, waiting for the first layer.
    pre: Option<(Vec<f64>, Vec<f64>)>,
    /// `(C, H, W)` of a CHW flatten the next dense layer's columns must be reordered for.
    flatten_chw: Option<(usize, usize, usize)>,
    /// Whether the last layer already has its activation (nothing can be folded into it).
    activated: bool,
    /// Zero padding (per side) from a `Pad` node, waiting for the convolution it folds into.
    pad: Option<usize>,
    ended: bool,
    softmax: bool,
    steps: Vec<Step>,
    /// `(H, W, C)` after a `Transpose` to NHWC, waiting for the Flatten it folds into.
    nhwc: Option<(usize, usize, usize)>,
    /// Tensors kept for a residual `Add` (ONNX name, shape), innermost last.
    saved: Vec<(String, Vec<usize>)>,
}

/// Per-element values of a constant broadcast to `n` (a scalar or exactly `n` values).
fn broadcast(c: &Const, n: usize) -> Option<Vec<f64>> {
    let v = c.floats()?;
    match v.len() {
        1 => Some(vec![v[0]; n]),
        l if l == n => Some(v),
        _ => None,
    }
}

impl Walk<'_> {
    fn step(&mut self, n: &NodeProto, mapped: impl Into<String>) {
        self.steps.push(Step { op_type: n.op_type.clone(), node: n.name.clone(), mapped: mapped.into() });
    }

    fn features(&self) -> usize {
        self.shape.iter().product()
    }

    /// The single constant operand of a binary op and whether it is the first operand.
    fn const_operand<'a>(&'a self, n: &NodeProto) -> Option<(&'a Const, bool)> {
        match (self.g.const_input(n, 0), self.g.const_input(n, 1)) {
            (None, Some(c)) => Some((c, false)),
            (Some(c), None) => Some((c, true)),
            _ => None,
        }
    }

    fn push_dense(&mut self, n: &NodeProto, mut w: Vec<f64>, mut b: Vec<f64>, out: usize) -> Result<()> {
        let k = self.features();
        if w.len() != out * k || self.shape.len() != 1 {
            return Err(unsupported(
                n,
                format!("weights of {} values do not fit {out} outputs × {k} inputs of a flat vector", w.len()),
            ));
        }
        if let Some((c, h, wd)) = self.flatten_chw.take() {
            // ONNX flattened in CHW order; the integer engine flattens HWC.
            let mut re = vec![0.0; w.len()];
            for o in 0..out {
                for y in 0..h {
                    for x in 0..wd {
                        for ch in 0..c {
                            re[o * k + (y * wd + x) * c + ch] = w[o * k + ch * h * wd + y * wd + x];
                        }
                    }
                }
            }
            w = re;
        }
        if let Some((a, s)) = self.pre.take() {
            for o in 0..out {
                let row = &mut w[o * k..(o + 1) * k];
                b[o] += row.iter().zip(&s).map(|(wi, si)| wi * si).sum::<f64>();
                row.iter_mut().zip(&a).for_each(|(wi, ai)| *wi *= ai);
            }
        }
        if self.net_input.is_none() {
            self.net_input = Some(self.shape.clone());
        }
        self.layers.push(Layer::Dense { inp: k, out, relu: false });
        self.params.push((w.iter().map(|&v| v as f32).collect(), b.iter().map(|&v| v as f32).collect()));
        self.shape = vec![out];
        self.activated = false;
        Ok(())
    }

    /// `y = x·w + b` folded into the last layer's outputs (per output channel `c`).
    fn fold_into_last(&mut self, n: &NodeProto, mul: &[f64], add: &[f64]) -> Result<()> {
        if self.activated {
            return Err(unsupported(
                n,
                "an affine op after an activation cannot be folded; only before the activation",
            ));
        }
        let Some((w, b)) = self.params.last_mut() else {
            return Err(unsupported(n, "nothing to fold into"));
        };
        let per = w.len() / b.len().max(1);
        for (c, bias) in b.iter_mut().enumerate() {
            let (m, a) = (mul.get(c).copied().unwrap_or(1.0), add.get(c).copied().unwrap_or(0.0));
            *bias = (f64::from(*bias) * m + a) as f32;
            for wi in &mut w[c * per..(c + 1) * per] {
                *wi = (f64::from(*wi) * m) as f32;
            }
        }
        Ok(())
    }

    /// `Add`/`Sub`/`Mul` of the current tensor and one kept by [`Walk::save`] (a residual
    /// connection, a gate), with broadcasting (an axis of 1 against `n`, repeated exactly): the
    /// integer Add op (each input requantized by its own multiplier to the result's calibrated
    /// scale; a subtrahend negated exactly first) or the integer Mul op.
    fn binary_live(&mut self, n: &NodeProto) -> Result<()> {
        let live = n.input.len() == 2 && self.g.const_input(n, 0).is_none() && self.g.const_input(n, 1).is_none();
        let top = self.saved.last().map(|(t, _)| t.clone());
        let Some(top) = top.filter(|t| live && n.input.contains(t)) else {
            return Err(unsupported(
                n,
                "two live inputs are mapped only for Add/Sub/Mul of a tensor and a later tensor computed from it (a residual connection or a gate)",
            ));
        };
        let op = match n.op_type.as_str() {
            "Add" => Binary::Add,
            "Sub" => Binary::Sub { saved_first: n.input[0] == top },
            "Mul" => Binary::Mul,
            _ => {
                return Err(unsupported(
                    n,
                    "Div of two live tensors: the engine has no integer division (a Lut8 reciprocal of the divisor and a Mul would make it supported)",
                ));
            }
        };
        let Some((_, shape)) = self.saved.pop() else { return Err(unsupported(n, "no tensor kept for this op")) };
        let out = broadcast_shapes(&self.shape, &shape).ok_or_else(|| {
            unsupported(
                n,
                format!(
                    "{} of shapes {:?} and {shape:?}: broadcasting is mapped between tensors of one rank where each axis is equal or 1 in one of them",
                    n.op_type, self.shape
                ),
            )
        })?;
        if self.flatten_chw.is_some() || self.pad.is_some() || self.nhwc.is_some() {
            return Err(unsupported(
                n,
                "a binary op right after a flatten, a Transpose or a pending Pad is not mapped",
            ));
        }
        let repeated = if self.shape != shape {
            format!(
                ", the {:?} input repeated to {out:?} by Concat (copies: exact)",
                if self.shape == out { &shape } else { &self.shape }
            )
        } else {
            String::new()
        };
        self.layers.push(Layer::Binary { op, relu: false });
        self.shape = out;
        // Nothing folds into the layer before the result.
        self.activated = true;
        let what = match op {
            Binary::Add => "Add (two i8 tensors, each with its own multiplier to the calibrated sum scale",
            Binary::Sub { .. } => {
                "Add (two i8 tensors; the subtrahend negated exactly, Lut8 q ↦ −1−q with zero point −1−zp; each with its own multiplier to the calibrated difference scale"
            }
            Binary::Mul => "Mul (two i8 tensors, (a − za)·(b − zb) requantized to the calibrated product scale",
        };
        self.step(n, format!("{what}{repeated})"));
        Ok(())
    }

    /// `y = mul·x + add` per channel of a `[C, H, W]` tensor no layer can absorb (after an
    /// activation, a gate, a sum): a 1×1 depthwise Conv2D, one requantization.
    fn depthwise(&mut self, n: &NodeProto, mul: &[f64], add: &[f64]) -> Result<()> {
        let [c, _, _] = self.shape[..] else {
            return Err(unsupported(
                n,
                "an affine op by constants after an activation is mapped on [C, H, W] tensors (as a depthwise 1×1 Conv2D); a flat vector's must come right after its layer",
            ));
        };
        if self.pad.is_some() || self.pre.is_some() {
            return Err(unsupported(n, "an affine op by constants after a pending Pad or preprocessing"));
        }
        self.layers.push(Layer::Conv { in_c: c, out_c: c, k: 1, pad: 0, stride: 1, groups: c, relu: false });
        self.params.push((mul.iter().map(|&v| v as f32).collect(), add.iter().map(|&v| v as f32).collect()));
        self.activated = false;
        self.step(
            n,
            format!("Conv2D 1×1 depthwise, {c} channels (x·a + b per channel: no layer before it to fold into)"),
        );
        Ok(())
    }

    /// A Concat input must be requantized to the joined scale by the layer that produces it,
    /// or by the layer right before the max pools it ends in (clamping commutes with the max).
    fn branch_end_ok(&self, n: &NodeProto) -> Result<()> {
        let last = self.layers.iter().rev().find(|l| !crate::net::is_max_pool(l));
        let ok = matches!(
            last,
            Some(
                Layer::Conv { .. }
                    | Layer::ConvWindow { .. }
                    | Layer::Dense { .. }
                    | Layer::Pointwise(_)
                    | Layer::Binary { .. }
            )
        );
        if !ok || self.flatten_chw.is_some() || self.pad.is_some() || self.shape.len() != 3 {
            return Err(unsupported(
                n,
                "each input of a Concat of live tensors must be a [C, H, W] tensor ending in a Conv, an activation or an Add/Sub/Mul on its branch, optionally followed by max pools (that layer is requantized to the joined scale); a branch ending in an average pool or with no such layer (only a pool of the shared input) would need an extra Requantize",
            ));
        }
        Ok(())
    }

    /// Ends one branch of a Concat (current tensor `name`): keeps it and goes back to the
    /// tensor every branch starts from (kept for the next branch too).
    fn branch(&mut self, concat: &NodeProto, name: &str) -> Result<()> {
        self.branch_end_ok(concat)?;
        let Some(start) = self.saved.pop() else { return Err(unsupported(concat, "no branch input kept")) };
        self.layers.push(Layer::Branch);
        let end = std::mem::replace(&mut self.shape, start.1.clone());
        self.saved.push((name.to_string(), end));
        self.saved.push(start);
        self.activated = true;
        Ok(())
    }

    /// Joins the `k` branch ends (the kept ones and the current tensor `cur`) on the channels.
    fn concat(&mut self, n: &NodeProto, cur: &str, k: usize) -> Result<()> {
        self.branch_end_ok(n)?;
        let axis = attr_i(n, "axis", 1);
        if !(axis == 1 || axis == -3) {
            return Err(unsupported(n, "a Concat of branches is mapped on the channel axis (1) only"));
        }
        if self.saved.len() < k || !(2..=MAX_BRANCHES).contains(&k) {
            return Err(unsupported(n, format!("a Concat of {k} branches (2 to {MAX_BRANCHES} are mapped)")));
        }
        self.saved.pop();
        let mut ends = self.saved.split_off(self.saved.len() - (k - 1));
        ends.push((cur.to_string(), self.shape.clone()));
        // Position i of the result is the branch whose end is the Concat's input i.
        let mut order = [0; MAX_BRANCHES];
        let mut used = [false; MAX_BRANCHES];
        for (i, input) in n.input.iter().enumerate() {
            let b = ends.iter().position(|(e, _)| e == input).filter(|&b| i < k && !used[b]);
            let Some(b) = b else {
                return Err(unsupported(n, "the Concat's inputs must be exactly the branch ends, each once"));
            };
            used[b] = true;
            order[i] = b;
        }
        if n.input.len() != k {
            return Err(unsupported(n, "the Concat's inputs must be exactly the branch ends, each once"));
        }
        let (h, w) = (self.shape[1], self.shape[2]);
        let mut counts = Vec::with_capacity(k);
        for &b in &order[..k] {
            let &[c, hb, wb] = &ends[b].1[..] else { return Err(unsupported(n, "Concat joins [C, H, W] tensors")) };
            if (hb, wb) != (h, w) {
                return Err(unsupported(n, format!("Concat of shapes {:?} and {:?}", ends[b].1, self.shape)));
            }
            counts.push(c);
        }
        self.layers.push(Layer::ConcatSaved { branches: k, order });
        self.shape = vec![counts.iter().sum(), h, w];
        self.activated = true;
        self.step(
            n,
            format!(
                "Concat {} channels (every branch end requantized to one scale: the union of their calibrated ranges)",
                counts.iter().map(usize::to_string).collect::<Vec<_>>().join("+")
            ),
        );
        Ok(())
    }

    /// A `Transpose` of the live tensor where it is static: the identity permutation (removed),
    /// NCHW → NHWC right before a flatten (folded into it: the engine flattens HWC), and its
    /// inverse NHWC → NCHW (cancels it).
    fn transpose(&mut self, n: &NodeProto) -> Result<()> {
        let rank = self.shape.len() + 1;
        let perm: Vec<i64> = {
            let p = attr_ints(n, "perm");
            if p.is_empty() { (0..rank as i64).rev().collect() } else { p }
        };
        if perm.len() != rank {
            return Err(unsupported(n, format!("perm {perm:?} for a tensor of rank {rank}")));
        }
        if perm.iter().enumerate().all(|(i, &p)| p == i as i64) {
            self.step(n, "removed (identity permutation)");
            return Ok(());
        }
        // NCHW → NHWC folds into a flatten right after it (or its inverse cancels it).
        let flattened = n.output.first().is_some_and(|o| {
            self.g.consumers(o).iter().all(|m| matches!(m.op_type.as_str(), "Flatten" | "Reshape" | "Transpose"))
        });
        match (&perm[..], &self.shape[..], self.nhwc) {
            ([0, 2, 3, 1], &[c, h, w], None) if flattened => {
                self.nhwc = Some((h, w, c));
                self.shape = vec![h, w, c];
                self.step(n, "folded into the next flatten (NHWC flatten order = the engine's HWC order)");
            }
            ([0, 3, 1, 2], _, Some((h, w, c))) => {
                self.nhwc = None;
                self.shape = vec![c, h, w];
                self.step(n, "removed (NHWC back to NCHW cancels the Transpose before it)");
            }
            (&[0, a, b, c], &[_, _, _], None) if self.flatten_chw.is_none() && self.pad.is_none() => {
                let p = [a, b, c].map(|v| usize::try_from(v - 1).unwrap_or(usize::MAX));
                let mut sorted = p;
                sorted.sort_unstable();
                if sorted != [0, 1, 2] {
                    return Err(unsupported(n, format!("perm {perm:?} is not a permutation of 4 axes")));
                }
                if self.net_input.is_none() {
                    self.net_input = Some(self.shape.clone());
                }
                self.layers.push(Layer::Transpose { perm: p });
                self.shape = p.iter().map(|&k| self.shape[k]).collect();
                // A copy: the layer before keeps its scale, but nothing may fold into it now.
                self.activated = true;
                self.step(
                    n,
                    format!(
                        "Transpose {perm:?} (the engine's Transpose of the HWC tensor; values copied) → {:?}",
                        self.shape
                    ),
                );
            }
            _ => {
                return Err(unsupported(
                    n,
                    format!(
                        "Transpose perm {perm:?} of a live tensor of shape {:?}: mapped for [N, C, H, W] tensors with the batch axis first (the engine's Transpose), NCHW→NHWC right before a Flatten/Reshape (folded), its inverse, or the identity (Transposes of constants are folded when the file is read)",
                        self.shape
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Keeps the current tensor `name` for a residual `Add` later on the chain.
    fn save(&mut self, n: &NodeProto, name: &str) -> Result<()> {
        if self.pre.is_some() || self.pad.is_some() || self.flatten_chw.is_some() || self.ended {
            return Err(unsupported(n, "a branch right after input preprocessing, a Pad, a flatten or the output"));
        }
        if self.net_input.is_none() {
            self.net_input = Some(self.shape.clone());
        }
        self.layers.push(Layer::Save);
        self.saved.push((name.to_string(), self.shape.clone()));
        // The kept value is the layer's output as it is now: nothing may fold into that layer.
        self.activated = true;
        Ok(())
    }

    /// The output channel count of the last layer (0 if none).
    fn last_channels(&self) -> usize {
        self.params.last().map_or(0, |(_, b)| b.len())
    }

    fn elementwise(&mut self, n: &NodeProto) -> Result<()> {
        let Some((c, first)) = self.const_operand(n) else {
            return self.binary_live(n);
        };
        let c = c.clone();
        let op = n.op_type.as_str();
        if self.layers.is_empty() {
            // Preprocessing on the input features.
            if self.shape.len() != 1 {
                return Err(unsupported(n, "preprocessing is folded only for flat feature vectors"));
            }
            let k = self.features();
            let v = broadcast(&c, k).ok_or_else(|| {
                unsupported(n, format!("constant of shape {:?} does not broadcast to {k} features", c.dims))
            })?;
            let (mut a, mut s) = self.pre.take().unwrap_or((vec![1.0; k], vec![0.0; k]));
            for i in 0..k {
                match (op, first) {
                    ("Add", _) => s[i] += v[i],
                    ("Sub", false) => s[i] -= v[i],
                    ("Sub", true) => (a[i], s[i]) = (-a[i], v[i] - s[i]),
                    ("Mul", _) => (a[i], s[i]) = (a[i] * v[i], s[i] * v[i]),
                    ("Div", false) => (a[i], s[i]) = (a[i] / v[i], s[i] / v[i]),
                    _ => return Err(unsupported(n, "a constant divided by the input is not affine")),
                }
            }
            self.pre = Some((a, s));
            self.step(n, "folded into the first layer (input preprocessing)");
            return Ok(());
        }
        // Folded into the layer that produced the tensor when nothing non-linear lies between
        // (a max pool commutes with adding and with non-negative factors only); otherwise a
        // depthwise 1×1 Conv2D on a [C, H, W] tensor.
        let last = self.layers.last();
        let param_layer = matches!(last, Some(Layer::Conv { .. } | Layer::ConvWindow { .. } | Layer::Dense { .. }));
        let linear_pool =
            matches!(last, Some(Layer::GlobalAvgPool | Layer::AvgPool { .. } | Layer::PoolWindow { avg: true, .. }));
        let max_pool = matches!(last, Some(Layer::MaxPool { .. } | Layer::PoolWindow { avg: false, .. }));
        let fold_ok = !self.activated && (param_layer || linear_pool || max_pool);
        let ch = match self.shape[..] {
            [c, _, _] if !fold_ok => c,
            _ => self.last_channels(),
        };
        let v = broadcast(&c, ch).ok_or_else(|| {
            unsupported(n, format!("constant of shape {:?} does not broadcast per channel ({ch})", c.dims))
        })?;
        let (mul, add): (Vec<f64>, Vec<f64>) = match (op, first) {
            ("Add", _) => (vec![1.0; ch], v),
            ("Sub", false) => (vec![1.0; ch], v.iter().map(|x| -x).collect()),
            ("Sub", true) => (vec![-1.0; ch], v),
            ("Mul", _) => (v, vec![0.0; ch]),
            ("Div", false) => (v.iter().map(|x| 1.0 / x).collect(), vec![0.0; ch]),
            _ => {
                return Err(unsupported(
                    n,
                    "a constant divided by a tensor is not affine (x+c, x−c, c−x, x·c and x/c are)",
                ));
            }
        };
        if fold_ok && !(max_pool && mul.iter().any(|&m| m < 0.0)) {
            self.fold_into_last(n, &mul, &add)?;
            self.step(n, "folded into the previous layer's bias/weights");
            Ok(())
        } else {
            self.depthwise(n, &mul, &add)
        }
    }

    fn gemm(&mut self, n: &NodeProto) -> Result<()> {
        let wc = self
            .g
            .const_input(n, 1)
            .ok_or_else(|| unsupported(n, "the weight operand must be a constant initializer"))?
            .clone();
        let w = wc.floats().ok_or_else(|| unsupported(n, "string weights"))?;
        let [r, c] = wc.dims[..] else {
            return Err(unsupported(n, format!("weights of rank {} (2 needed)", wc.dims.len())));
        };
        let gemm = n.op_type == "Gemm";
        if gemm && attr_i(n, "transA", 0) != 0 {
            return Err(unsupported(n, "transA=1 (a transposed activation) is not mapped"));
        }
        let trans_b = gemm && attr_i(n, "transB", 0) != 0;
        let alpha = if gemm { f64::from(attr_f(n, "alpha", 1.0)) } else { 1.0 };
        let (out, k) = if trans_b { (r, c) } else { (c, r) };
        let mut dense = vec![0.0; out * k];
        for o in 0..out {
            for i in 0..k {
                dense[o * k + i] = alpha * if trans_b { w[o * k + i] } else { w[i * out + o] };
            }
        }
        let mut bias = vec![0.0; out];
        if gemm && let Some(cc) = self.g.const_input(n, 2) {
            let beta = f64::from(attr_f(n, "beta", 1.0));
            let v = broadcast(cc, out)
                .ok_or_else(|| unsupported(n, format!("bias of shape {:?} for {out} outputs", cc.dims)))?;
            bias.iter_mut().zip(v).for_each(|(b, v)| *b = beta * v);
        } else if gemm && n.input.get(2).is_some_and(|s| !s.is_empty()) {
            return Err(unsupported(n, "the bias operand must be a constant"));
        }
        self.push_dense(n, dense, bias, out)?;
        self.step(n, format!("FullyConnected {k}→{out}"));
        Ok(())
    }

    fn conv(&mut self, n: &NodeProto) -> Result<()> {
        let wc = self
            .g
            .const_input(n, 1)
            .ok_or_else(|| unsupported(n, "the kernel must be a constant initializer"))?
            .clone();
        let [oc, icg, kh, kw] = wc.dims[..] else { return Err(unsupported(n, "only 2-D convolutions are mapped")) };
        let [c, h, w] = self.shape[..] else {
            return Err(unsupported(n, format!("input shape {:?} is not [C, H, W]", self.shape)));
        };
        let groups = attr_i(n, "group", 1).max(1) as usize;
        let strides = attr_ints(n, "strides");
        let pads = attr_ints(n, "pads");
        let dil = attr_ints(n, "dilations");
        let auto = attr_s(n, "auto_pad", "NOTSET");
        if kh == 0 || kw == 0 {
            return Err(unsupported(n, "an empty kernel"));
        }
        let two = |v: &[i64], d: usize| -> Option<(usize, usize)> {
            match v {
                [] => Some((d, d)),
                [a, b] if *a >= 0 && *b >= 0 => Some((*a as usize, *b as usize)),
                _ => None,
            }
        };
        let (Some(stride), Some(dilation)) = (two(&strides, 1), two(&dil, 1)) else {
            return Err(unsupported(n, "strides/dilations must have two non-negative values"));
        };
        let pads4 = match pads[..] {
            [] => [0; 4],
            // ONNX: [top, left, bottom, right].
            [t, l, b, r] if [t, l, b, r].iter().all(|&p| p >= 0) => [t as usize, l as usize, b as usize, r as usize],
            _ => return Err(unsupported(n, "pads must be four non-negative values")),
        };
        if stride.0 == 0 || stride.1 == 0 || dilation.0 == 0 || dilation.1 == 0 {
            return Err(unsupported(n, "a zero stride or dilation"));
        }
        let big = |v: usize| v > usize::from(u16::MAX);
        if [kh, kw, stride.0, stride.1, dilation.0, dilation.1].into_iter().chain(pads4).any(big) {
            return Err(unsupported(n, "kernel, stride, dilation and pads must fit the engine's u16 window fields"));
        }
        let pads4 = match auto.as_str() {
            "NOTSET" => pads4,
            "VALID" => [0; 4],
            "SAME_UPPER" | "SAME_LOWER" => {
                let upper = auto == "SAME_UPPER";
                let (t, b) = same_pads(h, kh, stride.0, dilation.0, upper);
                let (l, r) = same_pads(w, kw, stride.1, dilation.1, upper);
                [t, l, b, r]
            }
            other => return Err(unsupported(n, format!("auto_pad {other}"))),
        };
        if c != icg * groups || oc % groups != 0 {
            return Err(unsupported(
                n,
                format!("kernel {:?} with {groups} groups does not fit {c} input channels", wc.dims),
            ));
        }
        if self.pre.is_some() {
            return Err(unsupported(
                n,
                "input preprocessing before a convolution is not folded; normalize the images beforehand",
            ));
        }
        let bias = match self.g.const_input(n, 2) {
            Some(b) => broadcast(b, oc).ok_or_else(|| unsupported(n, "bias shape"))?,
            None => vec![0.0; oc],
        };
        if self.net_input.is_none() {
            self.net_input = Some(self.shape.clone());
        }
        // A Pad node before the convolution: zeros are what the integer Conv2D pads with.
        let extra = self.pad.take().unwrap_or(0);
        let pads4 = pads4.map(|p| p + extra);
        let geometry = Geometry { kernel: (kh, kw), stride, dilation, pads: pads4 };
        let (oh, ow) = geometry.out(h, w);
        if oh == 0
            || ow == 0
            || h + pads4[0] + pads4[2] < dilation.0 * (kh - 1) + 1
            || w + pads4[1] + pads4[3] < dilation.1 * (kw - 1) + 1
        {
            return Err(unsupported(n, "the kernel is larger than the padded input"));
        }
        let wv = wc.floats().ok_or_else(|| unsupported(n, "string weights"))?;
        let square = kh == kw && stride.0 == stride.1 && dilation == (1, 1) && pads4.iter().all(|&p| p == pads4[0]);
        if square {
            let (pad, stride) = (pads4[0], stride.0);
            self.layers.push(Layer::Conv { in_c: c, out_c: oc, k: kh, pad, stride, groups, relu: false });
            self.step(n, format!("Conv2D {kh}×{kw}/{stride} pad {pad}, {c}→{oc} channels, {groups} group(s)"));
        } else {
            self.layers.push(Layer::ConvWindow { in_c: c, out_c: oc, geometry, groups, relu: false });
            self.step(
                n,
                format!(
                    "Conv2D {kh}×{kw}, stride {}×{}, dilation {}×{}, pads (top, left, bottom, right) {pads4:?}, {c}→{oc} channels, {groups} group(s)",
                    stride.0, stride.1, dilation.0, dilation.1
                ),
            );
        }
        self.params.push((wv.iter().map(|&v| v as f32).collect(), bias.iter().map(|&v| v as f32).collect()));
        self.shape = vec![oc, oh, ow];
        self.activated = false;
        Ok(())
    }

    fn batch_norm(&mut self, n: &NodeProto) -> Result<()> {
        let get = |i: usize| self.g.const_input(n, i).and_then(|c| broadcast(c, self.last_channels()));
        let (Some(gamma), Some(beta), Some(mean), Some(var)) = (get(1), get(2), get(3), get(4)) else {
            return Err(unsupported(
                n,
                "BatchNormalization needs constant scale, bias, mean and variance per channel of the previous layer",
            ));
        };
        if self.layers.is_empty() {
            return Err(unsupported(n, "BatchNormalization on the input is not folded; it must follow a Conv or Gemm"));
        }
        let eps = f64::from(attr_f(n, "epsilon", 1e-5));
        let scale: Vec<f64> = gamma.iter().zip(&var).map(|(g, v)| g / (v + eps).sqrt()).collect();
        let shift: Vec<f64> = beta.iter().zip(&mean).zip(&scale).map(|((b, m), s)| b - m * s).collect();
        self.fold_into_last(n, &scale, &shift)?;
        self.step(n, "folded into the previous layer");
        Ok(())
    }

    fn relu(&mut self, n: &NodeProto) -> Result<()> {
        if let Some(Layer::Binary { relu, .. }) = self.layers.last_mut()
            && !*relu
        {
            *relu = true;
            self.step(n, "fused into the Add/Mul's clamp (lo = zero point)");
            return Ok(());
        }
        if matches!(self.layers.last(), Some(Layer::ConcatSaved { .. } | Layer::Transpose { .. })) {
            return self.pointwise(n, Pointwise::Relu, "Lut8 (Relu after a Concat or a Transpose)");
        }
        if self.activated {
            return Err(unsupported(n, "a second activation in a row"));
        }
        match self.layers.last_mut() {
            Some(Layer::Dense { relu, .. } | Layer::Conv { relu, .. } | Layer::ConvWindow { relu, .. }) => *relu = true,
            _ => return self.pointwise(n, Pointwise::Relu, "Lut8 (Relu: no layer before it to fuse into)"),
        }
        self.activated = true;
        self.step(n, "fused into the previous layer's requantization (clamp lo = zero point)");
        Ok(())
    }

    /// A pointwise function: a Lut8 from the calibrated input grid to the calibrated output grid.
    fn pointwise(&mut self, n: &NodeProto, f: Pointwise, what: &str) -> Result<()> {
        if self.pre.is_some() {
            return Err(unsupported(n, "a pointwise function on preprocessed inputs before any layer"));
        }
        self.layers.push(Layer::Pointwise(f));
        self.activated = true;
        self.step(n, what.to_string());
        Ok(())
    }

    /// A `Pad` (constant zeros, equal on every spatial side) kept for the next convolution.
    fn pad(&mut self, n: &NodeProto) -> Result<()> {
        let pads: Vec<i64> = match self.g.const_input(n, 1) {
            Some(c) => c.floats().unwrap_or_default().iter().map(|&v| v as i64).collect(),
            None => attr_ints(n, "pads"),
        };
        let value = self.g.const_input(n, 2).and_then(Const::floats).and_then(|v| v.first().copied()).unwrap_or(0.0);
        let mode = attr_s(n, "mode", "constant");
        let hint = "Pad is folded into the next Conv: constant mode, value 0, the same pad on every side of H and W, none on N and C";
        let [0, 0, t, l, 0, 0, b, r] = pads[..] else { return Err(unsupported(n, hint)) };
        if mode != "constant" || value != 0.0 || t != l || t != b || t != r || t < 0 || self.pad.is_some() {
            return Err(unsupported(n, hint));
        }
        if n.input.get(3).is_some_and(|s| !s.is_empty()) {
            return Err(unsupported(n, "Pad with an axes input"));
        }
        self.pad = Some(t as usize);
        self.step(n, format!("folded into the next Conv2D's padding ({t} per side)"));
        Ok(())
    }

    fn pool(&mut self, n: &NodeProto) -> Result<()> {
        let [c, h, w] = self.shape[..] else {
            return Err(unsupported(n, format!("input shape {:?} is not [C, H, W]", self.shape)));
        };
        if n.op_type == "ReduceMean" {
            let mut axes = attr_ints(n, "axes");
            if axes.is_empty() {
                axes = self
                    .g
                    .const_input(n, 1)
                    .and_then(Const::floats)
                    .unwrap_or_default()
                    .iter()
                    .map(|&a| a as i64)
                    .collect();
            }
            let mut axes: Vec<i64> = axes.iter().map(|&a| if a < 0 { a + 4 } else { a }).collect();
            axes.sort_unstable();
            if axes != [2, 3] {
                return Err(unsupported(
                    n,
                    format!("ReduceMean over axes {axes:?}: only the spatial axes [2, 3] are mapped (as AvgPool)"),
                ));
            }
            self.layers.push(Layer::GlobalAvgPool);
            self.shape = vec![c, 1, 1];
            if attr_i(n, "keepdims", 1) == 0 {
                self.layers.push(Layer::Flatten);
                self.shape = vec![c];
                self.step(n, format!("AvgPool {h}×{w} (mean over H, W), then Reshape to [{c}]"));
            } else {
                self.step(n, format!("AvgPool {h}×{w} (mean over H, W)"));
            }
            return Ok(());
        }
        if n.op_type == "GlobalAveragePool" {
            self.layers.push(Layer::GlobalAvgPool);
            self.shape = vec![c, 1, 1];
            self.step(n, format!("AvgPool {h}×{w} (whole image)"));
            return Ok(());
        }
        let avg = n.op_type == "AveragePool";
        let Ok([kh, kw]) = <[i64; 2]>::try_from(attr_ints(n, "kernel_shape").as_slice()) else {
            return Err(unsupported(n, "a 2-D kernel_shape is needed"));
        };
        let st = match attr_ints(n, "strides")[..] {
            [] => [1, 1],
            [a, b] => [a, b],
            _ => return Err(unsupported(n, "strides must have two values")),
        };
        if attr_ints(n, "dilations").iter().any(|&d| d != 1) {
            return Err(unsupported(
                n,
                "a dilated pool: the engine's MaxPool/AvgPool take no dilation (docs/arithmetic.md §5, both dilation fields 1); allowing dilation in the pools' window (fixpoint-ml) would make it supported",
            ));
        }
        let fits = |v: i64| (1..=i64::from(u16::MAX)).contains(&v);
        if ![kh, kw, st[0], st[1]].into_iter().all(fits) {
            return Err(unsupported(n, "kernel and strides must be positive and within u16"));
        }
        let (kh, kw, sh, sw) = (kh as usize, kw as usize, st[0] as usize, st[1] as usize);
        let auto = attr_s(n, "auto_pad", "NOTSET");
        let mut p4 = match (auto.as_str(), &attr_ints(n, "pads")[..]) {
            ("NOTSET", []) | ("VALID", _) => [0; 4],
            ("NOTSET", &[t, l, b, r]) if [t, l, b, r].iter().all(|&p| (0..=i64::from(u16::MAX)).contains(&p)) => {
                [t, l, b, r].map(|p| p as usize)
            }
            ("SAME_UPPER" | "SAME_LOWER", _) => {
                let upper = auto == "SAME_UPPER";
                let (t, b) = same_pads(h, kh, sh, 1, upper);
                let (l, r) = same_pads(w, kw, sw, 1, upper);
                [t, l, b, r]
            }
            _ => return Err(unsupported(n, format!("pads must be four non-negative values (auto_pad {auto})"))),
        };
        let mut notes = Vec::new();
        if auto.starts_with("SAME") {
            notes.push(format!("auto_pad {auto} → explicit pads"));
        }
        if attr_i(n, "ceil_mode", 0) != 0 {
            // The output size rounds up: the cells past the input are more padding at the bottom
            // and right, left out of the max and of the average's count like any padding. A
            // last window that would start in that padding is dropped (ONNX and PyTorch agree).
            let extra = |d: usize, b: usize, e: usize, k: usize, s: usize| -> usize {
                let span = d + b + e;
                if span < k {
                    return 0;
                }
                let mut out = (span - k).div_ceil(s) + 1;
                if (out - 1) * s >= d + b {
                    out -= 1;
                }
                ((out - 1) * s + k).saturating_sub(span)
            };
            let (eh, ew) = (extra(h, p4[0], p4[2], kh, sh), extra(w, p4[1], p4[3], kw, sw));
            if eh + ew > 0 {
                notes.push(format!("ceil_mode → {eh} more padding row(s) at the bottom, {ew} column(s) at the right"));
            }
            p4[2] += eh;
            p4[3] += ew;
        }
        // §5: no window may be all padding.
        if p4[0] >= kh || p4[2] >= kh || p4[1] >= kw || p4[3] >= kw {
            return Err(unsupported(
                n,
                format!(
                    "pads (top, left, bottom, right) {p4:?} for a {kh}×{kw} kernel: a pad as large as the kernel (a window of padding only) is not allowed by the engine's pools"
                ),
            ));
        }
        if avg && p4.iter().any(|&p| p > 0) && attr_i(n, "count_include_pad", 0) != 0 {
            return Err(unsupported(
                n,
                "count_include_pad=1: the integer AvgPool divides by the non-padding cells only (ONNX count_include_pad=0)",
            ));
        }
        if h + p4[0] + p4[2] < kh || w + p4[1] + p4[3] < kw {
            return Err(unsupported(n, "the kernel is larger than the padded input"));
        }
        let notes = if notes.is_empty() { String::new() } else { format!("; {}", notes.join("; ")) };
        let name = if avg { "AvgPool" } else { "MaxPool" };
        if kh == kw && sh == sw && p4 == [0; 4] {
            let (k, stride) = (kh, sh);
            self.layers.push(if avg { Layer::AvgPool { k, stride } } else { Layer::MaxPool { k, stride } });
            let out = |d: usize| d.saturating_sub(k) / stride + 1;
            self.shape = vec![c, out(h), out(w)];
            let what = if avg { "AvgPool (same scale; ties away from zero)" } else { "MaxPool" };
            self.step(n, format!("{what} {k}×{k}/{stride}{notes}"));
            return Ok(());
        }
        let geometry = Geometry { kernel: (kh, kw), stride: (sh, sw), dilation: (1, 1), pads: p4 };
        let (oh, ow) = geometry.out(h, w);
        self.layers.push(Layer::PoolWindow { avg, geometry });
        self.shape = vec![c, oh, ow];
        let how = if avg {
            " (padding not counted: count_include_pad=0; same scale; ties away from zero)"
        } else {
            " (padding ignored)"
        };
        self.step(n, format!("{name} {kh}×{kw}, stride {sh}×{sw}, pads (top, left, bottom, right) {p4:?}{how}{notes}"));
        Ok(())
    }

    /// Whether `n` (Reshape or Unsqueeze) turns the flat `[c]` into `[c, 1, 1]` (as a gate is
    /// shaped to multiply a feature map).
    fn unflattens(&self, n: &NodeProto, c: usize) -> bool {
        let ints = |i: usize| match self.g.const_input(n, i) {
            Some(Const { data: ConstData::Int(v), .. }) => Some(v.clone()),
            _ => None,
        };
        match n.op_type.as_str() {
            // [N, C, 1, 1] with N given as −1 or 0 (copied), or the batch itself.
            "Reshape" => ints(1).is_some_and(|d| {
                d.len() == 4 && d[0] <= 1 && d[1..].iter().zip([c, 1, 1]).all(|(&x, y)| x == y as i64)
            }),
            "Unsqueeze" => {
                let mut axes = attr_ints(n, "axes");
                if axes.is_empty() {
                    axes = ints(1).unwrap_or_default();
                }
                let mut axes: Vec<i64> = axes.iter().map(|&a| if a < 0 { a + 4 } else { a }).collect();
                axes.sort_unstable();
                axes == [2, 3]
            }
            _ => false,
        }
    }

    fn reshape(&mut self, n: &NodeProto) -> Result<()> {
        if let Some((h, w, c)) = self.nhwc.take() {
            if self.net_input.is_none() {
                self.net_input = Some(vec![c, h, w]);
            }
            // ONNX flattens [H, W, C] in HWC order: the engine's own flatten order.
            self.layers.push(Layer::Flatten);
            self.shape = vec![h * w * c];
            self.step(n, "Reshape (flatten of the NHWC tensor: already the engine's HWC order)");
            return Ok(());
        }
        if self.layers.is_empty() && self.pre.is_none() && n.op_type == "Reshape" {
            // A reshape of the raw input (e.g. 64 pixels to [1, 8, 8]) only changes the model's input shape.
            if let Some(Const { data: ConstData::Int(dims), .. }) = self.g.const_input(n, 1) {
                let rest: Vec<usize> = dims.iter().skip(1).map(|&d| d.max(1) as usize).collect();
                if rest.iter().product::<usize>() == self.features() && dims.iter().skip(1).all(|&d| d > 0) {
                    self.shape = rest;
                    self.step(n, "input shape (no op)");
                    return Ok(());
                }
            }
        }
        match self.shape[..] {
            [c, h, w] => {
                self.layers.push(Layer::Flatten);
                if h * w > 1 {
                    self.flatten_chw = Some((c, h, w));
                }
                self.shape = vec![c * h * w];
                self.step(n, "Reshape (flatten; CHW order carried into the next layer's columns)");
            }
            [c] if self.unflattens(n, c) => {
                self.layers.push(Layer::Unflatten);
                self.shape = vec![c, 1, 1];
                self.step(n, format!("Reshape [{c}] → [{c}, 1, 1] (the same element order in HWC)"));
            }
            [_] => self.step(n, "removed (already flat)"),
            _ => {
                return Err(unsupported(
                    n,
                    format!("reshape of shape {:?}: only flattening [C, H, W] is mapped", self.shape),
                ));
            }
        }
        Ok(())
    }

    fn linear(&mut self, n: &NodeProto) -> Result<Option<Vec<String>>> {
        let k = self.features();
        let coef = attr_floats(n, "coefficients")?;
        let mut icpt = attr_floats(n, "intercepts")?;
        let classifier = n.op_type == "LinearClassifier";
        let classes: Option<Vec<String>> = classifier.then(|| {
            let ints = attr_ints(n, "classlabels_ints");
            if ints.is_empty() {
                attr_strings(n, "classlabels_strings")
            } else {
                ints.iter().map(i64::to_string).collect()
            }
        });
        if classifier && attr_i(n, "multi_class", 0) != 0 {
            // multi_class only changes the probabilities, not the argmax.
        }
        let rows = coef.len().checked_div(k).unwrap_or(0);
        if rows == 0 || rows * k != coef.len() {
            return Err(unsupported(n, format!("{} coefficients for {k} features", coef.len())));
        }
        icpt.resize(rows, 0.0);
        let (w, b, out) = if classes.as_ref().is_some_and(|c| c.len() == 2) && rows == 1 {
            // Binary layout: one score, positive when above 0; the other class scores 0.
            let mut w = vec![0.0; k];
            w.extend(&coef);
            (w, vec![0.0, icpt[0]], 2)
        } else {
            (coef, icpt, rows)
        };
        self.push_dense(n, w, b, out)?;
        self.step(n, format!("FullyConnected {k}→{out} (scores; argmax for the label)"));
        Ok(classes)
    }
}

/// Rewrites every split on `x' = a∘x + s` as a split on the raw feature `x`:
/// `a·x + s ≤ t ⇔ x ≤ (t − s)/a` for `a > 0`; for `a < 0` the test flips (`x ≥ c ⇔ ¬(x < c)`),
/// so the split becomes the strict one with its children swapped (and `<` becomes `¬(x ≤ c)`).
fn fold_affine_into_splits(e: &mut crate::ensemble::Ensemble, a: &[f64], s: &[f64]) -> std::result::Result<(), String> {
    use crate::ensemble::Split;
    for node in e.trees.iter_mut().flatten().filter(|n| n.feature >= 0) {
        let f = node.feature as usize;
        let (Some(&af), Some(&sf)) = (a.get(f), s.get(f)) else {
            return Err(format!("a split on feature {f} outside the scaler's {} features", a.len()));
        };
        if af == 0.0 || !af.is_finite() {
            return Err(format!("the scaler's factor for feature {f} is {af}"));
        }
        node.threshold = (node.threshold - sf) / af;
        if af < 0.0 {
            node.split = match node.split {
                Split::Leq => Split::Lt,
                Split::Lt => Split::Leq,
            };
            std::mem::swap(&mut node.left, &mut node.right);
        }
    }
    Ok(())
}

/// `(next, op)` when the two consumers of `cur` are an `Add`/`Sub`/`Mul`/`Div` of two live
/// tensors and another node (the branch the walk follows, which must come back to the op).
fn residual_pair<'a>(
    g: &Graph,
    a: &'a NodeProto,
    b: &'a NodeProto,
    cur: &str,
) -> Option<(&'a NodeProto, &'a NodeProto)> {
    let binary = |n: &NodeProto| {
        matches!(n.op_type.as_str(), "Add" | "Sub" | "Mul" | "Div")
            && n.input.len() == 2
            && n.input.iter().filter(|i| i.as_str() == cur).count() == 1
            && g.const_input(n, 0).is_none()
            && g.const_input(n, 1).is_none()
    };
    match (binary(a), binary(b)) {
        (true, false) => Some((b, a)),
        (false, true) => Some((a, b)),
        _ => None,
    }
}

/// ONNX `auto_pad` SAME_UPPER/SAME_LOWER along one axis: `(begin, end)` padding so that the
/// output has `⌈d/s⌉` cells; the odd cell goes to the end (UPPER) or the beginning (LOWER).
fn same_pads(d: usize, k: usize, s: usize, dil: usize, upper: bool) -> (usize, usize) {
    let out = d.div_ceil(s.max(1));
    let total = ((out.max(1) - 1) * s + (k.max(1) - 1) * dil + 1).saturating_sub(d);
    let small = total / 2;
    if upper { (small, total - small) } else { (total - small, small) }
}

/// The shape two per-row (NCHW without N) shapes broadcast to, when they have one rank and
/// every axis is equal or 1 in one of them.
fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    (a.len() == b.len())
        .then(|| {
            a.iter()
                .zip(b)
                .map(|(&p, &q)| match (p, q) {
                    _ if p == q => Some(p),
                    (1, m) | (m, 1) => Some(m),
                    _ => None,
                })
                .collect()
        })
        .flatten()
}

/// The `Concat` that the single-consumer chains starting at each of `starts` all end in
/// (branches of one tensor, none empty, at most [`MAX_BRANCHES`]).
fn concat_of_branches<'a>(g: &'a Graph, starts: &[&'a NodeProto]) -> Option<&'a NodeProto> {
    let end = |start: &'a NodeProto| -> Option<&'a NodeProto> {
        let mut n = start;
        if n.op_type == "Concat" {
            return None;
        }
        for _ in 0..g.nodes.len() {
            let next: Vec<&NodeProto> = g.consumers(n.output.first()?);
            let [m] = next.as_slice() else { return None };
            if m.op_type == "Concat" {
                return Some(*m);
            }
            n = *m;
        }
        None
    };
    if !(2..=MAX_BRANCHES).contains(&starts.len()) {
        return None;
    }
    let first = end(starts.first()?)?;
    starts.iter().skip(1).all(|s| end(s).is_some_and(|c| std::ptr::eq(c, first))).then_some(first)
}

/// `(Sigmoid, Mul)` when the two consumers of a tensor compute `x·sigmoid(x)`.
pub(crate) fn silu_pair<'a>(a: &'a NodeProto, b: &'a NodeProto) -> Option<(&'a NodeProto, &'a NodeProto)> {
    let (sig, mul) = match (a.op_type.as_str(), b.op_type.as_str()) {
        ("Sigmoid", "Mul") => (a, b),
        ("Mul", "Sigmoid") => (b, a),
        _ => return None,
    };
    sig.output.first().filter(|o| mul.input.contains(o)).map(|_| (sig, mul))
}

/// The shape of one row of the graph's (float) input: every axis but the batch fixed, non-empty
/// and at most [`super::MAX_INPUT_ELEMENTS`] elements. Both mappers start from it.
pub(crate) fn input_shape(g: &Graph) -> Result<Vec<usize>> {
    let (name, et, dims) = &g.input;
    if *et != elem::FLOAT && *et != elem::DOUBLE {
        return Err(Error::Onnx(format!("input {name:?} has element type {et}; the importer maps float inputs")));
    }
    let per_row: Option<Vec<usize>> = dims.iter().skip(1).copied().collect();
    let input_shape = per_row.filter(|s| !s.is_empty()).ok_or_else(|| {
        Error::Onnx(format!("input {name:?} has shape {dims:?}; every dimension but the batch must be fixed"))
    })?;
    if input_shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .is_none_or(|n| n == 0 || n > super::MAX_INPUT_ELEMENTS)
    {
        return Err(Error::Onnx(format!(
            "input {name:?} has shape {dims:?}: empty or over {} elements per row",
            super::MAX_INPUT_ELEMENTS
        )));
    }
    Ok(input_shape)
}

/// Maps `g`; `classify` overrides the detection of classification vs regression.
pub(crate) fn map(g: &Graph, classify: Option<bool>) -> Result<Mapped> {
    let input_shape = input_shape(g)?;
    let name = &g.input.0;
    let mut w = Walk {
        g,
        shape: input_shape.clone(),
        net_input: None,
        layers: Vec::new(),
        params: Vec::new(),
        pre: None,
        flatten_chw: None,
        activated: false,
        pad: None,
        ended: false,
        softmax: false,
        steps: Vec::new(),
        nhwc: None,
        saved: Vec::new(),
    };
    let mut cur = name.clone();
    let mut ml_classes: Option<Vec<String>> = None;
    let mut ml_kind: Option<bool> = None;
    let mut trees_plan: Option<Trees> = None;
    // Open Concats: the node, the first nodes of the branches still to walk, the branch count.
    let mut branches: Vec<(&NodeProto, Vec<&NodeProto>, usize)> = Vec::new();
    loop {
        let consumers: Vec<&NodeProto> =
            g.consumers(&cur).into_iter().filter(|n| !HEADS.contains(&n.op_type.as_str())).collect();
        if let [a, b] = consumers.as_slice()
            && let Some((sig, mul)) = silu_pair(a, b)
        {
            if w.ended {
                return Err(unsupported(mul, "only label/probability post-processing may follow Softmax/LogSoftmax"));
            }
            w.pointwise(mul, Pointwise::Silu, "Lut8 (SiLU: x·sigmoid(x), with the Sigmoid)")?;
            w.step(sig, "part of SiLU");
            cur =
                mul.output.first().cloned().ok_or_else(|| Error::Onnx(format!("node {:?} has no output", mul.name)))?;
            continue;
        }
        let n = match consumers.as_slice() {
            [] => break,
            [n] => *n,
            [a, b] if residual_pair(g, a, b, &cur).is_some() => {
                let Some((next, add)) = residual_pair(g, a, b, &cur) else { break };
                w.save(add, &cur)?;
                next
            }
            many if concat_of_branches(g, many).is_some() => {
                let Some(c) = concat_of_branches(g, many) else { break };
                w.save(c, &cur)?;
                branches.push((c, many[1..].to_vec(), many.len()));
                many[0]
            }
            many => {
                let first = many[0];
                return Err(unsupported(
                    first,
                    format!(
                        "tensor {cur:?} feeds {} nodes ({}); only a single chain is mapped (branches need the integer Add/Concat ops wired in)",
                        many.len(),
                        many.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        };
        // A branch of a Concat reached it: go back and walk the next one.
        let n = match branches.last_mut() {
            Some((c, rest, _)) if std::ptr::eq(*c, n) && !rest.is_empty() => {
                w.branch(n, &cur)?;
                rest.remove(0)
            }
            _ => n,
        };
        let op = n.op_type.as_str();
        if w.nhwc.is_some() && !matches!(op, "Flatten" | "Reshape" | "Transpose") && !PASS.contains(&op) {
            return Err(unsupported(
                n,
                "after a Transpose to NHWC only a Flatten/Reshape (or the inverse Transpose) is mapped: the layers read NCHW",
            ));
        }
        if w.ended && !PASS.contains(&op) && op != "Reshape" && op != "Flatten" {
            return Err(unsupported(n, "only label/probability post-processing may follow Softmax/LogSoftmax"));
        }
        match op {
            "Cast" => {
                let to = attr_i(n, "to", i64::from(elem::FLOAT)) as i32;
                if to != elem::FLOAT && to != elem::DOUBLE {
                    return Err(unsupported(
                        n,
                        format!("Cast to element type {to} inside the model; only float casts are removed"),
                    ));
                }
                w.step(n, "removed");
            }
            _ if PASS.contains(&op) => w.step(n, "removed"),
            "Flatten" | "Reshape" | "Squeeze" | "Unsqueeze" => {
                if w.ended {
                    w.step(n, "removed (after the output)");
                } else {
                    w.reshape(n)?;
                }
            }
            "Gemm" | "MatMul" => w.gemm(n)?,
            "Transpose" => w.transpose(n)?,
            "Concat" => match branches.pop() {
                Some((c, rest, k)) if std::ptr::eq(c, n) && rest.is_empty() => w.concat(n, &cur, k)?,
                _ => {
                    return Err(unsupported(
                        n,
                        format!(
                            "Concat is mapped for 2 to {MAX_BRANCHES} branches that start from one tensor and are single chains of mapped ops"
                        ),
                    ));
                }
            },
            "Add" | "Sub" | "Mul" | "Div" => w.elementwise(n)?,
            "Relu" => w.relu(n)?,
            "BatchNormalization" => w.batch_norm(n)?,
            "Conv" => w.conv(n)?,
            "MaxPool" | "GlobalAveragePool" | "AveragePool" | "ReduceMean" => w.pool(n)?,
            "Pad" => w.pad(n)?,
            "Softmax" | "LogSoftmax" => {
                if !matches!(w.layers.last(), Some(Layer::Dense { .. })) || w.activated {
                    return Err(unsupported(
                        n,
                        "Softmax/LogSoftmax is mapped only right after the last dense layer (as argmax)",
                    ));
                }
                if attr(n, "axis").is_some_and(|a| a.i != -1 && a.i != 1) {
                    return Err(unsupported(n, "softmax over an axis other than the class axis"));
                }
                w.ended = true;
                w.softmax = true;
                w.step(n, "dropped: monotone, so ArgMax of the logits is the label");
            }
            "Scaler" => {
                let off: Vec<f64> =
                    attr(n, "offset").map(|a| a.floats.iter().map(|&v| f64::from(v)).collect()).unwrap_or_default();
                let sc: Vec<f64> =
                    attr(n, "scale").map(|a| a.floats.iter().map(|&v| f64::from(v)).collect()).unwrap_or_default();
                let k = w.features();
                let fit = |v: &Vec<f64>, d: f64| match v.len() {
                    0 => Some(vec![d; k]),
                    1 => Some(vec![v[0]; k]),
                    l if l == k => Some(v.clone()),
                    _ => None,
                };
                let (Some(off), Some(sc)) = (fit(&off, 0.0), fit(&sc, 1.0)) else {
                    return Err(unsupported(n, format!("offset/scale lengths do not match {k} features")));
                };
                if !w.layers.is_empty() || w.pre.is_some() || w.shape.len() != 1 {
                    return Err(unsupported(n, "Scaler is folded only as the first op on a flat feature vector"));
                }
                // y = (x - offset)·scale = scale∘x - offset∘scale.
                let s: Vec<f64> = off.iter().zip(&sc).map(|(o, s)| -o * s).collect();
                w.pre = Some((sc, s));
                w.step(n, "folded into the first layer (input preprocessing)");
            }
            "LinearClassifier" | "LinearRegressor" => {
                ml_classes = w.linear(n)?;
                ml_kind = Some(op == "LinearClassifier");
                break;
            }
            "TreeEnsembleClassifier" | "TreeEnsembleRegressor" => {
                if !w.layers.is_empty() || w.shape.len() != 1 {
                    return Err(unsupported(
                        n,
                        "tree ensembles are mapped only on the feature vector (optionally after a Scaler or constant Sub/Mul/Div/Add)",
                    ));
                }
                let mut t = trees::read(n, w.features())?;
                let folded = match w.pre.take() {
                    Some((a, s)) => {
                        fold_affine_into_splits(&mut t.ensemble, &a, &s).map_err(|h| unsupported(n, h))?;
                        ", the scaler folded into its thresholds"
                    }
                    None => "",
                };
                w.step(
                    n,
                    format!("TreeEnsemble ({} trees, {} outputs{folded})", t.ensemble.trees.len(), t.ensemble.outputs),
                );
                ml_classes = t.classes.clone();
                ml_kind = Some(op == "TreeEnsembleClassifier");
                trees_plan = Some(t);
                break;
            }
            _ => match super::pointwise::function(g, n) {
                Some(f) => w.pointwise(n, f, &format!("Lut8 ({}: exact table, calibrated output scale)", f.name()))?,
                None => return Err(unsupported(n, format!("no mapping for this op; mapped ops are: {SUPPORTED}"))),
            },
        }
        cur = n.output.first().cloned().ok_or_else(|| Error::Onnx(format!("node {:?} has no output", n.name)))?;
    }
    // Post-processing nodes the walk did not enter.
    for n in g.nodes.iter().filter(|n| HEADS.contains(&n.op_type.as_str())) {
        w.step(
            n,
            if n.op_type == "ArgMax" { "ArgMax" } else { "label/probability output (argmax index → class label)" },
        );
    }
    let afe_classes =
        g.nodes.iter().filter(|n| n.op_type == "ArrayFeatureExtractor").find_map(|n| match g.const_input(n, 0) {
            Some(Const { data: ConstData::Int(v), .. }) => Some(v.iter().map(i64::to_string).collect::<Vec<_>>()),
            Some(Const { data: ConstData::Str(v), .. }) => Some(v.clone()),
            _ => None,
        });
    let classes = ml_classes.or(afe_classes);
    let int_output = g.outputs.iter().any(|(_, t)| *t == elem::INT64 || *t == elem::STRING);
    let classify =
        classify.or(ml_kind).unwrap_or(w.softmax || classes.is_some() || int_output || w.last_channels() > 1);
    let head = if classify { Head::Classes } else { Head::Values };
    if let Some(mut t) = trees_plan {
        if !classify {
            t.classes = None;
        }
        return Ok(Mapped { plan: Plan::Trees(t), classes, classify, input_shape, steps: w.steps, notes: Vec::new() });
    }
    if w.layers.is_empty() {
        return Err(Error::Onnx(
            "the graph has no layer the importer maps (no Gemm/MatMul/Conv/linear/tree op on the input's path)".into(),
        ));
    }
    if w.activated || !matches!(w.layers.last(), Some(Layer::Dense { .. })) {
        return Err(Error::Onnx("the network must end in a dense layer without activation (logits or values)".into()));
    }
    let net_input = w.net_input.clone().unwrap_or_else(|| input_shape.clone());
    let net = Net::from_values(net_input, w.layers, w.params, head)?;
    Ok(Mapped { plan: Plan::Net(net), classes, classify, input_shape, steps: w.steps, notes: Vec::new() })
}

#[cfg(test)]
mod tests {
    use tract_onnx::pb::{
        AttributeProto, GraphProto, ModelProto, TensorShapeProto, TypeProto, ValueInfoProto, tensor_shape_proto,
        type_proto,
    };

    use super::*;

    /// A graph reading a float `[1, 2, 6, 6]` image through `nodes` (the first reads `x`).
    fn image_graph(nodes: Vec<NodeProto>) -> Graph {
        let dim = [1, 2, 6, 6]
            .iter()
            .map(|&d| tensor_shape_proto::Dimension {
                value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
                ..Default::default()
            })
            .collect();
        let tensor = type_proto::Tensor { elem_type: elem::FLOAT, shape: Some(TensorShapeProto { dim }) };
        let x = ValueInfoProto {
            name: "x".into(),
            r#type: Some(TypeProto { value: Some(type_proto::Value::TensorType(tensor)), ..Default::default() }),
            ..Default::default()
        };
        let graph = GraphProto { node: nodes, input: vec![x], ..Default::default() };
        Graph::from_proto(ModelProto { graph: Some(graph), ..Default::default() }).unwrap()
    }

    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto { name: name.into(), r#type: 7, ints: v.to_vec(), ..Default::default() }
    }

    fn pool(op: &str, attrs: Vec<AttributeProto>) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            name: "pool".into(),
            input: vec!["x".into()],
            output: vec!["y".into()],
            attribute: attrs,
            ..Default::default()
        }
    }

    #[test]
    fn pools_the_engine_cannot_express_are_typed_errors() {
        let k3 = || ints("kernel_shape", &[3, 3]);
        let cases = [
            // A dilated window: the engine's pools take dilation 1 only.
            (pool("MaxPool", vec![k3(), ints("dilations", &[2, 2])]), "dilat"),
            // A pad as large as the kernel: a window of padding only (ceil_mode never makes one:
            // a last window that would start in the padding is dropped).
            (pool("MaxPool", vec![k3(), ints("pads", &[0, 0, 3, 0]), ints("ceil_mode", &[])]), "padding only"),
            (
                pool("AveragePool", vec![k3(), ints("pads", &[1, 1, 1, 1]), ints("count_include_pad", &[])]),
                "count_include_pad",
            ),
        ];
        for (mut node, want) in cases {
            for a in &mut node.attribute {
                if a.name == "ceil_mode" || a.name == "count_include_pad" {
                    a.r#type = 2;
                    a.i = 1;
                }
            }
            match map(&image_graph(vec![node]), None) {
                Err(Error::UnsupportedOp { node, hint, .. }) => {
                    assert_eq!(node, "pool");
                    assert!(hint.contains(want), "{hint}");
                }
                other => panic!("{want}: {other:?}"),
            }
        }
    }

    #[test]
    fn live_binary_ops_the_engine_cannot_express_are_typed_errors() {
        // x [2, 6, 6] and its per-channel mean, flat ([2], keepdims 0) or [2, 1, 1] (keepdims 1).
        let graph = |op: &str, keepdims: i64| {
            let mean = NodeProto {
                op_type: "ReduceMean".into(),
                name: "mean".into(),
                input: vec!["x".into()],
                output: vec!["m".into()],
                attribute: vec![
                    ints("axes", &[2, 3]),
                    AttributeProto { name: "keepdims".into(), r#type: 2, i: keepdims, ..Default::default() },
                ],
                ..Default::default()
            };
            let bin = NodeProto {
                op_type: op.into(),
                name: "bin".into(),
                input: vec!["x".into(), "m".into()],
                output: vec!["y".into()],
                ..Default::default()
            };
            image_graph(vec![mean, bin])
        };
        for (op, keepdims, want) in [("Mul", 0, "of one rank"), ("Div", 1, "no integer division")] {
            match map(&graph(op, keepdims), None) {
                Err(Error::UnsupportedOp { op_type, node, hint }) => {
                    assert_eq!((op_type.as_str(), node.as_str()), (op, "bin"));
                    assert!(hint.contains(want), "{hint}");
                }
                other => panic!("{op}: {other:?}"),
            }
        }
        // The same shapes with Sub and keepdims 1 map (the network then lacks its dense layer).
        match map(&graph("Sub", 1), None) {
            Err(Error::Onnx(msg)) => assert!(msg.contains("dense layer"), "{msg}"),
            other => panic!("Sub: {other:?}"),
        }
    }

    #[test]
    fn auto_pad_same_gives_the_onnx_padding() {
        // ONNX: out = ⌈d/s⌉, total = (out − 1)·s + (k − 1)·dil + 1 − d, the odd cell at the end
        // (SAME_UPPER) or the beginning (SAME_LOWER).
        assert_eq!(same_pads(8, 2, 1, 1, true), (0, 1));
        assert_eq!(same_pads(8, 2, 1, 1, false), (1, 0));
        assert_eq!(same_pads(7, 3, 2, 1, true), (1, 1)); // out 4: 3·2 + 3 − 7 = 2
        assert_eq!(same_pads(6, 3, 2, 2, false), (2, 1)); // out 3: 2·2 + 5 − 6 = 3
        assert_eq!(same_pads(5, 1, 1, 1, true), (0, 0));
    }
}
