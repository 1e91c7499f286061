//! Adversarial model shapes, one family per op: the shapes an attacker would register to get the
//! most work per unit of cost (per-call overheads with tiny reductions, groups = C, windows with
//! one channel, wide tree leaves, rows of one element ...), next to ordinary ones.
//!
//! Shared by the property tests (`ml/tests/cost.rs`, scaled down) and the adversarial calibration
//! bench (`evm/benches/adversarial.rs`, at the caps). Uses only the public API and no randomness
//! beyond a fixed generator, so both see the same models.
#![allow(dead_code, unreachable_pub, missing_docs)]

use fixpoint_ml::format::{Model, ModelBuilder, NO_TENSOR, Quant};
use fixpoint_ml::ops::{
    Add, AddWide, ArgMax, AvgPool, Concat, Conv2d, FullyConnected, Gather, LayerNorm, Lut8, MatMul, MaxPool, Mul,
    NormParams, Op, Requant, Requantize, Reshape, RmsNorm, Slice, Softmax, Transpose, TreeEnsemble, Window,
};
use fixpoint_ml::{DType, Tensor, TensorData};

/// One adversarial (or ordinary) model with an input.
pub struct Case {
    /// The op family it attacks.
    pub op: &'static str,
    /// Shape description.
    pub name: String,
    /// The model.
    pub model: Model,
    /// Its inputs.
    pub inputs: Vec<Tensor>,
}

/// A fixed pseudo-random stream (splitmix64).
pub struct Gen(u64);

impl Gen {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn i8s(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.next() as i8).collect()
    }
    /// Small weights (|w| <= 3) so the overflow proof passes for long reductions.
    pub fn small_i8s(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| (self.next() % 7) as i8 - 3).collect()
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn rq(b: &mut ModelBuilder, channels: usize) -> Requant {
    let multiplier = b.tensor(Tensor::i32(vec![channels], vec![(1 << 30) + 12_345; channels]).unwrap());
    let shift = b.tensor(Tensor::new(vec![channels], TensorData::U8(vec![40; channels])).unwrap());
    Requant { multiplier, shift, zero_point: 3, lo: -128, hi: 127 }
}

fn single(op: &'static str, name: String, b: ModelBuilder, inputs: Vec<Tensor>) -> Option<Case> {
    Some(Case { op, name, model: b.finish().ok()?, inputs })
}

fn i8_input(g: &mut Gen, shape: Vec<usize>) -> Tensor {
    let n = shape.iter().product();
    Tensor::i8(shape, g.i8s(n)).unwrap()
}

/// FullyConnected `[m, k] x [n, k]`.
pub fn fc(m: usize, k: usize, n: usize, requant: bool) -> Option<Case> {
    let mut g = Gen::new((m * 31 + k * 7 + n) as u64);
    let mut b = ModelBuilder::new();
    let x = b.input(DType::I8, vec![m, k], Quant::NONE);
    let weights = b.tensor(Tensor::i8(vec![n, k], g.small_i8s(n * k)).ok()?);
    let bias = b.tensor(Tensor::i32(vec![n], (0..n).map(|i| i as i32 - 7).collect()).ok()?);
    let with_rq = requant;
    let requant = with_rq.then(|| rq(&mut b, n));
    let y = b.op(Op::FullyConnected(FullyConnected { weights, bias, input_zero_point: -5, requant }), &[x]);
    let requant = with_rq;
    b.output(y, Quant::NONE);
    single("FullyConnected", format!("m={m} k={k} n={n} rq={requant}"), b, vec![i8_input(&mut g, vec![m, k])])
}

/// Conv2D on `[h, w, c]` with `oc` outputs, `groups`, a `kh x kw` window.
#[allow(clippy::too_many_arguments)]
pub fn conv(h: usize, w: usize, c: usize, oc: usize, groups: usize, win: Window, requant: bool) -> Option<Case> {
    let mut g = Gen::new((h * 131 + w * 17 + c * 3 + oc + groups) as u64);
    let (kh, kw) = (usize::from(win.kernel_h), usize::from(win.kernel_w));
    let cg = c / groups.max(1);
    let mut b = ModelBuilder::new();
    let x = b.input(DType::I8, vec![h, w, c], Quant::NONE);
    let weights = b.tensor(Tensor::i8(vec![oc, kh, kw, cg], g.small_i8s(oc * kh * kw * cg)).ok()?);
    let with_rq = requant;
    let requant = with_rq.then(|| rq(&mut b, oc));
    let y = b.op(
        Op::Conv2d(Conv2d {
            weights,
            bias: NO_TENSOR,
            input_zero_point: 2,
            window: win,
            groups: groups as u32,
            requant,
        }),
        &[x],
    );
    let requant = with_rq;
    b.output(y, Quant::NONE);
    let name = format!(
        "{h}x{w}x{c} oc={oc} groups={groups} k={kh}x{kw} s={} d={} pad={} rq={requant}",
        win.stride_h, win.dilation_h, win.pad_top
    );
    single("Conv2D", name, b, vec![i8_input(&mut g, vec![h, w, c])])
}

