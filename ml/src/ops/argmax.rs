//! ArgMax (code 9): index of the largest element along the last axis, as i32; ties go to the
//! lowest index (docs/arithmetic.md §8). Input i8, i16, i32 or i64; output shape drops the last
//! axis (a rank-1 input gives `[1]`).

use super::{EvalCx, InferCx, OpCost, Operator, ValueInfo, one};
use crate::error::{Error, Result};
use crate::format::{Reader, Writer};
use crate::tensor::{DType, Tensor, TensorData};

/// ArgMax has no attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgMax;

fn out_shape(shape: &[usize]) -> Vec<usize> {
    match shape.split_last() {
        Some((_, rest)) if !rest.is_empty() => rest.to_vec(),
        _ => vec![1],
    }
}

/// The index of the first largest value of each row of `n`.
fn argmax_rows<T: Copy + Ord>(v: &[T], n: usize) -> Result<Vec<i32>> {
    v.chunks(n.max(1))
        .map(|row| {
            let mut best = 0usize;
            for (j, x) in row.iter().enumerate() {
                if row.get(best).is_some_and(|b| x > b) {
                    best = j;
                }
            }
            i32::try_from(best).map_err(|_| Error::Internal("argmax index"))
        })
        .collect()
}

impl Operator for ArgMax {
    const CODE: u8 = 9;
    const NAME: &'static str = "ArgMax";

    fn arity_ok(n: usize) -> bool {
        n == 1
    }

    fn read(_r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self)
    }

    fn write(&self, _w: &mut Writer) {}

    fn tensor_refs(&self, _out: &mut Vec<u32>) {}

    fn infer(&self, cx: &InferCx<'_>, inputs: &[&ValueInfo]) -> Result<(ValueInfo, OpCost)> {
        let x = one(inputs)?;
        cx.expect_dtype(x, "input", &[DType::I8, DType::I16, DType::I32, DType::I64])?;
        if x.shape.is_empty() {
            return Err(cx.err("input must have rank >= 1"));
        }
        let n = x.shape.last().copied().unwrap_or(1).max(1) as u64;
        let rows = x.numel() / n;
        let cost =
            OpCost { elem_ops: x.numel(), steps: rows, calls: 2, bytes: rows.saturating_mul(4), ..OpCost::default() };
        Ok((ValueInfo { dtype: DType::I32, shape: out_shape(&x.shape) }, cost))
    }

    fn eval(&self, cx: &EvalCx<'_>, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = one(inputs)?;
        let n = x.shape().last().copied().ok_or(Error::Internal("ArgMax on a scalar"))?.max(1);
        let rows = x.len() / n;
        cx.work.alloc(rows * 4);
        cx.work.calls(1);
        cx.work.steps(rows);
        cx.work.elems(rows * n);
        let out = match x.data() {
            TensorData::I8(v) => argmax_rows(v, n),
            TensorData::I16(v) => argmax_rows(v, n),
            TensorData::I32(v) => argmax_rows(v, n),
            TensorData::I64(v) => argmax_rows(v, n),
            TensorData::U8(v) => argmax_rows(v, n),
        }?;
        Tensor::new(out_shape(x.shape()), TensorData::I32(out))
    }
}
