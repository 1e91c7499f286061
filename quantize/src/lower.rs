//! Lowering float models to canonical integer models (docs/arithmetic.md, docs/model-format.md).
//!
//! Networks: weights symmetric per output channel (`s_w[c] = max|w_c| / 127`), activations
//! asymmetric per tensor from calibrated ranges (ReLU outputs use the full `[-128, 127]` for
//! `[0, max]`), biases as i32 in the accumulator's scale `s_in·s_w[c]`, and one integer
//! multiplier/shift per channel for `s_in·s_w[c] / s_out`. The last dense layer keeps one weight
//! scale and outputs raw i32 logits (so their order is the float order), followed by ArgMax.
//!
//! Trees: features become `floor(x·2^16)` as i32, thresholds `floor(t·2^16)` (so `x <= t`
//! implies the integer test holds), leaf values and base `round(v·2^32)` as i64.

use candle_core::D;
use fixpoint_ml::format::{Model, ModelBuilder, Quant};
use fixpoint_ml::ops::{
    Add, ArgMax, AvgPool, Concat, Conv2d, FullyConnected, Lut8, MaxPool, Mul, Op, Requant, Reshape, TreeEnsemble,
    Window,
};
use fixpoint_ml::{DType, TensorData};

use crate::data::Dataset;
use crate::ensemble::{Ensemble, Split};
use crate::error::{Error, Result};
use crate::gbdt::Gbdt;
use crate::multiplier::{add_multipliers, quant, requant_multiplier};
use crate::net::{Binary, Geometry, Head, Layer, Net};

/// Fractional bits of tree-ensemble features and thresholds.
pub const TREE_FEATURE_BITS: i32 = 16;
/// Fractional bits of tree-ensemble leaf values and scores.
pub const TREE_SCORE_BITS: i32 = 32;

/// Observed `(min, max)` of every layer's output over a calibration set.
pub type Ranges = Vec<(f32, f32)>;

/// Runs `net` over `ds` in batches of 128 and records every layer's output range; calls
/// `progress(rows_done)` after each batch.
pub fn calibrate(net: &Net, ds: &Dataset, mut progress: impl FnMut(usize)) -> Result<Ranges> {
    let mut ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); net.layers.len()];
    let idx: Vec<usize> = (0..ds.len()).collect();
    let mut done = 0;
    for chunk in idx.chunks(128) {
        for (r, t) in ranges.iter_mut().zip(net.trace(&net.batch(ds, chunk)?)?) {
            let t = t.flatten_all()?;
            r.0 = r.0.min(t.min(D::Minus1)?.to_scalar::<f32>()?);
            r.1 = r.1.max(t.max(D::Minus1)?.to_scalar::<f32>()?);
        }
        done += chunk.len();
        progress(done);
    }
    if ds.is_empty() {
        return Err(Error::Quantize("empty calibration set".into()));
    }
    // The integer Concat copies values: every branch end takes the joined tensor's range (the
    // union of theirs), so it is requantized straight to its scale. A branch ending in max
    // pools: the layer before them requantizes to the joined scale (clamping before a maximum
    // is clamping after it: exact), the pools keep it.
    for (j, ends) in crate::net::concat_ends(&net.layers) {
        let joined = ranges[j];
        for mut e in ends.into_iter().flatten() {
            ranges[e] = joined;
            while crate::net::is_max_pool(&net.layers[e]) && e > 0 {
                e -= 1;
                ranges[e] = joined;
            }
        }
    }
    Ok(ranges)
}

/// Scale and zero point of an i8 tensor covering `[lo, hi]` (widened to include 0).
pub fn activation_quant(lo: f32, hi: f32) -> (f64, i32) {
    let (lo, hi) = (f64::from(lo.min(0.0)), f64::from(hi.max(0.0)));
    let scale = ((hi - lo) / 255.0).max(1e-8);
    let zp = (-128.0 - (lo / scale).round()).clamp(-128.0, 127.0) as i32;
    (scale, zp)
}

pub(crate) fn i8_weights(w: &[f32], scale: f64) -> Vec<i8> {
    w.iter().map(|&v| (f64::from(v) / scale).round().clamp(-127.0, 127.0) as i8).collect()
}

pub(crate) fn bias_i32(b: f32, scale: f64) -> Result<i32> {
    let q = (f64::from(b) / scale).round();
    if q.abs() >= 2f64.powi(30) {
        return Err(Error::Quantize(format!("bias {b} is too large for the accumulator scale {scale:e}")));
    }
    Ok(q as i32)
}

pub(crate) fn channel_scale(row: &[f32]) -> f64 {
    let m = row.iter().fold(0f32, |m, &v| m.max(v.abs()));
    if m > 0.0 { f64::from(m) / 127.0 } else { 1.0 }
}

