//! Float networks (MLPs and small CNNs) defined, trained and run with candle, and saved as
//! safetensors. Layouts are candle's (NCHW activations, `[OC, IC, KH, KW]` kernels) except that
//! [`Layer::Flatten`] flattens in HWC order, the order the integer engine uses, so dense weights
//! after it carry over unchanged.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::Dataset;
use crate::error::{Error, Result};

/// A general window (docs/arithmetic.md §5): kernel, stride and dilation per axis, and the
/// four paddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Kernel height and width.
    pub kernel: (usize, usize),
    /// Stride along H and W.
    pub stride: (usize, usize),
    /// Dilation along H and W.
    pub dilation: (usize, usize),
    /// Padding: top, left, bottom, right.
    pub pads: [usize; 4],
}

impl Geometry {
    /// Output `(OH, OW)` for an `H×W` input (docs/arithmetic.md §5).
    pub fn out(&self, h: usize, w: usize) -> (usize, usize) {
        let [t, l, b, r] = self.pads;
        let one = |d: usize, p: usize, k: usize, dil: usize, s: usize| {
            (d + p).saturating_sub(dil * (k.max(1) - 1) + 1) / s.max(1) + 1
        };
        (
            one(h, t + b, self.kernel.0, self.dilation.0, self.stride.0),
            one(w, l + r, self.kernel.1, self.dilation.1, self.stride.1),
        )
    }
}

/// `[B, C, H, W]` → `[B, OC, OH, OW]`: a convolution with a general window, or (`w` empty,
/// `pool` set) a max/average pool over the non-padding cells; computed directly on the host
/// (calibration and reports only, no gradient).
fn window_op(x: &Tensor, w: &[f32], bias: &[f32], g: &Geometry, groups: usize, pool: Option<bool>) -> Result<Tensor> {
    let (bn, c, h, wd) = x.dims4()?;
    let xv: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let (oh, ow) = g.out(h, wd);
    let (kh, kw) = g.kernel;
    let oc = if pool.is_some() { c } else { bias.len() };
    let groups = groups.max(1);
    let (icg, ocg) = (c / groups, (oc / groups).max(1));
    let mut out = vec![0f32; bn * oc * oh * ow];
    for b in 0..bn {
        for o in 0..oc {
            for oy in 0..oh {
                for ox in 0..ow {
                    let (mut acc, mut max, mut cnt) = (0f32, f32::NEG_INFINITY, 0usize);
                    let chans = if pool.is_some() { o..o + 1 } else { (o / ocg) * icg..(o / ocg + 1) * icg };
                    for ic in chans {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * g.stride.0 + ky * g.dilation.0).checked_sub(g.pads[0]);
                                let ix = (ox * g.stride.1 + kx * g.dilation.1).checked_sub(g.pads[1]);
                                let (Some(iy), Some(ix)) = (iy, ix) else { continue };
                                if iy >= h || ix >= wd {
                                    continue;
                                }
                                let v = xv[((b * c + ic) * h + iy) * wd + ix];
                                match pool {
                                    Some(_) => {
                                        acc += v;
                                        max = max.max(v);
                                        cnt += 1;
                                    }
                                    None => acc += v * w[((o * icg + ic % icg) * kh + ky) * kw + kx],
                                }
                            }
                        }
                    }
                    out[((b * oc + o) * oh + oy) * ow + ox] = match pool {
                        Some(true) => acc / cnt.max(1) as f32,
                        Some(false) => max,
                        None => acc + bias[o],
                    };
                }
            }
        }
    }
    Ok(Tensor::from_vec(out, (bn, oc, oh, ow), x.device())?)
}

