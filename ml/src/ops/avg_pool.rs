//! AvgPool (code 5): mean over each window of an i8 `[H, W, C]` tensor, counting only
//! non-padded positions; the i32 sum is divided by the count rounding half away from zero
//! (docs/arithmetic.md §5). Input and output share scale and zero point.

use super::max_pool::{pool_eval, pool_infer};
use super::{EvalCx, InferCx, OpCost, Operator, ValueInfo, Window, one};
use crate::arith::{div_round_half_away, to_i8};
use crate::error::Result;
use crate::format::{Reader, Writer};
use crate::tensor::Tensor;

/// Attributes of AvgPool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvgPool {
    /// Window geometry (no dilation; pads smaller than the kernel).
    pub window: Window,
}

impl Operator for AvgPool {
    const CODE: u8 = 5;
    const NAME: &'static str = "AvgPool";

    fn arity_ok(n: usize) -> bool {
        n == 1
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self { window: Window::read(r)? })
    }

    fn write(&self, w: &mut Writer) {
        self.window.write(w);
    }

    fn tensor_refs(&self, _out: &mut Vec<u32>) {}

    fn infer(&self, cx: &InferCx<'_>, inputs: &[&ValueInfo]) -> Result<(ValueInfo, OpCost)> {
        pool_infer(cx, &self.window, inputs)
    }

    fn eval(&self, cx: &EvalCx<'_>, inputs: &[&Tensor]) -> Result<Tensor> {
        pool_eval(
            &self.window,
            cx.work,
            one(inputs)?,
            0i64,
            |s, v| s + i64::from(v),
            |s, count| to_i8(i32::try_from(div_round_half_away(s, count as i64)).unwrap_or(0)),
        )
    }
}