/// Quantized weights, bias and per-channel requantization of one layer.
pub(crate) struct Affine {
    pub(crate) weights: Vec<i8>,
    pub(crate) bias: Vec<i32>,
    pub(crate) m: Vec<i32>,
    pub(crate) n: Vec<u8>,
}

/// The weight scale of `row` that minimizes `Σ_k m_k·(w_k − ŵ_k)²`, the expected squared error
/// of the dot product for inputs with second moments `m` (`m` repeats if shorter than `row`),
/// among `max|w|/127 · f` for `f` = 1, 0.95, …, 0.05. A folded input scaler can make a few
/// columns of rarely active features dominate `max|w|`; this scale keeps the others precise.
fn weighted_scale(row: &[f32], m: &[f64]) -> f64 {
    let full = channel_scale(row);
    let cost = |s: f64| -> f64 {
        row.iter()
            .zip(m.iter().cycle())
            .map(|(&w, &mk)| {
                let w = f64::from(w);
                let q = (w / s).round().clamp(-127.0, 127.0) * s;
                mk * (w - q).powi(2)
            })
            .sum()
    };
    let (mut best, mut best_cost) = (full, cost(full));
    for i in 1..20 {
        let s = full * f64::from(20 - i) / 20.0;
        let c = cost(s);
        if c < best_cost {
            (best, best_cost) = (s, c);
        }
    }
    best
}

/// Quantizes `w` (`[C, K]` row-major) and `b` for input scale `s_in` and output scale `s_out`;
/// with input second moments, each row's scale is [`weighted_scale`].
pub(crate) fn affine(w: &[f32], b: &[f32], s_in: f64, s_out: f64, moments: Option<&[f64]>) -> Result<Affine> {
    let k = w.len() / b.len().max(1);
    let mut a = Affine { weights: Vec::new(), bias: Vec::new(), m: Vec::new(), n: Vec::new() };
    for (row, &bias) in w.chunks(k.max(1)).zip(b) {
        let s_w = moments.map_or_else(|| channel_scale(row), |m| weighted_scale(row, m));
        a.weights.extend(i8_weights(row, s_w));
        a.bias.push(bias_i32(bias, s_in * s_w)?);
        let (m, n) = requant_multiplier(s_in * s_w / s_out)?;
        a.m.push(m);
        a.n.push(n);
    }
    Ok(a)
}

pub(crate) fn requant_tensors(b: &mut ModelBuilder, a: &Affine, zp: i32, relu: bool) -> Result<Requant> {
    let c = a.m.len();
    let multiplier = b.tensor(fixpoint_ml::Tensor::i32(vec![c], a.m.clone())?);
    let shift = b.tensor(fixpoint_ml::Tensor::new(vec![c], TensorData::U8(a.n.clone()))?);
    Ok(Requant { multiplier, shift, zero_point: zp, lo: if relu { zp } else { -128 }, hi: 127 })
}

/// Lowers a calibrated network. The input is the raw features as i8 (they must be integers in
/// the i8 range, as digit pixels are) with scale `net.input_scale`; outputs are the predicted
/// class (i32 `[1]`) and the logits (i32, with their real scale).
pub fn lower_net(net: &Net, ranges: &Ranges) -> Result<Model> {
    Ok(lower_net_traced(net, ranges)?.0)
}

