//! The float GPT: byte tokens (vocabulary 256) plus learned positions, `layers` pre-LayerNorm
//! blocks of causal multi-head self-attention (separate Q, K, V and output projections, with
//! bias) and an MLP `d → 4d → d` with the erf GELU, a final LayerNorm and an lm head with bias.
//! Weights are `[out, in]` as in candle's `Linear`. [`Gpt::forward_traced`] reports every
//! intermediate value the integer graph quantizes, at a [`Site`].

use std::collections::HashMap;
use std::path::Path;

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::Module;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// Vocabulary: one token per byte value.
pub const VOCAB: usize = 256;
/// LayerNorm's epsilon in float (the integer ε is derived from it, docs/arithmetic.md §12).
pub const LN_EPS: f64 = 1e-5;
/// The safetensors metadata key holding the number of heads.
const HEADS_KEY: &str = "fixpoint.gpt.heads";

/// The model's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Transformer blocks.
    pub layers: usize,
    /// Model width.
    pub width: usize,
    /// Attention heads (`width` is a multiple of it).
    pub heads: usize,
    /// Context length (positions), at most 256 so that positions fit a u8.
    pub context: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self { layers: 4, width: 64, heads: 4, context: 128 }
    }
}

impl Config {
    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        self.width / self.heads
    }

    /// Multiply-accumulates to produce one token with a KV cache holding `t` positions
    /// (including the new one): per block `12·d²` projections and MLP plus `2·t·d` for the
    /// attention scores and the weighted sum of values, then the lm head `d·256`.
    pub fn macs_per_token(&self, t: usize) -> usize {
        let d = self.width;
        self.layers * (12 * d * d + 2 * t * d) + d * VOCAB
    }

    /// Parameter count.
    pub fn params(&self) -> usize {
        let d = self.width;
        VOCAB * d
            + self.context * d
            + self.layers * (4 * (d * d + d) + 2 * 4 * d * d + 5 * d + 4 * d)
            + 2 * d
            + d * VOCAB
            + VOCAB
    }
}

/// A hook on every traced value: returns the value to continue with.
pub type Tracer<'a> = dyn FnMut(Site, Tensor) -> Result<Tensor> + 'a;

/// Where a traced value sits in the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Site {
    /// The token embedding table (a weight: traced for quantization-aware fine-tuning only).
    TokTable,
    /// The position embedding table (likewise).
    PosTable,
    /// Token plus position embedding: the residual stream entering block 0.
    Embed,
    /// Block `l`'s first LayerNorm output.
    Ln1(usize),
    /// Queries `[B, T, d]`.
    Q(usize),
    /// Keys.
    K(usize),
    /// Values.
    V(usize),
    /// Scores `Q·Kᵀ/√dh` `[B, H, T, T]`, before the causal mask.
    Scores(usize),
    /// Attention probabilities `[B, H, T, T]` (not calibrated: the integer Softmax's output
    /// scale is fixed at 1/127).
    Probs(usize),
    /// The heads' weighted values, merged back to `[B, T, d]`.
    Attn(usize),
    /// The attention output projection.
    Proj(usize),
    /// The residual stream after attention.
    Mid(usize),
    /// The second LayerNorm output.
    Ln2(usize),
    /// The MLP's first projection (GELU's input).
    Fc1(usize),
    /// GELU's output.
    Gelu(usize),
    /// The MLP's second projection.
    Fc2(usize),
    /// The residual stream leaving block `l`.
    Out(usize),
    /// The final LayerNorm output.
    LnF,
}

/// One block's parameters.
#[derive(Debug, Clone)]
pub struct Block {
    /// First LayerNorm `(γ, β)`.
    pub ln1: (Var, Var),
    /// Query projection `(W [d, d], b [d])`.
    pub q: (Var, Var),
    /// Key projection.
    pub k: (Var, Var),
    /// Value projection.
    pub v: (Var, Var),
    /// Output projection.
    pub o: (Var, Var),
    /// Second LayerNorm.
    pub ln2: (Var, Var),
    /// MLP up projection `(W [4d, d], b [4d])`.
    pub fc1: (Var, Var),
    /// MLP down projection `(W [d, 4d], b [d])`.
    pub fc2: (Var, Var),
}

/// The float model.
#[derive(Debug, Clone)]
pub struct Gpt {
    /// Its shape.
    pub config: Config,
    /// Token embedding `[256, d]`.
    pub tok: Var,
    /// Position embedding `[context, d]`.
    pub pos: Var,
    /// The blocks.
    pub blocks: Vec<Block>,
    /// Final LayerNorm.
    pub ln_f: (Var, Var),
    /// lm head `(W [256, d], b [256])`.
    pub head: (Var, Var),
}

