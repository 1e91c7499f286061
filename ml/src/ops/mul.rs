//! Mul (code 17): the elementwise product of two i8 tensors of one shape, requantized to i8:
//! `y = requant((a − za)·(b − zb))` (docs/arithmetic.md §15). Gating in transformer MLPs
//! (SwiGLU), attention masks as products, and ONNX `Mul` of two live tensors.

use super::requantize::Requant;
use super::{EvalCx, InferCx, OpCost, Operator, ValueInfo, i8_data};
use crate::error::{Error, Result};
use crate::format::{Reader, Writer};
use crate::tensor::{DType, Tensor, TensorData};

/// Attributes of Mul.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mul {
    /// Zero point of the first input, in the i8 range.
    pub a_zero_point: i32,
    /// Zero point of the second input, in the i8 range.
    pub b_zero_point: i32,
    /// Output requantization of the i32 product (per tensor or per last-axis channel).
    pub requant: Requant,
}

impl Operator for Mul {
    const CODE: u8 = 17;
    const NAME: &'static str = "Mul";

    fn arity_ok(n: usize) -> bool {
        n == 2
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self { a_zero_point: r.i32()?, b_zero_point: r.i32()?, requant: Requant::read(r)? })
    }

    fn write(&self, w: &mut Writer) {
        w.i32(self.a_zero_point);
        w.i32(self.b_zero_point);
        self.requant.write(w);
    }

    fn tensor_refs(&self, out: &mut Vec<u32>) {
        out.push(self.requant.multiplier);
        out.push(self.requant.shift);
    }

    fn infer(&self, cx: &InferCx<'_>, inputs: &[&ValueInfo]) -> Result<(ValueInfo, OpCost)> {
        let [a, b] = inputs else { return Err(Error::Internal("Mul takes two inputs")) };
        cx.expect_dtype(a, "A", &[DType::I8])?;
        cx.expect_dtype(b, "B", &[DType::I8])?;
        if a.shape != b.shape {
            return Err(cx.err(format!("inputs must have one shape, got {:?} and {:?}", a.shape, b.shape)));
        }
        for (zp, what) in [(self.a_zero_point, "A"), (self.b_zero_point, "B")] {
            if !(-128..=127).contains(&zp) {
                return Err(cx.err(format!("{what}'s zero point {zp} not in the i8 range")));
            }
        }
        let channels = a.shape.last().copied().unwrap_or(1);
        self.requant.check(cx, channels)?;
        let n = a.numel();
        // |(a − za)·(b − zb)| ≤ 255·255: an exact i32, no proof needed beyond the zero points.
        let cost = OpCost { elem_ops: n, calls: 2, bytes: n.saturating_mul(4), ..OpCost::default() }
            + Requant::rows_cost(n, channels);
        Ok((ValueInfo { dtype: DType::I8, shape: a.shape.clone() }, cost))
    }

    fn eval(&self, cx: &EvalCx<'_>, inputs: &[&Tensor]) -> Result<Tensor> {
        let [a, b] = inputs else { return Err(Error::Internal("Mul takes two inputs")) };
        let (av, bv) = (i8_data(a)?, i8_data(b)?);
        let channels = a.shape().last().copied().unwrap_or(1);
        cx.work.alloc(av.len() * 4);
        cx.work.calls(1);
        cx.work.elems(av.len());
        let (za, zb) = (self.a_zero_point, self.b_zero_point);
        let acc: Vec<i32> = av.iter().zip(bv).map(|(&x, &y)| (i32::from(x) - za) * (i32::from(y) - zb)).collect();
        let out = self.requant.resolve(cx)?.apply_rows(&acc, channels, cx.work);
        Tensor::new(a.shape().to_vec(), TensorData::I8(out))
    }
}
