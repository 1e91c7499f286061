//! The ops of arithmetic profile 1, one per file, each an [`Operator`]: how its attributes are
//! encoded, which output it makes (shape inference, with the overflow proof), what it costs and
//! how it evaluates. Op codes are consensus: the table in [`Op`] never changes within a profile.
//! Semantics: docs/arithmetic.md; encodings: docs/model-format.md §6.

pub mod add;
pub mod add_wide;
pub mod argmax;
pub mod avg_pool;
pub mod concat;
pub mod conv2d;
pub mod fully_connected;
pub mod gather;
pub mod layer_norm;
pub mod lut8;
pub mod matmul;
pub mod max_pool;
pub mod mul;
pub mod norm;
pub mod requantize;
pub mod reshape;
pub mod rms_norm;
pub mod slice;
pub mod softmax;
pub mod transpose;
pub mod tree_ensemble;
pub mod window;

pub use add::Add;
pub use add_wide::AddWide;
pub use argmax::ArgMax;
pub use avg_pool::AvgPool;
pub use concat::Concat;
pub use conv2d::Conv2d;
pub use fully_connected::FullyConnected;
pub use gather::Gather;
pub use layer_norm::LayerNorm;
pub use lut8::Lut8;
pub use matmul::MatMul;
pub use max_pool::MaxPool;
pub use mul::Mul;
pub use norm::NormParams;
pub use requantize::{Requant, Requantize};
pub use reshape::Reshape;
pub use rms_norm::RmsNorm;
pub use slice::Slice;
pub use softmax::Softmax;
pub use transpose::Transpose;
pub use tree_ensemble::TreeEnsemble;
pub use window::Window;

use crate::error::{Error, Result};
use crate::format::{NO_TENSOR, Reader, Writer};
use crate::kernels::{PackedWeights, Path};
use crate::tensor::{DType, Tensor};
use crate::work::{Counter, Work};

/// The dtype and shape of a value, known before running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueInfo {
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
}

impl ValueInfo {
    /// Element count (saturating; the verifier caps sizes far below).
    pub fn numel(&self) -> u64 {
        self.shape.iter().fold(1u64, |a, &d| a.saturating_mul(d as u64))
    }

    /// Size in bytes.
    pub fn bytes(&self) -> u64 {
        self.numel().saturating_mul(self.dtype.size() as u64)
    }
}

/// The most work an op may do in one run, from which gas is priced (docs/model-format.md §7):
/// a bound on what its `eval` counts into [`EvalCx::work`], whatever the input.
pub type OpCost = Work;

/// Product of sizes, saturating (costs are computed in u64 and capped by the verifier).
pub(crate) fn mul(dims: &[usize]) -> u64 {
    dims.iter().fold(1u64, |a, &d| a.saturating_mul(d as u64))
}

/// What an op sees while it is verified: its index, name and the model's tensors.
#[derive(Debug)]
pub struct InferCx<'a> {
    /// Index of the op in the model.
    pub op: usize,
    /// The op's name.
    pub name: &'static str,
    /// The model's constant tensors.
    pub tensors: &'a [Tensor],
}

impl InferCx<'_> {
    /// An [`Error::InvalidOp`] for this op.
    pub fn err(&self, what: impl Into<String>) -> Error {
        Error::InvalidOp { op: self.op, name: self.name, what: what.into() }
    }

    /// The tensor `id`, checking dtype and (when given) shape.
    pub fn tensor(&self, id: u32, what: &str, dtype: DType, shape: Option<&[usize]>) -> Result<&Tensor> {
        let t = usize::try_from(id)
            .ok()
            .and_then(|i| self.tensors.get(i))
            .ok_or_else(|| self.err(format!("{what}: tensor {id} does not exist")))?;
        if t.dtype() != dtype {
            return Err(self.err(format!("{what} must be {}, is {}", dtype.name(), t.dtype().name())));
        }
        if let Some(s) = shape
            && t.shape() != s
        {
            return Err(self.err(format!("{what} must have shape {s:?}, has {:?}", t.shape())));
        }
        Ok(t)
    }

    /// Checks a value's dtype.
    pub fn expect_dtype(&self, v: &ValueInfo, what: &str, allowed: &[DType]) -> Result<()> {
        if allowed.contains(&v.dtype) {
            Ok(())
        } else {
            Err(self.err(format!("{what} has dtype {}, allowed {:?}", v.dtype.name(), allowed)))
        }
    }
}

