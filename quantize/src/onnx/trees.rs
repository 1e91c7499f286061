//! ONNX-ML `TreeEnsembleClassifier` / `TreeEnsembleRegressor` → [`Ensemble`].
//!
//! Node modes map onto the two integer-friendly comparisons, the true branch always becoming
//! `left` when the test is `<=`/`<`: `BRANCH_LEQ` → `Leq`, `BRANCH_LT` → `Lt`, `BRANCH_GT` →
//! `Leq` with the branches swapped, `BRANCH_GTE` → `Lt` swapped. Nodes are renumbered in
//! depth-first order from each tree's root so children come after their parent, as the integer
//! op requires. `AVERAGE` aggregation divides every leaf weight by the number of trees.
//!
//! Classifier columns: with a weight column per class, scores are those columns. With two
//! classes and one weight column (the ONNX "binary" layout, e.g. XGBoost), the column is the
//! positive class's score and the other column is the constant the runtime compares it with
//! (0.5 for probability weights without post-transform, 0 otherwise), so the argmax is the
//! same decision.

use std::collections::BTreeMap;

use tract_onnx::pb::NodeProto;

use super::graph::{attr_floats, attr_i, attr_ints, attr_s, attr_strings};
use crate::ensemble::{Ensemble, Node, Split};
use crate::error::{Error, Result};

fn unsupported(n: &NodeProto, hint: impl Into<String>) -> Error {
    Error::UnsupportedOp { op_type: n.op_type.clone(), node: n.name.clone(), hint: hint.into() }
}

/// A tree op read into an ensemble, with its class labels (classifiers).
#[derive(Debug, Clone)]
pub(crate) struct Trees {
    /// The ensemble.
    pub(crate) ensemble: Ensemble,
    /// Class labels in score order (classifiers), or `None` (regressors).
    pub(crate) classes: Option<Vec<String>>,
}

