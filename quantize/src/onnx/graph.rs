//! Loading an ONNX file: the protobuf (decoded by tract-onnx's generated code), its constants
//! (initializers and `Constant` nodes) as plain vectors, attribute access, and the rewrite that
//! lets tract run the file as the float reference (ops tract lacks, replaced by equivalents).

use std::collections::BTreeMap;
use std::path::Path;

use tract_onnx::pb::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto};
use tract_onnx::prelude::Framework;

use crate::error::{Error, Result};

/// A constant tensor of the graph.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Const {
    /// Dimensions.
    pub(crate) dims: Vec<usize>,
    /// The values.
    pub(crate) data: ConstData,
}

/// A constant's values: floats widened to f64, integers to i64.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ConstData {
    /// float, double, float16 is not read.
    Float(Vec<f64>),
    /// Any integer or bool type.
    Int(Vec<i64>),
    /// Strings.
    Str(Vec<String>),
}

impl Const {
    /// The values as floats (integers converted); `None` for strings.
    pub(crate) fn floats(&self) -> Option<Vec<f64>> {
        match &self.data {
            ConstData::Float(v) => Some(v.clone()),
            ConstData::Int(v) => Some(v.iter().map(|&i| i as f64).collect()),
            ConstData::Str(_) => None,
        }
    }
}

/// An ONNX model as the importer reads it.
#[derive(Debug, Clone)]
pub(crate) struct Graph {
    /// The decoded file.
    pub(crate) proto: ModelProto,
    /// The nodes, in file order (ONNX requires topological order).
    pub(crate) nodes: Vec<NodeProto>,
    /// Constants by name.
    pub(crate) consts: BTreeMap<String, Const>,
    /// The one real (non-constant) input: its name, element type and dims (`None` symbolic).
    pub(crate) input: (String, i32, Vec<Option<usize>>),
    /// The graph outputs: name and element type.
    pub(crate) outputs: Vec<(String, i32)>,
}

/// ONNX element type codes used here.
pub(crate) mod elem {
    /// float32.
    pub(crate) const FLOAT: i32 = 1;
    /// int64.
    pub(crate) const INT64: i32 = 7;
    /// string.
    pub(crate) const STRING: i32 = 8;
    /// float64.
    pub(crate) const DOUBLE: i32 = 11;
}

fn onnx_err(msg: impl Into<String>) -> Error {
    Error::Onnx(msg.into())
}

/// Decodes a tensor proto (raw or typed fields) into a [`Const`].
pub(crate) fn decode_tensor(t: &TensorProto) -> Result<Const> {
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| onnx_err(format!("tensor {:?} has dimension {d}", t.name))))
        .collect::<Result<Vec<_>>>()?;
    if t.data_location == Some(1) || !t.external_data.is_empty() {
        return Err(onnx_err(format!(
            "tensor {:?} uses external data; save the model with its weights inside",
            t.name
        )));
    }
    let raw = &t.raw_data;
    let le = |n: usize| raw.chunks_exact(n);
    let data = match t.data_type {
        1 if !raw.is_empty() => {
            ConstData::Float(le(4).map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))).collect())
        }
        1 => ConstData::Float(t.float_data.iter().map(|&v| f64::from(v)).collect()),
        11 if !raw.is_empty() => {
            ConstData::Float(le(8).map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8]))).collect())
        }
        11 => ConstData::Float(t.double_data.clone()),
        7 if !raw.is_empty() => {
            ConstData::Int(le(8).map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8]))).collect())
        }
        7 => ConstData::Int(t.int64_data.clone()),
        6 if !raw.is_empty() => {
            ConstData::Int(le(4).map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))).collect())
        }
        3 if !raw.is_empty() => ConstData::Int(raw.iter().map(|&b| i64::from(b as i8)).collect()),
        2 | 9 if !raw.is_empty() => ConstData::Int(raw.iter().map(|&b| i64::from(b)).collect()),
        2 | 3 | 4 | 5 | 6 | 9 => ConstData::Int(t.int32_data.iter().map(|&v| i64::from(v)).collect()),
        8 => ConstData::Str(t.string_data.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect()),
        d => {
            return Err(onnx_err(format!(
                "tensor {:?} has element type {d}, which the importer does not read",
                t.name
            )));
        }
    };
    let n = match &data {
        ConstData::Float(v) => v.len(),
        ConstData::Int(v) => v.len(),
        ConstData::Str(v) => v.len(),
    };
    if n != dims.iter().product::<usize>() {
        return Err(onnx_err(format!("tensor {:?} has {n} values for dims {dims:?}", t.name)));
    }
    Ok(Const { dims, data })
}

