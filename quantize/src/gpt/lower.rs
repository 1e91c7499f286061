//! The integer graph of the tiny GPT, in the one layout the KV-cached evaluator analyses:
//!
//! ```text
//! inputs: 0 tokens u8 [T], 1 positions u8 [T] (0..T−1)
//! x = AddWide(Gather(tokens, tok), Gather(positions, pos))      (x: the i16 residual stream)
//! per block:
//!   a = LayerNorm(x)                                            (i16 in, i8 out)
//!   q, k, v = FullyConnected(a) each → Reshape [T, H, dh] → Transpose [1,0,2] → [H, T, dh]
//!   s = MatMul(q, k, b_transposed = 1)         (1/√dh folded into its requantization)
//!   p = Softmax(s, causal = 1, i8 out)
//!   o = MatMul(p, v) → Transpose [1,0,2] → Reshape [T, d] → FullyConnected
//!   x = AddWide(x, o)
//!   x = AddWide(x, FullyConnected(Lut8_GELU(FullyConnected(LayerNorm(x)))))
//! logits = FullyConnected(LayerNorm(x)) i32 [T, 256]   (output 0)
//! ```
//!
//! Scales: weights symmetric per output channel (the embeddings and the lm head per tensor, so
//! that the Gather rows and the logits share one scale), activations asymmetric per tensor from
//! the calibrated ranges ([`super::calibrate`]): i8, except the residual stream, which is i16
//! (AddWide, docs/arithmetic.md §18) on its min/max widened by [`super::calibrate::WIDE_MARGIN`]. LayerNorm's integer γ, β and ε follow
//! docs/arithmetic.md §12 (the float γ, β and the input scale folded in), the Softmax table is
//! `E[d] = round(2^30·exp(−s·d))` for the score scale `s` (§11), GELU is an exact Lut8 (§7).

use fixpoint_ml::format::{Model, ModelBuilder, Quant};
use fixpoint_ml::ops::{
    AddWide, FullyConnected, Gather, LayerNorm, Lut8, MatMul, NormParams, Op, Requant, Reshape, Softmax, Transpose,
};
use fixpoint_ml::{DType, Tensor as ITensor, TensorData};

use super::calibrate::{Ranges, grid};
use super::model::{Gpt, LN_EPS, Site, VOCAB};
use crate::error::{Error, Result};
use crate::lower::{affine, bias_i32, channel_scale, i8_weights, requant_tensors};
use crate::multiplier::{add_multipliers, quant, requant_multiplier};
use crate::pointwise::{Pointwise, table};

/// Fractional bits of LayerNorm's normalized values (the largest the format allows).
pub const LN_FRAC_BITS: u8 = 12;

/// A value of the graph with its real scale and zero point.
#[derive(Debug, Clone, Copy)]
struct Val {
    id: u32,
    scale: f64,
    zp: i32,
}

struct Lowering<'a> {
    b: ModelBuilder,
    m: &'a Gpt,
    ranges: &'a Ranges,
    t: u32,
}

fn u32_of(v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Quantize(format!("dimension {v} too large")))
}

fn values(v: &candle_core::Var) -> Result<Vec<f32>> {
    Gpt::values(v)
}

