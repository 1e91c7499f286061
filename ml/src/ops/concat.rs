//! Concat (code 7): joins 2–16 tensors of one dtype along an axis; all other dims must agree.
//! Values are copied unchanged, so inputs must already share a scale (requantize first).

use super::{EvalCx, InferCx, OpCost, Operator, ValueInfo};
use crate::error::{Error, Result};
use crate::format::{Reader, Writer};
use crate::tensor::{Tensor, TensorData};
use crate::work::Counter;

/// Attributes of Concat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concat {
    /// The axis to join along.
    pub axis: u8,
}

fn join<T: Copy>(parts: &[&[T]], outer: usize, chunks: &[usize], work: &Counter) -> Vec<T> {
    let total = chunks.iter().sum::<usize>() * outer;
    work.alloc(total * std::mem::size_of::<T>());
    let mut out = Vec::with_capacity(total);
    work.steps(outer * parts.len());
    for o in 0..outer {
        for (p, &c) in parts.iter().zip(chunks) {
            if let Some(s) = p.get(o * c..(o + 1) * c) {
                out.extend_from_slice(s);
            }
        }
    }
    out
}

macro_rules! join_variant {
    ($variant:ident, $inputs:expr, $outer:expr, $chunks:expr, $work:expr) => {{
        let parts = $inputs
            .iter()
            .map(|t| match t.data() {
                TensorData::$variant(v) => Ok(v.as_slice()),
                _ => Err(Error::Internal("Concat inputs differ in dtype")),
            })
            .collect::<Result<Vec<_>>>()?;
        TensorData::$variant(join(&parts, $outer, $chunks, $work))
    }};
}

impl Operator for Concat {
    const CODE: u8 = 7;
    const NAME: &'static str = "Concat";

    fn arity_ok(n: usize) -> bool {
        (2..=16).contains(&n)
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self { axis: r.u8()? })
    }

    fn write(&self, w: &mut Writer) {
        w.u8(self.axis);
    }

    fn tensor_refs(&self, _out: &mut Vec<u32>) {}

    fn infer(&self, cx: &InferCx<'_>, inputs: &[&ValueInfo]) -> Result<(ValueInfo, OpCost)> {
        let first = inputs.first().ok_or(Error::Internal("Concat without inputs"))?;
        let axis = usize::from(self.axis);
        if axis >= first.shape.len() {
            return Err(cx.err(format!("axis {axis} out of range for rank {}", first.shape.len())));
        }
        let mut shape = first.shape.clone();
        let mut total = 0usize;
        for (i, v) in inputs.iter().enumerate() {
            if v.dtype != first.dtype {
                return Err(cx.err(format!(
                    "input {i} has dtype {}, input 0 has {}",
                    v.dtype.name(),
                    first.dtype.name()
                )));
            }
            let same_rest = v.shape.len() == first.shape.len()
                && v.shape.iter().zip(&first.shape).enumerate().all(|(d, (a, b))| d == axis || a == b);
            if !same_rest {
                return Err(cx.err(format!(
                    "input {i} shape {:?} does not match {:?} outside axis {axis}",
                    v.shape, first.shape
                )));
            }
            total = total.saturating_add(v.shape.get(axis).copied().unwrap_or(0));
        }
        if let Some(d) = shape.get_mut(axis) {
            *d = total;
        }
        let out = ValueInfo { dtype: first.dtype, shape };
        // One step per copied chunk: `outer` chunks per input.
        let outer = first.shape.iter().take(axis).fold(1u64, |a, &d| a.saturating_mul(d as u64));
        let cost = OpCost {
            elem_ops: 0,
            steps: outer.saturating_mul(inputs.len() as u64),
            calls: 4,
            bytes: out.bytes(),
            ..OpCost::default()
        };
        Ok((out, cost))
    }

    fn eval(&self, cx: &EvalCx<'_>, inputs: &[&Tensor]) -> Result<Tensor> {
        // The chunk list, the part list, the shape.
        cx.work.calls(3);
        let first = inputs.first().ok_or(Error::Internal("Concat without inputs"))?;
        let axis = usize::from(self.axis);
        let outer: usize = first.shape().iter().take(axis).product();
        let inner: usize = first.shape().iter().skip(axis + 1).product();
        let chunks: Vec<usize> = inputs.iter().map(|t| t.shape().get(axis).copied().unwrap_or(0) * inner).collect();
        let mut shape = first.shape().to_vec();
        if let Some(d) = shape.get_mut(axis) {
            *d = inputs.iter().map(|t| t.shape().get(axis).copied().unwrap_or(0)).sum();
        }
        let data = match first.data() {
            TensorData::I8(_) => join_variant!(I8, inputs, outer, &chunks, cx.work),
            TensorData::U8(_) => join_variant!(U8, inputs, outer, &chunks, cx.work),
            TensorData::I16(_) => join_variant!(I16, inputs, outer, &chunks, cx.work),
            TensorData::I32(_) => join_variant!(I32, inputs, outer, &chunks, cx.work),
            TensorData::I64(_) => join_variant!(I64, inputs, outer, &chunks, cx.work),
        };
        Tensor::new(shape, data)
    }
}