pub fn add(n: usize) -> Option<Case> {
    let mut g = Gen::new(n as u64);
    let mut b = ModelBuilder::new();
    let a = b.input(DType::I8, vec![n], Quant::NONE);
    let c = b.input(DType::I8, vec![n], Quant::NONE);
    let op = Add {
        a_zero_point: 1,
        a_multiplier: 1 << 30,
        b_zero_point: -3,
        b_multiplier: (1 << 30) + 77,
        shift: 31,
        zero_point: 0,
        lo: -128,
        hi: 127,
    };
    let y = b.op(Op::Add(op), &[a, c]);
    b.output(y, Quant::NONE);
    single("Add", format!("n={n}"), b, vec![i8_input(&mut g, vec![n]), i8_input(&mut g, vec![n])])
}

/// AddWide of an i16 stream and an `b_dtype` branch of `n` elements, extreme zero points.
pub fn add_wide(n: usize, b_dtype: DType) -> Option<Case> {
    let mut g = Gen::new(n as u64 + 5);
    let mut b = ModelBuilder::new();
    let a = b.input(DType::I16, vec![n], Quant::NONE);
    let c = b.input(b_dtype, vec![n], Quant::NONE);
    let op = AddWide(Add {
        a_zero_point: -32_768,
        a_multiplier: i32::MAX,
        b_zero_point: 32_767,
        b_multiplier: (1 << 30) + 77,
        shift: 33,
        zero_point: 7,
        lo: -32_768,
        hi: 32_767,
    });
    let y = b.op(Op::AddWide(op), &[a, c]);
    b.output(y, Quant::NONE);
    let name = format!("n={n} b={}", b_dtype.name());
    let inputs = vec![filled(DType::I16, vec![n], &mut g), filled(b_dtype, vec![n], &mut g)];
    single("AddWide", name, b, inputs)
}

pub fn pool(max: bool, h: usize, w: usize, c: usize, win: Window) -> Option<Case> {
    let mut g = Gen::new((h + w + c) as u64);
    let mut b = ModelBuilder::new();
    let x = b.input(DType::I8, vec![h, w, c], Quant::NONE);
    let op = if max { Op::MaxPool(MaxPool { window: win }) } else { Op::AvgPool(AvgPool { window: win }) };
    let y = b.op(op, &[x]);
    b.output(y, Quant::NONE);
    let name = format!("{h}x{w}x{c} k={}x{} s={} pad={}", win.kernel_h, win.kernel_w, win.stride_h, win.pad_top);
    single(if max { "MaxPool" } else { "AvgPool" }, name, b, vec![i8_input(&mut g, vec![h, w, c])])
}

fn filled(dtype: DType, shape: Vec<usize>, g: &mut Gen) -> Tensor {
    let n: usize = shape.iter().product();
    let data = match dtype {
        DType::I8 => TensorData::I8(g.i8s(n)),
        DType::U8 => TensorData::U8((0..n).map(|_| g.next() as u8).collect()),
        DType::I16 => TensorData::I16((0..n).map(|_| g.next() as i16).collect()),
        DType::I32 => TensorData::I32((0..n).map(|_| g.next() as i32 >> 8).collect()),
        DType::I64 => TensorData::I64((0..n).map(|_| g.next() as i64 >> 8).collect()),
    };
    Tensor::new(shape, data).unwrap()
}

pub fn reshape(dtype: DType, n: usize) -> Option<Case> {
    let mut g = Gen::new(n as u64);
    let mut b = ModelBuilder::new();
    let x = b.input(dtype, vec![n], Quant::NONE);
    let y = b.op(Op::Reshape(Reshape { shape: vec![1, n as u32] }), &[x]);
    b.output(y, Quant::NONE);
    single("Reshape", format!("{} n={n}", dtype.name()), b, vec![filled(dtype, vec![n], &mut g)])
}