impl Lowering<'_> {
    fn range(&self, site: Site) -> Result<(f64, i32)> {
        let &(lo, hi) =
            self.ranges.get(&site).ok_or_else(|| Error::Quantize(format!("no calibrated range for {site:?}")))?;
        let (scale, zp, _, _) = grid(site, lo, hi);
        Ok((scale, zp))
    }

    fn per_tensor_requant(&mut self, real: f64, zp: i32) -> Result<Requant> {
        let (m, n) = requant_multiplier(real)?;
        let multiplier = self.b.tensor(ITensor::i32(vec![1], vec![m])?);
        let shift = self.b.tensor(ITensor::new(vec![1], TensorData::U8(vec![n]))?);
        Ok(Requant { multiplier, shift, zero_point: zp, lo: -128, hi: 127 })
    }

    /// FullyConnected with per-channel weights, requantized to `site`'s range.
    fn fc(&mut self, x: Val, p: &(candle_core::Var, candle_core::Var), site: Site) -> Result<Val> {
        let (w, bias) = (values(&p.0)?, values(&p.1)?);
        let (out, inp) = p.0.as_tensor().dims2()?;
        let (s_out, zp_out) = self.range(site)?;
        let a = affine(&w, &bias, x.scale, s_out, None)?;
        let weights = self.b.tensor(ITensor::i8(vec![out, inp], a.weights.clone())?);
        let bias = self.b.tensor(ITensor::i32(vec![out], a.bias.clone())?);
        let requant = Some(requant_tensors(&mut self.b, &a, zp_out, false)?);
        let op = FullyConnected { weights, bias, input_zero_point: x.zp, requant };
        Ok(Val { id: self.b.op(Op::FullyConnected(op), &[x.id]), scale: s_out, zp: zp_out })
    }

    /// LayerNorm (docs/arithmetic.md §12). With `F` fractional bits the normalized `z` is at most
    /// `Z = (isqrt(C) + 1)·2^F`; the accumulator scale `s_acc = max|γ|·2^−F / G` makes
    /// `γ_int = round(γ·G/max|γ|)` and `β_int = round(β/s_acc)`, with `G` the largest value
    /// keeping `G·Z + max|β_int| < 2^31`. ε in integer units is `ε·C²/s_in²` (the op's
    /// deviations are `C` times the real ones over `s_in`).
    fn layer_norm(&mut self, x: Val, p: &(candle_core::Var, candle_core::Var), site: Site) -> Result<Val> {
        let (g, beta) = (values(&p.0)?, values(&p.1)?);
        let c = g.len();
        let f = i32::from(LN_FRAC_BITS);
        let max_g = f64::from(g.iter().fold(0f32, |m, &v| m.max(v.abs()))).max(1e-12);
        let max_b = f64::from(beta.iter().fold(0f32, |m, &v| m.max(v.abs())));
        let root = (c as f64).sqrt().floor() + 1.0;
        let two_f = 2f64.powi(f);
        let big_g = (0.99 * 2f64.powi(31) / (two_f * (root + max_b / max_g))).floor();
        if big_g < 256.0 {
            return Err(Error::Quantize(format!("LayerNorm β ({max_b}) too large against γ ({max_g})")));
        }
        let s_acc = max_g / two_f / big_g;
        let gamma: Vec<i32> = g.iter().map(|&v| (f64::from(v) / max_g * big_g).round() as i32).collect();
        let beta: Vec<i32> = beta.iter().map(|&v| bias_i32(v, s_acc)).collect::<Result<_>>()?;
        let eps = (LN_EPS * (c * c) as f64 / (x.scale * x.scale)).round().clamp(1.0, f64::from(u32::MAX)) as u32;
        let (s_out, zp_out) = self.range(site)?;
        let gamma = self.b.tensor(ITensor::i32(vec![c], gamma)?);
        let beta = self.b.tensor(ITensor::i32(vec![c], beta)?);
        let requant = self.per_tensor_requant(s_acc / s_out, zp_out)?;
        let params = NormParams { gamma, beta, eps, frac_bits: LN_FRAC_BITS, requant };
        Ok(Val { id: self.b.op(Op::LayerNorm(LayerNorm { params }), &[x.id]), scale: s_out, zp: zp_out })
    }

    /// The residual stream's sum of `a` (i16 stream or i8) and `b` (i8), onto `site`'s i16 grid
    /// (AddWide, docs/arithmetic.md §18): one rounding, so the stream term loses nothing.
    fn add_wide(&mut self, a: Val, b: Val, site: Site) -> Result<Val> {
        let (s_out, zp_out) = self.range(site)?;
        let (a_multiplier, b_multiplier, shift) = add_multipliers(a.scale / s_out, b.scale / s_out)?;
        let op = AddWide(fixpoint_ml::ops::Add {
            a_zero_point: a.zp,
            a_multiplier,
            b_zero_point: b.zp,
            b_multiplier,
            shift,
            zero_point: zp_out,
            lo: -32_768,
            hi: 32_767,
        });
        Ok(Val { id: self.b.op(Op::AddWide(op), &[a.id, b.id]), scale: s_out, zp: zp_out })
    }

    fn reshape(&mut self, x: Val, shape: Vec<u32>) -> Val {
        Val { id: self.b.op(Op::Reshape(Reshape { shape }), &[x.id]), ..x }
    }

    fn swap01(&mut self, x: Val) -> Val {
        Val { id: self.b.op(Op::Transpose(Transpose { perm: vec![1, 0, 2] }), &[x.id]), ..x }
    }

    /// `[T, d]` → `[H, T, dh]`.
    fn split_heads(&mut self, x: Val) -> Result<Val> {
        let c = self.m.config;
        let x = self.reshape(x, vec![self.t, u32_of(c.heads)?, u32_of(c.head_dim())?]);
        Ok(self.swap01(x))
    }

    fn embed(&mut self, tokens: u32, positions: u32) -> Result<Val> {
        let d = self.m.config.width;
        let gather = |w: &candle_core::Var, rows: usize, idx: u32, b: &mut ModelBuilder| -> Result<Val> {
            let w = values(w)?;
            let w = &w[..rows * d];
            let s = channel_scale(w);
            let table = b.tensor(ITensor::i8(vec![rows, d], i8_weights(w, s))?);
            Ok(Val { id: b.op(Op::Gather(Gather { table }), &[idx]), scale: s, zp: 0 })
        };
        let tok = gather(&self.m.tok, VOCAB, tokens, &mut self.b)?;
        let pos = gather(&self.m.pos, self.t as usize, positions, &mut self.b)?;
        self.add_wide(tok, pos, Site::Embed)
    }

    fn attention(&mut self, l: usize, a: Val) -> Result<Val> {
        let blk = &self.m.blocks[l];
        let dh = self.m.config.head_dim();
        let q = self.fc(a, &blk.q, Site::Q(l))?;
        let q = self.split_heads(q)?;
        let k = self.fc(a, &blk.k, Site::K(l))?;
        let k = self.split_heads(k)?;
        let v = self.fc(a, &blk.v, Site::V(l))?;
        let v = self.split_heads(v)?;
        // Scores: acc·s_q·s_k/√dh in the calibrated score grid.
        let (s_s, zp_s) = self.range(Site::Scores(l))?;
        let requant = Some(self.per_tensor_requant(q.scale * k.scale / (dh as f64).sqrt() / s_s, zp_s)?);
        let op = MatMul { a_zero_point: q.zp, b_zero_point: k.zp, b_transposed: 1, requant };
        let s = self.b.op(Op::MatMul(op), &[q.id, k.id]);
        // E[d] = 2^30·exp(−s_s·d): the row maximum weighs 2^30, a score d steps below it less.
        let exp: Vec<i32> = (0..256).map(|d| ((-s_s * f64::from(d)).exp() * 2f64.powi(30)).round() as i32).collect();
        let table = self.b.tensor(ITensor::i32(vec![256], exp)?);
        let p = self.b.op(Op::Softmax(Softmax { table, causal: 1, out: 1 }), &[s]);
        // P·V: probabilities at scale 1/127, zero point 0.
        let (s_o, zp_o) = self.range(Site::Attn(l))?;
        let requant = Some(self.per_tensor_requant(v.scale / 127.0 / s_o, zp_o)?);
        let op = MatMul { a_zero_point: 0, b_zero_point: v.zp, b_transposed: 0, requant };
        let o = Val { id: self.b.op(Op::MatMul(op), &[p, v.id]), scale: s_o, zp: zp_o };
        let o = self.swap01(o);
        let o = self.reshape(o, vec![self.t, u32_of(self.m.config.width)?]);
        self.fc(o, &blk.o, Site::Proj(l))
    }

    fn mlp(&mut self, l: usize, a: Val) -> Result<Val> {
        let blk = &self.m.blocks[l];
        let h = self.fc(a, &blk.fc1, Site::Fc1(l))?;
        let (s_g, zp_g) = self.range(Site::Gelu(l))?;
        let t = table(&|v| Pointwise::Gelu.eval(v), (h.scale, h.zp), (s_g, zp_g));
        let t = self.b.tensor(ITensor::i8(vec![256], t)?);
        let g = Val { id: self.b.op(Op::Lut8(Lut8 { table: t }), &[h.id]), scale: s_g, zp: zp_g };
        self.fc(g, &blk.fc2, Site::Fc2(l))
    }

    fn head(&mut self, x: Val) -> Result<(u32, Quant)> {
        let (w, bias) = (values(&self.m.head.0)?, values(&self.m.head.1)?);
        let d = self.m.config.width;
        // One weight scale so that the logits share one real scale.
        let s_w = channel_scale(&w);
        let weights = self.b.tensor(ITensor::i8(vec![VOCAB, d], i8_weights(&w, s_w))?);
        let q_bias = bias.iter().map(|&v| bias_i32(v, x.scale * s_w)).collect::<Result<Vec<_>>>()?;
        let bias = self.b.tensor(ITensor::i32(vec![VOCAB], q_bias)?);
        let op = FullyConnected { weights, bias, input_zero_point: x.zp, requant: None };
        Ok((self.b.op(Op::FullyConnected(op), &[x.id]), quant(x.scale * s_w, 0)?))
    }
}

/// Lowers `m` with calibrated `ranges` to the canonical integer model over a full window of
/// `m.config.context` positions; output 0 is the logits, i32 `[T, 256]` with their real scale.
pub fn lower(m: &Gpt, ranges: &Ranges) -> Result<Model> {
    let t = u32_of(m.config.context)?;
    let mut l = Lowering { b: ModelBuilder::new(), m, ranges, t };
    let tokens = l.b.input(DType::U8, vec![t as usize], Quant::NONE);
    let positions = l.b.input(DType::U8, vec![t as usize], Quant::NONE);
    let mut x = l.embed(tokens, positions)?;
    for i in 0..m.config.layers {
        let a = l.layer_norm(x, &m.blocks[i].ln1, Site::Ln1(i))?;
        let o = l.attention(i, a)?;
        x = l.add_wide(x, o, Site::Mid(i))?;
        let a = l.layer_norm(x, &m.blocks[i].ln2, Site::Ln2(i))?;
        let f = l.mlp(i, a)?;
        x = l.add_wide(x, f, Site::Out(i))?;
    }
    let a = l.layer_norm(x, &m.ln_f, Site::LnF)?;
    let (logits, q) = l.head(a)?;
    l.b.output(logits, q);
    Ok(l.b.finish()?)
}
