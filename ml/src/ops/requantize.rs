//! Requantize (code 10): i8/i16/i32 → i8, per channel along the last axis.
//!
//! `y = clamp(zp_out + round_shift((x - zp_in)·m[c], n[c]), lo, hi)` with exact integer math and
//! one rounding, half toward +∞ (docs/arithmetic.md §4). The same [`Requant`] parameters are
//! fused into FullyConnected and Conv2D; `lo`/`hi` express ReLU (`lo = zp_out`) and ReLU6.

use std::borrow::Cow;

use super::{EvalCx, InferCx, OpCost, Operator, ValueInfo, one};
use crate::arith::{MULTIPLIER_END, MULTIPLIER_MIN, SHIFT_MAX, SHIFT_MIN, requantize, requantize_i32, to_i8};
use crate::error::{Error, Result};
use crate::format::{Reader, Writer};
use crate::tensor::{DType, Tensor, TensorData};
use crate::work::{Counter, Work};

/// Output scaling of an accumulator into i8: per-channel multipliers and shifts (tensors of
/// length 1 or C), output zero point and clamp bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requant {
    /// Tensor id of the i32 multipliers, each in `[2^30, 2^31)`.
    pub multiplier: u32,
    /// Tensor id of the u8 shifts, each in `[1, 62]`.
    pub shift: u32,
    /// Output zero point, in the i8 range.
    pub zero_point: i32,
    /// Lower clamp, `-128 <= lo <= hi`.
    pub lo: i32,
    /// Upper clamp, `hi <= 127`.
    pub hi: i32,
}

/// Requant parameters resolved to slices for a run.
#[derive(Debug)]
pub(crate) struct Resolved<'a> {
    m: &'a [i32],
    n: &'a [u8],
    zp: i32,
    lo: i32,
    hi: i32,
}

impl Resolved<'_> {
    /// Requantizes a row-major `[rows][channels]` i32 buffer into i8 (the same values as
    /// [`Resolved::apply`], through the exact i64 form [`requantize_i32`]).
    pub(crate) fn apply_rows(&self, acc: &[i32], channels: usize, work: &Counter) -> Vec<i8> {
        self.map_rows(acc, channels, work, |v, m, n| requantize_i32(v, m, n, self.zp, self.lo, self.hi))
    }

    /// Requantizes a row-major `[rows][channels]` tensor of any integer type `x - zp` into i8
    /// with the exact i128 form (the Requantize op; same values as [`Resolved::apply`]).
    pub(crate) fn apply_rows_wide<T: Copy + Into<i64>>(
        &self,
        x: &[T],
        zp: i64,
        channels: usize,
        work: &Counter,
    ) -> Vec<i8> {
        self.map_rows(x, channels, work, |v, m, n| {
            let v = v.into().wrapping_sub(zp);
            // The i64 form is exact for every i32 value (arith::requantize_i32); wider
            // differences (an i32 input minus a far zero point) take the i128 definition.
            match i32::try_from(v) {
                Ok(v) => requantize_i32(v, m, n, self.zp, self.lo, self.hi),
                Err(_) => requantize(v, m, n, self.zp, self.lo, self.hi),
            }
        })
    }

    /// Runs `f(value, multiplier, shift)` over rows of `channels`, with the per-channel
    /// parameters broadcast once, and narrows the clamped results to i8.
    fn map_rows<T: Copy>(&self, acc: &[T], channels: usize, work: &Counter, f: impl Fn(T, i32, u8) -> i32) -> Vec<i8> {
        let ch = channels.max(1);
        // Per-channel parameters as stored, or broadcast from a single value.
        let m: Cow<'_, [i32]> = if self.m.len() == ch {
            Cow::Borrowed(self.m)
        } else {
            work.alloc(ch * 4);
            Cow::Owned((0..ch).map(|c| self.m.get(c).or(self.m.first()).copied().unwrap_or(0)).collect())
        };
        let n: Cow<'_, [u8]> = if self.n.len() == ch {
            Cow::Borrowed(self.n)
        } else {
            work.alloc(ch);
            Cow::Owned((0..ch).map(|c| self.n.get(c).or(self.n.first()).copied().unwrap_or(SHIFT_MIN)).collect())
        };
        work.alloc(acc.len());
        let mut out = Vec::with_capacity(acc.len());
        // The trip counts of the loops below: one step per row, one element per value.
        work.steps(acc.len().div_ceil(ch));
        work.elems(acc.len());
        for row in acc.chunks(ch) {
            for ((&v, &m), &n) in row.iter().zip(m.iter()).zip(n.iter()) {
                out.push(to_i8(f(v, m, n)));
            }
        }
        out
    }
}

