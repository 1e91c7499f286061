//! FullyConnected (code 1): `acc[.., n] = bias[n] + Σ_k (x[.., k] - zp)·w[n][k]`.
//!
//! Input i8 `[.., K]`, weights i8 `[N, K]` (symmetric, one row per output channel), optional
//! bias i32 `[N]`. Accumulation is wrapping i32; the verifier proves per channel that
//! `max|x - zp|·Σ|w[n]| + |bias[n]| < 2^31`, so it never wraps (docs/arithmetic.md §3). Output is
//! the raw i32 accumulator, or i8 through the fused [`Requant`] (docs/arithmetic.md §4).

use super::requantize::{read_opt, refs_opt, write_opt};
use super::{EvalCx, InferCx, OpCost, Operator, Requant, ValueInfo, i8_data, i32_data, mul, one};
use crate::arith::max_abs_diff_i8;
use crate::error::{Error, Result};
use crate::format::{NO_TENSOR, Reader, Writer};
use crate::kernels::{PackedWeights, Path, gemm};
use crate::tensor::{DType, Tensor, TensorData};

/// Attributes of FullyConnected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullyConnected {
    /// Tensor id of the i8 weights `[N, K]`.
    pub weights: u32,
    /// Tensor id of the i32 bias `[N]`, or `NO_TENSOR`.
    pub bias: u32,
    /// Input zero point, in the i8 range.
    pub input_zero_point: i32,
    /// Fused requantization to i8; `None` outputs the i32 accumulator.
    pub requant: Option<Requant>,
}

/// Proves `max|x - zp|·Σ|w[c]| + |bias[c]| < 2^31` for every output channel `c` of a weight
/// matrix with rows of `k` (shared with Conv2D).
pub(crate) fn prove_no_overflow(cx: &InferCx<'_>, w: &[i8], k: usize, bias: Option<&[i32]>, zp: i32) -> Result<()> {
    let maxdiff = i128::from(max_abs_diff_i8(zp));
    for (c, row) in w.chunks(k.max(1)).enumerate() {
        let sum_abs: i128 = row.iter().map(|&v| i128::from(v).abs()).sum();
        let b = bias.and_then(|b| b.get(c)).map_or(0, |&b| i128::from(b).abs());
        let bound = maxdiff * sum_abs + b;
        if bound >= 1i128 << 31 {
            return Err(Error::AccumulatorOverflow { op: cx.op, name: cx.name, channel: c, bound });
        }
    }
    Ok(())
}

/// The most work one [`gemm`] call of `m × k` by `[n, k]` does on any path (crate::kernels
/// counts it): the call, the per-channel correction, the widened activations (their bytes),
/// `m·n` dot products of `k` MACs.
pub(crate) fn gemm_cost(m: usize, n: usize, k: usize) -> OpCost {
    OpCost {
        macs: mul(&[m, n, k]),
        elem_ops: n as u64,
        steps: mul(&[m, n]),
        calls: 3,
        bytes: mul(&[m, k, 2]).saturating_add(mul(&[n, 4])),
        ..OpCost::default()
    }
}

impl Operator for FullyConnected {
    const CODE: u8 = 1;
    const NAME: &'static str = "FullyConnected";

    fn arity_ok(n: usize) -> bool {
        n == 1
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self { weights: r.u32()?, bias: r.u32()?, input_zero_point: r.i32()?, requant: read_opt(r)? })
    }

    fn write(&self, w: &mut Writer) {
        w.u32(self.weights);
        w.u32(self.bias);
        w.i32(self.input_zero_point);
        write_opt(w, self.requant.as_ref());
    }

    fn tensor_refs(&self, out: &mut Vec<u32>) {
        out.push(self.weights);
        out.push(self.bias);
        refs_opt(self.requant.as_ref(), out);
    }

    fn infer(&self, cx: &InferCx<'_>, inputs: &[&ValueInfo]) -> Result<(ValueInfo, OpCost)> {
        let x = one(inputs)?;
        cx.expect_dtype(x, "input", &[DType::I8])?;
        let k = *x.shape.last().ok_or_else(|| cx.err("input must have rank >= 1"))?;
        let w = cx.tensor(self.weights, "weights", DType::I8, None)?;
        let n = match w.shape() {
            [n, wk] if *wk == k => *n,
            s => return Err(cx.err(format!("weights must be [N, {k}], are {s:?}"))),
        };
        let bias =
            if self.bias == NO_TENSOR { None } else { cx.tensor(self.bias, "bias", DType::I32, Some(&[n]))?.as_i32() };
        if !(-128..=127).contains(&self.input_zero_point) {
            return Err(cx.err(format!("input zero point {} not in the i8 range", self.input_zero_point)));
        }
        prove_no_overflow(cx, w.as_i8().unwrap_or(&[]), k, bias, self.input_zero_point)?;
        let dtype = match &self.requant {
            Some(rq) => {
                rq.check(cx, n)?;
                DType::I8
            }
            None => DType::I32,
        };
        let mut shape = x.shape.clone();
        if let Some(last) = shape.last_mut() {
            *last = n;
        }
        let rows = (x.numel() / (k as u64).max(1)) as usize;
        let out = ValueInfo { dtype, shape };
        let mut cost = gemm_cost(rows, n, k) + OpCost { calls: 2, bytes: mul(&[rows, n, 4]), ..OpCost::default() };
        if self.requant.is_some() {
            cost = cost + Requant::rows_cost(mul(&[rows, n]), n);
        }
        Ok((out, cost))
    }

    fn prepare(&self, tensors: &[Tensor], path: Path) -> Result<Vec<PackedWeights>> {
        let w = usize::try_from(self.weights)
            .ok()
            .and_then(|i| tensors.get(i))
            .ok_or(Error::Internal("weights missing"))?;
        match w.shape() {
            [n, k] => Ok(vec![PackedWeights::new(path, i8_data(w)?, *n, *k)?]),
            _ => Err(Error::Internal("weights not rank 2")),
        }
    }

    fn eval(&self, cx: &EvalCx<'_>, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = one(inputs)?;
        let pw = cx.packed.first().ok_or(Error::Internal("FullyConnected weights not prepared"))?;
        let (n, k) = (pw.n(), pw.k());
        let rows = x.len() / k.max(1);
        let bias = cx.opt_tensor(self.bias)?.map(i32_data).transpose()?;
        cx.work.alloc(rows * n * 4);
        cx.work.calls(1);
        let mut acc = vec![0i32; rows * n];
        gemm(i8_data(x)?, rows, self.input_zero_point, pw, bias, &mut acc, cx.work)?;
        let mut shape = x.shape().to_vec();
        if let Some(last) = shape.last_mut() {
            *last = n;
        }
        match &self.requant {
            None => Tensor::new(shape, TensorData::I32(acc)),
            Some(rq) => Tensor::new(shape, TensorData::I8(rq.resolve(cx)?.apply_rows(&acc, n, cx.work))),
        }
    }
}