/// The shape of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// Square convolution with `pad` on every side, optionally followed by ReLU.
    Conv {
        /// Input channels.
        in_c: usize,
        /// Output channels.
        out_c: usize,
        /// Kernel size.
        k: usize,
        /// Padding on each side.
        pad: usize,
        /// Stride in both directions.
        stride: usize,
        /// Channel groups (`in_c` and `out_c` are multiples of it).
        groups: usize,
        /// ReLU after the convolution.
        relu: bool,
    },
    /// Square max pooling without padding.
    MaxPool {
        /// Window size.
        k: usize,
        /// Stride in both directions.
        stride: usize,
    },
    /// Mean over all positions of each channel: `[C, H, W]` to `[C, 1, 1]`.
    GlobalAvgPool,
    /// Square average pooling without padding.
    AvgPool {
        /// Window size.
        k: usize,
        /// Stride in both directions.
        stride: usize,
    },
    /// A pointwise function (an exact Lut8 table in the integer model).
    Pointwise(crate::pointwise::Pointwise),
    /// Flattens `[C, H, W]` to `H·W·C` values in HWC order.
    Flatten,
    /// Dense layer `y = W x + b`, optionally followed by ReLU.
    Dense {
        /// Inputs.
        inp: usize,
        /// Outputs.
        out: usize,
        /// ReLU after the layer.
        relu: bool,
    },
    /// Convolution with a general window (rectangular kernel, per-axis stride and dilation,
    /// asymmetric padding), optionally followed by ReLU.
    ConvWindow {
        /// Input channels.
        in_c: usize,
        /// Output channels.
        out_c: usize,
        /// The window.
        geometry: Geometry,
        /// Channel groups.
        groups: usize,
        /// ReLU after the convolution.
        relu: bool,
    },
    /// Max (`avg` false) or average pooling with a general window (no dilation; padding cells
    /// are left out of the maximum and of the average's count, ONNX `count_include_pad=0`).
    PoolWindow {
        /// Average (true) or max pooling.
        avg: bool,
        /// The window.
        geometry: Geometry,
    },
    /// Keeps the current tensor for a later [`Layer::Binary`] (the skip branch of a residual
    /// block, or the input of a gate); its output is its input.
    Save,
    /// Combines the tensor kept by the last unmatched [`Layer::Save`] with the current one,
    /// elementwise with broadcasting (an axis of 1 against `n` is repeated), optionally followed
    /// by ReLU: the integer Add op (each input's scale in its multiplier; a subtrahend negated
    /// exactly first) or Mul op.
    Binary {
        /// Which operation.
        op: Binary,
        /// ReLU after it.
        relu: bool,
    },
    /// Reshapes a flat `[C]` to `[C, 1, 1]` (the same element order in CHW and HWC).
    Unflatten,
    /// Permutes the axes of a `[C, H, W]` tensor: output axis `i` is input axis `perm[i]` (the
    /// engine's Transpose on the HWC layout; the result is again read as `[C, H, W]`).
    Transpose {
        /// The permutation of `(C, H, W)`.
        perm: [usize; 3],
    },
    /// Ends one branch of a [`Layer::ConcatSaved`] (all but the last): keeps the current tensor
    /// and goes back to the one kept by the last unmatched [`Layer::Save`] (the input of every
    /// branch), which stays kept for the next branch.
    Branch,
    /// Joins the branch ends kept by the [`Layer::Branch`]es since the last unmatched
    /// [`Layer::Save`] and the current tensor (the last branch's end) along the channels
    /// (`[C, H, W]`), and drops the kept input; every branch end shares the joined tensor's
    /// scale (calibration gives them the union of their ranges, [`concat_ends`]).
    ConcatSaved {
        /// Number of branches, 2 to [`MAX_BRANCHES`].
        branches: usize,
        /// `order[i]`: the branch (in walk order) at position `i` of the result.
        order: [usize; MAX_BRANCHES],
    },
}

/// Most branches a [`Layer::ConcatSaved`] joins.
pub const MAX_BRANCHES: usize = 8;

