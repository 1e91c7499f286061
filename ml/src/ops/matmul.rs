//! MatMul (code 16): the product of two i8 activations, batched over leading axes (attention's
//! `Q·Kᵀ` and `P·V`), through the same GEMM kernels as FullyConnected: B is packed for the run's
//! kernel path at run time (docs/arithmetic.md §14). i32 output, or i8 with a requantization.

use super::fully_connected::gemm_cost;
use super::requantize::{Requant, read_opt, refs_opt, write_opt};
use super::{EvalCx, InferCx, OpCost, Operator, ValueInfo, i8_data, mul};
use crate::arith::max_abs_diff_i8;
use crate::error::{Error, Result};
use crate::format::{Reader, Writer};
use crate::kernels::{PackedWeights, gemm};
use crate::tensor::{DType, Tensor, TensorData};
use crate::work::Counter;

/// Attributes of MatMul.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatMul {
    /// Zero point of A, in the i8 range.
    pub a_zero_point: i32,
    /// Zero point of B, in the i8 range.
    pub b_zero_point: i32,
    /// 1: B is given transposed, `[.., N, K]` (keys as rows for `Q·Kᵀ`); 0: B is `[.., K, N]`.
    pub b_transposed: u8,
    /// Output requantization (per tensor or per output column); none = i32 output.
    pub requant: Option<Requant>,
}

/// The shapes of one product: batch count, M, K, N.
fn dims(a: &[usize], b: &[usize], transposed: bool) -> std::result::Result<(usize, usize, usize, usize), String> {
    let (Some((&k, a_rest)), Some((&b1, b_rest))) = (a.split_last(), b.split_last()) else {
        return Err("A and B must have rank >= 2".into());
    };
    let (Some((&m, a_batch)), Some((&b0, b_batch))) = (a_rest.split_last(), b_rest.split_last()) else {
        return Err("A and B must have rank >= 2".into());
    };
    if a_batch != b_batch {
        return Err(format!("batch axes differ: {a_batch:?} and {b_batch:?}"));
    }
    let (bk, n) = if transposed { (b1, b0) } else { (b0, b1) };
    if bk != k {
        return Err(format!("A is [.., {m}, {k}] but B's reduction axis is {bk}"));
    }
    if m == 0 || k == 0 || n == 0 {
        return Err("empty matrix".into());
    }
    Ok((a_batch.iter().product(), m, k, n))
}

/// Largest `M` multiplied directly, without packing B (a decode step's `Q·Kᵀ` and `P·V`): below
/// it, packing B for the GEMM kernels would cost more than the product (docs/arithmetic.md §14).
pub const DIRECT_MAX_ROWS: usize = 8;

/// The most work one batch of the direct product does: A's rows shifted by its zero point (one
/// buffer, `M·K` element steps), then `M·N·K` MACs in `M·N` dot products (B given as rows) or
/// `M·K` row updates (B not transposed).
fn direct_cost(m: usize, k: usize, n: usize, transposed: bool) -> OpCost {
    OpCost {
        macs: mul(&[m, n, k]),
        elem_ops: mul(&[m, k]),
        steps: if transposed { mul(&[m, n]) } else { mul(&[m, k]) },
        calls: 2,
        bytes: mul(&[m, k, 4]),
        ..OpCost::default()
    }
}

