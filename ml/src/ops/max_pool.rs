//! MaxPool (code 4): maximum over each window of an i8 `[H, W, C]` tensor; padded positions
//! are skipped (never counted as values). Exact; no rounding (docs/arithmetic.md §5).

use super::window::hwc;
use super::{EvalCx, InferCx, OpCost, Operator, ValueInfo, Window, i8_data, mul, one};
use crate::error::{Error, Result};
use crate::format::{Reader, Writer};
use crate::tensor::{DType, Tensor, TensorData};
use crate::work::Counter;

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
    let (kh, kw) = (usize::from(window.kernel_h), usize::from(window.kernel_w));
    // What pool_eval counts at most: per window a reset, every cell's `c` reads and the finish;
    // one step per window, per kernel row and per kernel cell; the output and accumulators.
    let cost = OpCost {
        elem_ops: mul(&[oh, ow, c, kh * kw + 2]),
        steps: mul(&[oh, ow, 1 + kh + kh * kw]),
        calls: 3,
        bytes: mul(&[oh, ow, c]).saturating_add(mul(&[c, 8])),
        ..OpCost::default()
    };
    Ok((ValueInfo { dtype: DType::I8, shape: vec![oh, ow, c] }, cost))
}

/// Shared by the pools: folds every window, per channel, into an accumulator that starts at
/// `init`, takes each non-padding value with `step`, and becomes the output with
/// `finish(acc, count)`.
pub(crate) fn pool_eval<A: Copy>(
    window: &Window,
    work: &Counter,
    x: &Tensor,
    init: A,
    step: impl Fn(A, i8) -> A,
    finish: impl Fn(A, usize) -> i8,
) -> Result<Tensor> {
    let (h, w, c) = hwc(x.shape()).ok_or(Error::Internal("pool input not HWC"))?;
    let (oh, ow) = window.output_size(h, w).map_err(|_| Error::Internal("pool geometry"))?;
    let data = i8_data(x)?;
    work.alloc(oh * ow * c);
    work.alloc(c * std::mem::size_of::<A>());
    work.calls(1);
    let mut out = Vec::with_capacity(oh * ow * c);
    let mut acc = vec![init; c];
    let (kh, kw) = (usize::from(window.kernel_h), usize::from(window.kernel_w));
    for oy in 0..oh {
        for ox in 0..ow {
            work.steps(1 + kh);
            work.elems(2 * c);
            acc.fill(init);
            let mut count = 0;
            for ky in 0..kh {
                let Some(iy) = window.in_row(oy, ky, h) else { continue };
                work.steps(kw);
                for kx in 0..kw {
                    let Some(ix) = window.in_col(ox, kx, w) else { continue };
                    work.elems(c);
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

    fn eval(&self, cx: &EvalCx<'_>, inputs: &[&Tensor]) -> Result<Tensor> {
        pool_eval(&self.window, cx.work, one(inputs)?, i8::MIN, Ord::max, |a, _| a)
    }
}