fn normal(rng: &mut ChaCha8Rng, shape: &[usize], std: f64) -> Result<Var> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            // Box–Muller from two uniforms in (0, 1].
            let (u1, u2): (f64, f64) = (1.0 - rng.random::<f64>(), rng.random::<f64>());
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos() * std) as f32
        })
        .collect();
    Ok(Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu)?)?)
}

fn filled(shape: &[usize], v: f32) -> Result<Var> {
    Ok(Var::from_tensor(&Tensor::full(v, shape, &Device::Cpu)?)?)
}

/// LayerNorm over the last axis from differentiable primitives.
fn layer_norm(x: &Tensor, (g, b): &(Var, Var)) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xn = xc.broadcast_div(&(var + LN_EPS)?.sqrt()?)?;
    Ok(xn.broadcast_mul(g.as_tensor())?.broadcast_add(b.as_tensor())?)
}

fn linear(x: &Tensor, (w, b): &(Var, Var)) -> Result<Tensor> {
    Ok(candle_nn::Linear::new(w.as_tensor().clone(), Some(b.as_tensor().clone())).forward(x)?)
}

impl Gpt {
    /// A freshly initialised model (GPT-2's scheme: N(0, 0.02), residual projections scaled by
    /// `1/√(2L)`, zero biases, unit LayerNorms), deterministic in `seed`.
    pub fn new(config: Config, seed: u64) -> Result<Self> {
        let Config { layers, width: d, heads, context } = config;
        if heads == 0 || d % heads != 0 || context == 0 || context > 256 || layers == 0 {
            return Err(Error::Weights(format!("unsupported GPT shape {config:?}")));
        }
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        let std = 0.02;
        let res_std = std / (2.0 * layers as f64).sqrt();
        let ln = || -> Result<(Var, Var)> { Ok((filled(&[d], 1.0)?, filled(&[d], 0.0)?)) };
        let mut lin = |o: usize, i: usize, s: f64| -> Result<(Var, Var)> {
            Ok((normal(&mut r, &[o, i], s)?, filled(&[o], 0.0)?))
        };
        let mut blocks = Vec::with_capacity(layers);
        for _ in 0..layers {
            blocks.push(Block {
                ln1: ln()?,
                q: lin(d, d, std)?,
                k: lin(d, d, std)?,
                v: lin(d, d, std)?,
                o: lin(d, d, res_std)?,
                ln2: ln()?,
                fc1: lin(4 * d, d, std)?,
                fc2: lin(d, 4 * d, res_std)?,
            });
        }
        let head = lin(VOCAB, d, std)?;
        let tok = normal(&mut r, &[VOCAB, d], std)?;
        let pos = normal(&mut r, &[context, d], std)?;
        Ok(Self { config, tok, pos, blocks, ln_f: ln()?, head })
    }

    /// A copy with its own parameters (a `Clone` shares the variables).
    pub fn clone_deep(&self) -> Result<Self> {
        let c = self.clone();
        let mut fresh = Self::new(self.config, 0)?;
        for ((_, dst), (_, src)) in fresh.named().into_iter().zip(c.named()) {
            dst.set(src.as_tensor())?;
        }
        fresh.config = self.config;
        Ok(fresh)
    }

    /// Every parameter with its safetensors name, in a fixed order.
    pub fn named(&self) -> Vec<(String, &Var)> {
        let mut v = vec![("tok.weight".to_string(), &self.tok), ("pos.weight".to_string(), &self.pos)];
        for (i, b) in self.blocks.iter().enumerate() {
            for (name, (w, bias)) in [
                ("ln1", &b.ln1),
                ("q", &b.q),
                ("k", &b.k),
                ("v", &b.v),
                ("o", &b.o),
                ("ln2", &b.ln2),
                ("fc1", &b.fc1),
                ("fc2", &b.fc2),
            ] {
                v.push((format!("blocks.{i}.{name}.weight"), w));
                v.push((format!("blocks.{i}.{name}.bias"), bias));
            }
        }
        v.push(("ln_f.weight".into(), &self.ln_f.0));
        v.push(("ln_f.bias".into(), &self.ln_f.1));
        v.push(("head.weight".into(), &self.head.0));
        v.push(("head.bias".into(), &self.head.1));
        v
    }

    /// All trainable variables.
    pub fn vars(&self) -> Vec<Var> {
        self.named().into_iter().map(|(_, v)| v.clone()).collect()
    }

