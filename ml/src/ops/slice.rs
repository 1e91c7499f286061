//! Slice (code 19): `len` consecutive entries of one axis starting at `start`, any dtype
//! (docs/arithmetic.md §17): the last position's logits of a causal model. Its kernel also cuts
//! the key/value prefixes and writes the rows of a generation's cache (crate::decode).

use super::{EvalCx, InferCx, OpCost, Operator, ValueInfo, mul, one};
use crate::error::{Error, Result};
use crate::format::{Reader, Writer};
use crate::tensor::{Tensor, TensorData};
use crate::work::{Counter, Work};

/// Attributes of Slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    /// The axis cut.
    pub axis: u8,
    /// First entry kept.
    pub start: u32,
    /// Entries kept (at least 1; `start + len` at most the axis's extent).
    pub len: u32,
}

/// `(outer, extent, inner)` of `shape` around `axis`: the product of the dims before it, its own
/// dim, the product of the dims after it.
pub(crate) fn split_at_axis(shape: &[usize], axis: usize) -> Option<(usize, usize, usize)> {
    let extent = *shape.get(axis)?;
    let outer = shape.get(..axis)?.iter().product();
    let inner = shape.get(axis + 1..)?.iter().product();
    Some((outer, extent, inner))
}

/// The work of cutting `len` entries of `axis` out of a tensor of `shape` and `elem` bytes per
/// element: one fresh buffer of the result's bytes, one step per copied chunk.
pub(crate) fn slice_cost(shape: &[usize], axis: usize, len: usize, elem: usize) -> Work {
    let (outer, _, inner) = split_at_axis(shape, axis).unwrap_or((1, 1, 1));
    Work { steps: outer as u64, calls: 2, bytes: mul(&[outer, len, inner, elem]), ..Work::default() }
}

/// Cuts entries `start..start + len` of `axis` out of `x`, counting [`slice_cost`].
pub(crate) fn slice_axis(x: &Tensor, axis: usize, start: usize, len: usize, work: &Counter) -> Result<Tensor> {
    slice_data(x.data(), x.shape(), axis, start, len, work)
}

/// [`slice_axis`] of the data `x` of shape `shape`.
pub(crate) fn slice_data(
    x: &TensorData,
    shape: &[usize],
    axis: usize,
    start: usize,
    len: usize,
    work: &Counter,
) -> Result<Tensor> {
    let bug = || Error::Internal("Slice outside the tensor");
    let (outer, extent, inner) = split_at_axis(shape, axis).ok_or_else(bug)?;
    if start.checked_add(len).is_none_or(|end| end > extent) {
        return Err(bug());
    }
    fn cut<T: Copy>(v: &[T], outer: usize, extent: usize, inner: usize, start: usize, len: usize) -> Option<Vec<T>> {
        let mut out = Vec::with_capacity(outer * len * inner);
        for o in 0..outer {
            let from = (o * extent + start) * inner;
            out.extend_from_slice(v.get(from..from + len * inner)?);
        }
        Some(out)
    }
    work.alloc(outer * len * inner * x.dtype().size());
    work.calls(1);
    work.steps(outer);
    let data = match x {
        TensorData::I8(v) => TensorData::I8(cut(v, outer, extent, inner, start, len).ok_or_else(bug)?),
        TensorData::U8(v) => TensorData::U8(cut(v, outer, extent, inner, start, len).ok_or_else(bug)?),
        TensorData::I16(v) => TensorData::I16(cut(v, outer, extent, inner, start, len).ok_or_else(bug)?),
        TensorData::I32(v) => TensorData::I32(cut(v, outer, extent, inner, start, len).ok_or_else(bug)?),
        TensorData::I64(v) => TensorData::I64(cut(v, outer, extent, inner, start, len).ok_or_else(bug)?),
    };
    let mut shape = shape.to_vec();
    if let Some(d) = shape.get_mut(axis) {
        *d = len;
    }
    Tensor::new(shape, data)
}