/// [`lower_net`], and the model value holding each layer's output (`None` for
/// [`Layer::Save`] and [`Layer::Branch`], which add no op).
pub fn lower_net_traced(net: &Net, ranges: &Ranges) -> Result<(Model, Vec<Option<u32>>)> {
    let mut b = ModelBuilder::new();
    let shape = match net.input.as_slice() {
        [c, h, w] => vec![*h, *w, *c],
        s => s.to_vec(),
    };
    let mut cur_shape = shape.clone();
    let (mut s_in, mut zp_in) = net.input_quant.unwrap_or((net.input_scale, 0));
    let mut x = match &net.feature_quant {
        Some(fq) => {
            let mut ins = Vec::with_capacity(fq.len());
            for &(s, zp) in fq {
                ins.push(b.input(DType::I8, vec![1], quant(s, zp)?));
            }
            b.op(Op::Concat(Concat { axis: 0 }), &ins)
        }
        None => b.input(DType::I8, shape, quant(s_in, zp_in)?),
    };
    let mut params = 0;
    let last = net.layers.len().saturating_sub(1);
    let mut logits_quant = None;
    // Tensors kept by `Layer::Save`: value, scale, zero point, shape.
    let mut saved = Vec::new();
    let mut values = Vec::with_capacity(net.layers.len());
    for (i, layer) in net.layers.iter().enumerate() {
        let (lo, hi) = ranges.get(i).copied().ok_or_else(|| Error::Quantize("missing calibration range".into()))?;
        match *layer {
            Layer::Conv { out_c, k, pad, stride, groups, relu, .. } => {
                let g = Geometry { kernel: (k, k), stride: (stride, stride), dilation: (1, 1), pads: [pad; 4] };
                let (w, bias) = net.param_values(params)?;
                params += 1;
                let (s_out, zp_out) = activation_quant(lo, hi);
                x = lower_conv(&mut b, x, &w, &bias, out_c, &g, groups, relu, (s_in, zp_in), (s_out, zp_out))?;
                if let [h, w, _] = cur_shape[..] {
                    let (oh, ow) = g.out(h, w);
                    cur_shape = vec![oh, ow, out_c];
                }
                (s_in, zp_in) = (s_out, zp_out);
            }
            Layer::ConvWindow { out_c, geometry: g, groups, relu, .. } => {
                let (w, bias) = net.param_values(params)?;
                params += 1;
                let (s_out, zp_out) = activation_quant(lo, hi);
                x = lower_conv(&mut b, x, &w, &bias, out_c, &g, groups, relu, (s_in, zp_in), (s_out, zp_out))?;
                if let [h, w, _] = cur_shape[..] {
                    let (oh, ow) = g.out(h, w);
                    cur_shape = vec![oh, ow, out_c];
                }
                (s_in, zp_in) = (s_out, zp_out);
            }
            Layer::PoolWindow { avg, geometry: g } => {
                // Padding cells are outside the max and the average's count (docs/arithmetic.md
                // §5); input and output share scale and zero point.
                let window = window_of(&g)?;
                x = if avg {
                    b.op(Op::AvgPool(AvgPool { window }), &[x])
                } else {
                    b.op(Op::MaxPool(MaxPool { window }), &[x])
                };
                if let [h, w, c] = cur_shape[..] {
                    let (oh, ow) = g.out(h, w);
                    cur_shape = vec![oh, ow, c];
                }
            }
            Layer::MaxPool { k, stride } => {
                let ku = u16::try_from(k).map_err(|_| Error::Quantize("kernel too large".into()))?;
                let su = u16::try_from(stride).map_err(|_| Error::Quantize("stride too large".into()))?;
                let window = Window { stride_h: su, stride_w: su, ..Window::new(ku, ku) };
                x = b.op(Op::MaxPool(MaxPool { window }), &[x]);
                if let [h, w, c] = cur_shape[..] {
                    let out = |d: usize| d.saturating_sub(k) / stride.max(1) + 1;
                    cur_shape = vec![out(h), out(w), c];
                }
            }
            Layer::AvgPool { k, stride } => {
                // Input and output share scale and zero point (docs/arithmetic.md §5).
                let ku = u16::try_from(k).map_err(|_| Error::Quantize("kernel too large".into()))?;
                let su = u16::try_from(stride).map_err(|_| Error::Quantize("stride too large".into()))?;
                let window = Window { stride_h: su, stride_w: su, ..Window::new(ku, ku) };
                x = b.op(Op::AvgPool(AvgPool { window }), &[x]);
                if let [h, w, c] = cur_shape[..] {
                    let out = |d: usize| d.saturating_sub(k) / stride.max(1) + 1;
                    cur_shape = vec![out(h), out(w), c];
                }
            }
            Layer::Pointwise(f) => {
                // An exact table from the calibrated input grid to the calibrated output grid.
                let (s_out, zp_out) = activation_quant(lo, hi);
                let t = crate::pointwise::table(&|v| f.eval(v), (s_in, zp_in), (s_out, zp_out));
                let table = b.tensor(fixpoint_ml::Tensor::i8(vec![256], t)?);
                x = b.op(Op::Lut8(Lut8 { table }), &[x]);
                (s_in, zp_in) = (s_out, zp_out);
            }
            Layer::GlobalAvgPool => {
                // The mean keeps its input's scale and zero point (docs/arithmetic.md §5).
                let [h, w, c] = cur_shape[..] else {
                    return Err(Error::Quantize("global average pooling needs a [C, H, W] input".into()));
                };
                let dim = |d: usize| u16::try_from(d).map_err(|_| Error::Quantize("pooling window too large".into()));
                let window = Window::new(dim(h)?, dim(w)?);
                x = b.op(Op::AvgPool(AvgPool { window }), &[x]);
                cur_shape = vec![1, 1, c];
            }
            Layer::Save => saved.push((x, s_in, zp_in, cur_shape.clone())),
            Layer::Branch => {
                let start = saved.pop().ok_or_else(|| Error::Quantize("a branch without a saved tensor".into()))?;
                saved.push((x, s_in, zp_in, cur_shape.clone()));
                (x, s_in, zp_in, cur_shape) = start.clone();
                saved.push(start);
            }
            Layer::ConcatSaved { branches, order } => {
                saved.pop().ok_or_else(|| Error::Quantize("a Concat without a saved tensor".into()))?;
                let mut ends = Vec::with_capacity(branches);
                for _ in 1..branches {
                    ends.push(saved.pop().ok_or_else(|| Error::Quantize("a Concat without its branches".into()))?);
                }
                ends.reverse();
                ends.push((x, s_in, zp_in, cur_shape.clone()));
                let [h, w, _] = cur_shape[..] else {
                    return Err(Error::Quantize("Concat joins [C, H, W] tensors".into()));
                };
                let mut ins = Vec::with_capacity(branches);
                let mut channels = 0;
                for &k in &order[..branches] {
                    let (y, s_y, zp_y, shape_y) =
                        ends.get(k).cloned().ok_or_else(|| Error::Quantize("a Concat order out of range".into()))?;
                    let &[hy, wy, cy] = &shape_y[..] else {
                        return Err(Error::Quantize("Concat joins [C, H, W] tensors".into()));
                    };
                    if (h, w) != (hy, wy) {
                        return Err(Error::Quantize(format!("Concat of shapes {cur_shape:?} and {shape_y:?}")));
                    }
                    // Calibration gave every branch end the joined range, so the same scale.
                    if (s_y - s_in).abs() > s_in * 1e-12 || zp_y != zp_in {
                        return Err(Error::Quantize(format!(
                            "Concat inputs at scales {s_y:e}/{zp_y} and {s_in:e}/{zp_in}: a branch must end in a layer that requantizes"
                        )));
                    }
                    ins.push(y);
                    channels += cy;
                }
                x = b.op(Op::Concat(Concat { axis: 2 }), &ins);
                cur_shape = vec![h, w, channels];
            }
            Layer::Binary { op, relu } => {
                let (y, s_y, zp_y, shape_y) =
                    saved.pop().ok_or_else(|| Error::Quantize("a binary op without a saved tensor".into()))?;
                let out_shape = broadcast_shape(&cur_shape, &shape_y)?;
                let (s_out, zp_out) = activation_quant(lo, hi);
                let lo_clamp = if relu { zp_out } else { -128 };
                x = match op {
                    Binary::Mul => {
                        // y = requant((a − zp_a)·(b − zp_b)) at s_a·s_b/s_out (docs/arithmetic.md §15).
                        let a = repeat_to(&mut b, x, &cur_shape, &out_shape)?;
                        let c = repeat_to(&mut b, y, &shape_y, &out_shape)?;
                        let (m, n) = requant_multiplier(s_in * s_y / s_out)?;
                        let multiplier = b.tensor(fixpoint_ml::Tensor::i32(vec![1], vec![m])?);
                        let shift = b.tensor(fixpoint_ml::Tensor::new(vec![1], TensorData::U8(vec![n]))?);
                        let requant = Requant { multiplier, shift, zero_point: zp_out, lo: lo_clamp, hi: 127 };
                        b.op(Op::Mul(Mul { a_zero_point: zp_in, b_zero_point: zp_y, requant }), &[a, c])
                    }
                    Binary::Add | Binary::Sub { .. } => {
                        // A subtrahend is negated exactly first: `q' = −1 − q` with zero point
                        // `−1 − zp` stands for the same real value negated (§7, a Lut8).
                        let (mut a, mut zp_a, mut c, mut zp_c) = (x, zp_in, y, zp_y);
                        match op {
                            Binary::Sub { saved_first: true } => (a, zp_a) = (negate(&mut b, a)?, -1 - zp_a),
                            Binary::Sub { saved_first: false } => (c, zp_c) = (negate(&mut b, c)?, -1 - zp_c),
                            _ => {}
                        }
                        let a = repeat_to(&mut b, a, &cur_shape, &out_shape)?;
                        let c = repeat_to(&mut b, c, &shape_y, &out_shape)?;
                        // zp + ((a − zp_a)·m_a + (c − zp_c)·m_c) >> n: each input's scale in its
                        // multiplier, one rounding, the result's scale from its calibrated range.
                        let (a_multiplier, b_multiplier, shift) = add_multipliers(s_in / s_out, s_y / s_out)?;
                        let op = Add {
                            a_zero_point: zp_a,
                            a_multiplier,
                            b_zero_point: zp_c,
                            b_multiplier,
                            shift,
                            zero_point: zp_out,
                            lo: lo_clamp,
                            hi: 127,
                        };
                        b.op(Op::Add(op), &[a, c])
                    }
                };
                cur_shape = out_shape;
                (s_in, zp_in) = (s_out, zp_out);
            }
            Layer::Transpose { perm } => {
                let (e, shape) = hwc_permutation(perm, &cur_shape)?;
                x = b.op(Op::Transpose(fixpoint_ml::ops::Transpose { perm: e }), &[x]);
                cur_shape = shape;
            }
            Layer::Unflatten => {
                let [c] = cur_shape[..] else {
                    return Err(Error::Quantize(format!("unflatten of shape {cur_shape:?}")));
                };
                let c32 = u32::try_from(c).map_err(|_| Error::Quantize("tensor too large".into()))?;
                x = b.op(Op::Reshape(Reshape { shape: vec![1, 1, c32] }), &[x]);
                cur_shape = vec![1, 1, c];
            }
            Layer::Flatten => {
                let n: usize = cur_shape.iter().product();
                let n32 = u32::try_from(n).map_err(|_| Error::Quantize("tensor too large".into()))?;
                x = b.op(Op::Reshape(Reshape { shape: vec![n32] }), &[x]);
                cur_shape = vec![n];
            }
            Layer::Dense { out, relu, .. } => {
                let (w, bias) = net.param_values(params)?;
                params += 1;
                let inp = w.len() / out.max(1);
                if i == last {
                    if relu {
                        return Err(Error::Quantize("the last layer must output logits (no ReLU)".into()));
                    }
                    // One scale for all logits so their integer order is their real order.
                    let s_w = match (&net.input_moments, i) {
                        (Some(m), 0) => weighted_scale(&w, m),
                        _ => channel_scale(&w),
                    };
                    let weights = b.tensor(fixpoint_ml::Tensor::i8(vec![out, inp], i8_weights(&w, s_w))?);
                    let q_bias = bias.iter().map(|&v| bias_i32(v, s_in * s_w)).collect::<Result<Vec<_>>>()?;
                    let bias = b.tensor(fixpoint_ml::Tensor::i32(vec![out], q_bias)?);
                    let op = FullyConnected { weights, bias, input_zero_point: zp_in, requant: None };
                    x = b.op(Op::FullyConnected(op), &[x]);
                    logits_quant = Some(quant(s_in * s_w, 0)?);
                } else {
                    let (s_out, zp_out) = activation_quant(lo, hi);
                    let moments = if i == 0 { net.input_moments.as_deref() } else { None };
                    let a = affine(&w, &bias, s_in, s_out, moments)?;
                    let weights = b.tensor(fixpoint_ml::Tensor::i8(vec![out, inp], a.weights.clone())?);
                    let bias = b.tensor(fixpoint_ml::Tensor::i32(vec![out], a.bias.clone())?);
                    let requant = Some(requant_tensors(&mut b, &a, zp_out, relu)?);
                    let op = FullyConnected { weights, bias, input_zero_point: zp_in, requant };
                    x = b.op(Op::FullyConnected(op), &[x]);
                    (s_in, zp_in) = (s_out, zp_out);
                }
                cur_shape = vec![out];
            }
        }
        values.push((!matches!(layer, Layer::Save | Layer::Branch)).then_some(x));
    }
    let logits_quant = logits_quant.ok_or_else(|| Error::Quantize("the network must end in a dense layer".into()))?;
    if net.head == Head::Classes {
        let label = b.op(Op::ArgMax(ArgMax), &[x]);
        b.output(label, Quant::NONE);
    }
    b.output(x, logits_quant);
    Ok((b.finish()?, values))
}

