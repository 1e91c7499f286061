//! Packed tensor I/O (docs/model-format.md §8): tensors as their elements little-endian,
//! concatenated in order, no header. This is what the inference precompile takes and returns.

use crate::error::{Error, Result};
use crate::format::Model;
use crate::tensor::{Tensor, TensorData, numel};

/// Bytes of packed input the model takes.
pub fn input_len(model: &Model) -> usize {
    model.inputs.iter().map(|d| numel(&d.shape).unwrap_or(0).saturating_mul(d.dtype.size())).sum()
}

/// Splits packed bytes into the model's input tensors.
pub fn unpack_inputs(model: &Model, bytes: &[u8]) -> Result<Vec<Tensor>> {
    let expected = input_len(model);
    if bytes.len() != expected {
        return Err(Error::InputLength { expected, got: bytes.len() });
    }
    let mut rest = bytes;
    model
        .inputs
        .iter()
        .map(|d| {
            let n = numel(&d.shape).unwrap_or(0) * d.dtype.size();
            let (head, tail) = rest.split_at_checked(n).ok_or(Error::InputLength { expected, got: bytes.len() })?;
            rest = tail;
            Tensor::new(d.shape.clone(), TensorData::read_le(d.dtype, head)?)
        })
        .collect()
}

/// Concatenates tensors' little-endian elements.
pub fn pack(tensors: &[Tensor]) -> Vec<u8> {
    let mut out = Vec::with_capacity(tensors.iter().map(Tensor::byte_len).sum());
    for t in tensors {
        t.data().write_le(&mut out);
    }
    out
}
