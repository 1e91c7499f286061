//! Training: AdamW on random windows of the training slice, linear warm-up then cosine decay to a
//! tenth of the peak rate, a fixed seed for initialisation and sampling. Run it with one thread
//! (`RAYON_NUM_THREADS=1`) for a reproducible loss curve.

use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::calibrate::{Ranges, fake_quant};
use super::corpus::{Corpus, windows};
use super::model::{Config, Gpt, Site, Tracer, loss_on};
use crate::error::{Error, Result};

/// Training settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Optimizer steps.
    pub steps: usize,
    /// Windows per step.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Warm-up steps.
    pub warmup: usize,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Seed of initialisation and window sampling.
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self { steps: 3000, batch: 16, lr: 3e-3, warmup: 100, weight_decay: 0.01, seed: 1 }
    }
}

/// A progress report: step, training loss (nats/byte, mean since the last report), held-out
/// loss on a few windows, seconds elapsed.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Steps done.
    pub step: usize,
    /// Mean training loss over the last interval.
    pub train_loss: f64,
    /// Held-out loss (first windows of the held-out slice), at reports only.
    pub held_out_loss: f64,
    /// Wall time so far.
    pub seconds: f64,
}

fn rate(s: &Settings, step: usize) -> f64 {
    if step < s.warmup {
        return s.lr * (step + 1) as f64 / s.warmup as f64;
    }
    let p = (step - s.warmup) as f64 / (s.steps - s.warmup).max(1) as f64;
    s.lr * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * p).cos()))
}

/// Trains a fresh model of shape `config` on `corpus.train`; calls `progress` every `every` steps.
pub fn train(
    config: Config,
    corpus: &Corpus,
    s: &Settings,
    every: usize,
    progress: impl FnMut(&Progress),
) -> Result<Gpt> {
    let model = Gpt::new(config, s.seed)?;
    fit(&model, corpus, s, &mut |_, x| Ok(x), every, progress)?;
    Ok(model)
}

/// Quantization-aware fine-tuning: continues training `model` with every activation the integer
/// graph quantizes rounded to its i8 grid from `ranges` in the forward pass and passed straight
/// through in the backward pass, so the weights settle where the grids cost little.
pub fn finetune_quantized(
    model: &Gpt,
    corpus: &Corpus,
    ranges: &Ranges,
    s: &Settings,
    every: usize,
    progress: impl FnMut(&Progress),
) -> Result<()> {
    let mut hook = |site: Site, x: Tensor| -> Result<Tensor> {
        let q = fake_quant(site, &x, ranges)?;
        Ok((&x + (q - &x)?.detach())?)
    };
    fit(model, corpus, s, &mut hook, every, progress)
}

/// The training loop: AdamW on random training windows, the forward pass through `hook`.
fn fit(
    model: &Gpt,
    corpus: &Corpus,
    s: &Settings,
    hook: &mut Tracer<'_>,
    every: usize,
    mut progress: impl FnMut(&Progress),
) -> Result<()> {
    let t = model.config.context;
    if corpus.train.len() <= t + 1 {
        return Err(Error::Quantize("training text shorter than one window".into()));
    }
    let mut opt =
        AdamW::new(model.vars(), ParamsAdamW { lr: s.lr, weight_decay: s.weight_decay, ..Default::default() })?;
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed ^ 0x5eed);
    let probe = windows(&corpus.held_out, t + 1, 8);
    let start = Instant::now();
    let (mut acc, mut n) = (0f64, 0usize);
    for step in 0..s.steps {
        let mut xs = Vec::with_capacity(s.batch * t);
        let mut ys = Vec::with_capacity(s.batch * t);
        for _ in 0..s.batch {
            let at = rng.random_range(0..corpus.train.len() - t - 1);
            let w = &corpus.train[at..at + t + 1];
            xs.extend(w[..t].iter().map(|&c| u32::from(c)));
            ys.extend(w[1..].iter().map(|&c| u32::from(c)));
        }
        let x = Tensor::from_vec(xs, (s.batch, t), &Device::Cpu)?;
        let y = Tensor::from_vec(ys, s.batch * t, &Device::Cpu)?;
        let logits = model.forward_traced(&x, hook)?.reshape((s.batch * t, super::model::VOCAB))?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        opt.set_learning_rate(rate(s, step));
        opt.backward_step(&loss)?;
        acc += f64::from(loss.to_scalar::<f32>()?);
        n += 1;
        if (step + 1) % every.max(1) == 0 || step + 1 == s.steps {
            let (held_out_loss, _, _) = loss_on(model, &probe)?;
            progress(&Progress {
                step: step + 1,
                train_loss: acc / n as f64,
                held_out_loss,
                seconds: start.elapsed().as_secs_f64(),
            });
            (acc, n) = (0.0, 0);
        }
    }
    Ok(())
}