fn value_dims(v: &ValueInfoProto) -> (i32, Vec<Option<usize>>) {
    use tract_onnx::pb::tensor_shape_proto::dimension::Value;
    use tract_onnx::pb::type_proto::Value as Tv;
    match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(Tv::TensorType(t)) => {
            let dims = t
                .shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match d.value {
                            Some(Value::DimValue(n)) => usize::try_from(n).ok(),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            (t.elem_type, dims)
        }
        _ => (0, Vec::new()),
    }
}

impl Graph {
    /// Reads and decodes `path`.
    pub(crate) fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let proto = tract_onnx::onnx()
            .proto_model_for_read(&mut bytes.as_slice())
            .map_err(|e| onnx_err(format!("{}: not a readable ONNX protobuf: {e}", path.display())))?;
        Self::from_proto(proto)
    }

    /// Indexes a decoded model.
    pub(crate) fn from_proto(proto: ModelProto) -> Result<Self> {
        let g: &GraphProto = proto.graph.as_ref().ok_or_else(|| onnx_err("the model has no graph"))?;
        let mut consts = BTreeMap::new();
        for t in &g.initializer {
            consts.insert(t.name.clone(), decode_tensor(t)?);
        }
        for n in g.node.iter().filter(|n| n.op_type == "Constant") {
            let t = attr(n, "value").and_then(|a| a.t.as_ref()).ok_or_else(|| {
                onnx_err(format!("Constant node {:?} has no tensor value (only `value` is read)", n.name))
            })?;
            if let Some(out) = n.output.first() {
                consts.insert(out.clone(), decode_tensor(t)?);
            }
        }
        // A Transpose of a constant (a weight stored transposed) is folded into a new constant.
        let mut folded = std::collections::BTreeSet::new();
        for n in g.node.iter().filter(|n| n.op_type == "Transpose") {
            let (Some(input), Some(out)) = (n.input.first(), n.output.first()) else { continue };
            let Some(c) = consts.get(input) else { continue };
            if let Some(t) = transpose_const(c, &attr_ints(n, "perm")) {
                consts.insert(out.clone(), t);
                folded.insert(out.clone());
            }
        }
        let inputs: Vec<&ValueInfoProto> = g.input.iter().filter(|i| !consts.contains_key(&i.name)).collect();
        let input = match inputs.as_slice() {
            [one] => {
                let (et, dims) = value_dims(one);
                (one.name.clone(), et, dims)
            }
            many => {
                return Err(onnx_err(format!(
                    "the graph has {} inputs; the importer maps models with one input tensor (concatenate the features first)",
                    many.len()
                )));
            }
        };
        let outputs = g.output.iter().map(|o| (o.name.clone(), value_dims(o).0)).collect();
        let nodes = g
            .node
            .iter()
            .filter(|n| n.op_type != "Constant" && !n.output.first().is_some_and(|o| folded.contains(o)))
            .cloned()
            .collect();
        Ok(Self { proto, nodes, consts, input, outputs })
    }

    /// The nodes that read `name`.
    pub(crate) fn consumers(&self, name: &str) -> Vec<&NodeProto> {
        self.nodes.iter().filter(|n| n.input.iter().any(|i| i == name)).collect()
    }

    /// The constant input `i` of `node`, if that input is a constant.
    pub(crate) fn const_input(&self, node: &NodeProto, i: usize) -> Option<&Const> {
        node.input.get(i).and_then(|name| self.consts.get(name))
    }
}