/// `parts` inputs of `[rows, width]` joined along axis 1 (many tiny chunks when width = 1).
pub fn concat(dtype: DType, parts: usize, rows: usize, width: usize) -> Option<Case> {
    let mut g = Gen::new((parts * rows + width) as u64);
    let mut b = ModelBuilder::new();
    let ins: Vec<u32> = (0..parts).map(|_| b.input(dtype, vec![rows, width], Quant::NONE)).collect();
    let y = b.op(Op::Concat(Concat { axis: 1 }), &ins);
    b.output(y, Quant::NONE);
    let inputs = (0..parts).map(|_| filled(dtype, vec![rows, width], &mut g)).collect();
    single("Concat", format!("{} {parts} x [{rows}, {width}] axis 1", dtype.name()), b, inputs)
}

pub fn lut(n: usize) -> Option<Case> {
    let mut g = Gen::new(n as u64);
    let mut b = ModelBuilder::new();
    let x = b.input(DType::I8, vec![n], Quant::NONE);
    let table = b.tensor(Tensor::i8(vec![256], g.i8s(256)).ok()?);
    let y = b.op(Op::Lut8(Lut8 { table }), &[x]);
    b.output(y, Quant::NONE);
    single("Lut8", format!("n={n}"), b, vec![i8_input(&mut g, vec![n])])
}

/// An exponential table as the quantizer would build it (any entries in range do: the work does
/// not depend on them).
pub fn exp_table(g: &mut Gen) -> Vec<i32> {
    let mut t: Vec<i32> = (0..256).map(|_| (g.next() % (1 << 30)) as i32).collect();
    t[0] = 1 << 30;
    t
}

pub fn softmax(rows: usize, n: usize, causal: bool, out: u8) -> Option<Case> {
    let mut g = Gen::new((rows * 31 + n) as u64);
    let mut b = ModelBuilder::new();
    let x = b.input(DType::I8, vec![rows, n], Quant::NONE);
    let table = b.tensor(Tensor::i32(vec![256], exp_table(&mut g)).ok()?);
    let y = b.op(Op::Softmax(Softmax { table, causal: u8::from(causal), out }), &[x]);
    b.output(y, Quant::NONE);
    let name = format!("[{rows}, {n}] causal={causal} out={}", if out == 1 { "i8" } else { "i16" });
    single("Softmax", name, b, vec![i8_input(&mut g, vec![rows, n])])
}

/// LayerNorm (`rms = false`) or RMSNorm over i8 `[rows, c]`, small γ so the proof passes.
pub fn norm(rms: bool, rows: usize, c: usize) -> Option<Case> {
    norm_of(DType::I8, rms, rows, c)
}

/// LayerNorm or RMSNorm over `dtype` (i8 or i16) `[rows, c]`.
pub fn norm_of(dtype: DType, rms: bool, rows: usize, c: usize) -> Option<Case> {
    let mut g = Gen::new((rows * 7 + c) as u64 + u64::from(rms));
    let mut b = ModelBuilder::new();
    let x = b.input(dtype, vec![rows, c], Quant::NONE);
    let gamma = b.tensor(Tensor::i32(vec![c], (0..c).map(|_| (g.next() % 2001) as i32 - 1000).collect()).ok()?);
    let beta = b.tensor(Tensor::i32(vec![c], (0..c).map(|_| (g.next() % 2001) as i32 - 1000).collect()).ok()?);
    let params = NormParams { gamma, beta, eps: 1 + (g.next() % 100) as u32, frac_bits: 8, requant: rq(&mut b, c) };
    let op =
        if rms { Op::RmsNorm(RmsNorm { input_zero_point: 3, params }) } else { Op::LayerNorm(LayerNorm { params }) };
    let y = b.op(op, &[x]);
    b.output(y, Quant::NONE);
    let name = if rms { "RMSNorm" } else { "LayerNorm" };
    single(name, format!("{} [{rows}, {c}]", dtype.name()), b, vec![filled(dtype, vec![rows, c], &mut g)])
}

/// Gather of `n` i32 indices into a `[v, d]` table.
pub fn gather(n: usize, v: usize, d: usize) -> Option<Case> {
    let mut g = Gen::new((n * 3 + v + d) as u64);
    let mut b = ModelBuilder::new();
    let x = b.input(DType::I32, vec![n], Quant::NONE);
    let table = b.tensor(Tensor::i8(vec![v, d], g.i8s(v * d)).ok()?);
    let y = b.op(Op::Gather(Gather { table }), &[x]);
    b.output(y, Quant::NONE);
    let idx = Tensor::i32(vec![n], (0..n).map(|_| g.below(v as u64) as i32).collect()).ok()?;
    single("Gather", format!("{n} indices into [{v}, {d}]"), b, vec![idx])
}

