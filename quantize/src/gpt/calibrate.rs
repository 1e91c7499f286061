//! Activation ranges of the float model on the calibration slice (text never trained on nor
//! evaluated on). Each traced [`Site`] gets `(lo, hi)`: the min and max of its values, or with a
//! percentile `p < 100` the `(100 − p)`-th and `p`-th percentiles, which clip rare outliers to
//! give the bulk a finer i8 grid. Attention scores count only the entries the causal mask
//! keeps, and their maximum is never clipped (the row maximum is what the softmax keys on).

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};

use super::corpus::windows;
use super::model::{Gpt, Site};
use crate::error::{Error, Result};

/// Calibration settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Windows of the context length taken from the start of the calibration slice.
    pub windows: usize,
    /// Percentile of each site's values kept (100 = min/max).
    pub percentile: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self { windows: 32, percentile: 100.0 }
    }
}

/// The calibrated `(lo, hi)` of every site.
pub type Ranges = BTreeMap<Site, (f32, f32)>;

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
    for w in &ws {
        let x = Tensor::from_vec(w.iter().map(|&c| u32::from(c)).collect::<Vec<_>>(), (1, t), &Device::Cpu)?;
        m.forward_traced(&x, &mut |site, v| {
            let all: Vec<f32> = v.flatten_all()?.to_vec1()?;
            let out = values.entry(site).or_default();
            if let Site::Scores(_) = site {
                // [1, H, T, T]: keep row i's columns 0..=i.
                for (r, row) in all.chunks(t).enumerate() {
                    out.extend_from_slice(&row[..=(r % t)]);
                }
            } else {
                out.extend(all);
            }
            Ok(())
        })?;
    }
    let p = (s.percentile / 100.0).clamp(0.5, 1.0);
    Ok(values
        .into_iter()
        .map(|(site, mut v)| {
            v.sort_by(f32::total_cmp);
            let lo = quantile(&v, 1.0 - p);
            let hi = if matches!(site, Site::Scores(_)) { quantile(&v, 1.0) } else { quantile(&v, p) };
            (site, (lo, hi))
        })
        .collect())
}
