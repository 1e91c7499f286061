//! Pre-quantized ONNX → integer ops directly, keeping the file's scales and zero points.
//!
//! Two layouts, as onnxruntime's `quantize_static` writes them:
//!
//! - **QDQ**: `QuantizeLinear`/`DequantizeLinear` pairs around float ops; weights and biases are
//!   integer initializers behind a `DequantizeLinear`.
//! - **QOperator**: `QLinearMatMul`, `QLinearConv`, `QGemm` (and `QLinearSigmoid`,
//!   `QLinearLeakyRelu`) on integer tensors, with float ops between a `DequantizeLinear` and the
//!   next `QuantizeLinear`.
//!
//! The walk follows the graph's single chain. A live tensor is either an i8 value with the
//! file's per-tensor `(scale, zero point)` (u8 tensors become i8 by `q − 128`, exactly), or an
//! **accumulator**: a FullyConnected/Conv2D whose requantization is not emitted yet, because
//! ops that join it (a float bias `Add`, `Relu`/`Clip` as the clamp, `MaxPool`, which commutes
//! with a monotone requantization) may still follow. The next `QuantizeLinear` fixes its output
//! `(scale, zero point)`; the real factor `s_x·s_w[c] / s_y` becomes the integer multiplier and
//! shift of docs/arithmetic.md §4 (`multiplier::requant_multiplier`, relative error ≤ 2^-31).
//! The file's roundings are kept: a QLinear op's output that the file dequantizes is rounded to
//! that op's own scale, then requantized at the next `QuantizeLinear`, as onnxruntime does; a
//! float bias `Add` on an i8 tensor is a 1×1 depthwise Conv2D (`127·(q − Z)` plus the bias at
//! `s/127`) rounded once at the next `QuantizeLinear`. An accumulator at the output (logits)
//! stays i32 when its scale is one per tensor. A float `Gemm` right after a global average pool
//! takes the mean exactly (weights repeated over the positions).
//!
//! Where this still differs from onnxruntime (reported by the import, measured in
//! quantize/tests/onnx.rs): onnxruntime requantizes with an f32 product rounded half to even;
//! here the product is exact and rounds half up (§4), so results differ only within the f32
//! product's error of a half-integer or exactly on one. A bias held at `s/127` can move a value
//! within 0.006 of an output step across a tie. Layers the file leaves float on dequantized
//! values are integer here (weights symmetric i8, one scale; a pooled mean not followed by a
//! float Gemm is rounded to the input's grid, §5).

use std::collections::BTreeMap;

use fixpoint_ml::format::{Model, ModelBuilder, Quant};
use fixpoint_ml::ops::{
    ArgMax, AvgPool, Conv2d, FullyConnected, Lut8, MaxPool, Op, Requant, Requantize, Reshape, Window,
};
use fixpoint_ml::{DType, Tensor, TensorData};
use tract_onnx::pb::NodeProto;

use super::Encoding;
use super::graph::{Const, Graph, attr, attr_f, attr_i, attr_ints, attr_s, elem};
use super::map::{Mapped, Plan, Step, input_shape};
use super::pointwise;
use crate::error::{Error, Result};
use crate::lower::activation_quant;
use crate::multiplier::{quant, requant_multiplier};
use crate::pointwise::{range, silu, table};

/// Ops whose presence makes a graph pre-quantized.
const QUANT_OPS: [&str; 7] = [
    "QuantizeLinear",
    "DequantizeLinear",
    "QLinearMatMul",
    "QLinearConv",
    "QGemm",
    "QLinearSigmoid",
    "QLinearLeakyRelu",
];

/// A pre-quantized model, lowered.
#[derive(Debug)]
pub(crate) struct Quantized {
    /// The integer model.
    pub(crate) model: Model,
    /// How float rows become its input (the file's input `QuantizeLinear`).
    pub(crate) encoding: Encoding,
}

/// Whether `g` holds quantization ops (and is mapped here rather than by [`super::map`]).
pub(crate) fn is_prequantized(g: &Graph) -> bool {
    g.nodes.iter().any(|n| QUANT_OPS.contains(&n.op_type.as_str()))
}

fn unsupported(n: &NodeProto, hint: impl Into<String>) -> Error {
    Error::UnsupportedOp { op_type: n.op_type.clone(), node: n.name.clone(), hint: hint.into() }
}

/// An integer initializer behind a `DequantizeLinear`: `real = scale[a]·(q − zp[a])` along `axis`.
#[derive(Debug, Clone)]
struct QConst {
    dims: Vec<usize>,
    q: Vec<i64>,
    scale: Vec<f64>,
    zp: Vec<i64>,
    axis: usize,
}

impl QConst {
    fn index(&self, i: usize) -> usize {
        if self.scale.len() <= 1 {
            return 0;
        }
        let inner: usize = self.dims.iter().skip(self.axis + 1).product();
        (i / inner.max(1)) % self.dims.get(self.axis).copied().unwrap_or(1).max(1)
    }

    fn real(&self) -> Vec<f64> {
        (0..self.q.len())
            .map(|i| {
                let a = self.index(i);
                let s = self.scale.get(a).or(self.scale.first()).copied().unwrap_or(1.0);
                let z = self.zp.get(a).or(self.zp.first()).copied().unwrap_or(0);
                s * (self.q[i] - z) as f64
            })
            .collect()
    }
}

/// Weights of a dense or convolution layer as this walk reads them.
enum Weights {
    /// Integer weights with their scales (per tensor, or per output channel along `axis`).
    Int(QConst),
    /// Float weights (quantized here, per tensor: symmetric i8).
    Float(Const),
}

/// The kind of an accumulator.
#[derive(Debug, Clone)]
enum Layer {
    Dense {
        k: usize,
        n: usize,
    },
    Conv {
        window: Window,
        groups: u32,
        dims: [usize; 4],
    },
    /// `y_c = 127·(x_c − Z) + bias_c` per channel: a 1×1 depthwise Conv2D (on `[1, 1, C]`
    /// between two Reshapes when the tensor is flat), for a float bias added to an i8 tensor.
    Channelwise {
        c: usize,
        flat: bool,
    },
}

/// A FullyConnected/Conv2D not yet requantized.
#[derive(Debug, Clone)]
struct Acc {
    layer: Layer,
    input: u32,
    input_zp: i32,
    /// fixpoint layout: `[N, K]` or `[OC, KH, KW, C/g]`.
    weights: Vec<i8>,
    /// Real value of one accumulator step, per output channel.
    s_acc: Vec<f64>,
    /// Real bias per output channel.
    bias: Vec<f64>,
    /// The producing QLinear op's own output quantization.
    target: Option<(f64, i32)>,
    /// Real clamp bounds (Relu: `lo = 0`).
    lo: Option<f64>,
    hi: Option<f64>,
    /// MaxPools to apply after the requantization (they commute with it).
    pools: Vec<Window>,
    /// The file dequantized the QLinear op's output: its own quantization is final (rounded
    /// there, as onnxruntime does), only a clamp and MaxPools may still join it.
    fixed: bool,
}