/// The shape two HWC operands broadcast to: equal axes, or 1 against `n`.
fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    if a.len() != b.len() {
        return Err(Error::Quantize(format!("operands of shapes {a:?} and {b:?} have different ranks")));
    }
    a.iter()
        .zip(b)
        .map(|(&p, &q)| match (p, q) {
            _ if p == q => Ok(p),
            (1, n) | (n, 1) => Ok(n),
            _ => Err(Error::Quantize(format!("shapes {a:?} and {b:?} do not broadcast"))),
        })
        .collect()
}

/// The engine's permutation (of its HWC axes) for the `[C, H, W]` permutation `perm`, and the
/// HWC shape of the result. The result's logical axes `(A0, A1, A2)` are the input's
/// `(perm[0], perm[1], perm[2])`; the engine holds a logical tensor in the order `(A1, A2, A0)`,
/// and logical axis `k` of the input sits at engine axis `(k + 2) % 3`.
fn hwc_permutation(perm: [usize; 3], hwc: &[usize]) -> Result<(Vec<u8>, Vec<usize>)> {
    let &[h, w, c] = hwc else { return Err(Error::Quantize(format!("transpose of shape {hwc:?}"))) };
    let chw = [c, h, w];
    if perm.iter().any(|&p| p > 2) || perm[0] == perm[1] || perm[1] == perm[2] || perm[0] == perm[2] {
        return Err(Error::Quantize(format!("{perm:?} is not a permutation of 3 axes")));
    }
    let at = |k: usize| ((k + 2) % 3) as u8;
    let e = vec![at(perm[1]), at(perm[2]), at(perm[0])];
    Ok((e, vec![chw[perm[1]], chw[perm[2]], chw[perm[0]]]))
}

