//! What LayerNorm (code 13) and RMSNorm (code 14) share (docs/arithmetic.md §12): their
//! attributes, the verifier's checks and overflow proof, the cost, and the row arithmetic: a
//! row's deviations, an exact integer square root, the normalized values in fixed point, the
//! per-channel affine map, then the requantization of [`Requant`]. The input is i8 or i16 (an
//! i16 residual stream, §18); every intermediate is exact for both (the bounds are at the
//! deviations below).

use super::requantize::Requant;
use super::{EvalCx, InferCx, OpCost, ValueInfo, i32_data, mul, one};
use crate::arith::div_round_half_away;
use crate::error::{Error, Result};
use crate::format::{NO_TENSOR, Reader, Writer};
use crate::tensor::{DType, Tensor, TensorData};

/// Most fractional bits of the normalized values.
pub const MAX_FRAC_BITS: u8 = 12;
/// Longest normalized axis: every sum of a row is then exact in i64 (u128 for squares).
pub const MAX_CHANNELS: usize = 1 << 16;
/// Most Newton iterations [`isqrt`] takes for any u64 (checked over every bit length by a test).
pub const MAX_ISQRT_STEPS: u64 = 8;

/// `⌊√n⌋` by Newton's method from `2^⌈b/2⌉ ≥ √n` (`b` the bit length of `n`), and the
/// iterations it took: `x ← ⌊(x + ⌊n/x⌋)/2⌋` while that decreases.
pub fn isqrt(n: u64) -> (u64, u64) {
    if n == 0 {
        return (0, 0);
    }
    let bits = 64 - n.leading_zeros();
    let mut x: u64 = 1 << bits.div_ceil(2);
    let mut steps = 0;
    loop {
        steps += 1;
        let y = (x + n / x) / 2;
        if y >= x {
            return (x, steps);
        }
        x = y;
    }
}

/// The attributes both norms share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormParams {
    /// Tensor id of the per-channel i32 scale `γ` `[C]`.
    pub gamma: u32,
    /// Tensor id of the per-channel i32 offset `β` `[C]`, or `NO_TENSOR`.
    pub beta: u32,
    /// Added to the mean square before the square root (`≥ 1`, so the root is never 0).
    pub eps: u32,
    /// Fractional bits `F` of the normalized values (`≤ 12`).
    pub frac_bits: u8,
    /// The output requantization of the i32 `γ·z + β`.
    pub requant: Requant,
}

/// How a norm measures a row's deviations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Center {
    /// LayerNorm: `d_j = C·x_j − Σx` (the mean subtracted exactly, scaled by C).
    Mean,
    /// RMSNorm: `d_j = x_j − zp` (the input's zero point).
    ZeroPoint(i32),
}

