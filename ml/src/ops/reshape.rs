//! Reshape (code 6), which also serves as Flatten: same elements, same order, new shape with the
//! same element count. Any dtype.

use super::{EvalCx, InferCx, OpCost, Operator, ValueInfo, one};
use crate::error::Result;
use crate::format::{MAX_RANK, Reader, Writer};
use crate::tensor::Tensor;

/// Attributes of Reshape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reshape {
    /// The new shape (rank ≤ 6, every dim ≥ 1).
    pub shape: Vec<u32>,
}

impl Operator for Reshape {
    const CODE: u8 = 6;
    const NAME: &'static str = "Reshape";

    fn arity_ok(n: usize) -> bool {
        n == 1
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let at = r.offset();
        let rank = usize::from(r.u8()?);
        if rank > MAX_RANK {
            return Err(r.invalid(at, format!("rank {rank} exceeds {MAX_RANK}")));
        }
        let shape = (0..rank).map(|_| r.u32()).collect::<Result<Vec<_>>>()?;
        Ok(Self { shape })
    }

    fn write(&self, w: &mut Writer) {
        w.u8(u8::try_from(self.shape.len()).unwrap_or(u8::MAX));
        for &d in &self.shape {
            w.u32(d);
        }
    }

    fn tensor_refs(&self, _out: &mut Vec<u32>) {}

    fn infer(&self, cx: &InferCx<'_>, inputs: &[&ValueInfo]) -> Result<(ValueInfo, OpCost)> {
        let x = one(inputs)?;
        let shape: Vec<usize> = self.shape.iter().map(|&d| d as usize).collect();
        if shape.contains(&0) {
            return Err(cx.err("zero-sized dimension"));
        }
        let n = shape.iter().fold(1u64, |a, &d| a.saturating_mul(d as u64));
        if n != x.numel() {
            return Err(cx.err(format!("cannot reshape {:?} ({} elements) to {shape:?}", x.shape, x.numel())));
        }
        let cost = OpCost { calls: 3, bytes: x.bytes(), ..OpCost::default() };
        Ok((ValueInfo { dtype: x.dtype, shape }, cost))
    }

    fn eval(&self, cx: &EvalCx<'_>, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = one(inputs)?;
        // A copy of the data, of its shape, and the new shape.
        cx.work.alloc(x.byte_len());
        cx.work.calls(2);
        (*x).clone().reshaped(self.shape.iter().map(|&d| d as usize).collect())
    }
}