impl Requant {
    /// Reads the five fields.
    pub fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self { multiplier: r.u32()?, shift: r.u32()?, zero_point: r.i32()?, lo: r.i32()?, hi: r.i32()? })
    }

    /// Writes the five fields.
    pub fn write(&self, w: &mut Writer) {
        w.u32(self.multiplier);
        w.u32(self.shift);
        w.i32(self.zero_point);
        w.i32(self.lo);
        w.i32(self.hi);
    }

    /// Checks the parameters for `channels` output channels.
    pub fn check(&self, cx: &InferCx<'_>, channels: usize) -> Result<()> {
        let m = cx.tensor(self.multiplier, "requant multiplier", DType::I32, None)?;
        let n = cx.tensor(self.shift, "requant shift", DType::U8, None)?;
        for (t, what) in [(m, "multiplier"), (n, "shift")] {
            if t.shape() != [channels] && t.shape() != [1] {
                return Err(cx.err(format!("requant {what} must have shape [{channels}] or [1], has {:?}", t.shape())));
            }
        }
        if let Some(bad) =
            m.as_i32().unwrap_or(&[]).iter().find(|&&v| !(MULTIPLIER_MIN..MULTIPLIER_END).contains(&i64::from(v)))
        {
            return Err(cx.err(format!("requant multiplier {bad} not in [2^30, 2^31)")));
        }
        if let Some(bad) = n.as_u8().unwrap_or(&[]).iter().find(|&&v| !(SHIFT_MIN..=SHIFT_MAX).contains(&v)) {
            return Err(cx.err(format!("requant shift {bad} not in [{SHIFT_MIN}, {SHIFT_MAX}]")));
        }
        if !(-128..=127).contains(&self.zero_point) {
            return Err(cx.err(format!("output zero point {} not in the i8 range", self.zero_point)));
        }
        if !(-128 <= self.lo && self.lo <= self.hi && self.hi <= 127) {
            return Err(cx.err(format!("clamp [{}, {}] must satisfy -128 <= lo <= hi <= 127", self.lo, self.hi)));
        }
        Ok(())
    }

    /// The most work [`Resolved::apply_rows`] does on `elems` values of `channels` channels.
    pub(crate) fn rows_cost(elems: u64, channels: usize) -> Work {
        let ch = (channels as u64).max(1);
        Work {
            elem_ops: elems,
            steps: elems.div_ceil(ch),
            calls: 3,
            bytes: elems.saturating_add(ch.saturating_mul(5)),
            ..Work::default()
        }
    }

    /// Resolves the tensors for a run.
    pub(crate) fn resolve<'a>(&self, cx: &EvalCx<'a>) -> Result<Resolved<'a>> {
        let m = cx.tensor(self.multiplier)?.as_i32().ok_or(Error::Internal("multiplier not i32"))?;
        let n = cx.tensor(self.shift)?.as_u8().ok_or(Error::Internal("shift not u8"))?;
        Ok(Resolved { m, n, zp: self.zero_point, lo: self.lo, hi: self.hi })
    }
}

/// Writes an optional requant block: a flag byte, then the fields if present.
pub(crate) fn write_opt(w: &mut Writer, rq: Option<&Requant>) {
    w.bool(rq.is_some());
    if let Some(rq) = rq {
        rq.write(w);
    }
}

/// Reads an optional requant block.
pub(crate) fn read_opt(r: &mut Reader<'_>) -> Result<Option<Requant>> {
    if r.bool()? { Ok(Some(Requant::read(r)?)) } else { Ok(None) }
}

/// Appends an optional requant block's tensor references.
pub(crate) fn refs_opt(rq: Option<&Requant>, out: &mut Vec<u32>) {
    if let Some(rq) = rq {
        out.push(rq.multiplier);
        out.push(rq.shift);
    }
}

/// The Requantize op: an input zero point and the output parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requantize {
    /// Subtracted from the input before scaling.
    pub input_zero_point: i32,
    /// Output scaling.
    pub requant: Requant,
}

impl Operator for Requantize {
    const CODE: u8 = 10;
    const NAME: &'static str = "Requantize";

    fn arity_ok(n: usize) -> bool {
        n == 1
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self { input_zero_point: r.i32()?, requant: Requant::read(r)? })
    }

    fn write(&self, w: &mut Writer) {
        w.i32(self.input_zero_point);
        self.requant.write(w);
    }

    fn tensor_refs(&self, out: &mut Vec<u32>) {
        out.push(self.requant.multiplier);
        out.push(self.requant.shift);
    }

    fn infer(&self, cx: &InferCx<'_>, inputs: &[&ValueInfo]) -> Result<(ValueInfo, OpCost)> {
        let x = one(inputs)?;
        cx.expect_dtype(x, "input", &[DType::I8, DType::I16, DType::I32])?;
        // Per channel along the last axis, or per tensor (`check` accepts length C or 1).
        self.requant.check(cx, x.shape.last().copied().unwrap_or(1))?;
        let channels = x.shape.last().copied().unwrap_or(1);
        let cost = Requant::rows_cost(x.numel(), channels) + OpCost { calls: 1, ..OpCost::default() };
        Ok((ValueInfo { dtype: DType::I8, shape: x.shape.clone() }, cost))
    }

    fn eval(&self, cx: &EvalCx<'_>, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = one(inputs)?;
        let rq = self.requant.resolve(cx)?;
        let channels = x.shape().last().copied().unwrap_or(1).max(1);
        let zp = i64::from(self.input_zero_point);
        cx.work.calls(1);
        let out = match x.data() {
            TensorData::I8(v) => rq.apply_rows_wide(v, zp, channels, cx.work),
            TensorData::I16(v) => rq.apply_rows_wide(v, zp, channels, cx.work),
            TensorData::I32(v) => rq.apply_rows_wide(v, zp, channels, cx.work),
            _ => return Err(Error::Internal("Requantize input dtype")),
        };
        Tensor::new(x.shape().to_vec(), TensorData::I8(out))
    }
}