/// `x` of shape `from` repeated along every axis where it has 1 and `to` more (Concats of
/// copies: exact, values are copied).
fn repeat_to(b: &mut ModelBuilder, mut x: u32, from: &[usize], to: &[usize]) -> Result<u32> {
    for (axis, (&f, &t)) in from.iter().zip(to).enumerate().rev() {
        if f == 1 && t > 1 {
            let axis = u8::try_from(axis).map_err(|_| Error::Quantize("rank too large".into()))?;
            x = repeat(b, x, axis, t);
        }
    }
    Ok(x)
}

/// `times` (≥ 2) copies of `x` joined along `axis`; Concat takes at most 16 inputs, so longer
/// runs join runs of 16.
fn repeat(b: &mut ModelBuilder, x: u32, axis: u8, times: usize) -> u32 {
    const MAX: usize = 16;
    if times <= MAX {
        return b.op(Op::Concat(Concat { axis }), &vec![x; times]);
    }
    let run = b.op(Op::Concat(Concat { axis }), &[x; MAX]);
    let (q, r) = (times / MAX, times % MAX);
    let big = if q > 1 { repeat(b, run, axis, q) } else { run };
    match r {
        0 => big,
        1 => b.op(Op::Concat(Concat { axis }), &[big, x]),
        _ => {
            let rest = repeat(b, x, axis, r);
            b.op(Op::Concat(Concat { axis }), &[big, rest])
        }
    }
}

