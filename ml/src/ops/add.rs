//! Add (code 3): elementwise sum of two i8 tensors of the same shape, rescaled to one output.
//!
//! `y = clamp(zp_out + round_shift((a - zp_a)·m_a + (b - zp_b)·m_b, n), lo, hi)`: both terms share
//! one shift so there is a single rounding (docs/arithmetic.md §6). `m_a`, `m_b` in `[0, 2^31)`.

use super::{EvalCx, InferCx, OpCost, Operator, ValueInfo, i8_data};
use crate::arith::{SHIFT_MAX, SHIFT_MIN, to_i8};
use crate::error::{Error, Result};
use crate::format::{Reader, Writer};
use crate::tensor::{DType, Tensor, TensorData};

/// Attributes of Add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    /// Zero point of `a`.
    pub a_zero_point: i32,
    /// Multiplier of `a`.
    pub a_multiplier: i32,
    /// Zero point of `b`.
    pub b_zero_point: i32,
    /// Multiplier of `b`.
    pub b_multiplier: i32,
    /// Shared shift, `[1, 62]`.
    pub shift: u8,
    /// Output zero point.
    pub zero_point: i32,
    /// Lower clamp.
    pub lo: i32,
    /// Upper clamp.
    pub hi: i32,
}

impl Add {
    /// Checks the attributes for values in `range` (i8 for Add, i16 for AddWide): zero points
    /// and clamp bounds in it, multipliers non-negative, the shift in `[1, 62]`.
    pub(crate) fn check(&self, cx: &InferCx<'_>, range: std::ops::RangeInclusive<i32>, dtype: &str) -> Result<()> {
        for (zp, what) in [
            (self.a_zero_point, "a zero point"),
            (self.b_zero_point, "b zero point"),
            (self.zero_point, "output zero point"),
        ] {
            if !range.contains(&zp) {
                return Err(cx.err(format!("{what} {zp} not in the {dtype} range")));
            }
        }
        if self.a_multiplier < 0 || self.b_multiplier < 0 {
            return Err(cx.err("multipliers must be non-negative"));
        }
        if !(SHIFT_MIN..=SHIFT_MAX).contains(&self.shift) {
            return Err(cx.err(format!("shift {} not in [{SHIFT_MIN}, {SHIFT_MAX}]", self.shift)));
        }
        if !(range.start() <= &self.lo && self.lo <= self.hi && &self.hi <= range.end()) {
            return Err(cx.err(format!("clamp must satisfy {} <= lo <= hi <= {}", range.start(), range.end())));
        }
        Ok(())
    }

    /// The sum of one pair (docs/arithmetic.md §6), clamped to `[lo, hi]`. Exact in i64 for
    /// inputs up to 16 bits: each term is below `2^16·2^31 = 2^47` and the rounding term
    /// `2^(n−1) ≤ 2^61`, so the values are the i128 definition's (checked at the extremes by
    /// `add_matches_the_i128_definition` and `add_wide_matches_the_i128_definition`).
    pub(crate) fn sum(&self, x: i64, y: i64) -> i64 {
        let n = u32::from(self.shift.clamp(SHIFT_MIN, SHIFT_MAX));
        let ta = (x - i64::from(self.a_zero_point)) * i64::from(self.a_multiplier.max(0));
        let tb = (y - i64::from(self.b_zero_point)) * i64::from(self.b_multiplier.max(0));
        let v = i64::from(self.zero_point) + ((ta + tb + (1i64 << (n - 1))) >> n);
        // Not `clamp`, which panics when lo > hi (the verifier refuses that; eval never panics).
        let (lo, hi) = (i64::from(self.lo), i64::from(self.hi));
        if v <= lo {
            lo
        } else if v >= hi {
            hi
        } else {
            v
        }
    }
}

impl Operator for Add {
    const CODE: u8 = 3;
    const NAME: &'static str = "Add";

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
        let [a, b] = inputs else { return Err(Error::Internal("Add takes two inputs")) };
        cx.expect_dtype(a, "a", &[DType::I8])?;
        cx.expect_dtype(b, "b", &[DType::I8])?;
        if a.shape != b.shape {
            return Err(cx.err(format!("shapes differ: {:?} and {:?}", a.shape, b.shape)));
        }
        self.check(cx, -128..=127, "i8")?;
        let n = a.numel();
        Ok(((*a).clone(), OpCost { elem_ops: n, calls: 2, bytes: n, ..OpCost::default() }))
    }

    fn eval(&self, cx: &EvalCx<'_>, inputs: &[&Tensor]) -> Result<Tensor> {
        let [a, b] = inputs else { return Err(Error::Internal("Add takes two inputs")) };
        if self.a_multiplier < 0 || self.b_multiplier < 0 {
            return Err(Error::Internal("Add multipliers checked non-negative at verification"));
        }
        cx.work.alloc(a.len());
        cx.work.elems(a.len());
        cx.work.calls(1);
        let out = i8_data(a)?
            .iter()
            .zip(i8_data(b)?)
            .map(|(&x, &y)| to_i8(i32::try_from(self.sum(i64::from(x), i64::from(y))).unwrap_or(self.lo)))
            .collect();
        Tensor::new(a.shape().to_vec(), TensorData::I8(out))
    }
}
