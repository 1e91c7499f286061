//! The canonical model format (docs/model-format.md). One model has exactly one encoding:
//! [`Model::parse`] rejects every other byte string, and [`Model::to_bytes`] gives back the
//! bytes it parsed. A model's identity is the keccak256 of those bytes ([`model_id`]).
//!
//! ```text
//! header   "FXPM" | version u16 = 1 | profile u16 = 1
//! tensors  count u32 | { dtype u8 | rank u8 | dims u32 × rank | data (LE, dense) } × count
//! inputs   count u8  | { dtype u8 | rank u8 | dims u32 × rank | quant } × count
//! ops      count u32 | { opcode u8 | n_in u8 | value u32 × n_in | attributes } × count
//! outputs  count u8  | { value u32 | quant } × count
//! quant  = zero_point i32 | multiplier i32 | shift u8
//! ```

mod builder;
mod codec;

pub use builder::ModelBuilder;
pub use codec::{Reader, Writer};

use crate::error::{Error, Result};
use crate::ops::Op;
use crate::tensor::{DType, Tensor, TensorData, numel};

/// The four bytes every model starts with.
pub const MAGIC: [u8; 4] = *b"FXPM";
/// The only format version this engine reads.
pub const FORMAT_VERSION: u16 = 1;
/// Arithmetic profile 1: the semantics of docs/arithmetic.md.
pub const PROFILE_INT8_V1: u16 = 1;
/// Largest tensor rank.
pub const MAX_RANK: usize = 6;
/// Largest number of model inputs or outputs.
pub const MAX_IO: usize = 16;
/// Marks an absent optional tensor reference (e.g. no bias).
pub const NO_TENSOR: u32 = u32::MAX;

/// A model's identity: keccak256 of its canonical bytes.
pub type ModelId = [u8; 32];

/// keccak256 of the bytes: the id under which a model is registered.
pub fn model_id(bytes: &[u8]) -> ModelId {
    use tiny_keccak::{Hasher, Keccak};
    let mut k = Keccak::v256();
    k.update(bytes);
    let mut out = [0u8; 32];
    k.finalize(&mut out);
    out
}

/// How to read integers as reals: `real = multiplier * 2^-shift * (q - zero_point)`.
/// `multiplier == 0` (with `shift == 0`) marks a tensor with no real meaning, such as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quant {
    /// The integer that stands for real zero.
    pub zero_point: i32,
    /// Scale numerator, 0 or in `[2^30, 2^31)`.
    pub multiplier: i32,
    /// Scale exponent: scale = multiplier / 2^shift, at most 127.
    pub shift: u8,
}

impl Quant {
    /// No real-valued interpretation.
    pub const NONE: Quant = Quant { zero_point: 0, multiplier: 0, shift: 0 };

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        let at = r.offset();
        let q = Quant { zero_point: r.i32()?, multiplier: r.i32()?, shift: r.u8()? };
        let normal = i64::from(q.multiplier) >= crate::arith::MULTIPLIER_MIN && q.shift <= 127;
        if !(normal || (q.multiplier == 0 && q.shift == 0)) {
            return Err(r.invalid(at, "quant multiplier must be 0 (with shift 0) or in [2^30, 2^31) with shift <= 127"));
        }
        Ok(q)
    }

    fn write(&self, w: &mut Writer) {
        w.i32(self.zero_point);
        w.i32(self.multiplier);
        w.u8(self.shift);
    }
}

/// A model input: its dtype, shape and quantization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputDesc {
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
    /// How its integers map to reals.
    pub quant: Quant,
}

/// A model output: which value, and how its integers map to reals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputDesc {
    /// Value id (inputs first, then one per op).
    pub value: u32,
    /// How its integers map to reals.
    pub quant: Quant,
}

/// One op application: the values it reads and the op with its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Value ids read, each smaller than this node's own value id.
    pub inputs: Vec<u32>,
    /// The op.
    pub op: Op,
}

/// A parsed model. Values are numbered: inputs `0..n_inputs`, then op `i` produces value
/// `n_inputs + i`. Constant tensors are referenced from op attributes by index.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Model {
    /// Constant tensors (weights, tables, trees), in order of first reference.
    pub tensors: Vec<Tensor>,
    /// Model inputs.
    pub inputs: Vec<InputDesc>,
    /// Ops in topological order.
    pub nodes: Vec<Node>,
    /// Model outputs.
    pub outputs: Vec<OutputDesc>,
}

