//! The float reference: the ONNX model itself, run by tract (after the rewrite in
//! [`graph::reference_proto`](super::graph::reference_proto)), one row at a time.

use std::sync::Arc;

use tract_onnx::prelude::*;

use super::graph::{Graph, elem, reference_proto};
use crate::error::{Error, Result};

/// What the float model says about one row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FloatOut {
    /// The label output, when the model has one (classifiers from skl2onnx/onnxmltools). The
    /// report prefers the argmax of `scores` when there are scores: tract 0.23's label of a
    /// binary tree classifier disagrees with its own probabilities (and with onnxruntime).
    pub(crate) label: Option<String>,
    /// The first float output, flattened (probabilities, logits or regression values).
    pub(crate) scores: Vec<f32>,
}

/// A runnable tract plan of the model with batch size 1.
pub(crate) struct Reference {
    plan: Arc<TypedRunnableModel>,
    shape: Vec<usize>,
    label: Option<usize>,
    scores: Option<usize>,
}

fn terr(e: impl std::fmt::Display) -> Error {
    Error::Reference(e.to_string())
}

impl Reference {
    /// Loads `g` for inputs of per-row shape `input_shape`.
    pub(crate) fn new(g: &Graph, input_shape: &[usize]) -> Result<Self> {
        let (proto, outputs) = reference_proto(g)?;
        let label = outputs.iter().position(|&t| t == elem::INT64 || t == elem::STRING);
        let scores = outputs.iter().position(|&t| t == elem::FLOAT || t == elem::DOUBLE);
        let mut shape = vec![1];
        shape.extend(input_shape);
        let plan = tract_onnx::onnx()
            .model_for_proto_model(&proto)
            .and_then(|m| m.with_input_fact(0, f32::fact(shape.clone()).into()))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| terr(format!("{e:#}")))?;
        Ok(Self { plan, shape, label, scores })
    }

    /// Runs one row.
    pub(crate) fn run(&self, row: &[f32]) -> Result<FloatOut> {
        let x = Tensor::from_shape(&self.shape, row).map_err(terr)?;
        let outs = self.plan.run(tvec!(x.into())).map_err(|e| terr(format!("{e:#}")))?;
        let label = match self.label.and_then(|i| outs.get(i)) {
            Some(t) if t.datum_type() == String::datum_type() => {
                t.to_plain_array_view::<String>().map_err(terr)?.iter().next().cloned()
            }
            Some(t) => {
                let t = t.cast_to::<i64>().map_err(terr)?;
                t.to_plain_array_view::<i64>().map_err(terr)?.iter().next().map(i64::to_string)
            }
            None => None,
        };
        let scores = match self.scores.and_then(|i| outs.get(i)) {
            Some(t) => {
                let t = t.cast_to::<f32>().map_err(terr)?;
                t.to_plain_array_view::<f32>().map_err(terr)?.iter().copied().collect()
            }
            None => Vec::new(),
        };
        Ok(FloatOut { label, scores })
    }
}
