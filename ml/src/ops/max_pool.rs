//! MaxPool (code 4): maximum over each window of an i8 `[H, W, C]` tensor; padded positions
//! are skipped (never counted as values). Exact; no rounding (docs/arithmetic.md §5).

use super::window::hwc;
use super::{EvalCx, InferCx, OpCost, Operator, ValueInfo, Window, i8_data, one};
use crate::error::{Error, Result};
use crate::format::{Reader, Writer};
use crate::tensor::{DType, Tensor, TensorData};

/// Attributes of MaxPool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxPool {
    /// Window geometry (no dilation; pads smaller than the kernel).
    pub window: Window,
}

/// Shared by the pools: output info and cost.
pub(crate) fn pool_infer(cx: &InferCx<'_>, window: &Window, inputs: &[&ValueInfo]) -> Result<(ValueInfo, OpCost)> {
    let x = one(inputs)?;
    cx.expect_dtype(x, "input", &[DType::I8])?;
    let (h, w, c) = hwc(&x.shape).ok_or_else(|| cx.err(format!("input must be [H, W, C], is {:?}", x.shape)))?;
    window.check_pool().map_err(|e| cx.err(e))?;
    let (oh, ow) = window.output_size(h, w).map_err(|e| cx.err(e))?;
    let reads = [oh, ow, c, usize::from(window.kernel_h), usize::from(window.kernel_w)]
        .iter()
        .fold(1u64, |a, &d| a.saturating_mul(d as u64));
    Ok((ValueInfo { dtype: DType::I8, shape: vec![oh, ow, c] }, OpCost { macs: 0, elem_ops: reads }))
}

/// Shared by the pools: folds every window, per channel, into an accumulator that starts at
/// `init`, takes each non-padding value with `step`, and becomes the output with
/// `finish(acc, count)`.
pub(crate) fn pool_eval<A: Copy>(
    window: &Window,
    x: &Tensor,
    init: A,
    step: impl Fn(A, i8) -> A,
    finish: impl Fn(A, usize) -> i8,
) -> Result<Tensor> {
    let (h, w, c) = hwc(x.shape()).ok_or(Error::Internal("pool input not HWC"))?;
    let (oh, ow) = window.output_size(h, w).map_err(|_| Error::Internal("pool geometry"))?;
    let data = i8_data(x)?;
    let mut out = Vec::with_capacity(oh * ow * c);
    let mut acc = vec![init; c];
    for oy in 0..oh {
        for ox in 0..ow {
            acc.fill(init);
            let mut count = 0;
            for ky in 0..usize::from(window.kernel_h) {
                let Some(iy) = window.in_row(oy, ky, h) else { continue };
                for kx in 0..usize::from(window.kernel_w) {
                    let Some(ix) = window.in_col(ox, kx, w) else { continue };
                    let start = (iy * w + ix) * c;
                    let Some(src) = data.get(start..start + c) else { return Err(Error::Internal("pool read")) };
                    for (a, &v) in acc.iter_mut().zip(src) {
                        *a = step(*a, v);
                    }
                    count += 1;
                }
            }
            out.extend(acc.iter().map(|&a| finish(a, count)));
        }
    }
    Tensor::new(vec![oh, ow, c], TensorData::I8(out))
}

impl Operator for MaxPool {
    const CODE: u8 = 4;
    const NAME: &'static str = "MaxPool";

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

    fn eval(&self, _cx: &EvalCx<'_>, inputs: &[&Tensor]) -> Result<Tensor> {
        pool_eval(&self.window, one(inputs)?, i8::MIN, Ord::max, |a, _| a)
    }
}