/// MatMul of `[batch, m, k]` by `[batch, k, n]` (or its transpose), zero points at the extremes.
pub fn matmul(batch: usize, m: usize, k: usize, n: usize, transposed: bool) -> Option<Case> {
    let mut g = Gen::new((batch * 131 + m * 17 + k * 5 + n) as u64);
    let mut b = ModelBuilder::new();
    let xa = b.input(DType::I8, vec![batch, m, k], Quant::NONE);
    let b_shape = if transposed { vec![batch, n, k] } else { vec![batch, k, n] };
    let xb = b.input(DType::I8, b_shape.clone(), Quant::NONE);
    // Per column when B is transposed, per tensor (the requantization broadcasts its
    // parameters: two more buffers) otherwise.
    let requant = Some(rq(&mut b, if transposed { n } else { 1 }));
    let op = MatMul { a_zero_point: -128, b_zero_point: 127, b_transposed: u8::from(transposed), requant };
    let y = b.op(Op::MatMul(op), &[xa, xb]);
    b.output(y, Quant::NONE);
    let name = format!("[{batch}, {m}, {k}] x [{batch}, {k}, {n}] transposed={transposed}");
    single("MatMul", name, b, vec![i8_input(&mut g, vec![batch, m, k]), i8_input(&mut g, b_shape)])
}

/// Elementwise Mul of two `[n, c]` tensors, per-channel requantization.
pub fn mul_op(n: usize, c: usize) -> Option<Case> {
    let mut g = Gen::new((n * 3 + c) as u64);
    let mut b = ModelBuilder::new();
    let xa = b.input(DType::I8, vec![n, c], Quant::NONE);
    let xb = b.input(DType::I8, vec![n, c], Quant::NONE);
    let requant = rq(&mut b, c);
    let y = b.op(Op::Mul(Mul { a_zero_point: -128, b_zero_point: 127, requant }), &[xa, xb]);
    b.output(y, Quant::NONE);
    single("Mul", format!("[{n}, {c}]"), b, vec![i8_input(&mut g, vec![n, c]), i8_input(&mut g, vec![n, c])])
}

/// Transpose of `shape` by `perm`.
pub fn transpose(dtype: DType, shape: Vec<usize>, perm: Vec<u8>) -> Option<Case> {
    let mut g = Gen::new(shape.iter().sum::<usize>() as u64);
    let mut b = ModelBuilder::new();
    let x = b.input(dtype, shape.clone(), Quant::NONE);
    let name = format!("{} {shape:?} perm {perm:?}", dtype.name());
    let y = b.op(Op::Transpose(Transpose { perm }), &[x]);
    b.output(y, Quant::NONE);
    single("Transpose", name, b, vec![filled(dtype, shape, &mut g)])
}

/// Slice of `len` entries of axis `axis` of `shape`, from the middle.
pub fn slice(dtype: DType, shape: Vec<usize>, axis: u8, len: u32) -> Option<Case> {
    let mut g = Gen::new(shape.iter().product::<usize>() as u64 + u64::from(axis));
    let mut b = ModelBuilder::new();
    let x = b.input(dtype, shape.clone(), Quant::NONE);
    let start = (shape[usize::from(axis)] as u32 - len) / 2;
    let name = format!("{} {shape:?} axis {axis} len {len}", dtype.name());
    let y = b.op(Op::Slice(Slice { axis, start, len }), &[x]);
    b.output(y, Quant::NONE);
    single("Slice", name, b, vec![filled(dtype, shape, &mut g)])
}

pub fn argmax(dtype: DType, rows: usize, n: usize) -> Option<Case> {
    let mut g = Gen::new((rows + n) as u64);
    let mut b = ModelBuilder::new();
    let x = b.input(dtype, vec![rows, n], Quant::NONE);
    let y = b.op(Op::ArgMax(ArgMax), &[x]);
    b.output(y, Quant::NONE);
    single("ArgMax", format!("{} [{rows}, {n}]", dtype.name()), b, vec![filled(dtype, vec![rows, n], &mut g)])
}