/// `c` with its axes permuted by `perm` (empty: reversed), as ONNX Transpose; `None` for an
/// invalid permutation.
fn transpose_const(c: &Const, perm: &[i64]) -> Option<Const> {
    let r = c.dims.len();
    let perm: Vec<usize> = if perm.is_empty() {
        (0..r).rev().collect()
    } else {
        perm.iter().map(|&p| usize::try_from(p).ok()).collect::<Option<_>>()?
    };
    let mut seen = vec![false; r];
    if perm.len() != r || perm.iter().any(|&p| p >= r || std::mem::replace(&mut seen[p], true)) {
        return None;
    }
    let n: usize = c.dims.iter().product();
    let mut strides = vec![1usize; r];
    for i in (0..r.saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * c.dims[i + 1];
    }
    let dims: Vec<usize> = perm.iter().map(|&p| c.dims[p]).collect();
    // Output element `i` (row-major in `dims`) reads the input at the permuted index.
    let src = |mut i: usize| -> usize {
        let mut at = 0;
        for d in (0..r).rev() {
            let k = i % dims[d].max(1);
            i /= dims[d].max(1);
            at += k * strides[perm[d]];
        }
        at
    };
    let data = match &c.data {
        ConstData::Float(v) if v.len() == n => ConstData::Float((0..n).map(|i| v[src(i)]).collect()),
        ConstData::Int(v) if v.len() == n => ConstData::Int((0..n).map(|i| v[src(i)]).collect()),
        _ => return None,
    };
    Some(Const { dims, data })
}

/// The attribute `name` of `node`.
pub(crate) fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

/// An integer attribute, or `default`.
pub(crate) fn attr_i(node: &NodeProto, name: &str, default: i64) -> i64 {
    attr(node, name).map_or(default, |a| a.i)
}

/// A float attribute, or `default`.
pub(crate) fn attr_f(node: &NodeProto, name: &str, default: f32) -> f32 {
    attr(node, name).map_or(default, |a| a.f)
}

/// A string attribute, or `default`.
pub(crate) fn attr_s(node: &NodeProto, name: &str, default: &str) -> String {
    attr(node, name).map_or(default.to_string(), |a| String::from_utf8_lossy(&a.s).into_owned())
}

/// An integer list attribute (empty if absent).
pub(crate) fn attr_ints(node: &NodeProto, name: &str) -> Vec<i64> {
    attr(node, name).map(|a| a.ints.clone()).unwrap_or_default()
}

/// A string list attribute (empty if absent).
pub(crate) fn attr_strings(node: &NodeProto, name: &str) -> Vec<String> {
    attr(node, name)
        .map(|a| a.strings.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect())
        .unwrap_or_default()
}

/// A float list attribute, read from `name` (float32) or `name_as_tensor` (double), as f64.
pub(crate) fn attr_floats(node: &NodeProto, name: &str) -> Result<Vec<f64>> {
    if let Some(t) = attr(node, &format!("{name}_as_tensor")).and_then(|a| a.t.as_ref()) {
        return decode_tensor(t)?
            .floats()
            .ok_or_else(|| onnx_err(format!("{name}_as_tensor of {:?} is not numeric", node.name)));
    }
    Ok(attr(node, name).map(|a| a.floats.iter().map(|&v| f64::from(v)).collect()).unwrap_or_default())
}

fn float_init(name: String, values: &[f32]) -> TensorProto {
    TensorProto {
        name,
        dims: vec![values.len() as i64],
        data_type: elem::FLOAT,
        float_data: values.to_vec(),
        ..Default::default()
    }
}