/// `out[i][j] = Σ_t (a[i][t] − za)·(b − zb)` for one batch, exactly, in i32 (the verifier's
/// bound), without packing: B as `[N, K]` rows when `transposed`, else `[K, N]`.
#[allow(clippy::too_many_arguments)]
fn direct(
    a: &[i8],
    b: &[i8],
    m: usize,
    k: usize,
    n: usize,
    za: i32,
    zb: i32,
    transposed: bool,
    out: &mut [i32],
    work: &Counter,
) {
    work.alloc(m * k * 4);
    work.elems(m * k);
    work.macs(m * n * k);
    work.steps(if transposed { m * n } else { m * k });
    let shifted: Vec<i32> = a.iter().map(|&x| i32::from(x) - za).collect();
    for (row, o) in shifted.chunks(k).zip(out.chunks_mut(n)) {
        if transposed {
            for (acc, col) in o.iter_mut().zip(b.chunks(k)) {
                *acc = row.iter().zip(col).fold(0i32, |s, (&x, &y)| s.wrapping_add(x.wrapping_mul(i32::from(y) - zb)));
            }
        } else {
            o.iter_mut().for_each(|v| *v = 0);
            for (&x, brow) in row.iter().zip(b.chunks(n)) {
                for (acc, &y) in o.iter_mut().zip(brow) {
                    *acc = acc.wrapping_add(x.wrapping_mul(i32::from(y) - zb));
                }
            }
        }
    }
}

impl MatMul {
    /// The most work one batch does besides its GEMM: B's copy into `[N, K]` rows and its
    /// packing (widened, padded), A's row sums for B's zero point, the correction of `M·N`.
    /// Calls: the copy's buffer, the packing call and its buffer, the row sums' buffer.
    fn batch_cost(m: usize, k: usize, n: usize) -> OpCost {
        gemm_cost(m, n, k)
            + OpCost {
                elem_ops: mul(&[n, k, 2]).saturating_add(mul(&[m, k])).saturating_add(mul(&[m, n])),
                steps: m as u64,
                calls: 4,
                bytes: mul(&[n, k])
                    .saturating_add(mul(&[n + 16, k + 4, 2]))
                    .saturating_add(mul(&[n, 4]))
                    .saturating_add(mul(&[m, 4])),
                ..OpCost::default()
            }
    }
}

impl Operator for MatMul {
    const CODE: u8 = 16;
    const NAME: &'static str = "MatMul";