/// An elementwise operation of two live tensors ([`Layer::Binary`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    /// `current + kept`.
    Add,
    /// `kept − current` (`saved_first`) or `current − kept`.
    Sub {
        /// The kept tensor is the minuend.
        saved_first: bool,
    },
    /// `current · kept`.
    Mul,
}

/// For each [`Layer::ConcatSaved`] at index `j`: `(j, ends)` with the index of the last layer
/// of each branch, in walk order (`None` when a branch is empty).
pub fn concat_ends(layers: &[Layer]) -> Vec<(usize, Vec<Option<usize>>)> {
    // Per open Save: the index of the marker the current branch starts after, and the ends so far.
    let mut stack: Vec<(usize, Vec<Option<usize>>)> = Vec::new();
    let mut out = Vec::new();
    let end = |marker: usize, i: usize| i.checked_sub(1).filter(|&p| p > marker);
    for (i, l) in layers.iter().enumerate() {
        match l {
            Layer::Save => stack.push((i, Vec::new())),
            Layer::Branch => {
                if let Some((marker, ends)) = stack.last_mut() {
                    ends.push(end(*marker, i));
                    *marker = i;
                }
            }
            Layer::Binary { .. } => {
                stack.pop();
            }
            Layer::ConcatSaved { .. } => {
                if let Some((marker, mut ends)) = stack.pop() {
                    ends.push(end(marker, i));
                    out.push((i, ends));
                }
            }
            _ => {}
        }
    }
    out
}

/// Whether `l` is a max pool (its output keeps its input's scale, and clamping commutes with
/// the maximum).
pub fn is_max_pool(l: &Layer) -> bool {
    matches!(l, Layer::MaxPool { .. } | Layer::PoolWindow { avg: false, .. })
}

impl Layer {
    /// Weight and bias shapes, for layers with parameters.
    pub fn param_shapes(&self) -> Option<(Vec<usize>, usize)> {
        match *self {
            Layer::Conv { in_c, out_c, k, groups, .. } => Some((vec![out_c, in_c / groups.max(1), k, k], out_c)),
            Layer::ConvWindow { in_c, out_c, geometry: g, groups, .. } => {
                Some((vec![out_c, in_c / groups.max(1), g.kernel.0, g.kernel.1], out_c))
            }
            Layer::Dense { inp, out, .. } => Some((vec![out, inp], out)),
            _ => None,
        }
    }
}

/// What the last layer's outputs are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// Class scores: the integer model outputs the argmax class, then the scores.
    Classes,
    /// Real values (regression): the integer model outputs them alone.
    Values,
}

/// A feed-forward float network over one data set's raw features.
#[derive(Debug)]
pub struct Net {
    /// Per-example input shape in candle layout: `[D]` for dense nets, `[C, H, W]` for CNNs.
    pub input: Vec<usize>,
    /// Raw features are multiplied by this before the first layer (digits: 1/16).
    pub input_scale: f64,
    /// The integer input's `(scale, zero point)` when the raw features are real numbers that
    /// the caller quantizes; `None` when they are already the i8 integers, at `input_scale`.
    pub input_quant: Option<(f64, i32)>,
    /// Per-feature `(scale, zero point)` of a flat input: the model then takes one i8 `[1]`
    /// input per feature (each described by its own quantization) and concatenates them; the
    /// network's float input is the quantized integers themselves (`input_quant` = `(1, 0)`),
    /// the scales having been folded into the first layer.
    pub feature_quant: Option<Vec<(f64, i32)>>,
    /// Second moments `E[x_k²]` of a flat input's features (in the network's input domain);
    /// when known, the first dense layer's weight scales minimize the expected error.
    pub input_moments: Option<Vec<f64>>,
    /// The layers, in order.
    pub layers: Vec<Layer>,
    /// `(weight, bias)` of each layer with parameters, in order.
    pub params: Vec<(Var, Var)>,
    /// What the outputs are.
    pub head: Head,
}

