//! The registration-time verifier (docs/model-format.md §7): infers every value's dtype and
//! shape, checks every op's attributes, proves that no i32 accumulator can wrap, computes the
//! cost from which gas is priced, and enforces hard caps so no model can stall a validator.

use crate::error::{Error, Result};
use crate::format::Model;
use crate::ops::{InferCx, OpCost, ValueInfo};
use crate::tensor::numel;
use crate::work::Work;

/// Calls the interpreter makes per op besides the op's own (dispatch, the input list).
pub const OP_CALLS: u64 = 2;

/// Hard caps on a model (docs/model-format.md §7). The defaults are the chain's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded model, bytes.
    pub max_model_bytes: u64,
    /// Most ops.
    pub max_ops: u64,
    /// Most elements in any tensor, constant or computed.
    pub max_tensor_elements: u64,
    /// Most multiply-accumulates per inference.
    pub max_macs: u64,
    /// Most other element steps per inference.
    pub max_elem_ops: u64,
    /// Most inner-loop entries (rows, windows), and most tree node visits, per inference.
    pub max_steps: u64,
    /// Most kernel calls and allocations per inference.
    pub max_calls: u64,
    /// Most bytes allocated per inference.
    pub max_alloc_bytes: u64,
    /// Most activation bytes alive at once.
    pub max_peak_activation_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_model_bytes: 32 << 20,
            max_ops: 1024,
            max_tensor_elements: 1 << 24,
            max_macs: 1 << 30,
            max_elem_ops: 1 << 26,
            max_steps: 1 << 26,
            max_calls: 1 << 22,
            max_alloc_bytes: 1 << 31,
            max_peak_activation_bytes: 64 << 20,
        }
    }
}

/// What one inference costs, fixed at registration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    /// Multiply-accumulates.
    pub macs: u64,
    /// Other element steps.
    pub elem_ops: u64,
    /// Inner-loop entries and per-row overheads.
    pub steps: u64,
    /// Tree nodes visited.
    pub visits: u64,
    /// Kernel calls, allocations and per-op dispatch.
    pub calls: u64,
    /// Bytes allocated by a run.
    pub alloc_bytes: u64,
    /// Bytes of constant tensors (weights, tables, trees).
    pub weight_bytes: u64,
    /// Bytes read: weights plus every op's inputs.
    pub bytes_read: u64,
    /// Largest sum of live activation bytes at any point of a run.
    pub peak_activation_bytes: u64,
    /// Packed input size in bytes.
    pub input_bytes: u64,
    /// Packed output size in bytes.
    pub output_bytes: u64,
}

impl Cost {
    /// The counted-work bound of one run (crate::work): every run's
    /// [`Engine::run_counted`](crate::Engine::run_counted) is within it.
    pub fn work(&self) -> Work {
        Work {
            macs: self.macs,
            elem_ops: self.elem_ops,
            steps: self.steps,
            visits: self.visits,
            calls: self.calls,
            bytes: self.alloc_bytes,
        }
    }
}

/// A model that passed verification, with what the verifier learnt.
#[derive(Debug, Clone)]
pub struct Verified {
    model: Model,
    values: Vec<ValueInfo>,
    op_costs: Vec<OpCost>,
    last_use: Vec<usize>,
    cost: Cost,
}

impl Verified {
    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Dtype and shape of every value.
    pub fn values(&self) -> &[ValueInfo] {
        &self.values
    }

    /// Cost of each op.
    pub fn op_costs(&self) -> &[OpCost] {
        &self.op_costs
    }

    /// Index of the last op reading each value (`nodes.len()` for model outputs).
    pub fn last_use(&self) -> &[usize] {
        &self.last_use
    }

    /// The whole cost.
    pub fn cost(&self) -> &Cost {
        &self.cost
    }

    /// Dtype and shape of each output.
    pub fn output_infos(&self) -> Vec<ValueInfo> {
        self.model.outputs.iter().filter_map(|o| self.values.get(o.value as usize).cloned()).collect()
    }
}

fn cap(what: &'static str, value: u64, limit: u64) -> Result<()> {
    if value > limit { Err(Error::LimitExceeded { what, value, limit }) } else { Ok(()) }
}