/// The model rewritten so that tract runs it: `ZipMap` nodes and their outputs dropped (the
/// probabilities stay available before them), `Scaler` as `Sub` then `Mul`, and
/// `TreeEnsembleRegressor` as the `TreeEnsembleClassifier` with the same trees and one class per
/// target (its score output is the regression output). Each replacement computes the same floats.
/// One does not: a `QuantizeLinear`/`DequantizeLinear` pair right after a `Softmax` is removed,
/// because tract 0.23 runs that pattern wrongly (every probability comes out 1.0); the
/// probabilities stay float, so only rows where two of them round to the same 8-bit value can
/// get another label than onnxruntime's.
/// Also returns the element type of every output.
pub(crate) fn reference_proto(g: &Graph) -> Result<(ModelProto, Vec<i32>)> {
    let mut proto = g.proto.clone();
    let graph = proto.graph.as_mut().ok_or_else(|| onnx_err("the model has no graph"))?;
    unquantize_softmax(&mut graph.node);
    let mut nodes = Vec::new();
    let (mut dropped, mut added) = (Vec::new(), Vec::new());
    for n in std::mem::take(&mut graph.node) {
        match n.op_type.as_str() {
            "ZipMap" => {
                // Its input, the probability tensor, becomes the output in its place.
                dropped.extend(n.output.clone());
                if let Some(probs) = n.input.first() {
                    added.push(probs.clone());
                }
            }
            "Scaler" => {
                let (x, y) =
                    (n.input.first().cloned().unwrap_or_default(), n.output.first().cloned().unwrap_or_default());
                let dim = |v: Vec<f32>| v;
                let offset = dim(attr(&n, "offset").map(|a| a.floats.clone()).unwrap_or_default());
                let scale = dim(attr(&n, "scale").map(|a| a.floats.clone()).unwrap_or_default());
                let (o, s, mid) = (format!("{y}__offset"), format!("{y}__scale"), format!("{y}__centered"));
                graph.initializer.push(float_init(o.clone(), &offset));
                graph.initializer.push(float_init(s.clone(), &scale));
                nodes.push(NodeProto {
                    input: vec![x, o],
                    output: vec![mid.clone()],
                    name: format!("{}__sub", n.name),
                    op_type: "Sub".into(),
                    ..Default::default()
                });
                nodes.push(NodeProto {
                    input: vec![mid, s],
                    output: vec![y],
                    name: format!("{}__mul", n.name),
                    op_type: "Mul".into(),
                    ..Default::default()
                });
            }
            "TreeEnsembleRegressor" => nodes.push(regressor_as_classifier(&n)?),
            _ => nodes.push(n),
        }
    }
    graph.node = nodes;
    // Intermediate shapes with a symbolic batch (quantization tools write them) would contradict
    // the batch of 1 the reference runs with; tract infers them again.
    graph.value_info.clear();
    for o in &mut graph.output {
        if let Some(tract_onnx::pb::type_proto::Value::TensorType(t)) = o.r#type.as_mut().and_then(|t| t.value.as_mut())
        {
            t.shape = None;
        }
    }
    graph.output.retain(|o| !dropped.contains(&o.name));
    let mut types: Vec<i32> =
        graph.output.iter().map(|o| g.outputs.iter().find(|(n, _)| *n == o.name).map_or(0, |(_, t)| *t)).collect();
    for name in added {
        graph.output.push(ValueInfoProto { name, ..Default::default() });
        types.push(elem::FLOAT);
    }
    Ok((proto, types))
}

/// Removes `Softmax → QuantizeLinear → DequantizeLinear`'s pair (see [`reference_proto`]).
fn unquantize_softmax(nodes: &mut Vec<NodeProto>) {
    let single = |nodes: &[NodeProto], name: &str, op: &str| -> Option<usize> {
        let users: Vec<usize> = (0..nodes.len()).filter(|&i| nodes[i].input.iter().any(|x| x == name)).collect();
        match users[..] {
            [i] if nodes[i].op_type == op => Some(i),
            _ => None,
        }
    };
    let softmaxes: Vec<usize> =
        (0..nodes.len()).filter(|&i| matches!(nodes[i].op_type.as_str(), "Softmax" | "LogSoftmax")).collect();
    for s in softmaxes.into_iter().rev() {
        let Some(out) = nodes[s].output.first().cloned() else { continue };
        let Some(q) = single(nodes, &out, "QuantizeLinear") else { continue };
        let Some(q_out) = nodes[q].output.first().cloned() else { continue };
        let Some(d) = single(nodes, &q_out, "DequantizeLinear") else { continue };
        let Some(d_out) = nodes[d].output.first().cloned() else { continue };
        nodes[s].output = vec![d_out];
        let (hi, lo) = (q.max(d), q.min(d));
        nodes.remove(hi);
        nodes.remove(lo);
    }
}