impl Net {
    /// A network with He-uniform weights drawn from `seed` and zero biases.
    pub fn new(input: Vec<usize>, input_scale: f64, layers: Vec<Layer>, seed: u64) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut params = Vec::new();
        for l in &layers {
            if let Some((ws, nb)) = l.param_shapes() {
                let fan_in: usize = ws.iter().skip(1).product();
                let bound = (6.0 / fan_in.max(1) as f64).sqrt() as f32;
                let n: usize = ws.iter().product();
                let w: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..bound)).collect();
                let w = Var::from_tensor(&Tensor::from_vec(w, ws, &Device::Cpu)?)?;
                let b = Var::from_tensor(&Tensor::zeros(nb, DType::F32, &Device::Cpu)?)?;
                params.push((w, b));
            }
        }
        Ok(Self {
            input,
            input_scale,
            input_quant: None,
            feature_quant: None,
            input_moments: None,
            layers,
            params,
            head: Head::Classes,
        })
    }

    /// A network with the given `(weights, bias)` per layer with parameters (candle layouts),
    /// real-valued inputs (`input_scale` 1) and the input quantization still to be calibrated.
    pub fn from_values(
        input: Vec<usize>,
        layers: Vec<Layer>,
        values: Vec<(Vec<f32>, Vec<f32>)>,
        head: Head,
    ) -> Result<Self> {
        let shapes: Vec<(Vec<usize>, usize)> = layers.iter().filter_map(Layer::param_shapes).collect();
        if shapes.len() != values.len() {
            return Err(Error::Weights(format!(
                "{} parameter sets for {} layers with parameters",
                values.len(),
                shapes.len()
            )));
        }
        let mut params = Vec::new();
        for ((ws, nb), (w, b)) in shapes.into_iter().zip(values) {
            if w.len() != ws.iter().product::<usize>() || b.len() != nb {
                return Err(Error::Weights(format!(
                    "parameters of {} and {} values do not fit {ws:?} and [{nb}]",
                    w.len(),
                    b.len()
                )));
            }
            let w = Var::from_tensor(&Tensor::from_vec(w, ws, &Device::Cpu)?)?;
            let b = Var::from_tensor(&Tensor::from_vec(b, nb, &Device::Cpu)?)?;
            params.push((w, b));
        }
        Ok(Self {
            input,
            input_scale: 1.0,
            input_quant: None,
            feature_quant: None,
            input_moments: None,
            layers,
            params,
            head,
        })
    }

    /// A batch of raw rows as the network's input tensor `[B, ..input]`.
    pub fn batch(&self, ds: &Dataset, idx: &[usize]) -> Result<Tensor> {
        let rows: Vec<f32> = idx.iter().flat_map(|&i| ds.row(i).iter().copied()).collect();
        let mut shape = vec![idx.len()];
        shape.extend(&self.input);
        Ok(Tensor::from_vec(rows, shape, &Device::Cpu)?)
    }

    /// The output of every layer for input `x` (raw features); the last is the logits.
    pub fn trace(&self, x: &Tensor) -> Result<Vec<Tensor>> {
        let mut x = x.affine(self.input_scale, 0.0)?;
        let mut outs = Vec::with_capacity(self.layers.len());
        let mut saved: Vec<Tensor> = Vec::new();
        let mut p = self.params.iter();
        for l in &self.layers {
            x = match *l {
                Layer::Conv { pad, stride, groups, relu, .. } => {
                    let (w, b) = p.next().ok_or_else(|| Error::Weights("missing conv parameters".into()))?;
                    let y = x
                        .conv2d(w.as_tensor(), pad, stride, 1, groups)?
                        .broadcast_add(&b.as_tensor().reshape((1, (), 1, 1))?)?;
                    if relu { y.relu()? } else { y }
                }
                Layer::ConvWindow { geometry, groups, relu, .. } => {
                    let (w, b) = p.next().ok_or_else(|| Error::Weights("missing conv parameters".into()))?;
                    let wv: Vec<f32> = w.as_tensor().flatten_all()?.to_vec1()?;
                    let bv: Vec<f32> = b.as_tensor().to_vec1()?;
                    let y = window_op(&x, &wv, &bv, &geometry, groups, None)?;
                    if relu { y.relu()? } else { y }
                }
                Layer::PoolWindow { avg, geometry } => window_op(&x, &[], &[], &geometry, 1, Some(avg))?,
                Layer::MaxPool { k, stride } => x.max_pool2d_with_stride(k, stride)?,
                Layer::GlobalAvgPool => x.mean_keepdim(3)?.mean_keepdim(2)?,
                Layer::AvgPool { k, stride } => x.avg_pool2d_with_stride(k, stride)?,
                Layer::Pointwise(f) => {
                    // Calibration and reports only (no gradient): evaluated element by element.
                    let v: Vec<f32> = x.flatten_all()?.to_vec1()?;
                    let y: Vec<f32> = v.iter().map(|&e| f.eval(f64::from(e)) as f32).collect();
                    Tensor::from_vec(y, x.dims(), x.device())?
                }
                Layer::Flatten => x.permute((0, 2, 3, 1))?.flatten_from(1)?,
                Layer::Save => {
                    saved.push(x.clone());
                    x
                }
                Layer::Binary { op, relu } => {
                    let s = saved.pop().ok_or_else(|| Error::Weights("a binary op without a saved tensor".into()))?;
                    let y = match op {
                        Binary::Add => x.broadcast_add(&s)?,
                        Binary::Sub { saved_first: true } => s.broadcast_sub(&x)?,
                        Binary::Sub { saved_first: false } => x.broadcast_sub(&s)?,
                        Binary::Mul => x.broadcast_mul(&s)?,
                    };
                    if relu { y.relu()? } else { y }
                }
                Layer::Unflatten => x.unsqueeze(2)?.unsqueeze(3)?,
                Layer::Transpose { perm: [a, b, c] } => x.permute((0, a + 1, b + 1, c + 1))?.contiguous()?,
                Layer::Branch => {
                    let s = saved.pop().ok_or_else(|| Error::Weights("a branch without a saved tensor".into()))?;
                    saved.push(x);
                    saved.push(s.clone());
                    s
                }
                Layer::ConcatSaved { branches, order } => {
                    saved.pop().ok_or_else(|| Error::Weights("a Concat without a saved tensor".into()))?;
                    let mut ends = Vec::with_capacity(branches);
                    for _ in 1..branches {
                        ends.push(saved.pop().ok_or_else(|| Error::Weights("a Concat without its branches".into()))?);
                    }
                    ends.reverse();
                    ends.push(x);
                    let parts: Vec<&Tensor> = order[..branches].iter().filter_map(|&b| ends.get(b)).collect();
                    Tensor::cat(&parts, 1)?
                }
                Layer::Dense { relu, .. } => {
                    let (w, b) = p.next().ok_or_else(|| Error::Weights("missing dense parameters".into()))?;
                    let y = x.matmul(&w.as_tensor().t()?)?.broadcast_add(b.as_tensor())?;
                    if relu { y.relu()? } else { y }
                }
            };
            outs.push(x.clone());
        }
        Ok(outs)
    }

    /// Logits `[B, classes]` for input `x` (raw features).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.trace(x)?.pop().ok_or_else(|| Error::Weights("network has no layers".into()))
    }

    /// Predicted classes for every row of `ds`.
    pub fn predict(&self, ds: &Dataset) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(ds.len());
        let idx: Vec<usize> = (0..ds.len()).collect();
        for chunk in idx.chunks(256) {
            out.extend(self.forward(&self.batch(ds, chunk)?)?.argmax(D::Minus1)?.to_vec1::<u32>()?);
        }
        Ok(out)
    }

    /// Trains with AdamW on cross-entropy, seeded mini-batch order; calls `progress(epoch, loss)`.
    pub fn train(
        &self,
        ds: &Dataset,
        epochs: usize,
        lr: f64,
        seed: u64,
        mut progress: impl FnMut(usize, f32),
    ) -> Result<()> {
        let vars: Vec<Var> = self.params.iter().flat_map(|(w, b)| [w.clone(), b.clone()]).collect();
        let mut opt = AdamW::new(vars, ParamsAdamW { lr, weight_decay: 1e-4, ..Default::default() })?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut idx: Vec<usize> = (0..ds.len()).collect();
        let labels = Tensor::from_vec(ds.labels.clone(), ds.len(), &Device::Cpu)?;
        for epoch in 0..epochs {
            idx.shuffle(&mut rng);
            let (mut total, mut batches) = (0f32, 0usize);
            for chunk in idx.chunks(32) {
                let ids =
                    Tensor::from_vec(chunk.iter().map(|&i| i as u32).collect::<Vec<_>>(), chunk.len(), &Device::Cpu)?;
                let loss = candle_nn::loss::cross_entropy(
                    &self.forward(&self.batch(ds, chunk)?)?,
                    &labels.index_select(&ids, 0)?,
                )?;
                opt.backward_step(&loss)?;
                total += loss.to_scalar::<f32>()?;
                batches += 1;
            }
            progress(epoch, total / batches.max(1) as f32);
        }
        Ok(())
    }

    /// Writes the parameters as safetensors (`layer{i}.weight`, `layer{i}.bias`) with `task`
    /// in the metadata.
    pub fn save(&self, path: &Path, task: &str) -> Result<()> {
        let mut tensors = Vec::new();
        for (i, (w, b)) in self.params.iter().enumerate() {
            tensors.push((format!("layer{i}.weight"), w.as_tensor().clone()));
            tensors.push((format!("layer{i}.bias"), b.as_tensor().clone()));
        }
        let meta = HashMap::from([("fixpoint.task".to_string(), task.to_string())]);
        safetensors::serialize_to_file(tensors, Some(meta), path)?;
        Ok(())
    }

    /// Replaces the parameters with those in a safetensors file written by [`Net::save`]; checks
    /// every shape.
    pub fn load_params(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let mut i = 0;
        for l in &self.layers {
            let Some((ws, nb)) = l.param_shapes() else { continue };
            let get = |name: String, shape: &[usize]| -> Result<Var> {
                let t = tensors.get(&name).ok_or_else(|| Error::Weights(format!("missing tensor {name}")))?;
                if t.dims() != shape || t.dtype() != DType::F32 {
                    return Err(Error::Weights(format!(
                        "{name} is {:?} {:?}, expected F32 {shape:?}",
                        t.dtype(),
                        t.dims()
                    )));
                }
                Ok(Var::from_tensor(t)?)
            };
            let w = get(format!("layer{i}.weight"), &ws)?;
            let b = get(format!("layer{i}.bias"), &[nb])?;
            if let Some(slot) = self.params.get_mut(i) {
                *slot = (w, b);
            }
            i += 1;
        }
        if tensors.len() != 2 * i {
            return Err(Error::Weights(format!("{} tensors, expected {}", tensors.len(), 2 * i)));
        }
        Ok(())
    }

    /// The parameters of layer-with-parameters `i` as `(weights, bias)` f32 vectors.
    pub fn param_values(&self, i: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let (w, b) = self.params.get(i).ok_or_else(|| Error::Weights(format!("no parameters #{i}")))?;
        Ok((w.as_tensor().flatten_all()?.to_vec1()?, b.as_tensor().to_vec1()?))
    }
}

/// Reads a safetensors weights file: its tensors and the task named in its metadata.
pub fn read_weights(path: &Path) -> Result<(HashMap<String, Tensor>, Option<String>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)?;
    let task = meta.metadata().as_ref().and_then(|m| m.get("fixpoint.task").cloned());
    Ok((candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)?, task))
}