/// `x` negated exactly: the Lut8 `q ↦ −1 − q` (with zero point `−1 − zp` it stands for
/// `−(q − zp)·s`, the same scale).
fn negate(b: &mut ModelBuilder, x: u32) -> Result<u32> {
    let table: Vec<i8> = (0..256).map(|i| (127 - i) as i8).collect();
    let table = b.tensor(fixpoint_ml::Tensor::i8(vec![256], table)?);
    Ok(b.op(Op::Lut8(Lut8 { table }), &[x]))
}

/// The engine's window for a geometry.
fn window_of(g: &Geometry) -> Result<Window> {
    let u = |v: usize, what: &str| u16::try_from(v).map_err(|_| Error::Quantize(format!("{what} too large")));
    let [t, l, bt, r] = g.pads;
    Ok(Window {
        kernel_h: u(g.kernel.0, "kernel")?,
        kernel_w: u(g.kernel.1, "kernel")?,
        stride_h: u(g.stride.0, "stride")?,
        stride_w: u(g.stride.1, "stride")?,
        dilation_h: u(g.dilation.0, "dilation")?,
        dilation_w: u(g.dilation.1, "dilation")?,
        pad_top: u(t, "padding")?,
        pad_left: u(l, "padding")?,
        pad_bottom: u(bt, "padding")?,
        pad_right: u(r, "padding")?,
    })
}

/// A Conv2D with per-channel weights requantized from `(s_in, zp_in)` to `(s_out, zp_out)`;
/// `w` in candle layout `[OC, IC/g, KH, KW]`.
#[allow(clippy::too_many_arguments)]
fn lower_conv(
    b: &mut ModelBuilder,
    x: u32,
    w: &[f32],
    bias: &[f32],
    out_c: usize,
    g: &Geometry,
    groups: usize,
    relu: bool,
    (s_in, zp_in): (f64, i32),
    (s_out, zp_out): (f64, i32),
) -> Result<u32> {
    let (kh, kw) = g.kernel;
    // candle [OC, IC, KH, KW] → fixpoint [OC, KH, KW, IC].
    let ic = w.len() / (out_c * kh * kw).max(1);
    let mut hwc = vec![0f32; w.len()];
    for o in 0..out_c {
        for c in 0..ic {
            for y in 0..kh {
                for xx in 0..kw {
                    hwc[((o * kh + y) * kw + xx) * ic + c] = w[((o * ic + c) * kh + y) * kw + xx];
                }
            }
        }
    }
    let a = affine(&hwc, bias, s_in, s_out, None)?;
    let weights = b.tensor(fixpoint_ml::Tensor::i8(vec![out_c, kh, kw, ic], a.weights.clone())?);
    let bias = b.tensor(fixpoint_ml::Tensor::i32(vec![out_c], a.bias.clone())?);
    let requant = Some(requant_tensors(b, &a, zp_out, relu)?);
    let groups = u32::try_from(groups).map_err(|_| Error::Quantize("too many groups".into()))?;
    let op = Conv2d { weights, bias, input_zero_point: zp_in, window: window_of(g)?, groups, requant };
    Ok(b.op(Op::Conv2d(op), &[x]))
}

