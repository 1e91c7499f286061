//! A helper to assemble models in code (the quantizer, tests). It numbers values as the format
//! does; tensors must be added in the order ops first reference them, which [`ModelBuilder::finish`]
//! checks by round-tripping through the canonical parser.

use super::{InputDesc, Model, Node, OutputDesc, Quant};
use crate::error::Result;
use crate::ops::Op;
use crate::tensor::{DType, Tensor};

/// Builds a [`Model`] step by step.
#[derive(Debug, Default)]
pub struct ModelBuilder {
    model: Model,
}

impl ModelBuilder {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares an input (all inputs before any op); returns its value id.
    pub fn input(&mut self, dtype: DType, shape: Vec<usize>, quant: Quant) -> u32 {
        self.model.inputs.push(InputDesc { dtype, shape, quant });
        (self.model.inputs.len() - 1) as u32
    }

    /// Adds a constant tensor; returns its tensor id.
    pub fn tensor(&mut self, t: Tensor) -> u32 {
        self.model.tensors.push(t);
        (self.model.tensors.len() - 1) as u32
    }

    /// Adds an op reading `inputs`; returns the value id of its output.
    pub fn op(&mut self, op: Op, inputs: &[u32]) -> u32 {
        self.model.nodes.push(Node { inputs: inputs.to_vec(), op });
        (self.model.inputs.len() + self.model.nodes.len() - 1) as u32
    }

    /// Marks a value as a model output.
    pub fn output(&mut self, value: u32, quant: Quant) {
        self.model.outputs.push(OutputDesc { value, quant });
    }

    /// The finished model, checked canonical by a serialize → parse round trip.
    pub fn finish(self) -> Result<Model> {
        Model::parse(&self.model.to_bytes())
    }
}