impl NormParams {
    /// Reads the shared attributes.
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self { gamma: r.u32()?, beta: r.u32()?, eps: r.u32()?, frac_bits: r.u8()?, requant: Requant::read(r)? })
    }

    /// Writes the shared attributes.
    pub(crate) fn write(&self, w: &mut Writer) {
        w.u32(self.gamma);
        w.u32(self.beta);
        w.u32(self.eps);
        w.u8(self.frac_bits);
        self.requant.write(w);
    }

    /// Appends the tensor references, in encoding order.
    pub(crate) fn tensor_refs(&self, out: &mut Vec<u32>) {
        out.push(self.gamma);
        out.push(self.beta);
        out.push(self.requant.multiplier);
        out.push(self.requant.shift);
    }

    /// The largest `|z|` in fixed point: `(⌊√C⌋ + 1)·2^F` (values are clamped to it).
    fn z_max(&self, c: usize) -> i64 {
        let (root, _) = isqrt(c as u64);
        (root as i64 + 1) << self.frac_bits.min(MAX_FRAC_BITS)
    }

    /// Checks the input and attributes, proves `|γ·z + β| < 2^31`, and gives output and cost.
    pub(crate) fn infer(&self, cx: &InferCx<'_>, inputs: &[&ValueInfo]) -> Result<(ValueInfo, OpCost)> {
        let x = one(inputs)?;
        cx.expect_dtype(x, "input", &[DType::I8, DType::I16])?;
        let c = match x.shape.last() {
            Some(&c) if (1..=MAX_CHANNELS).contains(&c) => c,
            _ => return Err(cx.err(format!("the normalized (last) axis must have 1 to {MAX_CHANNELS} elements"))),
        };
        if self.eps < 1 {
            return Err(cx.err("eps must be at least 1"));
        }
        if self.frac_bits > MAX_FRAC_BITS {
            return Err(cx.err(format!("frac_bits {} > {MAX_FRAC_BITS}", self.frac_bits)));
        }
        let gamma = cx.tensor(self.gamma, "gamma", DType::I32, Some(&[c]))?;
        let max_gamma = gamma.as_i32().unwrap_or(&[]).iter().map(|g| i64::from(*g).abs()).max().unwrap_or(0);
        let max_beta = if self.beta == NO_TENSOR {
            0
        } else {
            let beta = cx.tensor(self.beta, "beta", DType::I32, Some(&[c]))?;
            beta.as_i32().unwrap_or(&[]).iter().map(|b| i64::from(*b).abs()).max().unwrap_or(0)
        };
        // max|γ| < 2^31 and z_max ≤ 257·2^12, so the product fits i64.
        if max_gamma * self.z_max(c) + max_beta >= 1 << 31 {
            return Err(cx.err(format!(
                "overflow: max|gamma|·{} + max|beta| = {} does not fit i32",
                self.z_max(c),
                max_gamma * self.z_max(c) + max_beta
            )));
        }
        self.requant.check(cx, c)?;
        let numel = x.numel();
        let rows = numel / c as u64;
        // Per element: the sum, the square, the normalization (a 64-bit division, counted as
        // two steps) and affine map. Per row: a step and the square root's iterations. Buffers: the deviations (i64), the i32
        // accumulators and the output.
        let cost = OpCost {
            elem_ops: numel.saturating_mul(4),
            steps: rows.saturating_mul(1 + MAX_ISQRT_STEPS),
            calls: 2,
            bytes: mul(&[c, 8]).saturating_add(numel.saturating_mul(5)),
            ..OpCost::default()
        } + Requant::rows_cost(numel, c);
        Ok((ValueInfo { dtype: DType::I8, shape: x.shape.clone() }, cost))
    }

    /// Normalizes every row of the i8 or i16 input (docs/arithmetic.md §12).
    pub(crate) fn eval(&self, cx: &EvalCx<'_>, inputs: &[&Tensor], center: Center) -> Result<Tensor> {
        let x = one(inputs)?;
        let c = x.shape().last().copied().ok_or(Error::Internal("norm on a scalar"))?.max(1);
        let out = match x.data() {
            TensorData::I8(xs) => self.rows(cx, xs, c, center)?,
            TensorData::I16(xs) => self.rows(cx, xs, c, center)?,
            _ => return Err(Error::Internal("norm input checked i8 or i16 at verification")),
        };
        Tensor::new(x.shape().to_vec(), TensorData::I8(out))
    }

    /// The rows of `xs` (`c` channels each) normalized, scaled and requantized.
    fn rows<T: Copy + Into<i64>>(&self, cx: &EvalCx<'_>, xs: &[T], c: usize, center: Center) -> Result<Vec<i8>> {
        let gamma = i32_data(cx.tensor(self.gamma)?)?;
        let beta = match cx.opt_tensor(self.beta)? {
            Some(t) => Some(i32_data(t)?),
            None => None,
        };
        let (f, z_max, eps) = (self.frac_bits, self.z_max(c), u64::from(self.eps));
        let rows = xs.len() / c;
        cx.work.alloc(c * 8 + xs.len() * 4);
        cx.work.calls(1);
        cx.work.steps(rows);
        cx.work.elems(4 * xs.len());
        let mut d = vec![0i64; c];
        let mut acc = Vec::with_capacity(xs.len());
        for row in xs.chunks(c) {
            match center {
                Center::Mean => {
                    let sum: i64 = row.iter().map(|&v| v.into()).sum();
                    for (dj, &v) in d.iter_mut().zip(row) {
                        *dj = c as i64 * v.into() - sum;
                    }
                }
                Center::ZeroPoint(zp) => {
                    for (dj, &v) in d.iter_mut().zip(row) {
                        *dj = v.into() - i64::from(zp);
                    }
                }
            }
            // |d_j| ≤ (C − 1)·R with R = 255 (i8) or 65,535 (i16) for LayerNorm (d_j is the sum
            // of the C − 1 differences x_j − x_k), ≤ R + 1 for RMSNorm: below 2^32·2^12 after
            // the shift by F. S = Σ d_j² < 2^16·2^64 fits u128; S/C ≤ (C − 1)²·R² ≤ (2^16 − 1)^4
            // = 2^64 − 2^50 − …, so S/C + ε (ε < 2^32) fits u64.
            let s: u128 = d.iter().map(|&v| (v.unsigned_abs() as u128).pow(2)).sum();
            let mean_square = u64::try_from(s / c as u128)
                .ok()
                .and_then(|v| v.checked_add(eps))
                .ok_or(Error::Internal("norm mean square"))?;
            let (den, steps) = isqrt(mean_square);
            cx.work.steps(usize::try_from(steps).unwrap_or(usize::MAX));
            let den = i64::try_from(den.max(1)).map_err(|_| Error::Internal("norm root"))?;
            for (j, &dj) in d.iter().enumerate() {
                let z = div_round_half_away(dj << f, den).clamp(-z_max, z_max);
                let g = i64::from(gamma.get(j).copied().unwrap_or(0));
                let b = beta.and_then(|b| b.get(j)).map_or(0, |&b| i64::from(b));
                // The verifier proved |γ·z + β| < 2^31.
                acc.push(i32::try_from(g * z + b).map_err(|_| Error::Internal("norm accumulator"))?);
            }
        }
        Ok(self.requant.resolve(cx)?.apply_rows(&acc, c, cx.work))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isqrt_is_the_floor_root_within_its_step_bound() {
        let mut worst = 0;
        let mut check = |n: u64| {
            let (r, steps) = isqrt(n);
            assert!(u128::from(r) * u128::from(r) <= u128::from(n), "{n}");
            assert!((u128::from(r) + 1).pow(2) > u128::from(n), "{n}");
            worst = worst.max(steps);
        };
        for b in 0..64 {
            let p = 1u64 << b;
            for n in [p - 1, p, p + 1, p | (p >> 1), p.wrapping_mul(3) / 2] {
                check(n);
            }
        }
        check(u64::MAX);
        let mut v = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..100_000 {
            v ^= v << 13;
            v ^= v >> 7;
            v ^= v << 17;
            check(v);
            check(v >> (v % 64));
        }
        assert!(worst <= MAX_ISQRT_STEPS, "isqrt took {worst} steps");
    }
}