pub fn requantize(dtype: DType, rows: usize, channels: usize) -> Option<Case> {
    let mut g = Gen::new((rows + channels) as u64);
    let mut b = ModelBuilder::new();
    let x = b.input(dtype, vec![rows, channels], Quant::NONE);
    let requant = rq(&mut b, channels);
    let y = b.op(Op::Requantize(Requantize { input_zero_point: 4, requant }), &[x]);
    b.output(y, Quant::NONE);
    let name = format!("{} [{rows}, {channels}]", dtype.name());
    single("Requantize", name, b, vec![filled(dtype, vec![rows, channels], &mut g)])
}

/// A tree ensemble of `roots` trees, all rooted at node 0 of one chain of `depth` tests ending in
/// leaves with `outputs` values; `features` input features.
pub fn trees(roots: usize, depth: usize, outputs: usize, features: usize) -> Option<Case> {
    let mut g = Gen::new((roots * 7 + depth * 3 + outputs) as u64);
    let mut b = ModelBuilder::new();
    let x = b.input(DType::I32, vec![features], Quant::NONE);
    // Internal nodes 0..depth-1: node i tests x[i % F] and goes to i+1 either way except the
    // last, which goes to leaf `depth` or `depth + 1`.
    let internal = depth.saturating_sub(1);
    let n = internal + if internal == 0 { 1 } else { 2 };
    let mut nodes = Vec::with_capacity(n * 4);
    for i in 0..internal {
        let next = (i + 1) as i32;
        let (l, r) = if i + 1 == internal { (next, next + 1) } else { (next, next) };
        nodes.extend([(i % features) as i32, 0, l, r]);
    }
    for _ in internal..n {
        nodes.extend([-1, 0, 0, 0]);
    }
    let mut leaves = vec![0i64; n * outputs];
    for v in leaves.iter_mut().skip(internal * outputs) {
        *v = (g.next() % 1000) as i64 - 500;
    }
    let nodes = b.tensor(Tensor::i32(vec![n, 4], nodes).ok()?);
    let leaves = b.tensor(Tensor::i64(vec![n, outputs], leaves).ok()?);
    let roots_t = b.tensor(Tensor::i32(vec![roots], vec![0; roots]).ok()?);
    let base = b.tensor(Tensor::i64(vec![outputs], vec![1; outputs]).ok()?);
    let y = b.op(Op::TreeEnsemble(TreeEnsemble { nodes, leaves, roots: roots_t, base }), &[x]);
    b.output(y, Quant::NONE);
    let name = format!("roots={roots} depth={depth} outputs={outputs}");
    single("TreeEnsemble", name, b, vec![filled(DType::I32, vec![features], &mut g)])
}

/// Integer square root (floor).
pub fn isqrt(n: usize) -> usize {
    let mut r = 0usize;
    while (r + 1) * (r + 1) <= n {
        r += 1;
    }
    r
}

fn win(k: u16, s: u16, d: u16, pad: u16) -> Window {
    let mut w = Window::new(k, k);
    w.stride_h = s;
    w.stride_w = s;
    w.dilation_h = d;
    w.dilation_w = d;
    w.pad_top = pad;
    w.pad_left = pad;
    w.pad_bottom = pad;
    w.pad_right = pad;
    w
}