    fn arity_ok(n: usize) -> bool {
        n == 2
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self { a_zero_point: r.i32()?, b_zero_point: r.i32()?, b_transposed: r.u8()?, requant: read_opt(r)? })
    }

    fn write(&self, w: &mut Writer) {
        w.i32(self.a_zero_point);
        w.i32(self.b_zero_point);
        w.u8(self.b_transposed);
        write_opt(w, self.requant.as_ref());
    }

    fn tensor_refs(&self, out: &mut Vec<u32>) {
        refs_opt(self.requant.as_ref(), out);
    }

    fn infer(&self, cx: &InferCx<'_>, inputs: &[&ValueInfo]) -> Result<(ValueInfo, OpCost)> {
        let [a, b] = inputs else { return Err(Error::Internal("MatMul takes two inputs")) };
        cx.expect_dtype(a, "A", &[DType::I8])?;
        cx.expect_dtype(b, "B", &[DType::I8])?;
        for (zp, what) in [(self.a_zero_point, "A"), (self.b_zero_point, "B")] {
            if !(-128..=127).contains(&zp) {
                return Err(cx.err(format!("{what}'s zero point {zp} not in the i8 range")));
            }
        }
        if self.b_transposed > 1 {
            return Err(cx.err(format!("b_transposed must be 0 or 1, is {}", self.b_transposed)));
        }
        let (batch, m, k, n) = dims(&a.shape, &b.shape, self.b_transposed == 1).map_err(|e| cx.err(e))?;
        // |Σ_k (a − za)(b − zb)| ≤ K·max|a − za|·max|b − zb| < 2^31: exact in i32.
        let bound = i128::from(k as u64)
            * i128::from(max_abs_diff_i8(self.a_zero_point))
            * i128::from(max_abs_diff_i8(self.b_zero_point));
        if bound >= 1i128 << 31 {
            return Err(Error::AccumulatorOverflow { op: cx.op, name: cx.name, channel: 0, bound });
        }
        let dtype = match &self.requant {
            Some(rq) => {
                rq.check(cx, n)?;
                DType::I8
            }
            None => DType::I32,
        };
        let mut shape = a.shape.clone();
        if let Some(last) = shape.last_mut() {
            *last = n;
        }
        let mut per_batch =
            if m <= DIRECT_MAX_ROWS { direct_cost(m, k, n, self.b_transposed == 1) } else { Self::batch_cost(m, k, n) };
        if self.requant.is_some() {
            per_batch = per_batch + Requant::rows_cost(mul(&[m, n]), n);
        }
        let cost = OpCost {
            macs: per_batch.macs.saturating_mul(batch as u64),
            elem_ops: per_batch.elem_ops.saturating_mul(batch as u64),
            steps: per_batch.steps.saturating_mul(batch as u64),
            visits: 0,
            calls: per_batch.calls.saturating_mul(batch as u64).saturating_add(2),
            bytes: per_batch.bytes.saturating_mul(batch as u64).saturating_add(mul(&[batch, m, n, 4])),
        };
        Ok((ValueInfo { dtype, shape }, cost))
    }

    fn eval(&self, cx: &EvalCx<'_>, inputs: &[&Tensor]) -> Result<Tensor> {
        let [a, b] = inputs else { return Err(Error::Internal("MatMul takes two inputs")) };
        let transposed = self.b_transposed == 1;
        let (batch, m, k, n) = dims(a.shape(), b.shape(), transposed).map_err(|_| Error::Internal("MatMul shapes"))?;
        let (av, bv) = (i8_data(a)?, i8_data(b)?);
        cx.work.calls(1);
        cx.work.alloc(batch * m * n * 4);
        let mut acc = vec![0i32; batch * m * n];
        let (za, zb) = (self.a_zero_point, self.b_zero_point);
        let rq = self.requant.as_ref().map(|rq| rq.resolve(cx)).transpose()?;
        let mut out8 = Vec::new();
        for ((a_mat, b_mat), out) in av.chunks(m * k).zip(bv.chunks(k * n)).zip(acc.chunks_mut(m * n)) {
            if m <= DIRECT_MAX_ROWS {
                direct(a_mat, b_mat, m, k, n, za, zb, transposed, out, cx.work);
                if let Some(rq) = &rq {
                    out8.extend(rq.apply_rows(out, n, cx.work));
                }
                continue;
            }
            // B as N rows of K (the GEMM's weight layout).
            cx.work.alloc(n * k);
            cx.work.elems(n * k);
            let rows: Vec<i8> = if transposed {
                b_mat.to_vec()
            } else {
                (0..n).flat_map(|j| (0..k).map(move |t| b_mat.get(t * n + j).copied().unwrap_or(0))).collect()
            };
            cx.work.calls(1);
            cx.work.elems(n * k);
            cx.work.alloc((n + 16) * (k + 4) * 2 + n * 4);
            let packed = PackedWeights::new(cx.path, &rows, n, k)?;
            // Σ (a − za)·b by the kernel, then − zb·Σ (a − za) per row of A (wrapping: the exact
            // result fits i32, so the wrapped sum is it).
            gemm(a_mat, m, za, &packed, None, out, cx.work)?;
            cx.work.alloc(m * 4);
            cx.work.elems(m * k + m * n);
            cx.work.steps(m);
            for (row, o) in a_mat.chunks(k).zip(out.chunks_mut(n)) {
                let s = row.iter().fold(0i32, |s, &v| s.wrapping_add(i32::from(v) - za));
                let c = zb.wrapping_mul(s);
                o.iter_mut().for_each(|v| *v = v.wrapping_sub(c));
            }
            if let Some(rq) = &rq {
                out8.extend(rq.apply_rows(out, n, cx.work));
            }
        }
        let mut shape = a.shape().to_vec();
        if let Some(last) = shape.last_mut() {
            *last = n;
        }
        match rq {
            None => Tensor::new(shape, TensorData::I32(acc)),
            Some(_) => Tensor::new(shape, TensorData::I8(out8)),
        }
    }
}