/// Reads a `TreeEnsembleClassifier` or `TreeEnsembleRegressor` over `dim` features.
pub(crate) fn read(n: &NodeProto, dim: usize) -> Result<Trees> {
    let classifier = n.op_type == "TreeEnsembleClassifier";
    let pre = if classifier { "class" } else { "target" };
    let tree_ids = attr_ints(n, "nodes_treeids");
    let node_ids = attr_ints(n, "nodes_nodeids");
    let features = attr_ints(n, "nodes_featureids");
    let values = attr_floats(n, "nodes_values")?;
    let modes = attr_strings(n, "nodes_modes");
    let trues = attr_ints(n, "nodes_truenodeids");
    let falses = attr_ints(n, "nodes_falsenodeids");
    let count = tree_ids.len();
    if [node_ids.len(), features.len(), modes.len(), trues.len(), falses.len()].iter().any(|&l| l != count)
        || (values.len() != count && !values.is_empty())
    {
        return Err(Error::Onnx(format!("{}: node attribute lists differ in length", n.name)));
    }
    let w_tree = attr_ints(n, &format!("{pre}_treeids"));
    let w_node = attr_ints(n, &format!("{pre}_nodeids"));
    let w_id = attr_ints(n, &format!("{pre}_ids"));
    let w_val = attr_floats(n, &format!("{pre}_weights"))?;
    if [w_node.len(), w_id.len(), w_val.len()].iter().any(|&l| l != w_tree.len()) {
        return Err(Error::Onnx(format!("{}: weight attribute lists differ in length", n.name)));
    }
    let post = attr_s(n, "post_transform", "NONE");
    let base = attr_floats(n, "base_values")?;

    // Output columns.
    let classes: Option<Vec<String>> = classifier.then(|| {
        let ints = attr_ints(n, "classlabels_int64s");
        if ints.is_empty() { attr_strings(n, "classlabels_strings") } else { ints.iter().map(i64::to_string).collect() }
    });
    let columns = match &classes {
        Some(c) => c.len(),
        None => usize::try_from(attr_i(n, "n_targets", 1)).unwrap_or(1).max(1),
    };
    let max_id = w_id.iter().copied().max().unwrap_or(0);
    let binary = classifier && columns == 2 && w_id.iter().all(|&i| i == max_id);
    let div = if classifier {
        1.0
    } else {
        match attr_s(n, "aggregate_function", "SUM").as_str() {
            "SUM" => 1.0,
            "AVERAGE" => tree_ids.iter().collect::<std::collections::BTreeSet<_>>().len().max(1) as f64,
            other => {
                return Err(unsupported(
                    n,
                    format!("aggregate_function {other}: only SUM and AVERAGE map to a sum of trees"),
                ));
            }
        }
    };
    if !classifier && post != "NONE" {
        return Err(unsupported(
            n,
            format!("post_transform {post} on a regressor is not monotone-safe here; only NONE is supported"),
        ));
    }
    if columns == 0 || usize::try_from(max_id).map_or(true, |m| m >= columns) {
        return Err(Error::Onnx(format!("{}: weight ids up to {max_id} but {columns} output columns", n.name)));
    }

    // Leaf weights per (tree, node), per column.
    let mut leaf: BTreeMap<(i64, i64), Vec<f64>> = BTreeMap::new();
    for i in 0..w_tree.len() {
        let col = if binary { 1 } else { w_id[i] as usize };
        let v = leaf.entry((w_tree[i], w_node[i])).or_insert_with(|| vec![0.0; columns]);
        v[col] += w_val[i] / div;
    }
    let mut base_v = vec![0.0; columns];
    if binary {
        let all_positive = w_val.iter().all(|&w| w >= 0.0);
        base_v[0] = if post == "NONE" && all_positive { 0.5 } else { 0.0 };
        base_v[1] = base.first().copied().unwrap_or(0.0);
    } else {
        for (b, v) in base_v.iter_mut().zip(&base) {
            *b = *v;
        }
    }

    // Group nodes by tree, then renumber depth-first from the root.
    let mut by_tree: BTreeMap<i64, BTreeMap<i64, usize>> = BTreeMap::new();
    for i in 0..count {
        by_tree.entry(tree_ids[i]).or_default().insert(node_ids[i], i);
    }
    let mut trees = Vec::new();
    for (tree, members) in &by_tree {
        let children: std::collections::BTreeSet<i64> =
            members.values().filter(|&&i| modes[i] != "LEAF").flat_map(|&i| [trues[i], falses[i]]).collect();
        let roots: Vec<i64> = members.keys().copied().filter(|id| !children.contains(id)).collect();
        let [root] = roots[..] else {
            return Err(Error::Onnx(format!("{}: tree {tree} has {} roots", n.name, roots.len())));
        };
        let mut out: Vec<Node> = Vec::new();
        // (onnx node id, slot in `out` whose child index to fill: (parent, is_left)).
        let mut stack = vec![(root, None::<(usize, bool)>)];
        while let Some((id, parent)) = stack.pop() {
            let &i =
                members.get(&id).ok_or_else(|| Error::Onnx(format!("{}: tree {tree} has no node {id}", n.name)))?;
            let at = out.len();
            if out.len() > members.len() {
                return Err(Error::Onnx(format!("{}: tree {tree} is not a tree (a node is reached twice)", n.name)));
            }
            if let Some((p, is_left)) = parent {
                if is_left { out[p].left = at } else { out[p].right = at }
            }
            let mode = modes[i].as_str();
            if mode == "LEAF" {
                let values = leaf.get(&(*tree, id)).cloned().unwrap_or_else(|| vec![0.0; columns]);
                out.push(Node { feature: -1, threshold: 0.0, split: Split::Leq, left: 0, right: 0, values });
                continue;
            }
            let (split, true_left) = match mode {
                "BRANCH_LEQ" => (Split::Leq, true),
                "BRANCH_LT" => (Split::Lt, true),
                "BRANCH_GT" => (Split::Leq, false),
                "BRANCH_GTE" => (Split::Lt, false),
                m => {
                    return Err(unsupported(
                        n,
                        format!(
                            "node mode {m}: only <=, <, >, >= splits map to integer bounds (equality tests would need a categorical op)"
                        ),
                    ));
                }
            };
            let f = features[i];
            if f < 0 || f as usize >= dim {
                return Err(Error::Onnx(format!("{}: node {id} tests feature {f} of {dim}", n.name)));
            }
            let threshold = values.get(i).copied().unwrap_or(0.0);
            out.push(Node { feature: f, threshold, split, left: 0, right: 0, values: Vec::new() });
            let (l, r) = if true_left { (trues[i], falses[i]) } else { (falses[i], trues[i]) };
            // Right pushed first so the left subtree is numbered first.
            stack.push((r, Some((at, false))));
            stack.push((l, Some((at, true))));
        }
        trees.push(out);
    }
    let ensemble = Ensemble { dim, outputs: columns, base: base_v, trees };
    Ok(Trees { ensemble, classes })
}
