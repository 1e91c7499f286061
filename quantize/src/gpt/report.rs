//! Float against integer on held-out windows: next-byte top-1 agreement, perplexity per byte of
//! each (the integer one from its dequantized logits), top-1 accuracy of each, and the cost and
//! warm gas of one full-window run.

use std::fmt;

use candle_core::{Device, Tensor};
use fixpoint_ml::{Engine, Tensor as ITensor, TensorData};

use super::calibrate::{Ranges, fake_quant};
use super::corpus::windows;
use super::model::{Gpt, Site, VOCAB, log_prob_and_top};
use crate::error::{Error, Result};
use crate::multiplier::scale_of;

/// What [`evaluate`] measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Report {
    /// Predicted positions.
    pub tokens: usize,
    /// Positions where the integer argmax equals the float argmax.
    pub agree: usize,
    /// Float top-1 hits.
    pub float_hits: usize,
    /// Integer top-1 hits.
    pub int_hits: usize,
    /// Float negative log-likelihood, nats summed.
    pub float_nll: f64,
    /// Integer negative log-likelihood, nats summed.
    pub int_nll: f64,
}

impl Report {
    fn pct(n: usize, d: usize) -> f64 {
        100.0 * n as f64 / d.max(1) as f64
    }

    /// Integer-float top-1 agreement, percent.
    pub fn agreement(&self) -> f64 {
        Self::pct(self.agree, self.tokens)
    }

    /// Float perplexity per byte.
    pub fn float_ppl(&self) -> f64 {
        (self.float_nll / self.tokens.max(1) as f64).exp()
    }

    /// Integer perplexity per byte.
    pub fn int_ppl(&self) -> f64 {
        (self.int_nll / self.tokens.max(1) as f64).exp()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} positions: top-1 agreement {:.2}%; perplexity/byte float {:.4}, integer {:.4} ({:+.2}%); top-1 accuracy float {:.2}%, integer {:.2}%",
            self.tokens,
            self.agreement(),
            self.float_ppl(),
            self.int_ppl(),
            100.0 * (self.int_ppl() / self.float_ppl() - 1.0),
            Self::pct(self.float_hits, self.tokens),
            Self::pct(self.int_hits, self.tokens)
        )
    }
}

/// The integer model's dequantized logits `[T][256]` for `window` (`T` bytes, positions 0..T−1).
pub fn integer_logits(engine: &Engine, window: &[u8]) -> Result<Vec<Vec<f32>>> {
    let t = window.len();
    let positions: Vec<u8> = (0..t).map(|i| u8::try_from(i).unwrap_or(u8::MAX)).collect();
    let out = engine.run(vec![
        ITensor::new(vec![t], TensorData::U8(window.to_vec()))?,
        ITensor::new(vec![t], TensorData::U8(positions))?,
    ])?;
    let scale = engine.model().outputs.first().map(|o| scale_of(&o.quant)).unwrap_or(1.0);
    match out.first().map(ITensor::data) {
        Some(TensorData::I32(v)) if v.len() == t * VOCAB => {
            Ok(v.chunks(VOCAB).map(|r| r.iter().map(|&q| (f64::from(q) * scale) as f32).collect()).collect())
        }
        _ => Err(Error::Quantize("the integer model's output 0 is not i32 [T, 256] logits".into())),
    }
}

/// Compares `m` and `engine` on up to `count` non-overlapping windows of `T + 1` bytes of `text`
/// (the first `T` are the input, each next byte the target).
pub fn evaluate(m: &Gpt, engine: &Engine, text: &[u8], count: usize) -> Result<Report> {
    let t = m.config.context;
    let mut r = Report::default();
    for w in windows(text, t + 1, count) {
        let x = Tensor::from_vec(w[..t].iter().map(|&c| u32::from(c)).collect::<Vec<_>>(), (1, t), &Device::Cpu)?;
        let float: Vec<Vec<f32>> = m.forward(&x)?.squeeze(0)?.to_vec2()?;
        let int = integer_logits(engine, &w[..t])?;
        for ((fr, ir), &y) in float.iter().zip(&int).zip(&w[1..]) {
            let y = usize::from(y);
            let (flp, ftop) = log_prob_and_top(fr, y);
            let (ilp, itop) = log_prob_and_top(ir, y);
            r.tokens += 1;
            r.agree += usize::from(ftop == itop);
            r.float_hits += usize::from(ftop == y);
            r.int_hits += usize::from(itop == y);
            r.float_nll -= flp;
            r.int_nll -= ilp;
        }
    }
    Ok(r)
}