/// Verifies a parsed model against `limits`.
pub fn verify(model: Model, limits: &Limits) -> Result<Verified> {
    cap("ops", model.nodes.len() as u64, limits.max_ops)?;
    let mut weight_bytes = 0u64;
    for t in &model.tensors {
        cap("tensor elements", t.len() as u64, limits.max_tensor_elements)?;
        weight_bytes = weight_bytes.saturating_add(t.byte_len() as u64);
    }
    let mut values: Vec<ValueInfo> = Vec::with_capacity(model.value_count());
    for i in &model.inputs {
        let n = numel(&i.shape).map_or(u64::MAX, |n| n as u64);
        cap("input elements", n, limits.max_tensor_elements)?;
        values.push(ValueInfo { dtype: i.dtype, shape: i.shape.clone() });
    }
    let input_bytes = values.iter().fold(0u64, |a, v| a.saturating_add(v.bytes()));

    let mut op_costs = Vec::with_capacity(model.nodes.len());
    let mut total = Work::default();
    let mut bytes_read = weight_bytes;
    for (i, node) in model.nodes.iter().enumerate() {
        let ins = node
            .inputs
            .iter()
            .map(|&v| values.get(v as usize).ok_or(Error::Internal("value read before it is made")))
            .collect::<Result<Vec<_>>>()?;
        let cx = InferCx { op: i, name: node.op.name(), tensors: &model.tensors };
        let (out, cost) = node.op.infer(&cx, &ins)?;
        cap("tensor elements", out.numel(), limits.max_tensor_elements)?;
        bytes_read = ins.iter().fold(bytes_read, |a, v| a.saturating_add(v.bytes()));
        // The interpreter's own per-op work (Engine::run_with).
        let cost = cost + Work { calls: OP_CALLS, steps: node.inputs.len() as u64, ..Work::default() };
        total = total + cost;
        cap("MACs", total.macs, limits.max_macs)?;
        cap("element ops", total.elem_ops, limits.max_elem_ops)?;
        cap("steps", total.steps, limits.max_steps)?;
        cap("tree visits", total.visits, limits.max_steps)?;
        cap("calls", total.calls, limits.max_calls)?;
        cap("allocated bytes", total.bytes, limits.max_alloc_bytes)?;
        op_costs.push(cost);
        values.push(out);
    }

    // Liveness: a value dies after its last reader; outputs live to the end.
    let n_ops = model.nodes.len();
    let mut last_use = vec![0usize; values.len()];
    for (i, node) in model.nodes.iter().enumerate() {
        for &v in &node.inputs {
            if let Some(l) = last_use.get_mut(v as usize) {
                *l = i;
            }
        }
    }
    for o in &model.outputs {
        if let Some(l) = last_use.get_mut(o.value as usize) {
            *l = n_ops;
        }
    }
    let n_in = model.inputs.len();
    let mut live: u64 = input_bytes;
    let mut peak = live;
    for i in 0..n_ops {
        live = live.saturating_add(values.get(n_in + i).map_or(0, ValueInfo::bytes));
        peak = peak.max(live);
        for (v, &l) in last_use.iter().enumerate() {
            if l == i && v < n_in + i + 1 {
                live = live.saturating_sub(values.get(v).map_or(0, ValueInfo::bytes));
            }
        }
    }
    cap("peak activation bytes", peak, limits.max_peak_activation_bytes)?;
    let output_bytes = model
        .outputs
        .iter()
        .fold(0u64, |a, o| a.saturating_add(values.get(o.value as usize).map_or(0, ValueInfo::bytes)));

    // The outputs are copied out of the value table at the end of a run.
    total = total + Work { calls: model.outputs.len() as u64, bytes: output_bytes, ..Work::default() };
    let cost = Cost {
        macs: total.macs,
        elem_ops: total.elem_ops,
        steps: total.steps,
        visits: total.visits,
        calls: total.calls,
        alloc_bytes: total.bytes,
        weight_bytes,
        bytes_read,
        peak_activation_bytes: peak,
        input_bytes,
        output_bytes,
    };
    Ok(Verified { model, values, op_costs, last_use, cost })
}