/// A feature as the integer the tree model reads: `floor(x·2^16)`.
pub fn tree_feature(x: f32) -> Result<i32> {
    tree_feature_at(x, TREE_FEATURE_BITS)
}

/// A feature as the integer a tree model with `bits` fractional bits reads: `floor(x·2^bits)`.
pub fn tree_feature_at(x: f32, bits: i32) -> Result<i32> {
    let v = (f64::from(x) * 2f64.powi(bits)).floor();
    if !(f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&v) {
        return Err(Error::Quantize(format!("feature {x} does not fit in i32 at 2^{bits}")));
    }
    Ok(v as i32)
}

fn tree_score(v: f64, bits: i32) -> Result<i64> {
    let q = (v * 2f64.powi(bits)).round();
    if !q.is_finite() || q.abs() >= 2f64.powi(52) {
        return Err(Error::Quantize(format!("leaf value {v} out of range")));
    }
    Ok(q as i64)
}

/// The integer bound of a split on features with `bits` fractional bits: for every feature `q`
/// on the grid (`x = q·2^-bits`), `q <= bound` exactly when the float test `x <= t` (`Leq`) or
/// `x < t` (`Lt`) holds.
pub fn tree_threshold(t: f64, split: Split, bits: i32) -> i32 {
    let scaled = t * 2f64.powi(bits);
    let bound = match split {
        Split::Leq => scaled.floor(),
        Split::Lt => scaled.ceil() - 1.0,
    };
    bound.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
}

/// Lowers a binary boosted ensemble: input i32 `[dim]` features, outputs the class (i32 `[1]`)
/// and the scores i64 `[2]` = `(0, logit)` at 2^-32.
pub fn lower_gbdt(m: &Gbdt) -> Result<Model> {
    lower_ensemble(&m.ensemble(), TREE_FEATURE_BITS, TREE_SCORE_BITS, Head::Classes)
}

