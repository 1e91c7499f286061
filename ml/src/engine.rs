//! The interpreter: runs a verified model op by op, freeing each value after its last reader
//! so memory never exceeds the verified peak.

use std::sync::{Arc, OnceLock};

use crate::decode::Plan;
use crate::error::{Error, Result};
use crate::format::{Model, ModelId, model_id};
use crate::kernels::{PackedWeights, Path};
use crate::ops::EvalCx;
use crate::tensor::Tensor;
use crate::verify::{Cost, Limits, Verified, verify};
use crate::work::{Counter, Work};

/// The kernel path of this process, detected once.
pub fn default_path() -> Path {
    static PATH: OnceLock<Path> = OnceLock::new();
    *PATH.get_or_init(Path::detect)
}

/// What one op of a traced run ([`Engine::run_traced`]) produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpTrace {
    /// Position of the op in the model, from 0.
    pub index: usize,
    /// The op's name (docs/model-format.md §6).
    pub op: &'static str,
    /// Its output value.
    pub output: Tensor,
    /// The work it counted (crate::work): what its gas prices.
    pub work: Work,
}

/// Sees each op's index, name, output and counted work as the interpreter runs.
type Observer<'a> = &'a mut dyn FnMut(usize, &'static str, &Tensor, Work);

/// A verified model with its weights packed for one kernel path, ready to run.
#[derive(Debug, Clone)]
pub struct Engine {
    verified: Verified,
    id: ModelId,
    path: Path,
    packed: Vec<Vec<PackedWeights>>,
    plan: std::result::Result<Arc<Plan>, Error>,
}

impl Engine {
    /// Parses, verifies and prepares model bytes on this machine's default path.
    pub fn load(bytes: &[u8], limits: &Limits) -> Result<Self> {
        Self::load_with_path(bytes, limits, default_path())
    }

    /// Parses, verifies and prepares model bytes on a chosen path.
    pub fn load_with_path(bytes: &[u8], limits: &Limits, path: Path) -> Result<Self> {
        let len = bytes.len() as u64;
        if len > limits.max_model_bytes {
            return Err(Error::LimitExceeded { what: "model bytes", value: len, limit: limits.max_model_bytes });
        }
        let model = Model::parse(bytes)?;
        let verified = verify(model, limits)?;
        Self::new(verified, model_id(bytes), path)
    }

    /// Prepares a verified model whose canonical bytes hash to `id`.
    pub fn new(verified: Verified, id: ModelId, path: Path) -> Result<Self> {
        let tensors = &verified.model().tensors;
        let packed = verified.model().nodes.iter().map(|n| n.op.prepare(tensors, path)).collect::<Result<_>>()?;
        let plan = Plan::new(&verified).map(Arc::new);
        Ok(Self { verified, id, path, packed, plan })
    }

    /// Same model, prepared for another path.
    pub fn with_path(&self, path: Path) -> Result<Self> {
        Self::new(self.verified.clone(), self.id, path)
    }

    /// How the model generates (crate::decode), or why it cannot.
    pub fn plan(&self) -> Result<&Plan> {
        self.plan.as_deref().map_err(Clone::clone)
    }

    /// The weights packed for each op.
    pub(crate) fn packed(&self) -> &[Vec<PackedWeights>] {
        &self.packed
    }

    /// The model.
    pub fn model(&self) -> &Model {
        self.verified.model()
    }

    /// What the verifier learnt.
    pub fn verified(&self) -> &Verified {
        &self.verified
    }

    /// The cost of one run.
    pub fn cost(&self) -> &Cost {
        self.verified.cost()
    }

    /// keccak256 of the model bytes.
    pub fn id(&self) -> ModelId {
        self.id
    }

    /// The kernel path.
    pub fn path(&self) -> Path {
        self.path
    }

    /// Runs the model. Inputs must match the model's input descriptions exactly.
    pub fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>> {
        self.run_with(inputs, &Counter::new(), &mut |_, _, _, _| {})
    }

    /// Runs the model and keeps what every op produced ([`OpTrace`], in op order): the same
    /// interpreter as [`Self::run`], observed after each op. For inspection (RPC traces, diffing
    /// two implementations op by op), not for the chain: it holds every intermediate value.
    pub fn run_traced(&self, inputs: Vec<Tensor>) -> Result<(Vec<Tensor>, Vec<OpTrace>)> {
        let mut trace = Vec::with_capacity(self.model().nodes.len());
        let outs = self.run_with(inputs, &Counter::new(), &mut |index, op, output, work| {
            trace.push(OpTrace { index, op, output: output.clone(), work });
        })?;
        Ok((outs, trace))
    }

    /// Runs the model and returns the work it counted (crate::work), which the verifier's cost
    /// bounds: `work.within(&self.cost().work())` for every input.
    pub fn run_counted(&self, inputs: Vec<Tensor>) -> Result<(Vec<Tensor>, Work)> {
        let work = Counter::new();
        let outs = self.run_with(inputs, &work, &mut |_, _, _, _| {})?;
        Ok((outs, work.get()))
    }

    /// The interpreter: one loop over the ops, counting into `work`, showing each op's output to
    /// `observe`.
    fn run_with(&self, inputs: Vec<Tensor>, work: &Counter, observe: Observer<'_>) -> Result<Vec<Tensor>> {
        let model = self.verified.model();
        if inputs.len() != model.inputs.len() {
            return Err(Error::InputCount { expected: model.inputs.len(), got: inputs.len() });
        }
        for (index, (t, d)) in inputs.iter().zip(&model.inputs).enumerate() {
            if t.dtype() != d.dtype || t.shape() != d.shape.as_slice() {
                return Err(Error::InputMismatch {
                    index,
                    expected_dtype: d.dtype,
                    expected_shape: d.shape.clone(),
                    got_dtype: t.dtype(),
                    got_shape: t.shape().to_vec(),
                });
            }
        }
        let n_in = model.inputs.len();
        let last_use = self.verified.last_use();
        let mut values: Vec<Option<Tensor>> = inputs.into_iter().map(Some).collect();
        values.resize(n_in + model.nodes.len(), None);
        for (i, (node, packed)) in model.nodes.iter().zip(&self.packed).enumerate() {
            let before = work.get();
            // Dispatch and the input list (crate::verify::OP_CALLS, OP_STEPS).
            work.calls(2);
            work.steps(node.inputs.len());
            let ins = node
                .inputs
                .iter()
                .map(|&v| {
                    values.get(v as usize).and_then(Option::as_ref).ok_or(Error::Internal("value freed before use"))
                })
                .collect::<Result<Vec<_>>>()?;
            let cx = EvalCx { tensors: &model.tensors, path: self.path, packed, work };
            let out = node.op.eval(&cx, &ins)?;
            observe(i, node.op.name(), &out, work.get().since(&before));
            if let Some(slot) = values.get_mut(n_in + i) {
                *slot = Some(out);
            }
            for &v in &node.inputs {
                if last_use.get(v as usize) == Some(&i)
                    && let Some(slot) = values.get_mut(v as usize)
                {
                    *slot = None;
                }
            }
        }
        model
            .outputs
            .iter()
            .map(|o| {
                let t =
                    values.get(o.value as usize).and_then(Option::clone).ok_or(Error::Internal("output missing"))?;
                work.alloc(t.byte_len());
                Ok(t)
            })
            .collect()
    }

    /// Runs on packed little-endian bytes (docs/model-format.md §8): inputs concatenated in
    /// order, outputs likewise.
    pub fn run_packed(&self, input: &[u8]) -> Result<Vec<u8>> {
        let inputs = crate::io::unpack_inputs(self.model(), input)?;
        Ok(crate::io::pack(&self.run(inputs)?))
    }
}