/// What an op sees while it runs.
#[derive(Debug)]
pub struct EvalCx<'a> {
    /// The model's constant tensors.
    pub tensors: &'a [Tensor],
    /// The kernel path.
    pub path: Path,
    /// Weights packed for `path` at load time (FullyConnected, Conv2D: one per group).
    pub packed: &'a [PackedWeights],
    /// Where the op counts the work it does (crate::work).
    pub work: &'a Counter,
}

impl<'a> EvalCx<'a> {
    /// The tensor `id` (already checked by the verifier; an error here is a bug).
    pub fn tensor(&self, id: u32) -> Result<&'a Tensor> {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.tensors.get(i))
            .ok_or(Error::Internal("tensor reference out of range at run time"))
    }

    /// An optional tensor (`NO_TENSOR` = absent).
    pub fn opt_tensor(&self, id: u32) -> Result<Option<&'a Tensor>> {
        if id == NO_TENSOR { Ok(None) } else { self.tensor(id).map(Some) }
    }
}

/// One op kind: its code, encoding, inference and evaluation.
pub trait Operator: Sized {
    /// Op code in the model format (consensus).
    const CODE: u8;
    /// Name in docs, errors and `inspect`.
    const NAME: &'static str;
    /// Whether the op takes `n` value inputs.
    fn arity_ok(n: usize) -> bool;
    /// Reads the attributes.
    fn read(r: &mut Reader<'_>) -> Result<Self>;
    /// Writes the attributes.
    fn write(&self, w: &mut Writer);
    /// Appends the tensor references, in encoding order.
    fn tensor_refs(&self, out: &mut Vec<u32>);
    /// Checks inputs and attributes (including the overflow proof) and gives the output and cost.
    fn infer(&self, cx: &InferCx<'_>, inputs: &[&ValueInfo]) -> Result<(ValueInfo, OpCost)>;
    /// Packs weights for a kernel path, for ops that have a GEMM (default: none).
    fn prepare(&self, _tensors: &[Tensor], _path: Path) -> Result<Vec<PackedWeights>> {
        Ok(Vec::new())
    }
    /// Computes the output. Inputs have been checked by `infer`.
    fn eval(&self, cx: &EvalCx<'_>, inputs: &[&Tensor]) -> Result<Tensor>;
}

/// Every op of profile 1, with its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Code 1.
    FullyConnected(FullyConnected),
    /// Code 2.
    Conv2d(Conv2d),
    /// Code 3.
    Add(Add),
    /// Code 4.
    MaxPool(MaxPool),
    /// Code 5.
    AvgPool(AvgPool),
    /// Code 6.
    Reshape(Reshape),
    /// Code 7.
    Concat(Concat),
    /// Code 8.
    Lut8(Lut8),
    /// Code 9.
    ArgMax(ArgMax),
    /// Code 10.
    Requantize(Requantize),
    /// Code 11.
    TreeEnsemble(TreeEnsemble),
    /// Code 12.
    Softmax(Softmax),
    /// Code 13.
    LayerNorm(LayerNorm),
    /// Code 14.
    RmsNorm(RmsNorm),
    /// Code 15.
    Gather(Gather),
    /// Code 16.
    MatMul(MatMul),
    /// Code 17.
    Mul(Mul),
    /// Code 18.
    Transpose(Transpose),
    /// Code 19.
    Slice(Slice),
    /// Code 20.
    AddWide(AddWide),
}

/// Calls `$body` with `$o` bound to the op struct, whatever the variant.
macro_rules! on_op {
    ($self:expr, $o:ident => $body:expr) => {
        match $self {
            Op::FullyConnected($o) => $body,
            Op::Conv2d($o) => $body,
            Op::Add($o) => $body,
            Op::MaxPool($o) => $body,
            Op::AvgPool($o) => $body,
            Op::Reshape($o) => $body,
            Op::Concat($o) => $body,
            Op::Lut8($o) => $body,
            Op::ArgMax($o) => $body,
            Op::Requantize($o) => $body,
            Op::TreeEnsemble($o) => $body,
            Op::Softmax($o) => $body,
            Op::LayerNorm($o) => $body,
            Op::RmsNorm($o) => $body,
            Op::Gather($o) => $body,
            Op::MatMul($o) => $body,
            Op::Mul($o) => $body,
            Op::Transpose($o) => $body,
            Op::Slice($o) => $body,
            Op::AddWide($o) => $body,
        }
    };
}

/// The op's associated constant, whatever the variant.
fn konst<T: Operator>(_: &T) -> (u8, &'static str) {
    (T::CODE, T::NAME)
}

fn arity<T: Operator>(_: &T, n: usize) -> bool {
    T::arity_ok(n)
}

impl Op {
    /// Reads an op's attributes given its code.
    pub fn read(code: u8, r: &mut Reader<'_>) -> Result<Self> {
        Ok(match code {
            FullyConnected::CODE => Op::FullyConnected(FullyConnected::read(r)?),
            Conv2d::CODE => Op::Conv2d(Conv2d::read(r)?),
            Add::CODE => Op::Add(Add::read(r)?),
            MaxPool::CODE => Op::MaxPool(MaxPool::read(r)?),
            AvgPool::CODE => Op::AvgPool(AvgPool::read(r)?),
            Reshape::CODE => Op::Reshape(Reshape::read(r)?),
            Concat::CODE => Op::Concat(Concat::read(r)?),
            Lut8::CODE => Op::Lut8(Lut8::read(r)?),
            ArgMax::CODE => Op::ArgMax(ArgMax::read(r)?),
            Requantize::CODE => Op::Requantize(Requantize::read(r)?),
            TreeEnsemble::CODE => Op::TreeEnsemble(TreeEnsemble::read(r)?),
            Softmax::CODE => Op::Softmax(Softmax::read(r)?),
            LayerNorm::CODE => Op::LayerNorm(LayerNorm::read(r)?),
            RmsNorm::CODE => Op::RmsNorm(RmsNorm::read(r)?),
            Gather::CODE => Op::Gather(Gather::read(r)?),
            MatMul::CODE => Op::MatMul(MatMul::read(r)?),
            Mul::CODE => Op::Mul(Mul::read(r)?),
            Transpose::CODE => Op::Transpose(Transpose::read(r)?),
            Slice::CODE => Op::Slice(Slice::read(r)?),
            AddWide::CODE => Op::AddWide(AddWide::read(r)?),
            other => return Err(Error::UnknownOp(other)),
        })
    }

    /// The op code.
    pub fn code(&self) -> u8 {
        on_op!(self, o => konst(o).0)
    }

    /// The op name.
    pub fn name(&self) -> &'static str {
        on_op!(self, o => konst(o).1)
    }

    /// Whether the op takes `n` inputs.
    pub fn arity_ok(&self, n: usize) -> bool {
        on_op!(self, o => arity(o, n))
    }

    /// Writes the attributes.
    pub fn write(&self, w: &mut Writer) {
        on_op!(self, o => o.write(w))
    }

    /// Appends tensor references in encoding order.
    pub fn tensor_refs(&self, out: &mut Vec<u32>) {
        on_op!(self, o => o.tensor_refs(out))
    }

    /// Shape inference, checks and cost.
    pub fn infer(&self, cx: &InferCx<'_>, inputs: &[&ValueInfo]) -> Result<(ValueInfo, OpCost)> {
        on_op!(self, o => o.infer(cx, inputs))
    }

    /// Packs weights for `path`.
    pub fn prepare(&self, tensors: &[Tensor], path: Path) -> Result<Vec<PackedWeights>> {
        on_op!(self, o => o.prepare(tensors, path))
    }

    /// Runs the op.
    pub fn eval(&self, cx: &EvalCx<'_>, inputs: &[&Tensor]) -> Result<Tensor> {
        on_op!(self, o => o.eval(cx, inputs))
    }
}

/// The single input of a one-input op.
pub(crate) fn one<'a, T>(inputs: &[&'a T]) -> Result<&'a T> {
    match inputs {
        [x] => Ok(x),
        _ => Err(Error::Internal("op expected exactly one input")),
    }
}

/// Reads an i8 tensor's data, or fails as a bug.
pub(crate) fn i8_data(t: &Tensor) -> Result<&[i8]> {
    t.as_i8().ok_or(Error::Internal("expected an i8 tensor at run time"))
}

/// Reads an i32 tensor's data, or fails as a bug.
pub(crate) fn i32_data(t: &Tensor) -> Result<&[i32]> {
    t.as_i32().ok_or(Error::Internal("expected an i32 tensor at run time"))
}