/// A kind of traced value, for [`ablate`].
fn kind(site: Site) -> &'static str {
    match site {
        Site::Embed | Site::Mid(_) | Site::Out(_) => "residual stream (i16)",
        Site::Ln1(_) | Site::Ln2(_) | Site::LnF => "LayerNorm outputs",
        Site::Q(_) | Site::K(_) | Site::V(_) => "Q, K, V",
        Site::Scores(_) => "attention scores",
        Site::Probs(_) => "attention probabilities (1/127)",
        Site::Attn(_) => "P·V",
        Site::Proj(_) | Site::Fc2(_) => "block outputs (proj, fc2)",
        Site::Fc1(_) | Site::Gelu(_) => "MLP hidden (fc1, GELU)",
        Site::TokTable | Site::PosTable => "embedding tables",
    }
}

/// Which kinds of activation quantization cost the most agreement: for each kind alone, the
/// float model with only those values rounded to their i8 grid (probabilities to multiples of
/// 1/127), against the plain float model's top-1 on `count` windows of `text`. Weights stay
/// float, so this isolates activation grids.
pub fn ablate(m: &Gpt, ranges: &Ranges, text: &[u8], count: usize) -> Result<Vec<(&'static str, f64)>> {
    let t = m.config.context;
    let kinds = [
        "residual stream (i16)",
        "LayerNorm outputs",
        "Q, K, V",
        "attention scores",
        "attention probabilities (1/127)",
        "P·V",
        "block outputs (proj, fc2)",
        "MLP hidden (fc1, GELU)",
    ];
    let mut out = Vec::new();
    for k in kinds {
        let (mut agree, mut n) = (0usize, 0usize);
        for w in windows(text, t, count) {
            let x = Tensor::from_vec(w.iter().map(|&c| u32::from(c)).collect::<Vec<_>>(), (1, t), &Device::Cpu)?;
            let float: Vec<Vec<f32>> = m.forward(&x)?.squeeze(0)?.to_vec2()?;
            let sim: Vec<Vec<f32>> = m
                .forward_traced(&x, &mut |site, v| {
                    if kind(site) != k {
                        return Ok(v);
                    }
                    fake_quant(site, &v, ranges)
                })?
                .squeeze(0)?
                .to_vec2()?;
            for (f, q) in float.iter().zip(&sim) {
                agree += usize::from(log_prob_and_top(f, 0).1 == log_prob_and_top(q, 0).1);
                n += 1;
            }
        }
        out.push((k, 100.0 * agree as f64 / n.max(1) as f64));
    }
    // Weights alone: every matrix rounded to i8 as the lowering does (per output channel; the
    // embeddings and the lm head per tensor).
    let round = |v: &candle_core::Var, per_row: bool| -> Result<()> {
        let w = Gpt::values(v)?;
        let dims = v.as_tensor().dims().to_vec();
        let cols = if per_row && dims.len() == 2 { dims[1] } else { w.len() };
        let q: Vec<f32> = w
            .chunks(cols)
            .flat_map(|row| {
                let s = crate::lower::channel_scale(row);
                crate::lower::i8_weights(row, s).into_iter().map(move |q| (f64::from(q) * s) as f32)
            })
            .collect();
        v.set(&Tensor::from_vec(q, dims, &Device::Cpu)?)?;
        Ok(())
    };
    for group in ["weights: embeddings", "weights: blocks", "weights: lm head"] {
        let wq = m.clone_deep()?;
        match group {
            "weights: embeddings" => {
                round(&wq.tok, false)?;
                round(&wq.pos, false)?;
            }
            "weights: lm head" => round(&wq.head.0, false)?,
            _ => {
                for b in &wq.blocks {
                    for p in [&b.q, &b.k, &b.v, &b.o, &b.fc1, &b.fc2] {
                        round(&p.0, true)?;
                    }
                }
            }
        }
        let (mut agree, mut n) = (0usize, 0usize);
        for w in windows(text, t, count) {
            let x = Tensor::from_vec(w.iter().map(|&c| u32::from(c)).collect::<Vec<_>>(), (1, t), &Device::Cpu)?;
            let float: Vec<Vec<f32>> = m.forward(&x)?.squeeze(0)?.to_vec2()?;
            let sim: Vec<Vec<f32>> = wq.forward(&x)?.squeeze(0)?.to_vec2()?;
            for (f, q) in float.iter().zip(&sim) {
                agree += usize::from(log_prob_and_top(f, 0).1 == log_prob_and_top(q, 0).1);
                n += 1;
            }
        }
        out.push((group, 100.0 * agree as f64 / n.max(1) as f64));
    }
    Ok(out)
}