fn read_shape(r: &mut Reader<'_>) -> Result<Vec<usize>> {
    let at = r.offset();
    let rank = usize::from(r.u8()?);
    if rank > MAX_RANK {
        return Err(r.invalid(at, format!("rank {rank} exceeds {MAX_RANK}")));
    }
    let mut dims = Vec::with_capacity(rank);
    for _ in 0..rank {
        let at = r.offset();
        let d = r.u32()?;
        if d == 0 {
            return Err(r.invalid(at, "zero-sized dimension"));
        }
        dims.push(usize::try_from(d).map_err(|_| r.invalid(at, "dimension too large"))?);
    }
    Ok(dims)
}

fn write_shape(w: &mut Writer, shape: &[usize]) {
    w.u8(u8::try_from(shape.len()).unwrap_or(u8::MAX));
    for &d in shape {
        w.u32(u32::try_from(d).unwrap_or(u32::MAX));
    }
}

fn read_tensor(r: &mut Reader<'_>) -> Result<Tensor> {
    let dtype = DType::from_code(r.u8()?)?;
    let at = r.offset();
    let shape = read_shape(r)?;
    let n = numel(&shape)
        .and_then(|n| n.checked_mul(dtype.size()))
        .ok_or_else(|| r.invalid(at, "tensor size overflows"))?;
    // `bytes` checks the length before anything is allocated, so a lying header cannot make
    // the parser allocate more than the input's own size.
    let data = TensorData::read_le(dtype, r.bytes(n)?)?;
    Tensor::new(shape, data)
}

fn write_tensor(w: &mut Writer, t: &Tensor) {
    w.u8(t.dtype() as u8);
    write_shape(w, t.shape());
    t.data().write_le(&mut w.buf);
}

fn count_u32(r: &mut Reader<'_>) -> Result<usize> {
    let at = r.offset();
    usize::try_from(r.u32()?).map_err(|_| r.invalid(at, "count too large"))
}

fn count_io(r: &mut Reader<'_>, what: &str) -> Result<usize> {
    let at = r.offset();
    let n = usize::from(r.u8()?);
    if n == 0 || n > MAX_IO {
        return Err(r.invalid(at, format!("{what} count {n} not in 1..={MAX_IO}")));
    }
    Ok(n)
}

