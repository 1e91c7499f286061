//! A small decoder-only transformer with random weights, built as the quantizer builds the real
//! one (docs/model-format.md §9): token and position embeddings, pre-norm blocks of causal
//! multi-head attention and a gated MLP, a final norm and i32 logits. Shared by the generation
//! tests (`ml/tests/decode.rs`) and benches; the weights are fixed by the seed.
#![allow(dead_code, unreachable_pub, missing_docs)]

use fixpoint_ml::format::{Model, ModelBuilder, NO_TENSOR, Quant};
use fixpoint_ml::ops::{
    Add, FullyConnected, Gather, LayerNorm, Lut8, MatMul, Mul, NormParams, Op, Requant, Reshape, Softmax, Transpose,
};
use fixpoint_ml::{DType, Tensor, TensorData};

use super::adversarial::Gen;

/// The shape of a [`decoder`].
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    /// Window (positions).
    pub t: usize,
    /// Vocabulary.
    pub vocab: usize,
    /// Width.
    pub d: usize,
    /// Attention heads (`d` divisible by it).
    pub heads: usize,
    /// Blocks.
    pub layers: usize,
}

/// A per-tensor requantization by `2^-bits` (multiplier 2^30, shift 30 + bits).
fn rq(b: &mut ModelBuilder, bits: u8, zero_point: i32) -> Requant {
    let multiplier = b.tensor(Tensor::i32(vec![1], vec![1 << 30]).unwrap());
    let shift = b.tensor(Tensor::new(vec![1], TensorData::U8(vec![30 + bits])).unwrap());
    Requant { multiplier, shift, zero_point, lo: -128, hi: 127 }
}

/// `⌈log2(√k · 128 · 40 / 40)⌉`-ish: the shift that brings a sum of `k` random i8 products to
/// about ±40.
fn bits_for(k: usize) -> u8 {
    ((k as f64).sqrt() * 128.0 * 74.0 / 40.0).log2().round() as u8
}

fn fc(b: &mut ModelBuilder, g: &mut Gen, x: u32, k: usize, n: usize, requant: bool) -> u32 {
    let weights = b.tensor(Tensor::i8(vec![n, k], g.i8s(n * k)).unwrap());
    let bias = b.tensor(Tensor::i32(vec![n], (0..n).map(|_| (g.below(2001) as i32) - 1000).collect()).unwrap());
    let requant = requant.then(|| rq(b, bits_for(k), 0));
    b.op(Op::FullyConnected(FullyConnected { weights, bias, input_zero_point: 0, requant }), &[x])
}

fn norm(b: &mut ModelBuilder, g: &mut Gen, x: u32, d: usize) -> u32 {
    let gamma = b.tensor(Tensor::i32(vec![d], (0..d).map(|_| 200 + g.below(112) as i32).collect()).unwrap());
    let beta = b.tensor(Tensor::i32(vec![d], (0..d).map(|_| (g.below(4001) as i32) - 2000).collect()).unwrap());
    let requant = rq(b, 10, 0);
    let params = NormParams { gamma, beta, eps: 1, frac_bits: 8, requant };
    b.op(Op::LayerNorm(LayerNorm { params }), &[x])
}

fn add(b: &mut ModelBuilder, x: u32, y: u32) -> u32 {
    let op = Add {
        a_zero_point: 0,
        a_multiplier: 1 << 30,
        b_zero_point: 0,
        b_multiplier: 1 << 30,
        shift: 31,
        zero_point: 0,
        lo: -128,
        hi: 127,
    };
    b.op(Op::Add(op), &[x, y])
}

fn heads(b: &mut ModelBuilder, x: u32, dims: Dims) -> u32 {
    let dh = dims.d / dims.heads;
    let r = b.op(Op::Reshape(Reshape { shape: vec![dims.t as u32, dims.heads as u32, dh as u32] }), &[x]);
    b.op(Op::Transpose(Transpose { perm: vec![1, 0, 2] }), &[r])
}