/// The live tensor.
#[derive(Debug, Clone)]
enum Cur {
    /// The raw float input.
    Input,
    /// An i8 value: `real = s·(q − zp)`.
    Int { v: u32, s: f64, zp: i32 },
    /// An accumulator.
    Acc(Box<Acc>),
}

struct Walk<'g> {
    g: &'g Graph,
    b: ModelBuilder,
    cur: Cur,
    /// Per-row shape in ONNX layout (CHW for images).
    shape: Vec<usize>,
    flatten_chw: Option<(usize, usize, usize)>,
    /// A global average pool not emitted yet: `(H, W)` of the live i8 tensor, which is still the
    /// un-pooled `[H, W, C]`. A float Gemm right after it takes the mean exactly (its weights
    /// repeated over the positions, the accumulator scale divided by `H·W`) instead of rounding
    /// the mean to the input's grid as AvgPool must.
    mean: Option<(usize, usize)>,
    dq: BTreeMap<String, QConst>,
    encoding: Option<Encoding>,
    ended: bool,
    softmax: bool,
    steps: Vec<Step>,
    notes: Vec<String>,
}

fn q_err(msg: impl Into<String>) -> Error {
    Error::Quantize(msg.into())
}

fn to_u16(v: usize, what: &str) -> Result<u16> {
    u16::try_from(v).map_err(|_| q_err(format!("{what} {v} too large")))
}

/// ONNX's QuantizeLinear rounds half to even; so does this, to pick the same clamp bounds.
fn round_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 { 2.0 * (x / 2.0).round() } else { r }
}

