//! AddWide (code 20): Add's single-rounding sum (docs/arithmetic.md §6) with each input i8 or i16
//! and an i16 output, for a transformer's residual stream: `h = AddWide(h, branch)` keeps the
//! stream on 65,536 levels while the branches stay i8 (docs/arithmetic.md §18).
//!
//! `y = clamp(zp_out + round_shift((a − zp_a)·m_a + (b − zp_b)·m_b, n), lo, hi)`, zero points
//! and clamp bounds in the i16 range, `m_a`, `m_b` in `[0, 2^31)`, one shift in `[1, 62]`.
//! Each term is below `2^16·2^31 = 2^47` in magnitude, so the sum and the rounding term
//! `2^(n−1) ≤ 2^61` are exact in i64.

use super::{EvalCx, InferCx, OpCost, Operator, ValueInfo};
use crate::arith::{SHIFT_MAX, SHIFT_MIN};
use crate::error::{Error, Result};
use crate::format::{Reader, Writer};
use crate::tensor::{DType, Tensor, TensorData};

/// The i16 range, which bounds AddWide's zero points and clamp.
const I16_RANGE: std::ops::RangeInclusive<i32> = -32_768..=32_767;

/// Attributes of AddWide (encoded exactly as Add's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddWide {
    /// Zero point of `a`, in the i16 range.
    pub a_zero_point: i32,
    /// Multiplier of `a`, `[0, 2^31)`.
    pub a_multiplier: i32,
    /// Zero point of `b`, in the i16 range.
    pub b_zero_point: i32,
    /// Multiplier of `b`, `[0, 2^31)`.
    pub b_multiplier: i32,
    /// Shared shift, `[1, 62]`.
    pub shift: u8,
    /// Output zero point, in the i16 range.
    pub zero_point: i32,
    /// Lower clamp, `≥ −32768`.
    pub lo: i32,
    /// Upper clamp, `≤ 32767`.
    pub hi: i32,
}

/// An i8 or i16 input's elements, widened one at a time.
fn widened(t: &Tensor) -> Result<Box<dyn Iterator<Item = i64> + '_>> {
    match t.data() {
        TensorData::I8(v) => Ok(Box::new(v.iter().map(|&x| i64::from(x)))),
        TensorData::I16(v) => Ok(Box::new(v.iter().map(|&x| i64::from(x)))),
        _ => Err(Error::Internal("AddWide input checked i8 or i16 at verification")),
    }
}

impl Operator for AddWide {
    const CODE: u8 = 20;
    const NAME: &'static str = "AddWide";

    fn arity_ok(n: usize) -> bool {
        n == 2
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            a_zero_point: r.i32()?,
            a_multiplier: r.i32()?,
            b_zero_point: r.i32()?,
            b_multiplier: r.i32()?,
            shift: r.u8()?,
            zero_point: r.i32()?,
            lo: r.i32()?,
            hi: r.i32()?,
        })
    }

    fn write(&self, w: &mut Writer) {
        w.i32(self.a_zero_point);
        w.i32(self.a_multiplier);
        w.i32(self.b_zero_point);
        w.i32(self.b_multiplier);
        w.u8(self.shift);
        w.i32(self.zero_point);
        w.i32(self.lo);
        w.i32(self.hi);
    }

    fn tensor_refs(&self, _out: &mut Vec<u32>) {}

    fn infer(&self, cx: &InferCx<'_>, inputs: &[&ValueInfo]) -> Result<(ValueInfo, OpCost)> {
        let [a, b] = inputs else { return Err(Error::Internal("AddWide takes two inputs")) };
        cx.expect_dtype(a, "a", &[DType::I8, DType::I16])?;
        cx.expect_dtype(b, "b", &[DType::I8, DType::I16])?;
        if a.shape != b.shape {
            return Err(cx.err(format!("shapes differ: {:?} and {:?}", a.shape, b.shape)));
        }
        for (zp, what) in [
            (self.a_zero_point, "a zero point"),
            (self.b_zero_point, "b zero point"),
            (self.zero_point, "output zero point"),
        ] {
            if !I16_RANGE.contains(&zp) {
                return Err(cx.err(format!("{what} {zp} not in the i16 range")));
            }
        }
        if self.a_multiplier < 0 || self.b_multiplier < 0 {
            return Err(cx.err("multipliers must be non-negative"));
        }
        if !(SHIFT_MIN..=SHIFT_MAX).contains(&self.shift) {
            return Err(cx.err(format!("shift {} not in [{SHIFT_MIN}, {SHIFT_MAX}]", self.shift)));
        }
        if !(I16_RANGE.start() <= &self.lo && self.lo <= self.hi && &self.hi <= I16_RANGE.end()) {
            return Err(cx.err("clamp must satisfy -32768 <= lo <= hi <= 32767"));
        }
        let n = a.numel();
        let cost = OpCost { elem_ops: n, calls: 2, bytes: n.saturating_mul(2), ..OpCost::default() };
        Ok((ValueInfo { dtype: DType::I16, shape: a.shape.clone() }, cost))
    }

    fn eval(&self, cx: &EvalCx<'_>, inputs: &[&Tensor]) -> Result<Tensor> {
        let [a, b] = inputs else { return Err(Error::Internal("AddWide takes two inputs")) };
        if self.a_multiplier < 0 || self.b_multiplier < 0 {
            return Err(Error::Internal("AddWide multipliers checked non-negative at verification"));
        }
        cx.work.alloc(a.len() * 2);
        cx.work.elems(a.len());
        cx.work.calls(1);
        // Exact in i64 (module doc): the same values as the i128 definition, which
        // `add_wide_matches_the_i128_definition` (ml/tests/cost.rs) checks at the extremes.
        let n = u32::from(self.shift.clamp(SHIFT_MIN, SHIFT_MAX));
        let (lo, hi) = (i64::from(self.lo), i64::from(self.hi));
        let (za, zb) = (i64::from(self.a_zero_point), i64::from(self.b_zero_point));
        let (ma, mb) = (i64::from(self.a_multiplier), i64::from(self.b_multiplier));
        let out = widened(a)?
            .zip(widened(b)?)
            .map(|(x, y)| {
                let v = i64::from(self.zero_point) + (((x - za) * ma + (y - zb) * mb + (1i64 << (n - 1))) >> n);
                // Not `clamp`, which panics when lo > hi (the verifier refuses that, but eval
                // never panics).
                let v = if v <= lo {
                    lo
                } else if v >= hi {
                    hi
                } else {
                    v
                };
                i16::try_from(v).unwrap_or(if v < 0 { i16::MIN } else { i16::MAX })
            })
            .collect();
        Tensor::new(a.shape().to_vec(), TensorData::I16(out))
    }
}