/// Lowers a tree ensemble: input i32 `[dim]` features at `2^-feature_bits`; outputs the argmax
/// class (i32 `[1]`, for [`Head::Classes`]) and the scores i64 `[outputs]` at `2^-score_bits`.
pub fn lower_ensemble(e: &Ensemble, feature_bits: i32, score_bits: i32, head: Head) -> Result<Model> {
    let mut b = ModelBuilder::new();
    let x = b.input(DType::I32, vec![e.dim], quant(2f64.powi(-feature_bits), 0)?);
    let (mut nodes, mut leaves, mut roots) = (Vec::new(), Vec::new(), Vec::new());
    let idx = |v: usize| i32::try_from(v).map_err(|_| Error::Quantize("too many tree nodes".into()));
    let o = e.outputs;
    for tree in &e.trees {
        let off = nodes.len() / 4;
        roots.push(idx(off)?);
        for n in tree {
            if n.feature < 0 {
                nodes.extend([-1, 0, 0, 0]);
                if n.values.len() != o {
                    return Err(Error::Quantize(format!("a leaf has {} values, expected {o}", n.values.len())));
                }
                for &v in &n.values {
                    leaves.push(tree_score(v, score_bits)?);
                }
            } else {
                let t = tree_threshold(n.threshold, n.split, feature_bits);
                let f = i32::try_from(n.feature).map_err(|_| Error::Quantize("feature index too large".into()))?;
                nodes.extend([f, t, idx(off + n.left)?, idx(off + n.right)?]);
                leaves.extend(std::iter::repeat_n(0, o));
            }
        }
    }
    let n = nodes.len() / 4;
    let base = e.base.iter().map(|&v| tree_score(v, score_bits)).collect::<Result<Vec<_>>>()?;
    let te = TreeEnsemble {
        nodes: b.tensor(fixpoint_ml::Tensor::i32(vec![n, 4], nodes)?),
        leaves: b.tensor(fixpoint_ml::Tensor::i64(vec![n, o], leaves)?),
        roots: b.tensor(fixpoint_ml::Tensor::i32(vec![roots.len()], roots)?),
        base: b.tensor(fixpoint_ml::Tensor::i64(vec![o], base)?),
    };
    let scores = b.op(Op::TreeEnsemble(te), &[x]);
    if head == Head::Classes {
        let label = b.op(Op::ArgMax(ArgMax), &[scores]);
        b.output(label, Quant::NONE);
    }
    b.output(scores, quant(2f64.powi(-score_bits), 0)?);
    Ok(b.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_ranges_map_to_the_full_i8_range() {
        let (s, zp) = activation_quant(0.0, 2.55);
        assert!((s - 0.01).abs() < 1e-9);
        assert_eq!(zp, -128);
        let (s, zp) = activation_quant(-1.0, 1.0);
        assert!((s - 2.0 / 255.0).abs() < 1e-9);
        assert_eq!(zp, 0);
        // A range that excludes zero is widened to include it.
        assert_eq!(activation_quant(1.0, 2.0).1, -128);
    }

    /// The integer Add/Sub/Mul of a `[3, 2, 5]` tensor and its per-channel mean (`[3, 1, 1]`,
    /// repeated over H and W) against the real result, computed here from the integer inputs:
    /// within half an output step (the one rounding), for every row.
    #[test]
    fn binary_ops_broadcast_and_subtract_like_the_reals() {
        use rand::{Rng, SeedableRng};

        use crate::net::Binary;
        let (c, h, w) = (3usize, 2usize, 5usize);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let rows: Vec<f32> = (0..40 * c * h * w).map(|_| rng.random_range(-20i32..=30) as f32).collect();
        let ds = Dataset { features: rows.clone(), labels: vec![0; 40], dim: c * h * w, classes: 1 };
        for op in [Binary::Add, Binary::Sub { saved_first: true }, Binary::Sub { saved_first: false }, Binary::Mul] {
            let layers = vec![
                Layer::Save,
                Layer::GlobalAvgPool,
                Layer::Binary { op, relu: false },
                Layer::Flatten,
                Layer::Dense { inp: c * h * w, out: 2, relu: false },
            ];
            let params = vec![(vec![0.01; 2 * c * h * w], vec![0.0; 2])];
            let mut net = Net::from_values(vec![c, h, w], layers, params, Head::Values).unwrap();
            let s_in = 1.0 / 16.0;
            net.input_quant = Some((s_in, 0));
            let ranges = calibrate(&net, &ds, |_| {}).unwrap();
            let (mut model, values) = lower_net_traced(&net, &ranges).unwrap();
            model.outputs.push(fixpoint_ml::format::OutputDesc { value: values[2].unwrap(), quant: Quant::NONE });
            let engine = fixpoint_ml::Engine::load(&model.to_bytes(), &fixpoint_ml::Limits::default()).unwrap();
            let (s_out, zp_out) = activation_quant(ranges[2].0, ranges[2].1);
            for row in rows.chunks(c * h * w) {
                // The engine reads HWC; the row is CHW integers (exact at scale 1/16).
                let q = |ch: usize, y: usize, x: usize| row[(ch * h + y) * w + x] as i32;
                let hwc: Vec<i8> = (0..h * w * c).map(|i| q(i % c, i / c / w, i / c % w) as i8).collect();
                let out = engine.run(vec![fixpoint_ml::Tensor::i8(vec![h, w, c], hwc).unwrap()]).unwrap();
                for ch in 0..c {
                    // docs/arithmetic.md §5: the mean on the input grid, ties away from zero.
                    let sum: i32 = (0..h * w).map(|i| q(ch, i / w, i % w)).sum();
                    let n = (h * w) as i32;
                    let mean = sum.signum() * ((sum.abs() + n / 2) / n);
                    for (y, x) in (0..h).flat_map(|y| (0..w).map(move |x| (y, x))) {
                        let (a, m) = (f64::from(q(ch, y, x)) * s_in, f64::from(mean) * s_in);
                        let real = match op {
                            Binary::Add => a + m,
                            Binary::Sub { saved_first: true } => a - m,
                            Binary::Sub { saved_first: false } => m - a,
                            Binary::Mul => a * m,
                        };
                        let got = out[1].data().get_i64((y * w + x) * c + ch).unwrap();
                        let deq = (got - i64::from(zp_out)) as f64 * s_out;
                        assert!((deq - real).abs() <= 0.5 * s_out + 1e-6, "{op:?}: {deq} vs {real}");
                    }
                }
            }
        }
    }

    #[test]
    fn tree_features_floor() {
        assert_eq!(tree_feature(1.0).unwrap(), 65536);
        assert_eq!(tree_feature(-1.5).unwrap(), -98304);
        assert_eq!(tree_feature(1e-9).unwrap(), 0);
        assert_eq!(tree_feature(-1e-9).unwrap(), -1);
        assert!(tree_feature(40_000.0).is_err());
    }

    #[test]
    fn tree_thresholds_are_exact_on_the_grid() {
        for t in [0.0, 0.5, -0.5, 1.0 / 3.0, -2.75, 1e-7, -1e-7, 100.125] {
            for split in [Split::Leq, Split::Lt] {
                let bound = tree_threshold(t, split, 16);
                for q in [bound - 1, bound, bound + 1] {
                    let x = f64::from(q) / 65536.0;
                    let float = match split {
                        Split::Leq => x <= t,
                        Split::Lt => x < t,
                    };
                    assert_eq!(q <= bound, float, "t {t} {split:?} q {q}");
                }
            }
        }
    }
}
