//! Activation ranges of the float model on the calibration slice (text never trained on nor
//! evaluated on). Each traced [`Site`] gets `(lo, hi)`: the min and max of its values, or with a
//! percentile `p < 100` the `(100 − p)`-th and `p`-th percentiles, which clip rare outliers to
//! give the bulk a finer i8 grid. Attention scores count only the entries the causal mask
//! keeps, their maximum is never clipped (the row maximum is what the softmax keys on), and
//! their range starts [`Settings::score_margin`] below the smallest row maximum.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};

use super::corpus::windows;
use super::model::{Gpt, Site};
use crate::error::{Error, Result};
use crate::lower::activation_quant;

/// Calibration settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Windows of the context length taken from the start of the calibration slice.
    pub windows: usize,
    /// Percentile of each site's values kept (100 = min/max).
    pub percentile: f64,
    /// Attention scores below a row's maximum by more than this (in real units, `exp(−margin)`
    /// of the maximum's weight) are negligible: the score range starts this far below the
    /// smallest row maximum instead of at the smallest score, which gives the softmax's
    /// exponential table a finer step. 0 keeps the smallest score.
    pub score_margin: f64,
    /// Shrink each range (other than the scores') to the one whose i8 grid has the least mean
    /// squared error on the calibration values, among the min/max (or percentile) range times
    /// 1, 0.95, …, 0.3.
    pub mse: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self { windows: 32, percentile: 100.0, score_margin: 12.0, mse: true }
    }
}

/// The calibrated `(lo, hi)` of every site.
pub type Ranges = BTreeMap<Site, (f32, f32)>;

/// How much wider than its calibrated min/max the i16 residual stream's grid is: values a little
/// outside what the calibration text reached still fit, and the step stays about 1/26,000 of the
/// range, far finer than any i8 grid around it.
pub const WIDE_MARGIN: f64 = 1.25;

/// Whether `site` is the residual stream, held in i16 (AddWide, docs/arithmetic.md §18).
pub fn is_residual(site: Site) -> bool {
    matches!(site, Site::Embed | Site::Mid(_) | Site::Out(_))
}

/// Scale and zero point of the i16 grid over `[lo, hi]` widened by [`WIDE_MARGIN`] (and to
/// include 0), as [`activation_quant`] is for i8.
pub fn wide_quant(lo: f32, hi: f32) -> (f64, i32) {
    let (lo, hi) = (f64::from(lo.min(0.0)) * WIDE_MARGIN, f64::from(hi.max(0.0)) * WIDE_MARGIN);
    let scale = ((hi - lo) / 65_535.0).max(1e-12);
    let zp = (-32_768.0 - (lo / scale).round()).clamp(-32_768.0, 32_767.0) as i32;
    (scale, zp)
}

/// The grid of `site`: scale, zero point and clamp bounds (i16 for the residual stream, else i8).
pub fn grid(site: Site, lo: f32, hi: f32) -> (f64, i32, f64, f64) {
    if is_residual(site) {
        let (s, zp) = wide_quant(lo, hi);
        (s, zp, -32_768.0, 32_767.0)
    } else {
        let (s, zp) = activation_quant(lo, hi);
        (s, zp, -128.0, 127.0)
    }
}

fn quantile(sorted: &[f32], q: f64) -> f32 {
    let i = ((sorted.len().saturating_sub(1)) as f64 * q).round() as usize;
    sorted.get(i.min(sorted.len().saturating_sub(1))).copied().unwrap_or(0.0)
}