/// Every family at a scale: `big` is the element count of the large tensors (2^20 at the caps'
/// scale for the bench; a few thousand in tests). Cases the verifier refuses are left out.
pub fn cases(big: usize) -> Vec<Case> {
    let side = isqrt(big);
    let mut v = vec![
        // FullyConnected: per-row and per-call overheads against real reductions.
        fc(big / 16, 1, 1, false),
        fc(big / 16, 1, 1, true),
        fc(big / 64, 1, 16, true),
        fc(1, big / 16, 1, false),
        fc(1, 1, big / 16, true),
        fc(1, 64, 64, true),
        fc(16, 256, 256, true),
        fc(1, 784, 64, true),
        // Conv2D: groups = C (depthwise) at 1x1, depthwise 3x3, one channel, windows over padding.
        conv(1, 1, big / 16, big / 16, big / 16, win(1, 1, 1, 0), false),
        conv(1, 1, big / 16, big / 16, big / 16, win(1, 1, 1, 0), true),
        conv(side / 8, side / 8, 64, 64, 64, win(3, 1, 1, 1), true),
        conv(side / 4, side / 4, 16, 16, 16, win(3, 2, 2, 2), true),
        conv(side, side, 1, 1, 1, win(1, 1, 1, 0), true),
        conv(1, 1, 1, 1, 1, win(16, 1, 1, 15), true),
        conv(side / 32, side / 32, 4, 4, 1, win(9, 1, 1, 8), true),
        conv(side / 16, side / 16, 8, 16, 1, win(3, 1, 1, 1), true),
        conv(28, 28, 1, 8, 1, win(3, 1, 1, 1), true),
        // Add, Lut8: plain streams.
        add(big),
        add(1),
        // AddWide: long i16 + i8 and i16 + i16 streams.
        add_wide(big, DType::I8),
        add_wide(big / 2, DType::I16),
        add_wide(1, DType::I8),
        lut(big),
        lut(1),
        // Pools: one channel (per-window overhead), big windows, ordinary.
        pool(true, side, side, 1, win(1, 1, 1, 0)),
        pool(false, side, side, 1, win(1, 1, 1, 0)),
        pool(true, side / 4, side / 4, 1, win(8, 1, 1, 7)),
        pool(false, side / 4, side / 4, 1, win(8, 1, 1, 7)),
        pool(true, side / 8, side / 8, 64, win(2, 2, 1, 0)),
        pool(false, side / 8, side / 8, 64, win(2, 2, 1, 0)),
        // Reshape and Concat: big copies, many one-element chunks.
        reshape(DType::I8, big),
        reshape(DType::I64, big / 8),
        concat(DType::I8, 16, big / 16, 1),
        concat(DType::I64, 16, big / 128, 1),
        concat(DType::I8, 2, 1, big / 2),
        // Softmax: rows of one (a division each), long rows, causal, both outputs.
        softmax(big, 1, false, 1),
        softmax(big / 2, 2, false, 2),
        softmax(1, big, false, 2),
        softmax(isqrt(big), isqrt(big), true, 1),
        // LayerNorm, RMSNorm: rows of one (a square root each), long rows.
        norm(false, big, 1),
        norm(true, big, 1),
        norm(false, big / 64, 64),
        norm(true, 1, big.min(1 << 16)),
        norm(false, 1, big.min(1 << 16)),
        // The same on i16 rows (a wide residual stream): the largest deviations and mean squares.
        norm_of(DType::I16, false, big / 128, 64),
        norm_of(DType::I16, true, big / 2, 1),
        norm_of(DType::I16, false, 1, (big / 2).min(1 << 16)),
        // Gather: one-byte rows (per-index overhead), random rows of a big table, long rows.
        gather(big / 4, 256, 1),
        gather(big / 64, big / 64, 16),
        gather(4, 16, big / 16),
        // MatMul: many 1x1x1 batches (per-batch packing), one row against a wide B (decode),
        // attention-like shapes, B transposed and not.
        matmul(big / 64, 1, 1, 1, false),
        matmul(1, 1, 256, big / 256, false),
        matmul(8, 64, 32, 64, true),
        matmul(8, 64, 64, 32, false),
        matmul(1, isqrt(big) / 4, 1, isqrt(big) / 4, true),
        // Mul: a long stream, per-channel parameters.
        mul_op(big, 1),
        mul_op(big / 64, 64),
        mul_op(1, 1),
        // Transpose: a big strided i64 copy, i8, a 4-axis permutation with a unit inner axis.
        transpose(DType::I64, vec![isqrt(big / 8), isqrt(big / 8)], vec![1, 0]),
        transpose(DType::I8, vec![side, side], vec![1, 0]),
        transpose(DType::I8, vec![16, side / 4, side / 4, 1], vec![3, 2, 1, 0]),
        // Slice: one-element chunks (per-chunk overhead), one big copy, the last row.
        slice(DType::I8, vec![big, 2], 1, 1),
        slice(DType::I64, vec![big / 8, 1], 0, (big / 16) as u32),
        slice(DType::I32, vec![isqrt(big), isqrt(big)], 0, 1),
        // ArgMax: rows of one, long rows, wide dtypes.
        argmax(DType::I8, big, 1),
        argmax(DType::I8, 1, big),
        argmax(DType::I64, big / 8, 1),
        // Requantize: the i128 path, one channel and many.
        requantize(DType::I32, big, 1),
        requantize(DType::I32, 1, big),
        requantize(DType::I8, big, 1),
        requantize(DType::I16, big / 64, 64),
        // TreeEnsemble: many roots into one wide leaf, a deep chain, many shallow trees.
        trees(big / 64, 1, big / 256, 4),
        trees(big / 1024, 1, big / 16, 4),
        trees(big / 64, 1, 1, 4),
        trees(16, big / 64, 4, 16),
        trees(big / 256, 16, 16, 16),
    ];
    v.retain(Option::is_some);
    v.into_iter().flatten().collect()
}