fn regressor_as_classifier(n: &NodeProto) -> Result<NodeProto> {
    let targets = attr_i(n, "n_targets", 1).max(1) as usize;
    // Three classes at least, so tract does not take the binary layout.
    let classes = targets.max(3);
    let trees: std::collections::BTreeSet<i64> = attr_ints(n, "nodes_treeids").into_iter().collect();
    let avg = attr_s(n, "aggregate_function", "SUM");
    let div = match avg.as_str() {
        "SUM" => 1.0,
        "AVERAGE" => trees.len().max(1) as f64,
        other => {
            return Err(Error::UnsupportedOp {
                op_type: n.op_type.clone(),
                node: n.name.clone(),
                hint: format!("aggregate_function {other} is not supported (SUM and AVERAGE are)"),
            });
        }
    };
    let mut out = NodeProto {
        op_type: "TreeEnsembleClassifier".into(),
        name: n.name.clone(),
        domain: n.domain.clone(),
        input: n.input.clone(),
        ..Default::default()
    };
    let label = format!("{}__label", n.output.first().cloned().unwrap_or_default());
    out.output = vec![label, n.output.first().cloned().unwrap_or_default()];
    for a in &n.attribute {
        let mut a = a.clone();
        match a.name.as_str() {
            "n_targets" | "aggregate_function" => continue,
            "target_ids" | "target_nodeids" | "target_treeids" => a.name = a.name.replacen("target", "class", 1),
            "target_weights" | "target_weights_as_tensor" => {
                a.name = a.name.replacen("target", "class", 1);
                a.floats.iter_mut().for_each(|w| *w = (f64::from(*w) / div) as f32);
                if let Some(t) = a.t.as_mut() {
                    t.double_data.iter_mut().for_each(|w| *w /= div);
                    if !t.raw_data.is_empty() {
                        let vals: Vec<f64> = decode_tensor(t)?.floats().unwrap_or_default();
                        t.raw_data = vals.iter().flat_map(|v| (v / div).to_le_bytes()).collect();
                    }
                }
            }
            "base_values" => a.floats.resize(classes, 0.0),
            "base_values_as_tensor" => {
                return Err(Error::UnsupportedOp {
                    op_type: n.op_type.clone(),
                    node: n.name.clone(),
                    hint: "base_values_as_tensor is not supported by the float reference; use base_values".into(),
                });
            }
            _ => {}
        }
        out.attribute.push(a);
    }
    out.attribute.push(AttributeProto {
        name: "classlabels_int64s".into(),
        r#type: 7,
        ints: (0..classes as i64).collect(),
        ..Default::default()
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposes_of_constants_are_folded() {
        let c = Const { dims: vec![2, 3], data: ConstData::Float(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) };
        let t = transpose_const(&c, &[]).unwrap();
        assert_eq!(t.dims, vec![3, 2]);
        assert_eq!(t.data, ConstData::Float(vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]));
        assert_eq!(transpose_const(&t, &[1, 0]).unwrap(), c);
        // [1, 2, 3] with perm (2, 0, 1) → [3, 1, 2]: element (k, 0, j) = input (0, j, k).
        let c3 = Const { dims: vec![1, 2, 3], data: ConstData::Int((0..6).collect()) };
        let t3 = transpose_const(&c3, &[2, 0, 1]).unwrap();
        assert_eq!(t3.dims, vec![3, 1, 2]);
        assert_eq!(t3.data, ConstData::Int(vec![0, 3, 1, 4, 2, 5]));
        assert!(transpose_const(&c, &[0, 0]).is_none());
        assert!(transpose_const(&c, &[0]).is_none());

        // In a graph: MatMul(x, Transpose(w)) reads the folded constant; the Transpose is gone.
        let w = TensorProto {
            name: "w".into(),
            dims: vec![2, 3],
            data_type: elem::FLOAT,
            float_data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            ..Default::default()
        };
        let node = |op: &str, ins: &[&str], out: &str| NodeProto {
            op_type: op.into(),
            name: out.into(),
            input: ins.iter().map(|s| s.to_string()).collect(),
            output: vec![out.into()],
            ..Default::default()
        };
        let graph = GraphProto {
            node: vec![node("Transpose", &["w"], "wt"), node("MatMul", &["x", "wt"], "y")],
            initializer: vec![w],
            input: vec![ValueInfoProto { name: "x".into(), ..Default::default() }],
            ..Default::default()
        };
        let g = Graph::from_proto(ModelProto { graph: Some(graph), ..Default::default() }).unwrap();
        assert_eq!(g.nodes.len(), 1);
        assert_eq!(g.const_input(&g.nodes[0], 1).unwrap().data, ConstData::Float(vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]));
    }
}
