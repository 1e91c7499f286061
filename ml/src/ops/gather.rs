//! Gather (code 15): rows of a constant i8 table `[V, D]` picked by u8 or i32 indices (token and
//! position embeddings), output `[..indices, D]` (docs/arithmetic.md §13). An index outside
//! `[0, V)` fails the run with [`Error::IndexOutOfRange`].

use super::{EvalCx, InferCx, OpCost, Operator, ValueInfo, i8_data, mul, one};
use crate::error::{Error, Result};
use crate::format::{Reader, Writer};
use crate::tensor::{DType, Tensor, TensorData};

/// Attributes of Gather.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gather {
    /// Tensor id of the i8 table `[V, D]`.
    pub table: u32,
}

impl Operator for Gather {
    const CODE: u8 = 15;
    const NAME: &'static str = "Gather";

    fn arity_ok(n: usize) -> bool {
        n == 1
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self { table: r.u32()? })
    }

    fn write(&self, w: &mut Writer) {
        w.u32(self.table);
    }

    fn tensor_refs(&self, out: &mut Vec<u32>) {
        out.push(self.table);
    }

    fn infer(&self, cx: &InferCx<'_>, inputs: &[&ValueInfo]) -> Result<(ValueInfo, OpCost)> {
        let x = one(inputs)?;
        cx.expect_dtype(x, "indices", &[DType::U8, DType::I32])?;
        let table = cx.tensor(self.table, "table", DType::I8, None)?;
        let d = match table.shape() {
            [v, d] if *v > 0 && *d > 0 => *d,
            s => return Err(cx.err(format!("table must be [V, D] with V, D > 0, is {s:?}"))),
        };
        let n = x.numel();
        let mut shape = x.shape.clone();
        shape.push(d);
        // Per index a step (the bounds check and the row copy's set-up); the copied rows are the
        // output's bytes.
        let cost = OpCost { steps: n, calls: 2, bytes: mul(&[n as usize, d]), ..OpCost::default() };
        Ok((ValueInfo { dtype: DType::I8, shape }, cost))
    }

    fn eval(&self, cx: &EvalCx<'_>, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = one(inputs)?;
        let t = cx.tensor(self.table)?;
        let table = i8_data(t)?;
        let (rows, d) = match t.shape() {
            [v, d] => (*v, *d),
            _ => return Err(Error::Internal("Gather table is not [V, D]")),
        };
        let indices: Vec<i64> = match x.data() {
            TensorData::U8(v) => v.iter().map(|&i| i64::from(i)).collect(),
            TensorData::I32(v) => v.iter().map(|&i| i64::from(i)).collect(),
            _ => return Err(Error::Internal("Gather indices are not u8 or i32")),
        };
        cx.work.alloc(indices.len() * d);
        cx.work.calls(1);
        cx.work.steps(indices.len());
        let mut out = Vec::with_capacity(indices.len() * d);
        for &i in &indices {
            let row = usize::try_from(i)
                .ok()
                .filter(|&r| r < rows)
                .and_then(|r| table.get(r * d..(r + 1) * d))
                .ok_or(Error::IndexOutOfRange { index: i, rows })?;
            out.extend_from_slice(row);
        }
        let mut shape = x.shape().to_vec();
        shape.push(d);
        Tensor::new(shape, TensorData::I8(out))
    }
}