    /// Writes the weights as safetensors, the head count in the metadata.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tensors: Vec<(String, Tensor)> =
            self.named().into_iter().map(|(n, v)| (n, v.as_tensor().clone())).collect();
        let meta = HashMap::from([(HEADS_KEY.to_string(), self.config.heads.to_string())]);
        safetensors::serialize_to_file(tensors, Some(meta), path)?;
        Ok(())
    }

    /// Reads weights written by [`Gpt::save`]; the shape follows from the tensors and the
    /// metadata, and every tensor is checked.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)?;
        let heads = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get(HEADS_KEY))
            .and_then(|h| h.parse().ok())
            .ok_or_else(|| Error::Weights(format!("{}: no {HEADS_KEY} in the metadata", path.display())))?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)?;
        let dims = |name: &str| tensors.get(name).map(|t| t.dims().to_vec()).unwrap_or_default();
        let (width, context) = match (&dims("tok.weight")[..], &dims("pos.weight")[..]) {
            ([VOCAB, d], [t, d2]) if d == d2 => (*d, *t),
            _ => return Err(Error::Weights("tok.weight/pos.weight missing or mis-shaped".into())),
        };
        let layers = (0..).take_while(|i| tensors.contains_key(&format!("blocks.{i}.q.weight"))).count();
        let mut m = Self::new(Config { layers, width, heads, context }, 0)?;
        let expected = m.named().len();
        for (name, var) in m.named() {
            let t = tensors.get(&name).ok_or_else(|| Error::Weights(format!("missing tensor {name}")))?;
            if t.dims() != var.dims() || t.dtype() != DType::F32 {
                return Err(Error::Weights(format!(
                    "{name} is {:?} {:?}, expected F32 {:?}",
                    t.dtype(),
                    t.dims(),
                    var.dims()
                )));
            }
            var.set(t)?;
        }
        if tensors.len() != expected {
            return Err(Error::Weights(format!("{} tensors, expected {expected}", tensors.len())));
        }
        m.config.heads = heads;
        Ok(m)
    }

    /// Logits `[B, T, 256]` for tokens `[B, T]` (u32, `T ≤ context`).
    pub fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
        self.forward_traced(tokens, &mut |_, x| Ok(x))
    }

    /// [`Gpt::forward`], passing every intermediate value the integer graph quantizes through
    /// `trace`, which may observe it or replace it (to simulate its quantization).
    pub fn forward_traced(&self, tokens: &Tensor, trace: &mut Tracer<'_>) -> Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        let Config { width: d, heads: h, .. } = self.config;
        let dh = d / h;
        let dev = tokens.device();
        let tok_table = trace(Site::TokTable, self.tok.as_tensor().clone())?;
        let pos_table = trace(Site::PosTable, self.pos.as_tensor().clone())?;
        let tok = tok_table.embedding(&tokens.flatten_all()?)?.reshape((b, t, d))?;
        let pos = pos_table.narrow(0, 0, t)?;
        let mut x = trace(Site::Embed, tok.broadcast_add(&pos)?)?;
        let mask: Vec<f32> =
            (0..t).flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY })).collect();
        let mask = Tensor::from_vec(mask, (t, t), dev)?;
        let scale = 1.0 / (dh as f64).sqrt();
        for (l, blk) in self.blocks.iter().enumerate() {
            let a = trace(Site::Ln1(l), layer_norm(&x, &blk.ln1)?)?;
            let heads = |p: &(Var, Var), site: Site, trace: &mut Tracer<'_>| -> Result<Tensor> {
                let y = trace(site, linear(&a, p)?)?;
                Ok(y.reshape((b, t, h, dh))?.transpose(1, 2)?.contiguous()?)
            };
            let q = heads(&blk.q, Site::Q(l), trace)?;
            let k = heads(&blk.k, Site::K(l), trace)?;
            let v = heads(&blk.v, Site::V(l), trace)?;
            let scores = trace(Site::Scores(l), (q.matmul(&k.t()?.contiguous()?)? * scale)?)?;
            let p = trace(Site::Probs(l), candle_nn::ops::softmax(&scores.broadcast_add(&mask)?, D::Minus1)?)?;
            let o = p.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((b, t, d))?;
            let o = trace(Site::Attn(l), o)?;
            let o = trace(Site::Proj(l), linear(&o, &blk.o)?)?;
            x = trace(Site::Mid(l), (x + o)?)?;
            let a = trace(Site::Ln2(l), layer_norm(&x, &blk.ln2)?)?;
            let f = trace(Site::Fc1(l), linear(&a, &blk.fc1)?)?;
            let f = trace(Site::Gelu(l), f.gelu_erf()?)?;
            let f = trace(Site::Fc2(l), linear(&f, &blk.fc2)?)?;
            x = trace(Site::Out(l), (x + f)?)?;
        }
        let x = trace(Site::LnF, layer_norm(&x, &self.ln_f)?)?;
        linear(&x, &self.head)
    }

    /// Greedy generation of `tokens` bytes after `prompt` in float, one position at a time with
    /// a key/value cache (the float counterpart of the integer engine's generation: the same
    /// positions evaluated, the largest logit taken, ties to the lowest byte).
    pub fn generate(&self, prompt: &[u8], tokens: usize) -> Result<Vec<u8>> {
        let Config { width: d, heads: h, context, .. } = self.config;
        let dh = d / h;
        if prompt.is_empty() || prompt.len() + tokens > context + 1 {
            return Err(Error::Weights(format!("{} + {tokens} tokens do not fit the window {context}", prompt.len())));
        }
        let dev = Device::Cpu;
        let scale = 1.0 / (dh as f64).sqrt();
        let mut cache: Vec<Option<(Tensor, Tensor)>> = vec![None; self.blocks.len()];
        let mut out = Vec::with_capacity(tokens);
        let mut next = prompt.first().copied().unwrap_or(0);
        let steps = prompt.len() + tokens - 1;
        for p in 0..steps {
            let token = prompt.get(p).copied().unwrap_or(next);
            let ids = Tensor::new(&[u32::from(token)], &dev)?;
            let mut x = self.tok.as_tensor().embedding(&ids)?.broadcast_add(&self.pos.as_tensor().narrow(0, p, 1)?)?;
            for (blk, kv) in self.blocks.iter().zip(cache.iter_mut()) {
                let a = layer_norm(&x, &blk.ln1)?;
                let split = |y: Tensor| -> Result<Tensor> { Ok(y.reshape((1, h, dh))?.transpose(0, 1)?.contiguous()?) };
                let q = split(linear(&a, &blk.q)?)?;
                let (k, v) = (split(linear(&a, &blk.k)?)?, split(linear(&a, &blk.v)?)?);
                let (k, v) = match kv.take() {
                    Some((ks, vs)) => (Tensor::cat(&[&ks, &k], 1)?, Tensor::cat(&[&vs, &v], 1)?),
                    None => (k, v),
                };
                let scores = (q.matmul(&k.t()?.contiguous()?)? * scale)?;
                let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
                let o = probs.matmul(&v)?.transpose(0, 1)?.contiguous()?.reshape((1, d))?;
                *kv = Some((k, v));
                x = (x + linear(&o, &blk.o)?)?;
                let f = linear(&layer_norm(&x, &blk.ln2)?, &blk.fc1)?.gelu_erf()?;
                x = (x + linear(&f, &blk.fc2)?)?;
            }
            if p + 1 >= prompt.len() {
                let logits: Vec<f32> = linear(&layer_norm(&x, &self.ln_f)?, &self.head)?.flatten_all()?.to_vec1()?;
                let top = logits.iter().enumerate().fold(0, |best, (i, &v)| if v > logits[best] { i } else { best });
                next = u8::try_from(top).unwrap_or(u8::MAX);
                out.push(next);
            }
        }
        // The last position's token is produced without being fed back.
        if tokens > 0 && out.len() < tokens {
            return Err(Error::Weights("generation produced too few tokens".into()));
        }
        Ok(out)
    }

    /// A parameter's values as f32.
    pub fn values(v: &Var) -> Result<Vec<f32>> {
        Ok(v.as_tensor().flatten_all()?.to_vec1()?)
    }
}

