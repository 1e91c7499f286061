//! Softmax (code 12): integer softmax over the last axis of i8 logits, with an optional causal
//! mask, through an exact exponential table and one division per row (docs/arithmetic.md §11).
//! Output i8 probabilities in `[0, 127]` (scale 1/127) or i16 in `[0, 32767]` (scale 1/32767).

use super::{EvalCx, InferCx, OpCost, Operator, ValueInfo, i8_data, mul, one};
use crate::error::{Error, Result};
use crate::format::{Reader, Writer};
use crate::tensor::{DType, Tensor, TensorData};

/// Largest exponential table entry: `2^30` (so a row's sum fits i64 for any row the caps allow).
pub const MAX_EXP: i32 = 1 << 30;

/// Attributes of Softmax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Softmax {
    /// Tensor id of the i32 table `[256]`: entry `d` is `exp(−s·d)` in units of `2^−30` for the
    /// input scale `s`, with `0 ≤ entry ≤ 2^30` and entry 0 at least 1.
    pub table: u32,
    /// 1: causal mask over the last two axes `[Tq, Tk]` (`Tq ≤ Tk`): row `r` sees the columns
    /// `j ≤ r + Tk − Tq`; 0: no mask.
    pub causal: u8,
    /// Output dtype code: 1 (i8, `Q = 127`) or 2 (i16, `Q = 32767`).
    pub out: u8,
}

impl Softmax {
    /// The output dtype and its full-scale value `Q`.
    fn output(&self) -> Option<(DType, i64)> {
        match self.out {
            1 => Some((DType::I8, 127)),
            2 => Some((DType::I16, 32_767)),
            _ => None,
        }
    }
}

/// Softmax of one row of logits `x` over its first `visible` entries (the rest masked, 0):
/// `e_j = table[m − x_j]` with `m` the visible maximum, `S = Σ e_j`, `R = ⌊Q·2^32 / S⌋`,
/// `p_j = (e_j·R + 2^31) >> 32`. Every `p_j ≤ Q`; entries beyond `visible` are 0.
fn row(x: &[i8], visible: usize, table: &[i32], q: i64, out: &mut [i64]) {
    let seen = x.get(..visible).unwrap_or(x);
    let Some(&m) = seen.iter().max() else {
        out.iter_mut().for_each(|p| *p = 0);
        return;
    };
    let e = |v: i8| -> i64 {
        let d = usize::try_from(i16::from(m) - i16::from(v)).unwrap_or(0);
        i64::from(table.get(d).copied().unwrap_or(0))
    };
    // S ≥ table[0] ≥ 1 (the maximum's own entry), and S ≤ n·2^30 < 2^63.
    let s: i64 = seen.iter().map(|&v| e(v)).sum::<i64>().max(1);
    let r = (q << 32) / s;
    for (j, p) in out.iter_mut().enumerate() {
        *p = match seen.get(j) {
            Some(&v) => (e(v) * r + (1 << 31)) >> 32,
            None => 0,
        };
    }
}

impl Operator for Softmax {
    const CODE: u8 = 12;
    const NAME: &'static str = "Softmax";

