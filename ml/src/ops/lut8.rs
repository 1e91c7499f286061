//! Lut8 (code 8): `y = table[x + 128]` for i8 x, with a 256-entry i8 table built offline. Any
//! int8 nonlinearity (sigmoid, tanh, GELU, ...) is exact this way (docs/arithmetic.md §7).

use super::{EvalCx, InferCx, OpCost, Operator, ValueInfo, i8_data, one};
use crate::error::{Error, Result};
use crate::format::{Reader, Writer};
use crate::tensor::{DType, Tensor, TensorData};

/// Attributes of Lut8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lut8 {
    /// Tensor id of the i8 table `[256]`, indexed by `x + 128`.
    pub table: u32,
}

impl Operator for Lut8 {
    const CODE: u8 = 8;
    const NAME: &'static str = "Lut8";

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
        cx.expect_dtype(x, "input", &[DType::I8])?;
        cx.tensor(self.table, "table", DType::I8, Some(&[256]))?;
        let n = x.numel();
        Ok(((*x).clone(), OpCost { elem_ops: n, calls: 2, bytes: n, ..OpCost::default() }))
    }

    fn eval(&self, cx: &EvalCx<'_>, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = one(inputs)?;
        let table = i8_data(cx.tensor(self.table)?)?;
        if table.len() != 256 {
            return Err(Error::Internal("table is not 256 entries"));
        }
        cx.work.alloc(x.len());
        cx.work.elems(x.len());
        cx.work.calls(1);
        let out = i8_data(x)?
            .iter()
            .map(|&v| table.get(usize::from(v.to_le_bytes()[0] ^ 0x80)).copied().unwrap_or(0))
            .collect();
        Tensor::new(x.shape().to_vec(), TensorData::I8(out))
    }
}
