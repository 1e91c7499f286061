//! Transpose (code 18): permutes the axes of a tensor of any dtype, `y[i_perm[0], …] = x[i_0, …]`
//! (docs/arithmetic.md §16): attention's split and merge of heads.

use super::{EvalCx, InferCx, OpCost, Operator, ValueInfo, one};
use crate::error::{Error, Result};
use crate::format::{Reader, Writer};
use crate::tensor::{Tensor, TensorData};

/// Most axes a Transpose permutes.
pub const MAX_RANK: usize = 6;

/// Attributes of Transpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transpose {
    /// Output axis `i` is input axis `perm[i]`; a permutation of `0..rank`.
    pub perm: Vec<u8>,
}

/// The elements of `x` (row-major, shape `shape`) in the order of the permuted tensor: output
/// axis `i` walks input axis `perm[i]`. `None` if the shapes do not match (a bug).
fn permute<T: Copy>(x: &[T], shape: &[usize], perm: &[usize]) -> Option<Vec<T>> {
    let rank = shape.len();
    // Row-major input strides, then each output axis's extent and input stride.
    let mut strides = vec![1usize; rank];
    let mut acc = 1usize;
    for (s, &d) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc = acc.checked_mul(d)?;
    }
    let axes: Vec<(usize, usize)> =
        perm.iter().map(|&p| Some((*shape.get(p)?, *strides.get(p)?))).collect::<Option<_>>()?;
    let mut idx = vec![0usize; rank];
    let mut src = 0usize;
    let mut out = Vec::with_capacity(x.len());
    for _ in 0..x.len() {
        out.push(*x.get(src)?);
        // Odometer over the output index, moving `src` by the matching input strides.
        for (i, &(extent, stride)) in idx.iter_mut().zip(&axes).rev() {
            *i += 1;
            src += stride;
            if *i < extent {
                break;
            }
            src -= stride * extent;
            *i = 0;
        }
    }
    Some(out)
}

impl Operator for Transpose {
    const CODE: u8 = 18;
    const NAME: &'static str = "Transpose";

    fn arity_ok(n: usize) -> bool {
        n == 1
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let at = r.offset();
        let rank = usize::from(r.u8()?);
        if rank > MAX_RANK {
            return Err(r.invalid(at, format!("rank {rank} exceeds {MAX_RANK}")));
        }
        Ok(Self { perm: (0..rank).map(|_| r.u8()).collect::<Result<_>>()? })
    }

    fn write(&self, w: &mut Writer) {
        w.u8(u8::try_from(self.perm.len()).unwrap_or(u8::MAX));
        for &p in &self.perm {
            w.u8(p);
        }
    }

    fn tensor_refs(&self, _out: &mut Vec<u32>) {}

    fn infer(&self, cx: &InferCx<'_>, inputs: &[&ValueInfo]) -> Result<(ValueInfo, OpCost)> {
        let x = one(inputs)?;
        let rank = x.shape.len();
        let mut sorted = self.perm.clone();
        sorted.sort_unstable();
        let is_perm = rank > 0 && sorted.iter().enumerate().all(|(i, &p)| usize::from(p) == i) && sorted.len() == rank;
        if !is_perm {
            return Err(cx.err(format!("perm {:?} is not a permutation of the input's {rank} axes", self.perm)));
        }
        let shape = self.perm.iter().map(|&p| x.shape.get(usize::from(p)).copied().unwrap_or(1)).collect();
        // Per element a strided read (counted as two element steps: the odometer and a load that
        // may miss the cache), and the output's bytes.
        let n = x.numel();
        let cost = OpCost { elem_ops: n.saturating_mul(2), calls: 2, bytes: x.bytes(), ..OpCost::default() };
        Ok((ValueInfo { dtype: x.dtype, shape }, cost))
    }

    fn eval(&self, cx: &EvalCx<'_>, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = one(inputs)?;
        let perm: Vec<usize> = self.perm.iter().map(|&p| usize::from(p)).collect();
        let shape = x.shape();
        cx.work.alloc(x.byte_len());
        cx.work.calls(1);
        cx.work.elems(2 * x.len());
        let bug = || Error::Internal("Transpose shapes");
        let data = match x.data() {
            TensorData::I8(v) => TensorData::I8(permute(v, shape, &perm).ok_or_else(bug)?),
            TensorData::U8(v) => TensorData::U8(permute(v, shape, &perm).ok_or_else(bug)?),
            TensorData::I16(v) => TensorData::I16(permute(v, shape, &perm).ok_or_else(bug)?),
            TensorData::I32(v) => TensorData::I32(permute(v, shape, &perm).ok_or_else(bug)?),
            TensorData::I64(v) => TensorData::I64(permute(v, shape, &perm).ok_or_else(bug)?),
        };
        let out_shape = perm.iter().map(|&p| shape.get(p).copied().ok_or_else(bug)).collect::<Result<_>>()?;
        Tensor::new(out_shape, data)
    }
}