impl Walk<'_> {
    fn step(&mut self, n: &NodeProto, mapped: impl Into<String>) {
        self.steps.push(Step { op_type: n.op_type.clone(), node: n.name.clone(), mapped: mapped.into() });
    }

    fn elem_type(&self, name: &str) -> i32 {
        let g = self.g.proto.graph.as_ref();
        g.and_then(|g| g.initializer.iter().find(|t| t.name == name).map(|t| t.data_type))
            .or_else(|| {
                g.and_then(|g| {
                    g.node
                        .iter()
                        .filter(|n| n.op_type == "Constant" && n.output.first().is_some_and(|o| o == name))
                        .find_map(|n| attr(n, "value").and_then(|a| a.t.as_ref()).map(|t| t.data_type))
                })
            })
            .unwrap_or(0)
    }

    /// Constant input `i` of `n` as floats.
    fn floats(&self, n: &NodeProto, i: usize) -> Result<Vec<f64>> {
        self.g
            .const_input(n, i)
            .and_then(Const::floats)
            .ok_or_else(|| unsupported(n, format!("input {i} must be a numeric constant")))
    }

    /// The per-tensor `(scale, zero point)` at inputs `i`, `i + 1` of `n`, the zero point moved
    /// to the i8 range when the tensor is u8.
    fn qparams(&self, n: &NodeProto, i: usize) -> Result<(f64, i32)> {
        let s = self.floats(n, i)?;
        let zp_name = n.input.get(i + 1).filter(|s| !s.is_empty());
        let (zp, unsigned) = match zp_name {
            Some(name) => (self.floats(n, i + 1)?, self.elem_type(name) == 2),
            None => (vec![0.0], false),
        };
        match (s.as_slice(), zp.as_slice()) {
            ([s], [z]) if *s > 0.0 && s.is_finite() => {
                let z = *z as i32 - if unsigned { 128 } else { 0 };
                if !(-128..=127).contains(&z) {
                    return Err(unsupported(n, format!("zero point {z} outside the 8-bit range")));
                }
                Ok((*s, z))
            }
            _ => Err(unsupported(
                n,
                "activations must be quantized per tensor with a positive scale (per-axis scales are mapped for weights only)",
            )),
        }
    }

    /// Resolves every `DequantizeLinear` of a constant.
    fn collect_dq(&mut self) -> Result<()> {
        for n in self.g.nodes.iter().filter(|n| n.op_type == "DequantizeLinear") {
            let Some(c) = self.g.const_input(n, 0) else { continue };
            let q = match &c.data {
                super::graph::ConstData::Int(v) => v.clone(),
                _ => return Err(unsupported(n, "a DequantizeLinear of a non-integer constant")),
            };
            let scale = self.floats(n, 1)?;
            let zp = if n.input.get(2).is_some_and(|s| !s.is_empty()) { self.floats(n, 2)? } else { vec![0.0] };
            let rank = c.dims.len() as i64;
            let axis = attr_i(n, "axis", 1);
            let axis = if axis < 0 { axis + rank } else { axis }.max(0) as usize;
            let out = n.output.first().cloned().unwrap_or_default();
            self.dq.insert(
                out,
                QConst { dims: c.dims.clone(), q, scale, zp: zp.iter().map(|&z| z as i64).collect(), axis },
            );
        }
        Ok(())
    }

    fn weights(&self, n: &NodeProto, i: usize) -> Result<Weights> {
        let name = n.input.get(i).cloned().unwrap_or_default();
        if let Some(q) = self.dq.get(&name) {
            return Ok(Weights::Int(q.clone()));
        }
        if let Some(c) = self.g.consts.get(&name) {
            if let super::graph::ConstData::Int(v) = &c.data {
                if !n.op_type.starts_with("QLinear") && n.op_type != "QGemm" {
                    return Err(unsupported(n, "integer weights without a DequantizeLinear"));
                }
                // QLinear ops take the integer weights directly; their scales follow.
                let (s, z) = (self.floats(n, i + 1)?, self.floats(n, i + 2)?);
                let axis = if n.op_type == "QLinearConv" { 0 } else { c.dims.len().saturating_sub(1) };
                return Ok(Weights::Int(QConst {
                    dims: c.dims.clone(),
                    q: v.clone(),
                    scale: s,
                    zp: z.iter().map(|&z| z as i64).collect(),
                    axis,
                }));
            }
            return Ok(Weights::Float(c.clone()));
        }
        Err(unsupported(n, "the weights must be a constant (or a DequantizeLinear of one)"))
    }

    /// The real bias at input `i` (a float constant or a DequantizeLinear of an integer one).
    fn bias(&self, n: &NodeProto, i: usize, out: usize) -> Result<Vec<f64>> {
        let Some(name) = n.input.get(i).filter(|s| !s.is_empty()) else { return Ok(vec![0.0; out]) };
        let v = match self.dq.get(name) {
            Some(q) => q.real(),
            None => self.floats(n, i)?,
        };
        match v.len() {
            1 => Ok(vec![v[0]; out]),
            l if l == out => Ok(v),
            l => Err(unsupported(n, format!("bias of {l} values for {out} outputs"))),
        }
    }

    /// The live i8 tensor, emitting a pending accumulator at its own output quantization.
    fn int(&mut self, n: &NodeProto) -> Result<(u32, f64, i32)> {
        match self.cur.clone() {
            Cur::Int { v, s, zp } => Ok((v, s, zp)),
            Cur::Acc(a) => {
                let Some(t) = a.target else {
                    return Err(unsupported(
                        n,
                        "this op reads a float tensor the file never quantizes; add a QuantizeLinear before it",
                    ));
                };
                let v = self.emit(&a, Some(t))?;
                self.cur = Cur::Int { v, s: t.0, zp: t.1 };
                Ok((v, t.0, t.1))
            }
            Cur::Input => Err(unsupported(n, "the float input must pass a QuantizeLinear first")),
        }
    }

    /// Emits an accumulator: requantized to `target`, or i32 when `target` is `None`.
    fn emit(&mut self, a: &Acc, target: Option<(f64, i32)>) -> Result<u32> {
        let c = a.s_acc.len();
        let mut bias = Vec::with_capacity(c);
        for (&b, &s) in a.bias.iter().zip(&a.s_acc) {
            let q = (b / s).round();
            if q.abs() >= 2f64.powi(30) {
                return Err(q_err(format!("bias {b} too large for the accumulator scale {s:e}")));
            }
            bias.push(q as i32);
        }
        let wshape = match a.layer {
            Layer::Dense { k, n } => vec![n, k],
            Layer::Conv { dims, .. } => dims.to_vec(),
            Layer::Channelwise { c, .. } => vec![c, 1, 1, 1],
        };
        let weights = self.b.tensor(Tensor::i8(wshape, a.weights.clone())?);
        let bias = self.b.tensor(Tensor::i32(vec![c], bias)?);
        let requant = match target {
            Some((s, z)) => {
                let (mut m, mut sh) = (Vec::with_capacity(c), Vec::with_capacity(c));
                for &sa in &a.s_acc {
                    let (mi, ni) = requant_multiplier(sa / s)?;
                    m.push(mi);
                    sh.push(ni);
                }
                let bound = |r: f64| (i64::from(z) + round_even(r / s) as i64).clamp(-128, 127) as i32;
                let (lo, hi) = (a.lo.map_or(-128, bound), a.hi.map_or(127, bound));
                let multiplier = self.b.tensor(Tensor::i32(vec![c], m)?);
                let shift = self.b.tensor(Tensor::new(vec![c], TensorData::U8(sh))?);
                Some(Requant { multiplier, shift, zero_point: z, lo, hi })
            }
            None if a.lo.is_some() || a.hi.is_some() => {
                return Err(q_err("a clamp on an output accumulator that the file never quantizes"));
            }
            None => None,
        };
        let op = match a.layer {
            Layer::Dense { .. } => {
                Op::FullyConnected(FullyConnected { weights, bias, input_zero_point: a.input_zp, requant })
            }
            Layer::Conv { window, groups, .. } => {
                Op::Conv2d(Conv2d { weights, bias, input_zero_point: a.input_zp, window, groups, requant })
            }
            Layer::Channelwise { c, .. } => {
                let groups = u32::try_from(c).map_err(|_| q_err("too many channels"))?;
                let window = Window::new(1, 1);
                Op::Conv2d(Conv2d { weights, bias, input_zero_point: a.input_zp, window, groups, requant })
            }
        };
        let mut v = self.b.op(op, &[a.input]);
        for &window in &a.pools {
            v = self.b.op(Op::MaxPool(MaxPool { window }), &[v]);
        }
        if let Layer::Channelwise { c, flat: true } = a.layer {
            let cu = u32::try_from(c).map_err(|_| q_err("too many channels"))?;
            v = self.b.op(Op::Reshape(Reshape { shape: vec![cu] }), &[v]);
        }
        Ok(v)
    }

    /// An i8 → i8 requantization (also Relu/Clip on an i8 tensor: same scale, clamped).
    fn requantize(&mut self, v: u32, (s_in, z_in): (f64, i32), (s, z): (f64, i32), lo: i32, hi: i32) -> Result<u32> {
        let (m, n) = requant_multiplier(s_in / s)?;
        let multiplier = self.b.tensor(Tensor::i32(vec![1], vec![m])?);
        let shift = self.b.tensor(Tensor::new(vec![1], TensorData::U8(vec![n]))?);
        let requant = Requant { multiplier, shift, zero_point: z, lo, hi };
        Ok(self.b.op(Op::Requantize(Requantize { input_zero_point: z_in, requant }), &[v]))
    }

    fn quantize_linear(&mut self, n: &NodeProto) -> Result<()> {
        let (s, z) = self.qparams(n, 1)?;
        match self.cur.clone() {
            Cur::Input => {
                let (hwc, chw) = match self.shape[..] {
                    [c, h, w] => (vec![h, w, c], Some((c, h, w))),
                    _ => (self.shape.clone(), None),
                };
                let v = self.b.input(DType::I8, hwc, quant(s, z)?);
                self.encoding = Some(Encoding::I8 { scale: s, zero_point: z, chw });
                self.cur = Cur::Int { v, s, zp: z };
                self.step(n, format!("model input i8, scale {s:.6e}, zero point {z}"));
            }
            Cur::Acc(a) if a.fixed => {
                // Rounded to the QLinear op's own scale first, then to this one, as onnxruntime does.
                let t = a.target.ok_or_else(|| q_err("a fixed accumulator without its quantization"))?;
                let mut v = self.emit(&a, Some(t))?;
                if (t.0 - s).abs() > s * 1e-7 || t.1 != z {
                    v = self.requantize(v, t, (s, z), -128, 127)?;
                }
                self.cur = Cur::Int { v, s, zp: z };
                self.step(
                    n,
                    format!("Requantize to scale {s:.6e}, zero point {z} (a second rounding, as in the file)"),
                );
            }
            Cur::Acc(a) => {
                let v = self.emit(&a, Some((s, z)))?;
                let what = match a.layer {
                    Layer::Dense { .. } => "FullyConnected",
                    Layer::Conv { .. } => "Conv2D",
                    Layer::Channelwise { .. } => "the bias Add (1×1 depthwise Conv2D)",
                };
                self.cur = Cur::Int { v, s, zp: z };
                self.step(n, format!("{what}'s requantization to scale {s:.6e}, zero point {z}"));
            }
            Cur::Int { v, s: s0, zp: z0 } => {
                if (s0 - s).abs() <= s * 1e-7 && z0 == z {
                    self.step(n, "removed (same quantization)");
                } else {
                    let v = self.requantize(v, (s0, z0), (s, z), -128, 127)?;
                    self.cur = Cur::Int { v, s, zp: z };
                    self.step(n, format!("Requantize to scale {s:.6e}, zero point {z}"));
                }
            }
        }
        Ok(())
    }

    /// Gemm/MatMul on a dequantized input, QLinearMatMul and QGemm.
    fn dense(&mut self, n: &NodeProto) -> Result<()> {
        let op = n.op_type.as_str();
        let early = if matches!(op, "QLinearMatMul" | "QGemm") { 3 } else { 1 };
        if self.mean.is_some() && !matches!(self.weights(n, early)?, Weights::Float(_)) {
            self.emit_mean()?;
        }
        let (x, s_x, z_x) = self.int(n)?;
        let (w_idx, b_idx) = match op {
            "QLinearMatMul" => (3, None),
            "QGemm" => (3, Some(6)),
            "Gemm" => (1, Some(2)),
            _ => (1, None),
        };
        if matches!(op, "QLinearMatMul" | "QGemm") {
            let (s_a, z_a) = self.qparams(n, 1)?;
            if (s_a - s_x).abs() > s_x * 1e-6 || z_a != z_x {
                return Err(unsupported(n, "the input's scale/zero point differ from its QuantizeLinear's"));
            }
        }
        let gemm = matches!(op, "Gemm" | "QGemm");
        if gemm && attr_i(n, "transA", 0) != 0 {
            return Err(unsupported(n, "transA=1 is not mapped"));
        }
        let trans_b = gemm && attr_i(n, "transB", 0) != 0;
        let alpha = if gemm { f64::from(attr_f(n, "alpha", 1.0)) } else { 1.0 };
        if alpha <= 0.0 {
            return Err(unsupported(n, "alpha must be positive"));
        }
        let k = self.shape.iter().product::<usize>();
        let positions = self.mean.map_or(1, |(h, w)| h * w);
        let (x, positions) = match (self.mean.take(), self.cur.clone()) {
            (Some(_), Cur::Int { v, .. }) => {
                let total = u32::try_from(k * positions).map_err(|_| q_err("tensor too large"))?;
                (self.b.op(Op::Reshape(Reshape { shape: vec![total] }), &[v]), positions)
            }
            _ => (x, 1),
        };
        if self.shape.len() != 1 && self.flatten_chw.is_none() {
            return Err(unsupported(n, format!("input of shape {:?}: flatten it first", self.shape)));
        }
        let wts = self.weights(n, w_idx)?;
        let dims = match &wts {
            Weights::Int(q) => q.dims.clone(),
            Weights::Float(c) => c.dims.clone(),
        };
        let [r, c] = dims[..] else { return Err(unsupported(n, "weights of rank other than 2")) };
        let (out, kk) = if trans_b { (r, c) } else { (c, r) };
        if kk != k {
            return Err(unsupported(n, format!("weights {dims:?} for {k} inputs")));
        }
        // Element (o, i) of the [out, k] matrix in the file's layout.
        let at = |o: usize, i: usize| if trans_b { o * k + i } else { i * out + o };
        let (wq, s_w): (Vec<i64>, Vec<f64>) = match &wts {
            Weights::Int(q) => {
                let out_axis = if trans_b { 0 } else { 1 };
                if q.scale.len() > 1 && q.axis != out_axis {
                    return Err(unsupported(n, "per-axis weight scales along the reduction axis"));
                }
                let mut w = vec![0i64; out * k];
                let mut s = vec![0f64; out];
                for o in 0..out {
                    for i in 0..k {
                        let e = at(o, i);
                        let a = q.index(e);
                        let z = q.zp.get(a).or(q.zp.first()).copied().unwrap_or(0);
                        w[o * k + i] = q.q[e] - z;
                    }
                    s[o] = q.scale.get(q.index(at(o, 0))).or(q.scale.first()).copied().unwrap_or(1.0);
                }
                (w, s)
            }
            Weights::Float(c) => {
                let f = c.floats().ok_or_else(|| unsupported(n, "string weights"))?;
                let m = f.iter().fold(0f64, |m, v| m.max(v.abs()));
                let s = if m > 0.0 { m / 127.0 } else { 1.0 };
                let mut w = vec![0i64; out * k];
                for o in 0..out {
                    for i in 0..k {
                        w[o * k + i] = (f[at(o, i)] / s).round() as i64;
                    }
                }
                self.notes.push(format!(
                    "{} {:?}: float weights quantized here (symmetric i8, one scale {s:.4e}); the file leaves this layer float",
                    n.op_type, n.name
                ));
                (w, vec![s; out])
            }
        };
        let mut weights = Vec::with_capacity(out * k);
        for &v in &wq {
            weights.push(
                i8::try_from(v).map_err(|_| unsupported(n, "weights minus their zero point leave the i8 range"))?,
            );
        }
        if let Some((ch, h, wd)) = self.flatten_chw.take() {
            let mut re = weights.clone();
            for o in 0..out {
                for y in 0..h {
                    for xx in 0..wd {
                        for cc in 0..ch {
                            re[o * k + (y * wd + xx) * ch + cc] = weights[o * k + cc * h * wd + y * wd + xx];
                        }
                    }
                }
            }
            weights = re;
        }
        if positions > 1 {
            // The mean over H·W positions: every weight once per position (HWC order).
            let mut rep = Vec::with_capacity(out * k * positions);
            for row in weights.chunks(k.max(1)) {
                for _ in 0..positions {
                    rep.extend_from_slice(row);
                }
            }
            weights = rep;
        }
        let s_acc: Vec<f64> = s_w.iter().map(|sw| s_x * sw * alpha / positions as f64).collect();
        let k = k * positions;
        let mut bias = match b_idx {
            Some(i) if op == "QGemm" => {
                // QGemm's C is int32 in the accumulator's scale.
                let v = self.floats(n, i).unwrap_or_else(|_| vec![0.0; out]);
                v.iter().zip(&s_acc).map(|(q, s)| q * s).collect()
            }
            Some(i) => self.bias(n, i, out)?,
            None => vec![0.0; out],
        };
        if gemm {
            let beta = f64::from(attr_f(n, "beta", 1.0));
            bias.iter_mut().for_each(|b| *b *= beta);
        }
        let target = match op {
            "QLinearMatMul" => Some(self.qparams(n, 6)?),
            "QGemm" if n.input.get(7).is_some_and(|s| !s.is_empty()) => Some(self.qparams(n, 7)?),
            _ => None,
        };
        self.cur = Cur::Acc(Box::new(Acc {
            layer: Layer::Dense { k, n: out },
            input: x,
            input_zp: z_x,
            weights,
            s_acc,
            bias,
            target,
            lo: None,
            hi: None,
            pools: Vec::new(),
            fixed: false,
        }));
        self.shape = vec![out];
        self.step(n, format!("FullyConnected {k}→{out} (i8 weights, i32 bias)"));
        Ok(())
    }

    /// Conv on a dequantized input, and QLinearConv.
    fn conv(&mut self, n: &NodeProto) -> Result<()> {
        let qlinear = n.op_type == "QLinearConv";
        let (x, s_x, z_x) = self.int(n)?;
        let [c, h, w] = self.shape[..] else {
            return Err(unsupported(n, format!("input shape {:?} is not [C, H, W]", self.shape)));
        };
        let wts = self.weights(n, if qlinear { 3 } else { 1 })?;
        let Weights::Int(q) = wts else {
            return Err(unsupported(n, "float convolution weights in a quantized graph: quantize the Conv too"));
        };
        let [oc, icg, kh, kw] = q.dims[..] else { return Err(unsupported(n, "only 2-D convolutions are mapped")) };
        if q.scale.len() > 1 && q.axis != 0 {
            return Err(unsupported(n, "per-axis weight scales along an axis other than the output channels"));
        }
        let groups = attr_i(n, "group", 1).max(1) as usize;
        if c != icg * groups || oc % groups != 0 {
            return Err(unsupported(n, format!("kernel {:?} with {groups} groups for {c} channels", q.dims)));
        }
        let strides = attr_ints(n, "strides");
        let pads = attr_ints(n, "pads");
        let dil = attr_ints(n, "dilations");
        let auto = attr_s(n, "auto_pad", "NOTSET");
        if !(auto == "NOTSET" || auto == "VALID") {
            return Err(unsupported(n, "auto_pad SAME_*: give explicit pads"));
        }
        let g = |v: &[i64], i: usize, d: i64| v.get(i).copied().unwrap_or(d).max(0) as usize;
        let (sh, sw) = (g(&strides, 0, 1).max(1), g(&strides, 1, 1).max(1));
        let (dh, dw) = (g(&dil, 0, 1).max(1), g(&dil, 1, 1).max(1));
        let (pt, pl, pb, pr) = (g(&pads, 0, 0), g(&pads, 1, 0), g(&pads, 2, 0), g(&pads, 3, 0));
        let window = Window {
            kernel_h: to_u16(kh, "kernel")?,
            kernel_w: to_u16(kw, "kernel")?,
            stride_h: to_u16(sh, "stride")?,
            stride_w: to_u16(sw, "stride")?,
            dilation_h: to_u16(dh, "dilation")?,
            dilation_w: to_u16(dw, "dilation")?,
            pad_top: to_u16(pt, "pad")?,
            pad_left: to_u16(pl, "pad")?,
            pad_bottom: to_u16(pb, "pad")?,
            pad_right: to_u16(pr, "pad")?,
        };
        // [OC, C/g, KH, KW] → [OC, KH, KW, C/g], minus the zero point.
        let mut weights = vec![0i8; q.q.len()];
        let mut s_w = vec![0f64; oc];
        for o in 0..oc {
            for ci in 0..icg {
                for y in 0..kh {
                    for xx in 0..kw {
                        let e = ((o * icg + ci) * kh + y) * kw + xx;
                        let a = q.index(e);
                        let z = q.zp.get(a).or(q.zp.first()).copied().unwrap_or(0);
                        weights[((o * kh + y) * kw + xx) * icg + ci] = i8::try_from(q.q[e] - z)
                            .map_err(|_| unsupported(n, "weights minus their zero point leave the i8 range"))?;
                    }
                }
            }
            s_w[o] = q.scale.get(q.index(o * icg * kh * kw)).or(q.scale.first()).copied().unwrap_or(1.0);
        }
        let s_acc: Vec<f64> = s_w.iter().map(|sw| s_x * sw).collect();
        let bias = if qlinear {
            match n.input.get(8).filter(|s| !s.is_empty()) {
                Some(_) => self.floats(n, 8)?.iter().zip(&s_acc).map(|(b, s)| b * s).collect(),
                None => vec![0.0; oc],
            }
        } else {
            self.bias(n, 2, oc)?
        };
        let target = if qlinear { Some(self.qparams(n, 6)?) } else { None };
        let out = |d: usize, p: usize, k: usize, dl: usize, s: usize| (d + p).saturating_sub(dl * (k - 1) + 1) / s + 1;
        self.shape = vec![oc, out(h, pt + pb, kh, dh, sh), out(w, pl + pr, kw, dw, sw)];
        self.cur = Cur::Acc(Box::new(Acc {
            layer: Layer::Conv { window, groups: groups as u32, dims: [oc, kh, kw, icg] },
            input: x,
            input_zp: z_x,
            weights,
            s_acc,
            bias,
            target,
            lo: None,
            hi: None,
            pools: Vec::new(),
            fixed: false,
        }));
        self.step(n, format!("Conv2D {kh}×{kw}/{sh} pads {pads:?}, {c}→{oc} channels, {groups} group(s)"));
        Ok(())
    }

    /// A per-channel float constant added to (or subtracted from) an accumulator.
    fn add(&mut self, n: &NodeProto) -> Result<()> {
        let (ci, first) = match (self.g.const_input(n, 0), self.g.const_input(n, 1)) {
            (None, Some(_)) => (1, false),
            (Some(_), None) => (0, true),
            _ => return Err(unsupported(n, "only a constant added to a layer's output is mapped (no residual Add)")),
        };
        let name = n.input.get(ci).cloned().unwrap_or_default();
        let v = match self.dq.get(&name) {
            Some(q) => q.real(),
            None => self.floats(n, ci)?,
        };
        if matches!(&self.cur, Cur::Acc(a) if a.fixed || !a.pools.is_empty() || a.lo.is_some() || a.hi.is_some())
            || matches!(self.cur, Cur::Int { .. })
        {
            self.channelwise(n)?;
        }
        let Cur::Acc(a) = &mut self.cur else {
            return Err(unsupported(n, "a constant Add on the raw input"));
        };
        let ch = a.bias.len();
        let v = match v.len() {
            1 => vec![v[0]; ch],
            l if l == ch => v,
            l => return Err(unsupported(n, format!("constant of {l} values for {ch} channels"))),
        };
        let sign = match (n.op_type.as_str(), first) {
            ("Add", _) => 1.0,
            ("Sub", false) => -1.0,
            _ => return Err(unsupported(n, "constant minus a tensor is not mapped")),
        };
        a.bias.iter_mut().zip(&v).for_each(|(b, c)| *b += sign * c);
        let what = match a.layer {
            Layer::Channelwise { .. } => {
                "1×1 depthwise Conv2D: 127·(q − Z) plus the bias at scale s/127, rounded once at the next QuantizeLinear"
            }
            _ => "folded into the layer's i32 bias",
        };
        self.step(n, what);
        Ok(())
    }

    /// Starts a channelwise accumulator on the live i8 tensor (rounding a pending layer first).
    fn channelwise(&mut self, n: &NodeProto) -> Result<()> {
        let (v, s, z) = self.int(n)?;
        let (c, flat) = match self.shape[..] {
            [c] => (c, true),
            [c, _, _] => (c, false),
            _ => return Err(unsupported(n, format!("a bias Add on shape {:?}", self.shape))),
        };
        let input = if flat {
            let cu = u32::try_from(c).map_err(|_| q_err("too many channels"))?;
            self.b.op(Op::Reshape(Reshape { shape: vec![1, 1, cu] }), &[v])
        } else {
            v
        };
        self.cur = Cur::Acc(Box::new(Acc {
            layer: Layer::Channelwise { c, flat },
            input,
            input_zp: z,
            weights: vec![127; c],
            s_acc: vec![s / 127.0; c],
            bias: vec![0.0; c],
            target: None,
            lo: None,
            hi: None,
            pools: Vec::new(),
            fixed: false,
        }));
        Ok(())
    }

    /// Relu and Clip: a clamp in the requantization, or a Requantize with the same scale.
    fn clamp(&mut self, n: &NodeProto) -> Result<()> {
        let (lo, hi) = if n.op_type == "Relu" {
            (Some(0.0), None)
        } else {
            let opt = |i: usize, a: &str| -> Result<Option<f64>> {
                if n.input.get(i).is_some_and(|s| !s.is_empty()) {
                    Ok(self.floats(n, i)?.first().copied())
                } else {
                    Ok(attr(n, a).map(|x| f64::from(x.f)))
                }
            };
            (opt(1, "min")?, opt(2, "max")?)
        };
        match &mut self.cur {
            Cur::Acc(a) if a.pools.is_empty() => {
                a.lo = match (a.lo, lo) {
                    (Some(x), Some(y)) => Some(x.max(y)),
                    (x, y) => x.or(y),
                };
                a.hi = match (a.hi, hi) {
                    (Some(x), Some(y)) => Some(x.min(y)),
                    (x, y) => x.or(y),
                };
                self.step(n, "fused into the requantization's clamp");
                return Ok(());
            }
            _ => {}
        }
        let (v, s, z) = self.int(n)?;
        let bound = |r: f64| (i64::from(z) + round_even(r / s) as i64).clamp(-128, 127) as i32;
        let v = self.requantize(v, (s, z), (s, z), lo.map_or(-128, bound), hi.map_or(127, bound))?;
        self.cur = Cur::Int { v, s, zp: z };
        self.step(n, "Requantize (same scale) with the clamp");
        Ok(())
    }

    /// A pointwise function as a Lut8; the output quantization is the next QuantizeLinear's
    /// (consumed here), or covers the function's range over the 256 inputs.
    /// Returns the step text and the name of the tensor that is live afterwards.
    fn lut(&mut self, n: &NodeProto, f: &dyn Fn(f64) -> f64, what: &str) -> Result<(String, String)> {
        let (v, s, z) = if n.op_type.starts_with("QLinear") {
            let (v, s, z) = self.int(n)?;
            let (s_a, z_a) = self.qparams(n, 1)?;
            if (s_a - s).abs() > s * 1e-6 || z_a != z {
                return Err(unsupported(n, "the input's scale/zero point differ from its QuantizeLinear's"));
            }
            (v, s, z)
        } else {
            self.int(n)?
        };
        let out_name = n.output.first().cloned().unwrap_or_default();
        let next_q = match self.g.consumers(&out_name).as_slice() {
            [q] if q.op_type == "QuantizeLinear" => Some((*q).clone()),
            _ => None,
        };
        let (target, consumed) = if n.op_type.starts_with("QLinear") {
            (self.qparams(n, 3)?, None)
        } else if let Some(q) = next_q {
            (self.qparams(&q, 1)?, Some(q))
        } else {
            let (lo, hi) = range(f, (s, z));
            (activation_quant(lo, hi), None)
        };
        let table = self.b.tensor(Tensor::i8(vec![256], table(f, (s, z), target))?);
        let v = self.b.op(Op::Lut8(Lut8 { table }), &[v]);
        self.cur = Cur::Int { v, s: target.0, zp: target.1 };
        let msg = format!("Lut8 ({what}), output scale {:.6e}, zero point {}", target.0, target.1);
        Ok(match consumed {
            Some(q) => {
                self.step(&q, "the table's output quantization");
                (msg, q.output.first().cloned().unwrap_or_default())
            }
            None => (msg, out_name),
        })
    }

    fn pool(&mut self, n: &NodeProto) -> Result<()> {
        let [c, h, w] = self.shape[..] else {
            return Err(unsupported(n, format!("input shape {:?} is not [C, H, W]", self.shape)));
        };
        let global = match n.op_type.as_str() {
            "GlobalAveragePool" | "GlobalMaxPool" => true,
            "ReduceMean" | "ReduceMax" => {
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
                        format!("a mean over axes {axes:?}: only the spatial axes [2, 3] are mapped"),
                    ));
                }
                true
            }
            _ => false,
        };
        let max = n.op_type.contains("Max");
        let window = if global {
            Window::new(to_u16(h, "window")?, to_u16(w, "window")?)
        } else {
            let ks = attr_ints(n, "kernel_shape");
            let st = attr_ints(n, "strides");
            let pads = attr_ints(n, "pads");
            let g = |v: &[i64], i: usize, d: i64| v.get(i).copied().unwrap_or(d).max(0) as usize;
            if attr_i(n, "ceil_mode", 0) != 0 || attr_ints(n, "dilations").iter().any(|&d| d != 1) {
                return Err(unsupported(n, "ceil_mode=1 or dilations ≠ 1"));
            }
            if !max && attr_i(n, "count_include_pad", 0) != 0 && pads.iter().any(|&p| p != 0) {
                return Err(unsupported(
                    n,
                    "count_include_pad=1 with padding (the integer AvgPool counts real elements)",
                ));
            }
            Window {
                kernel_h: to_u16(g(&ks, 0, 1), "kernel")?,
                kernel_w: to_u16(g(&ks, 1, 1), "kernel")?,
                stride_h: to_u16(g(&st, 0, 1).max(1), "stride")?,
                stride_w: to_u16(g(&st, 1, 1).max(1), "stride")?,
                pad_top: to_u16(g(&pads, 0, 0), "pad")?,
                pad_left: to_u16(g(&pads, 1, 0), "pad")?,
                pad_bottom: to_u16(g(&pads, 2, 0), "pad")?,
                pad_right: to_u16(g(&pads, 3, 0), "pad")?,
                ..Window::new(1, 1)
            }
        };
        let out = |d: usize, p: usize, k: u16, s: u16| (d + p).saturating_sub(usize::from(k)) / usize::from(s) + 1;
        let (oh, ow) = (
            out(h, usize::from(window.pad_top + window.pad_bottom), window.kernel_h, window.stride_h),
            out(w, usize::from(window.pad_left + window.pad_right), window.kernel_w, window.stride_w),
        );
        if max && let Cur::Acc(a) = &mut self.cur {
            // Max commutes with the (monotone) requantization still to come.
            a.pools.push(window);
            self.shape = vec![c, oh, ow];
            self.step(
                n,
                format!(
                    "MaxPool {}×{}/{} (after the requantization)",
                    window.kernel_h, window.kernel_w, window.stride_h
                ),
            );
            return Ok(());
        }
        let (v, s, z) = self.int(n)?;
        if global && !max && h * w <= 64 {
            self.mean = Some((h, w));
            self.shape =
                if n.op_type != "GlobalAveragePool" && attr_i(n, "keepdims", 1) == 0 { vec![c] } else { vec![c, 1, 1] };
            self.step(
                n,
                format!("mean over {h}×{w}: taken exactly by the next dense layer if it is float, else AvgPool"),
            );
            return Ok(());
        }
        let v = if max {
            self.b.op(Op::MaxPool(MaxPool { window }), &[v])
        } else {
            self.b.op(Op::AvgPool(AvgPool { window }), &[v])
        };
        self.cur = Cur::Int { v, s, zp: z };
        self.shape = vec![c, oh, ow];
        if global && attr_i(n, "keepdims", 1) == 0 {
            let cu = u32::try_from(c).map_err(|_| q_err("too many channels"))?;
            let v = self.b.op(Op::Reshape(Reshape { shape: vec![cu] }), &[v]);
            self.cur = Cur::Int { v, s, zp: z };
            self.shape = vec![c];
        }
        self.step(
            n,
            format!(
                "{} {}×{}/{} (same scale; ties away from zero, §5)",
                if max { "MaxPool" } else { "AvgPool" },
                window.kernel_h,
                window.kernel_w,
                window.stride_h
            ),
        );
        Ok(())
    }

    /// Emits a pending global average pool as AvgPool (rounding the mean to the input's grid).
    fn emit_mean(&mut self) -> Result<()> {
        let Some((h, w)) = self.mean.take() else { return Ok(()) };
        let Cur::Int { v, s, zp } = self.cur.clone() else { return Err(q_err("a pending mean without its tensor")) };
        let window = Window::new(to_u16(h, "window")?, to_u16(w, "window")?);
        let mut v = self.b.op(Op::AvgPool(AvgPool { window }), &[v]);
        if let [c] = self.shape[..] {
            let cu = u32::try_from(c).map_err(|_| q_err("too many channels"))?;
            v = self.b.op(Op::Reshape(Reshape { shape: vec![cu] }), &[v]);
        }
        self.cur = Cur::Int { v, s, zp };
        Ok(())
    }

    fn reshape(&mut self, n: &NodeProto) -> Result<()> {
        if let (Some(_), [c, 1, 1]) = (self.mean, &self.shape[..]) {
            self.shape = vec![*c];
            self.step(n, "removed (the pending mean is flat)");
            return Ok(());
        }
        match self.shape[..] {
            [c, h, w] => {
                let (v, s, z) = self.int(n)?;
                let total = u32::try_from(c * h * w).map_err(|_| q_err("tensor too large"))?;
                let v = self.b.op(Op::Reshape(Reshape { shape: vec![total] }), &[v]);
                self.cur = Cur::Int { v, s, zp: z };
                if h * w > 1 {
                    self.flatten_chw = Some((c, h, w));
                }
                self.shape = vec![c * h * w];
                self.step(n, "Reshape (flatten; CHW order carried into the next layer's columns)");
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
}

/// Maps a pre-quantized graph straight to an integer model.
pub(crate) fn map(g: &Graph, classify: Option<bool>) -> Result<Mapped> {
    let input_shape = input_shape(g)?;
    let name = &g.input.0;
    let mut w = Walk {
        g,
        b: ModelBuilder::new(),
        cur: Cur::Input,
        shape: input_shape.clone(),
        flatten_chw: None,
        mean: None,
        dq: BTreeMap::new(),
        encoding: None,
        ended: false,
        softmax: false,
        steps: Vec::new(),
        notes: Vec::new(),
    };
    w.collect_dq()?;
    for n in g.nodes.iter().filter(|n| n.op_type == "DequantizeLinear" && g.const_input(n, 0).is_some()) {
        w.step(n, "constant: integer weights/bias read with their scales");
    }
    let mut cur = name.clone();
    let mut skip: Vec<String> = Vec::new();
    loop {
        let consumers: Vec<&NodeProto> =
            g.consumers(&cur).into_iter().filter(|n| n.op_type != "ArgMax" && !skip.contains(&n.name)).collect();
        let n = match consumers.as_slice() {
            [] => break,
            [n] => *n,
            many => {
                let first = many[0];
                // SiLU as torch exports it: x·sigmoid(x).
                if let [a, b] = many
                    && let Some((sig, mul)) = match (a.op_type.as_str(), b.op_type.as_str()) {
                        ("Sigmoid", "Mul") => Some((*a, *b)),
                        ("Mul", "Sigmoid") => Some((*b, *a)),
                        _ => None,
                    }
                    && mul.input.iter().any(|i| sig.output.first() == Some(i))
                {
                    let (m, live) = w.lut(mul, &silu, "SiLU: x·sigmoid(x)")?;
                    w.step(sig, "part of SiLU");
                    w.step(mul, m);
                    skip.push(sig.name.clone());
                    cur = live;
                    continue;
                }
                return Err(unsupported(
                    first,
                    format!("tensor {cur:?} feeds {} nodes; only a single chain is mapped", many.len()),
                ));
            }
        };
        let op = n.op_type.as_str();
        if w.ended {
            if matches!(op, "QuantizeLinear" | "DequantizeLinear" | "Identity" | "Flatten" | "Reshape" | "Cast") {
                w.step(n, "removed (after the scores)");
                cur = n.output.first().cloned().unwrap_or_default();
                continue;
            }
            return Err(unsupported(n, "only label/probability post-processing may follow Softmax/LogSoftmax"));
        }
        if w.mean.is_some()
            && !matches!(
                op,
                "Gemm" | "MatMul" | "Flatten" | "Reshape" | "Squeeze" | "Unsqueeze" | "Identity" | "Dropout"
            )
        {
            w.emit_mean()?;
        }
        match op {
            "QuantizeLinear" => w.quantize_linear(n)?,
            "DequantizeLinear" => {
                if let Cur::Int { s, zp, .. } = w.cur {
                    let (s2, z2) = w.qparams(n, 1)?;
                    if (s2 - s).abs() > s * 1e-6 || z2 != zp {
                        return Err(unsupported(
                            n,
                            "dequantizes with other parameters than its input was quantized with",
                        ));
                    }
                }
                if let Cur::Acc(a) = &mut w.cur
                    && a.target.is_some()
                {
                    a.fixed = true;
                }
                let fixed = matches!(&w.cur, Cur::Acc(a) if a.fixed);
                w.step(
                    n,
                    if fixed {
                        "the QLinear op's output: rounded to its own scale (as onnxruntime), before the float ops that follow"
                    } else {
                        "removed (the tensor keeps its scale and zero point)"
                    },
                );
            }
            "Identity" | "Dropout" => w.step(n, "removed"),
            "Gemm" | "MatMul" | "QLinearMatMul" | "QGemm" => w.dense(n)?,
            "Conv" | "QLinearConv" => w.conv(n)?,
            "Add" | "Sub" => w.add(n)?,
            "Relu" | "Clip" => w.clamp(n)?,
            "MaxPool" | "AveragePool" | "GlobalAveragePool" | "GlobalMaxPool" | "ReduceMean" | "ReduceMax" => {
                w.pool(n)?
            }
            "Flatten" | "Reshape" | "Squeeze" | "Unsqueeze" => w.reshape(n)?,
            "QLinearSigmoid" => {
                let (m, _) = w.lut(n, &|x: f64| 1.0 / (1.0 + (-x).exp()), "sigmoid")?;
                w.step(n, m);
            }
            "QLinearLeakyRelu" => {
                let al = f64::from(attr_f(n, "alpha", 0.01));
                let (m, _) = w.lut(n, &move |x: f64| if x >= 0.0 { x } else { al * x }, "leaky relu")?;
                w.step(n, m);
            }
            "Softmax" | "LogSoftmax" => {
                let ax = attr_i(n, "axis", -1);
                if ax != -1 && ax != 1 {
                    return Err(unsupported(n, "softmax over an axis other than the class axis"));
                }
                w.ended = true;
                w.softmax = true;
                w.step(n, "dropped: monotone, so ArgMax of the scores is the label");
            }
            _ => match pointwise::function(g, n) {
                Some(f) => {
                    let (m, live) = w.lut(n, &|x| f.eval(x), f.name())?;
                    w.step(n, m);
                    cur = live;
                    continue;
                }
                None => {
                    return Err(unsupported(
                        n,
                        "no mapping for this op in a pre-quantized graph; mapped: QuantizeLinear/DequantizeLinear, \
                         QLinearMatMul, QLinearConv, QGemm, Gemm/MatMul/Conv on dequantized tensors, constant Add/Sub, \
                         Relu/Clip, pointwise activations (table), MaxPool/AveragePool/GlobalAveragePool/ReduceMean, \
                         Flatten/Reshape, Softmax/LogSoftmax at the end",
                    ));
                }
            },
        }
        cur = n.output.first().cloned().ok_or_else(|| Error::Onnx(format!("node {:?} has no output", n.name)))?;
    }
    w.emit_mean()?;
    let classes_out = w.shape.iter().product::<usize>();
    let argmax_node = g.nodes.iter().find(|n| n.op_type == "ArgMax").cloned();
    let int_output = g.outputs.iter().any(|(_, t)| *t == elem::INT64);
    let classify = classify.unwrap_or(w.softmax || argmax_node.is_some() || int_output || classes_out > 1);
    // The scores: an accumulator stays i32 when its scale is one per tensor.
    let (scores, scores_quant) = match w.cur.clone() {
        Cur::Acc(a) => {
            let uniform = a.s_acc.iter().all(|&s| (s - a.s_acc[0]).abs() <= a.s_acc[0] * 1e-12);
            match (uniform, a.target) {
                (true, _) if !a.fixed && a.lo.is_none() && a.hi.is_none() && a.pools.is_empty() => {
                    let v = w.emit(&a, None)?;
                    (v, quant(a.s_acc[0], 0)?)
                }
                (_, Some(t)) => (w.emit(&a, Some(t))?, quant(t.0, t.1)?),
                _ => return Err(q_err("the output layer has per-channel scales and no output quantization")),
            }
        }
        Cur::Int { v, s, zp } => (v, quant(s, zp)?),
        Cur::Input => return Err(Error::Onnx("the graph never quantizes its input".into())),
    };
    if classify {
        let label = w.b.op(Op::ArgMax(ArgMax), &[scores]);
        w.b.output(label, Quant::NONE);
        if let Some(n) = &argmax_node {
            w.step(n, "ArgMax");
        }
    }
    w.b.output(scores, scores_quant);
    let encoding = w.encoding.clone().ok_or_else(|| Error::Onnx("the graph never quantizes its input".into()))?;
    let mut notes = std::mem::take(&mut w.notes);
    notes.push(
        "pre-quantized: the file's scales, zero points and roundings are kept; each requantization is an exact \
         integer multiplier/shift rounding half up (onnxruntime: an f32 product rounded half to even, so only \
         values at or within the f32 error of a tie can differ); input quantization rounds ties away from zero \
         (onnxruntime: to even)"
            .into(),
    );
    let model = w.b.finish()?;
    Ok(Mapped {
        plan: Plan::Quantized(Quantized { model, encoding }),
        classes: None,
        classify,
        input_shape,
        steps: w.steps,
        notes,
    })
}