/// Ranges of every site of `m` over the first `s.windows` windows of `text`.
pub fn calibrate(m: &Gpt, text: &[u8], s: &Settings) -> Result<Ranges> {
    let t = m.config.context;
    let ws = windows(text, t, s.windows);
    if ws.is_empty() {
        return Err(Error::Quantize("calibration text shorter than one window".into()));
    }
    let mut values: BTreeMap<Site, Vec<f32>> = BTreeMap::new();
    let mut row_max_min: BTreeMap<Site, f32> = BTreeMap::new();
    for w in &ws {
        let x = Tensor::from_vec(w.iter().map(|&c| u32::from(c)).collect::<Vec<_>>(), (1, t), &Device::Cpu)?;
        m.forward_traced(&x, &mut |site, v| {
            if let Site::Probs(_) | Site::TokTable | Site::PosTable = site {
                return Ok(v);
            }
            let all: Vec<f32> = v.flatten_all()?.to_vec1()?;
            let out = values.entry(site).or_default();
            if let Site::Scores(_) = site {
                // [1, H, T, T]: keep row i's columns 0..=i.
                let low = row_max_min.entry(site).or_insert(f32::INFINITY);
                for (r, row) in all.chunks(t).enumerate() {
                    let visible = &row[..=(r % t)];
                    out.extend_from_slice(visible);
                    *low = low.min(visible.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)));
                }
            } else {
                out.extend(all);
            }
            Ok(v)
        })?;
    }
    let p = (s.percentile / 100.0).clamp(0.5, 1.0);
    Ok(values
        .into_iter()
        .map(|(site, mut v)| {
            v.sort_by(f32::total_cmp);
            let (mut lo, mut hi) = (quantile(&v, 1.0 - p), quantile(&v, p));
            if let (Site::Scores(_), Some(&low)) = (site, row_max_min.get(&site)) {
                hi = quantile(&v, 1.0);
                if s.score_margin > 0.0 {
                    lo = lo.max(low - s.score_margin as f32);
                }
            }
            // The i16 stream keeps its min/max: clipping it buys nothing on a 65,536-level grid.
            if s.mse && !matches!(site, Site::Scores(_)) && !is_residual(site) {
                (lo, hi) = least_squares_range(&v, lo, hi);
            }
            (site, (lo, hi))
        })
        .collect())
}

/// Mean squared error of rounding `v` to the i8 grid of `[lo, hi]` (with clamping).
fn grid_mse(v: &[f32], lo: f32, hi: f32) -> f64 {
    let (s, zp) = activation_quant(lo, hi);
    let zp = f64::from(zp);
    let e: f64 = v
        .iter()
        .map(|&x| {
            let x = f64::from(x);
            let q = ((x / s).round() + zp).clamp(-128.0, 127.0);
            (x - (q - zp) * s).powi(2)
        })
        .sum();
    e / v.len().max(1) as f64
}

/// `(lo, hi)·c` for the `c` in 1, 0.95, …, 0.3 with the least [`grid_mse`] on (a strided sample
/// of) `v`.
fn least_squares_range(v: &[f32], lo: f32, hi: f32) -> (f32, f32) {
    let step = (v.len() / 200_000).max(1);
    let sample: Vec<f32> = v.iter().step_by(step).copied().collect();
    (0..15)
        .map(|i| 1.0 - 0.05 * i as f32)
        .map(|c| (lo * c, hi * c))
        .min_by(|a, b| grid_mse(&sample, a.0, a.1).total_cmp(&grid_mse(&sample, b.0, b.1)))
        .unwrap_or((lo, hi))
}

/// `v` at `site` rounded to its grid from `ranges` (clamped; i16 for the residual stream, i8
/// otherwise), probabilities to multiples of 1/127 (the integer Softmax's output scale),
/// embedding tables to `max|w|/127`; unchanged where no range is known.
pub fn fake_quant(site: Site, v: &Tensor, ranges: &Ranges) -> Result<Tensor> {
    let (s, zp, lo, hi) = match (site, ranges.get(&site)) {
        (Site::Probs(_), _) => (1.0 / 127.0, 0, -128.0, 127.0),
        // Embedding tables: symmetric, one scale per table (the lowering's Gather tables).
        (Site::TokTable | Site::PosTable, _) => {
            let max = v.abs()?.max_all()?.to_scalar::<f32>()?;
            (f64::from(max.max(1e-12)) / 127.0, 0, -128.0, 127.0)
        }
        (_, Some(&(lo, hi))) => grid(site, lo, hi),
        _ => return Ok(v.clone()),
    };
    let q = ((v / s)?.round()? + f64::from(zp))?.clamp(lo as f32, hi as f32)?;
    Ok(((q - f64::from(zp))? * s)?)
}
