//! LayerNorm (code 13): per row of the last axis, `z = (x − mean)/√(var + ε)` in fixed point,
//! then `γ·z + β` requantized to i8, in integers only: the mean is subtracted exactly (scaled by
//! the row length), the root is an exact integer square root (docs/arithmetic.md §12). The input
//! is i8 or i16 (a wide residual stream, §18).

use super::norm::{Center, NormParams};
use super::{EvalCx, InferCx, OpCost, Operator, ValueInfo};
use crate::error::Result;
use crate::format::{Reader, Writer};
use crate::tensor::Tensor;

/// Attributes of LayerNorm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerNorm {
    /// Scale, offset, ε, fractional bits and output requantization.
    pub params: NormParams,
}

impl Operator for LayerNorm {
    const CODE: u8 = 13;
    const NAME: &'static str = "LayerNorm";

    fn arity_ok(n: usize) -> bool {
        n == 1
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self { params: NormParams::read(r)? })
    }

    fn write(&self, w: &mut Writer) {
        self.params.write(w);
    }

    fn tensor_refs(&self, out: &mut Vec<u32>) {
        self.params.tensor_refs(out);
    }

    fn infer(&self, cx: &InferCx<'_>, inputs: &[&ValueInfo]) -> Result<(ValueInfo, OpCost)> {
        self.params.infer(cx, inputs)
    }

    fn eval(&self, cx: &EvalCx<'_>, inputs: &[&Tensor]) -> Result<Tensor> {
        self.params.eval(cx, inputs, Center::Mean)
    }
}
