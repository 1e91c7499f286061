//! RMSNorm (code 14): per row of the last axis, `z = (x − zp)/√(mean((x − zp)²) + ε)` in fixed
//! point, then `γ·z + β` requantized to i8, in integers only (docs/arithmetic.md §12). The input
//! is i8 or i16.

use super::norm::{Center, NormParams};
use super::{EvalCx, InferCx, OpCost, Operator, ValueInfo};
use crate::error::Result;
use crate::format::{Reader, Writer};
use crate::tensor::{DType, Tensor};

/// Attributes of RMSNorm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RmsNorm {
    /// The input's zero point (subtracted before squaring), in the range of the input's dtype
    /// (i8 or i16).
    pub input_zero_point: i32,
    /// Scale, offset (usually none), ε, fractional bits and output requantization.
    pub params: NormParams,
}

impl Operator for RmsNorm {
    const CODE: u8 = 14;
    const NAME: &'static str = "RMSNorm";

    fn arity_ok(n: usize) -> bool {
        n == 1
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self { input_zero_point: r.i32()?, params: NormParams::read(r)? })
    }

    fn write(&self, w: &mut Writer) {
        w.i32(self.input_zero_point);
        self.params.write(w);
    }

    fn tensor_refs(&self, out: &mut Vec<u32>) {
        self.params.tensor_refs(out);
    }

    fn infer(&self, cx: &InferCx<'_>, inputs: &[&ValueInfo]) -> Result<(ValueInfo, OpCost)> {
        let wide = inputs.first().is_some_and(|x| x.dtype == DType::I16);
        let (range, name) = if wide { (-32_768..=32_767, "i16") } else { (-128..=127, "i8") };
        if !range.contains(&self.input_zero_point) {
            return Err(cx.err(format!("input zero point {} not in the {name} range", self.input_zero_point)));
        }
        self.params.infer(cx, inputs)
    }

    fn eval(&self, cx: &EvalCx<'_>, inputs: &[&Tensor]) -> Result<Tensor> {
        self.params.eval(cx, inputs, Center::ZeroPoint(self.input_zero_point))
    }
}