    fn arity_ok(n: usize) -> bool {
        n == 1
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self { table: r.u32()?, causal: r.u8()?, out: r.u8()? })
    }

    fn write(&self, w: &mut Writer) {
        w.u32(self.table);
        w.u8(self.causal);
        w.u8(self.out);
    }

    fn tensor_refs(&self, out: &mut Vec<u32>) {
        out.push(self.table);
    }

    fn infer(&self, cx: &InferCx<'_>, inputs: &[&ValueInfo]) -> Result<(ValueInfo, OpCost)> {
        let x = one(inputs)?;
        cx.expect_dtype(x, "input", &[DType::I8])?;
        let Some((dtype, _)) = self.output() else {
            return Err(cx.err(format!("output dtype code {} (1 = i8, 2 = i16)", self.out)));
        };
        let n = match x.shape.last() {
            Some(&n) if n > 0 => n,
            _ => return Err(cx.err("input must have rank >= 1 and a non-empty last axis")),
        };
        match self.causal {
            0 => {}
            1 => match x.shape.len().checked_sub(2).and_then(|i| x.shape.get(i)) {
                Some(&tq) if tq <= n => {}
                Some(&tq) => return Err(cx.err(format!("causal mask needs Tq ≤ Tk, got [{tq}, {n}]"))),
                None => return Err(cx.err("causal mask needs rank >= 2")),
            },
            c => return Err(cx.err(format!("causal must be 0 or 1, is {c}"))),
        }
        let table = cx.tensor(self.table, "table", DType::I32, Some(&[256]))?;
        let t = table.as_i32().unwrap_or(&[]);
        if t.iter().any(|&e| !(0..=MAX_EXP).contains(&e)) {
            return Err(cx.err("table entries must be in [0, 2^30]"));
        }
        if t.first().is_none_or(|&e| e < 1) {
            return Err(cx.err("table entry 0 (the row maximum's) must be at least 1"));
        }
        let numel = x.numel();
        let rows = numel / n as u64;
        // Per element: the max pass, the table lookup and sum, the scaling. Per row: a step and
        // the division (counted as a second step).
        let cost = OpCost {
            elem_ops: numel.saturating_mul(3),
            steps: rows.saturating_mul(2),
            calls: 2,
            // The output, and one row of i64 scratch.
            bytes: mul(&[numel as usize, dtype.size()]).saturating_add(mul(&[n, 8])),
            ..OpCost::default()
        };
        Ok((ValueInfo { dtype, shape: x.shape.clone() }, cost))
    }

    fn eval(&self, cx: &EvalCx<'_>, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = one(inputs)?;
        let (dtype, q) = self.output().ok_or(Error::Internal("Softmax output dtype"))?;
        let table = cx.tensor(self.table)?.as_i32().ok_or(Error::Internal("Softmax table"))?;
        let shape = x.shape();
        let n = shape.last().copied().ok_or(Error::Internal("Softmax on a scalar"))?.max(1);
        let tq = if self.causal == 1 { shape.len().checked_sub(2).and_then(|i| shape.get(i)).copied() } else { None };
        let xs = i8_data(x)?;
        let rows = xs.len() / n;
        cx.work.alloc(xs.len() * dtype.size() + n * 8);
        cx.work.calls(1);
        cx.work.steps(2 * rows);
        cx.work.elems(3 * xs.len());
        let mut p = vec![0i64; n];
        let mut out = Vec::with_capacity(xs.len());
        for (i, logits) in xs.chunks(n).enumerate() {
            // Row r of its [Tq, Tk] block sees columns j ≤ r + Tk − Tq.
            let visible = tq.map_or(n, |tq| (i % tq.max(1)) + 1 + (n - tq.min(n)));
            row(logits, visible.min(n), table, q, &mut p);
            out.extend_from_slice(&p);
        }
        let data = match dtype {
            DType::I8 => TensorData::I8(out.iter().map(|&v| i8::try_from(v).unwrap_or(i8::MAX)).collect()),
            _ => TensorData::I16(out.iter().map(|&v| i16::try_from(v).unwrap_or(i16::MAX)).collect()),
        };
        Tensor::new(shape.to_vec(), data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `exp(−d/8)` in units of 2^−30, rounded (a test table; the quantizer builds the real ones).
    fn table() -> Vec<i32> {
        // Repeated multiplication by about e^(−1/8) in fixed point.
        let mut t = Vec::with_capacity(256);
        let mut v: i64 = 1 << 30;
        for _ in 0..256 {
            t.push(v as i32);
            v = (v * 947_573_684) >> 30;
        }
        t
    }

    #[test]
    fn a_row_of_equal_logits_is_uniform_and_masked_entries_are_zero() {
        let t = table();
        let mut p = vec![0i64; 4];
        row(&[5, 5, 5, 5], 4, &t, 127, &mut p);
        assert_eq!(p, vec![32, 32, 32, 32]); // 127/4 = 31.75 rounds to 32
        row(&[5, 5, 9, 9], 2, &t, 127, &mut p);
        assert_eq!(p, vec![64, 64, 0, 0]); // 63.5 rounds up; the masked 9s take no share
    }

    #[test]
    fn probabilities_never_exceed_full_scale_and_sum_near_it() {
        let t = table();
        let x: Vec<i8> = (0..64).map(|i| ((i * 37) % 256 - 128) as i8).collect();
        let mut p = vec![0i64; 64];
        for q in [127, 32_767] {
            row(&x, 64, &t, q, &mut p);
            assert!(p.iter().all(|&v| (0..=q).contains(&v)));
            let s: i64 = p.iter().sum();
            // Each entry is within 1/2 + 2^-32·e_j·(rounding of R) of exact: the sum within n.
            assert!((s - q).abs() <= 64, "sum {s} vs {q}");
        }
        // The largest logit gets the largest probability.
        let best = (0..64).max_by_key(|&j| (x[j], std::cmp::Reverse(j))).unwrap();
        assert_eq!(p[best], *p.iter().max().unwrap());
    }
}