/// The exponential table `exp(−d/8)` in units of 2^−30.
pub fn exp_table() -> Vec<i32> {
    let mut t = Vec::with_capacity(256);
    let mut v: i64 = 1 << 30;
    for _ in 0..256 {
        t.push(v as i32);
        v = (v * 947_573_684) >> 30;
    }
    t
}

/// The decoder: inputs tokens `u8 [T]` and positions `u8 [T]`, output logits `i32 [T, V]`.
pub fn decoder(dims: Dims, seed: u64) -> Model {
    let Dims { t, vocab, d, heads: h, layers } = dims;
    let dh = d / h;
    let mut g = Gen::new(seed);
    let mut b = ModelBuilder::new();
    let tokens = b.input(DType::U8, vec![t], Quant::NONE);
    let positions = b.input(DType::U8, vec![t], Quant::NONE);
    let tok = b.tensor(Tensor::i8(vec![vocab, d], g.i8s(vocab * d)).unwrap());
    let x = b.op(Op::Gather(Gather { table: tok }), &[tokens]);
    let pos = b.tensor(Tensor::i8(vec![t, d], g.i8s(t * d)).unwrap());
    let p = b.op(Op::Gather(Gather { table: pos }), &[positions]);
    let mut hidden = add(&mut b, x, p);
    // Tables shared by every block, added where first referenced (the canonical order).
    let (mut exp, mut gelu) = (None, None);
    for _ in 0..layers {
        let n1 = norm(&mut b, &mut g, hidden, d);
        let q = fc(&mut b, &mut g, n1, d, d, true);
        let k = fc(&mut b, &mut g, n1, d, d, true);
        let v = fc(&mut b, &mut g, n1, d, d, true);
        let (qh, kh, vh) = (heads(&mut b, q, dims), heads(&mut b, k, dims), heads(&mut b, v, dims));
        let scores_rq = Some(rq(&mut b, bits_for(dh) - 1, 0));
        let scores = MatMul { a_zero_point: 0, b_zero_point: 0, b_transposed: 1, requant: scores_rq };
        let s = b.op(Op::MatMul(scores), &[qh, kh]);
        let table = *exp.get_or_insert_with(|| b.tensor(Tensor::i32(vec![256], exp_table()).unwrap()));
        let probs = b.op(Op::Softmax(Softmax { table, causal: 1, out: 1 }), &[s]);
        let mix_rq = Some(rq(&mut b, 7, 0));
        let mix = MatMul { a_zero_point: 0, b_zero_point: 0, b_transposed: 0, requant: mix_rq };
        let o = b.op(Op::MatMul(mix), &[probs, vh]);
        let merged = b.op(Op::Transpose(Transpose { perm: vec![1, 0, 2] }), &[o]);
        let flat = b.op(Op::Reshape(Reshape { shape: vec![t as u32, d as u32] }), &[merged]);
        let proj = fc(&mut b, &mut g, flat, d, d, true);
        hidden = add(&mut b, hidden, proj);
        let n2 = norm(&mut b, &mut g, hidden, d);
        let up = fc(&mut b, &mut g, n2, d, 2 * d, true);
        let table = *gelu.get_or_insert_with(|| {
            let lut = (0..256).map(|i| ((i - 128).max(-8) / 2) as i8).collect();
            b.tensor(Tensor::i8(vec![256], lut).unwrap())
        });
        let gate = b.op(Op::Lut8(Lut8 { table }), &[up]);
        let gated_rq = rq(&mut b, 5, 0);
        let gated = b.op(Op::Mul(Mul { a_zero_point: 0, b_zero_point: 0, requant: gated_rq }), &[up, gate]);
        let down = fc(&mut b, &mut g, gated, 2 * d, d, true);
        hidden = add(&mut b, hidden, down);
    }
    let nf = norm(&mut b, &mut g, hidden, d);
    let weights = b.tensor(Tensor::i8(vec![vocab, d], g.i8s(vocab * d)).unwrap());
    let logits = b
        .op(Op::FullyConnected(FullyConnected { weights, bias: NO_TENSOR, input_zero_point: 0, requant: None }), &[nf]);
    b.output(logits, Quant::NONE);
    b.finish().expect("the decoder is canonical")
}
