//! Integer tensors: a dtype, a shape and little-endian-serialisable data.

use crate::error::{Error, Result};

/// Element types a model may hold (docs/model-format.md §3). Codes are consensus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// Signed 8-bit.
    I8 = 0,
    /// Unsigned 8-bit.
    U8 = 1,
    /// Signed 16-bit.
    I16 = 2,
    /// Signed 32-bit.
    I32 = 3,
    /// Signed 64-bit.
    I64 = 4,
}

impl DType {
    /// Decodes a dtype code.
    pub fn from_code(code: u8) -> Result<Self> {
        Ok(match code {
            0 => Self::I8,
            1 => Self::U8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::I64,
            other => return Err(Error::UnknownDType(other)),
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::I8 | Self::U8 => 1,
            Self::I16 => 2,
            Self::I32 => 4,
            Self::I64 => 8,
        }
    }

    /// Lowercase name, as in the docs.
    pub fn name(self) -> &'static str {
        match self {
            Self::I8 => "i8",
            Self::U8 => "u8",
            Self::I16 => "i16",
            Self::I32 => "i32",
            Self::I64 => "i64",
        }
    }
}

/// The elements of a tensor, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TensorData {
    /// i8 elements.
    I8(Vec<i8>),
    /// u8 elements.
    U8(Vec<u8>),
    /// i16 elements.
    I16(Vec<i16>),
    /// i32 elements.
    I32(Vec<i32>),
    /// i64 elements.
    I64(Vec<i64>),
}

impl TensorData {
    /// The dtype of these elements.
    pub fn dtype(&self) -> DType {
        match self {
            Self::I8(_) => DType::I8,
            Self::U8(_) => DType::U8,
            Self::I16(_) => DType::I16,
            Self::I32(_) => DType::I32,
            Self::I64(_) => DType::I64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Self::I8(v) => v.len(),
            Self::U8(v) => v.len(),
            Self::I16(v) => v.len(),
            Self::I32(v) => v.len(),
            Self::I64(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `n` zeros of `dtype`.
    pub fn zeros(dtype: DType, n: usize) -> Self {
        match dtype {
            DType::I8 => Self::I8(vec![0; n]),
            DType::U8 => Self::U8(vec![0; n]),
            DType::I16 => Self::I16(vec![0; n]),
            DType::I32 => Self::I32(vec![0; n]),
            DType::I64 => Self::I64(vec![0; n]),
        }
    }

    /// Element `i` widened to i64 (None when out of range).
    pub fn get_i64(&self, i: usize) -> Option<i64> {
        match self {
            Self::I8(v) => v.get(i).map(|&x| i64::from(x)),
            Self::U8(v) => v.get(i).map(|&x| i64::from(x)),
            Self::I16(v) => v.get(i).map(|&x| i64::from(x)),
            Self::I32(v) => v.get(i).map(|&x| i64::from(x)),
            Self::I64(v) => v.get(i).copied(),
        }
    }

    /// Appends the elements little-endian to `out`.
    pub fn write_le(&self, out: &mut Vec<u8>) {
        match self {
            Self::I8(v) => out.extend(v.iter().map(|&x| x.to_le_bytes()[0])),
            Self::U8(v) => out.extend_from_slice(v),
            Self::I16(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Self::I32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Self::I64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        }
    }

    /// Reads `bytes.len() / dtype.size()` little-endian elements; the length must divide.
    pub fn read_le(dtype: DType, bytes: &[u8]) -> Result<Self> {
        if !bytes.len().is_multiple_of(dtype.size()) {
            return Err(Error::Internal("byte length not a multiple of the dtype size"));
        }
        Ok(match dtype {
            DType::I8 => Self::I8(bytes.iter().map(|&b| i8::from_le_bytes([b])).collect()),
            DType::U8 => Self::U8(bytes.to_vec()),
            DType::I16 => Self::I16(bytes.as_chunks::<2>().0.iter().map(|c| i16::from_le_bytes(*c)).collect()),
            DType::I32 => Self::I32(bytes.as_chunks::<4>().0.iter().map(|c| i32::from_le_bytes(*c)).collect()),
            DType::I64 => Self::I64(bytes.as_chunks::<8>().0.iter().map(|c| i64::from_le_bytes(*c)).collect()),
        })
    }
}

/// A tensor: shape plus row-major data whose length is the product of the shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: TensorData,
}

impl Tensor {
    /// Builds a tensor, checking that the data length matches the shape.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Self> {
        match numel(&shape) {
            Some(n) if n == data.len() => Ok(Self { shape, data }),
            _ => Err(Error::Internal("tensor data length does not match its shape")),
        }
    }

    /// An i8 tensor.
    pub fn i8(shape: Vec<usize>, v: Vec<i8>) -> Result<Self> {
        Self::new(shape, TensorData::I8(v))
    }

    /// An i32 tensor.
    pub fn i32(shape: Vec<usize>, v: Vec<i32>) -> Result<Self> {
        Self::new(shape, TensorData::I32(v))
    }

    /// An i64 tensor.
    pub fn i64(shape: Vec<usize>, v: Vec<i64>) -> Result<Self> {
        Self::new(shape, TensorData::I64(v))
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The data.
    pub fn data(&self) -> &TensorData {
        &self.data
    }

    /// Consumes the tensor, returning its data.
    pub fn into_data(self) -> TensorData {
        self.data
    }

    /// The dtype.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True for a tensor with no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Size of the data in bytes.
    pub fn byte_len(&self) -> usize {
        self.len().saturating_mul(self.dtype().size())
    }

    /// The i8 elements, if this is an i8 tensor.
    pub fn as_i8(&self) -> Option<&[i8]> {
        match &self.data {
            TensorData::I8(v) => Some(v),
            _ => None,
        }
    }

    /// The u8 elements, if this is a u8 tensor.
    pub fn as_u8(&self) -> Option<&[u8]> {
        match &self.data {
            TensorData::U8(v) => Some(v),
            _ => None,
        }
    }

    /// The i32 elements, if this is an i32 tensor.
    pub fn as_i32(&self) -> Option<&[i32]> {
        match &self.data {
            TensorData::I32(v) => Some(v),
            _ => None,
        }
    }

    /// The i64 elements, if this is an i64 tensor.
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            TensorData::I64(v) => Some(v),
            _ => None,
        }
    }

    /// Same data under a new shape with the same element count.
    pub fn reshaped(self, shape: Vec<usize>) -> Result<Self> {
        Self::new(shape, self.data)
    }
}

/// Product of dims, None on overflow.
pub fn numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}