/// The work of [`write_axis`] writing `rows` entries of `axis` into a tensor of `shape`: one
/// step per chunk, one element step per element written (into a buffer that already exists).
pub(crate) fn write_cost(shape: &[usize], axis: usize, rows: usize) -> Work {
    let (outer, _, inner) = split_at_axis(shape, axis).unwrap_or((1, 1, 1));
    Work { steps: outer as u64, elem_ops: mul(&[outer, rows, inner]), calls: 1, ..Work::default() }
}

/// Writes `part` (the shape of `into` except `axis`, whose extent it gives) over entries
/// `start..` of `axis` of `into`, counting [`write_cost`]. The inverse of [`slice_axis`].
pub(crate) fn write_axis(
    into: &mut TensorData,
    shape: &[usize],
    axis: usize,
    start: usize,
    part: &Tensor,
    work: &Counter,
) -> Result<()> {
    let bug = || Error::Internal("cache write outside the cache");
    let (outer, extent, inner) = split_at_axis(shape, axis).ok_or_else(bug)?;
    let rows = part.shape().get(axis).copied().ok_or_else(bug)?;
    if start.checked_add(rows).is_none_or(|end| end > extent) || part.len() != outer * rows * inner {
        return Err(bug());
    }
    fn put<T: Copy>(
        dst: &mut [T],
        src: &[T],
        outer: usize,
        extent: usize,
        inner: usize,
        start: usize,
        rows: usize,
    ) -> Option<()> {
        for o in 0..outer {
            let from = o * rows * inner;
            let to = (o * extent + start) * inner;
            dst.get_mut(to..to + rows * inner)?.copy_from_slice(src.get(from..from + rows * inner)?);
        }
        Some(())
    }
    work.calls(1);
    work.steps(outer);
    work.elems(outer * rows * inner);
    let done = match (into, part.data()) {
        (TensorData::I8(d), TensorData::I8(s)) => put(d, s, outer, extent, inner, start, rows),
        (TensorData::U8(d), TensorData::U8(s)) => put(d, s, outer, extent, inner, start, rows),
        (TensorData::I16(d), TensorData::I16(s)) => put(d, s, outer, extent, inner, start, rows),
        (TensorData::I32(d), TensorData::I32(s)) => put(d, s, outer, extent, inner, start, rows),
        (TensorData::I64(d), TensorData::I64(s)) => put(d, s, outer, extent, inner, start, rows),
        _ => None,
    };
    done.ok_or_else(bug)
}

impl Operator for Slice {
    const CODE: u8 = 19;
    const NAME: &'static str = "Slice";

    fn arity_ok(n: usize) -> bool {
        n == 1
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self { axis: r.u8()?, start: r.u32()?, len: r.u32()? })
    }

    fn write(&self, w: &mut Writer) {
        w.u8(self.axis);
        w.u32(self.start);
        w.u32(self.len);
    }

    fn tensor_refs(&self, _out: &mut Vec<u32>) {}

    fn infer(&self, cx: &InferCx<'_>, inputs: &[&ValueInfo]) -> Result<(ValueInfo, OpCost)> {
        let x = one(inputs)?;
        let axis = usize::from(self.axis);
        let Some(&extent) = x.shape.get(axis) else {
            return Err(cx.err(format!("axis {axis} out of range for rank {}", x.shape.len())));
        };
        let (start, len) = (self.start as usize, self.len as usize);
        if len == 0 || start.checked_add(len).is_none_or(|end| end > extent) {
            return Err(cx.err(format!("entries {start}..{start}+{len} do not fit axis {axis} of extent {extent}")));
        }
        let mut shape = x.shape.clone();
        if let Some(d) = shape.get_mut(axis) {
            *d = len;
        }
        Ok((ValueInfo { dtype: x.dtype, shape }, slice_cost(&x.shape, axis, len, x.dtype.size())))
    }

    fn eval(&self, cx: &EvalCx<'_>, inputs: &[&Tensor]) -> Result<Tensor> {
        slice_axis(one(inputs)?, usize::from(self.axis), self.start as usize, self.len as usize, cx.work)
    }
}
