//! AddWide (code 20): Add's single-rounding sum (docs/arithmetic.md §6) with each input i8 or i16
//! and an i16 output, for a transformer's residual stream: `h = AddWide(h, branch)` keeps the
//! stream on 65,536 levels while the branches stay i8 (docs/arithmetic.md §18).
//!
//! `y = clamp(zp_out + round_shift((a − zp_a)·m_a + (b − zp_b)·m_b, n), lo, hi)`, zero points
//! and clamp bounds in the i16 range, `m_a`, `m_b` in `[0, 2^31)`, one shift in `[1, 62]`.
//! Each term is below `2^16·2^31 = 2^47` in magnitude, so the sum and the rounding term
//! `2^(n−1) ≤ 2^61` are exact in i64.

use super::add::Add;
use super::{EvalCx, InferCx, OpCost, Operator, ValueInfo};
use crate::error::{Error, Result};
use crate::format::{Reader, Writer};
use crate::tensor::{DType, Tensor, TensorData};

/// Attributes of AddWide: Add's, encoded the same way, with zero points and clamp bounds in the
/// i16 range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddWide(pub Add);

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
        Ok(Self(Add::read(r)?))
    }

    fn write(&self, w: &mut Writer) {
        self.0.write(w);
    }

    fn tensor_refs(&self, _out: &mut Vec<u32>) {}

    fn infer(&self, cx: &InferCx<'_>, inputs: &[&ValueInfo]) -> Result<(ValueInfo, OpCost)> {
        let [a, b] = inputs else { return Err(Error::Internal("AddWide takes two inputs")) };
        cx.expect_dtype(a, "a", &[DType::I8, DType::I16])?;
        cx.expect_dtype(b, "b", &[DType::I8, DType::I16])?;
        if a.shape != b.shape {
            return Err(cx.err(format!("shapes differ: {:?} and {:?}", a.shape, b.shape)));
        }
        self.0.check(cx, -32_768..=32_767, "i16")?;
        let n = a.numel();
        let cost = OpCost { elem_ops: n, calls: 2, bytes: n.saturating_mul(2), ..OpCost::default() };
        Ok((ValueInfo { dtype: DType::I16, shape: a.shape.clone() }, cost))
    }

    fn eval(&self, cx: &EvalCx<'_>, inputs: &[&Tensor]) -> Result<Tensor> {
        let [a, b] = inputs else { return Err(Error::Internal("AddWide takes two inputs")) };
        cx.work.alloc(a.len() * 2);
        cx.work.elems(a.len());
        cx.work.calls(1);
        let out = widened(a)?
            .zip(widened(b)?)
            .map(|(x, y)| {
                let v = self.0.sum(x, y);
                i16::try_from(v).unwrap_or(if v < 0 { i16::MIN } else { i16::MAX })
            })
            .collect();
        Tensor::new(a.shape().to_vec(), TensorData::I16(out))
    }
}