impl Model {
    /// Parses canonical model bytes. Structure only: shapes, bounds and costs are checked by
    /// [`crate::verify`]. Rejects any encoding other than the canonical one.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        if r.bytes(4).map_err(|_| Error::BadMagic)? != MAGIC {
            return Err(Error::BadMagic);
        }
        let version = r.u16()?;
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let profile = r.u16()?;
        if profile != PROFILE_INT8_V1 {
            return Err(Error::UnsupportedProfile(profile));
        }

        let n_tensors = count_u32(&mut r)?;
        let mut tensors = Vec::new();
        for _ in 0..n_tensors {
            tensors.push(read_tensor(&mut r)?);
        }

        let n_inputs = count_io(&mut r, "input")?;
        let mut inputs = Vec::with_capacity(n_inputs);
        for _ in 0..n_inputs {
            let dtype = DType::from_code(r.u8()?)?;
            let shape = read_shape(&mut r)?;
            let quant = Quant::read(&mut r)?;
            inputs.push(InputDesc { dtype, shape, quant });
        }

        let n_ops = count_u32(&mut r)?;
        let mut nodes = Vec::new();
        for _ in 0..n_ops {
            let at = r.offset();
            let code = r.u8()?;
            let n_in = usize::from(r.u8()?);
            let mut node_inputs = Vec::with_capacity(n_in);
            for _ in 0..n_in {
                node_inputs.push(r.u32()?);
            }
            let op = Op::read(code, &mut r)?;
            if !op.arity_ok(n_in) {
                return Err(r.invalid(at, format!("{} cannot take {n_in} inputs", op.name())));
            }
            nodes.push(Node { inputs: node_inputs, op });
        }

        let n_outputs = count_io(&mut r, "output")?;
        let mut outputs = Vec::with_capacity(n_outputs);
        for _ in 0..n_outputs {
            let value = r.u32()?;
            let quant = Quant::read(&mut r)?;
            outputs.push(OutputDesc { value, quant });
        }

        if r.remaining() != 0 {
            return Err(Error::TrailingBytes(r.remaining()));
        }
        let model = Model { tensors, inputs, nodes, outputs };
        model.check_graph()?;
        Ok(model)
    }

    /// The canonical bytes of this model.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.buf.extend_from_slice(&MAGIC);
        w.u16(FORMAT_VERSION);
        w.u16(PROFILE_INT8_V1);
        w.u32(u32::try_from(self.tensors.len()).unwrap_or(u32::MAX));
        for t in &self.tensors {
            write_tensor(&mut w, t);
        }
        w.u8(u8::try_from(self.inputs.len()).unwrap_or(u8::MAX));
        for i in &self.inputs {
            w.u8(i.dtype as u8);
            write_shape(&mut w, &i.shape);
            i.quant.write(&mut w);
        }
        w.u32(u32::try_from(self.nodes.len()).unwrap_or(u32::MAX));
        for n in &self.nodes {
            w.u8(n.op.code());
            w.u8(u8::try_from(n.inputs.len()).unwrap_or(u8::MAX));
            for &v in &n.inputs {
                w.u32(v);
            }
            n.op.write(&mut w);
        }
        w.u8(u8::try_from(self.outputs.len()).unwrap_or(u8::MAX));
        for o in &self.outputs {
            w.u32(o.value);
            o.quant.write(&mut w);
        }
        w.buf
    }

    /// keccak256 of the canonical bytes.
    pub fn id(&self) -> ModelId {
        model_id(&self.to_bytes())
    }

    /// Number of values: inputs plus one per op.
    pub fn value_count(&self) -> usize {
        self.inputs.len() + self.nodes.len()
    }

    /// The graph rules that make the encoding canonical (docs/model-format.md §5): values are
    /// read only after they are made, every value is used, outputs are distinct, and tensors are
    /// stored in the order ops first reference them, each referenced at least once.
    fn check_graph(&self) -> Result<()> {
        let n_values = self.value_count();
        let mut used = vec![false; n_values];
        let mut next_tensor: usize = 0;
        let mut refs = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let own = self.inputs.len() + i;
            for &v in &node.inputs {
                let v = usize::try_from(v).unwrap_or(usize::MAX);
                if v >= own {
                    return Err(Error::BadReference {
                        op: i,
                        what: format!("reads value {v}, which is not made before it"),
                    });
                }
                if let Some(u) = used.get_mut(v) {
                    *u = true;
                }
            }
            refs.clear();
            node.op.tensor_refs(&mut refs);
            for &t in &refs {
                if t == NO_TENSOR {
                    continue;
                }
                let t = usize::try_from(t).unwrap_or(usize::MAX);
                if t >= self.tensors.len() {
                    return Err(Error::BadReference { op: i, what: format!("tensor {t} does not exist") });
                }
                if t == next_tensor {
                    next_tensor += 1;
                } else if t > next_tensor {
                    return Err(Error::NonCanonical(format!(
                        "op {i} references tensor {t} before tensor {next_tensor}: tensors must be stored in order of first use"
                    )));
                }
            }
        }
        if next_tensor != self.tensors.len() {
            return Err(Error::NonCanonical(format!("tensor {next_tensor} is never used")));
        }
        for (k, o) in self.outputs.iter().enumerate() {
            let v = usize::try_from(o.value).unwrap_or(usize::MAX);
            match used.get_mut(v) {
                None => return Err(Error::NonCanonical(format!("output {k} names value {v}, which does not exist"))),
                Some(u) => *u = true,
            }
            if self.outputs.iter().take(k).any(|p| p.value == o.value) {
                return Err(Error::NonCanonical(format!("output {k} repeats value {v}")));
            }
        }
        if let Some(v) = used.iter().position(|&u| !u) {
            return Err(Error::NonCanonical(format!("value {v} is never used")));
        }
        Ok(())
    }
}