/// Mean cross-entropy (nats per byte) of next-byte prediction on `windows` of `T + 1` bytes,
/// and the top-1 hits and count.
pub fn loss_on(m: &Gpt, windows: &[&[u8]]) -> Result<(f64, usize, usize)> {
    let (mut nll, mut hits, mut n) = (0f64, 0usize, 0usize);
    for w in windows {
        let t = w.len() - 1;
        let x = Tensor::from_vec(w[..t].iter().map(|&c| u32::from(c)).collect::<Vec<_>>(), (1, t), &Device::Cpu)?;
        let logits: Vec<Vec<f32>> = m.forward(&x)?.squeeze(0)?.to_vec2()?;
        for (row, &y) in logits.iter().zip(&w[1..]) {
            let (lp, top) = log_prob_and_top(row, usize::from(y));
            nll -= lp;
            hits += usize::from(top == usize::from(y));
            n += 1;
        }
    }
    Ok((nll / n.max(1) as f64, hits, n))
}

/// `log softmax(row)[y]` in f64 and the row's argmax (lowest index on ties).
pub fn log_prob_and_top(row: &[f32], y: usize) -> (f64, usize) {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let lse = f64::from(max) + row.iter().map(|&v| f64::from(v - max).exp()).sum::<f64>().ln();
    let top = row.iter().enumerate().fold(0, |best, (i, &v)| if v > row[best] { i } else { best });
    (row.get(y).map_or(f64::NEG_INFINITY, |&v| f64::from(v) - lse), top)
}
