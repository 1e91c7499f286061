//! Gradient-boosted decision trees for binary classification (logistic loss, second-order
//! leaf values, exact greedy splits at midpoints between distinct feature values), in f64.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::data::Dataset;
use crate::ensemble::{Ensemble, Node, Split};
use crate::error::{Error, Result};

/// One tree node: a split `x[feature] <= threshold ? left : right`, or a leaf (`feature < 0`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TreeNode {
    /// Feature index, or −1 for a leaf.
    pub feature: i64,
    /// Split threshold (splits only).
    pub threshold: f64,
    /// Index of the left child within the tree (splits only).
    pub left: usize,
    /// Index of the right child within the tree (splits only).
    pub right: usize,
    /// Leaf value, learning rate included (leaves only).
    pub value: f64,
}

/// A boosted ensemble: `logit(x) = base + Σ_t leaf_t(x)`, class 1 when the logit is positive.
#[derive(Debug, Clone, PartialEq)]
pub struct Gbdt {
    /// Features per row.
    pub dim: usize,
    /// Initial logit.
    pub base: f64,
    /// Trees, each rooted at its node 0; children come after their parent.
    pub trees: Vec<Vec<TreeNode>>,
}

/// Training settings.
#[derive(Debug, Clone, Copy)]
pub struct GbdtParams {
    /// Number of trees.
    pub trees: usize,
    /// Maximum depth.
    pub depth: usize,
    /// Shrinkage applied to every leaf.
    pub learning_rate: f64,
    /// L2 regularisation of leaf values.
    pub lambda: f64,
    /// Minimum rows in a leaf.
    pub min_leaf: usize,
}

impl Default for GbdtParams {
    fn default() -> Self {
        Self { trees: 60, depth: 3, learning_rate: 0.2, lambda: 1.0, min_leaf: 4 }
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

struct Builder<'a> {
    ds: &'a Dataset,
    grad: Vec<f64>,
    hess: Vec<f64>,
    p: GbdtParams,
    nodes: Vec<TreeNode>,
}

impl Builder<'_> {
    fn x(&self, row: usize, f: usize) -> f64 {
        f64::from(self.ds.row(row).get(f).copied().unwrap_or(0.0))
    }

    fn leaf(&self, rows: &[usize]) -> TreeNode {
        let g: f64 = rows.iter().map(|&r| self.grad[r]).sum();
        let h: f64 = rows.iter().map(|&r| self.hess[r]).sum();
        let value = -g / (h + self.p.lambda) * self.p.learning_rate;
        TreeNode { feature: -1, threshold: 0.0, left: 0, right: 0, value }
    }

    /// Best (gain, feature, threshold) over all features.
    fn best_split(&self, rows: &[usize]) -> Option<(f64, usize, f64)> {
        let (g, h): (f64, f64) = rows.iter().fold((0.0, 0.0), |(g, h), &r| (g + self.grad[r], h + self.hess[r]));
        let parent = g * g / (h + self.p.lambda);
        let mut best: Option<(f64, usize, f64)> = None;
        let mut sorted = rows.to_vec();
        for f in 0..self.ds.dim {
            sorted.sort_by(|&a, &b| self.x(a, f).total_cmp(&self.x(b, f)));
            let (mut gl, mut hl) = (0.0, 0.0);
            for i in 0..sorted.len().saturating_sub(1) {
                let (r, next) = (sorted[i], sorted[i + 1]);
                gl += self.grad[r];
                hl += self.hess[r];
                let (a, b) = (self.x(r, f), self.x(next, f));
                if a == b || i + 1 < self.p.min_leaf || sorted.len() - i - 1 < self.p.min_leaf {
                    continue;
                }
                let (gr, hr) = (g - gl, h - hl);
                let gain = gl * gl / (hl + self.p.lambda) + gr * gr / (hr + self.p.lambda) - parent;
                if gain > 1e-9 && best.is_none_or(|(bg, _, _)| gain > bg) {
                    best = Some((gain, f, (a + b) / 2.0));
                }
            }
        }
        best
    }

    fn grow(&mut self, rows: &[usize], depth: usize) -> usize {
        let at = self.nodes.len();
        self.nodes.push(self.leaf(rows));
        if depth < self.p.depth
            && let Some((_, f, t)) = self.best_split(rows)
        {
            let (l, r): (Vec<usize>, Vec<usize>) = rows.iter().partition(|&&row| self.x(row, f) <= t);
            let left = self.grow(&l, depth + 1);
            let right = self.grow(&r, depth + 1);
            self.nodes[at] = TreeNode { feature: f as i64, threshold: t, left, right, value: 0.0 };
        }
        at
    }
}

impl Gbdt {
    /// Fits an ensemble to a two-class data set.
    pub fn train(ds: &Dataset, p: GbdtParams, mut progress: impl FnMut(usize)) -> Result<Self> {
        if ds.classes != 2 || ds.is_empty() {
            return Err(Error::Quantize("boosted trees here are binary classifiers over a non-empty set".into()));
        }
        let pos = ds.labels.iter().filter(|&&l| l == 1).count() as f64;
        let n = ds.len() as f64;
        let prior = (pos / n).clamp(1e-6, 1.0 - 1e-6);
        let mut model = Gbdt { dim: ds.dim, base: (prior / (1.0 - prior)).ln(), trees: Vec::new() };
        let mut logits = vec![model.base; ds.len()];
        let rows: Vec<usize> = (0..ds.len()).collect();
        for t in 0..p.trees {
            let probs: Vec<f64> = logits.iter().map(|&z| sigmoid(z)).collect();
            let grad = probs.iter().zip(&ds.labels).map(|(&q, &y)| q - f64::from(y)).collect();
            let hess = probs.iter().map(|&q| (q * (1.0 - q)).max(1e-12)).collect();
            let mut b = Builder { ds, grad, hess, p, nodes: Vec::new() };
            b.grow(&rows, 0);
            let tree = b.nodes;
            for (r, z) in logits.iter_mut().enumerate() {
                *z += tree_value(&tree, ds.row(r));
            }
            model.trees.push(tree);
            progress(t);
        }
        Ok(model)
    }

    /// The ensemble in general form: two outputs, `(0, logit)`.
    pub fn ensemble(&self) -> Ensemble {
        let node = |n: &TreeNode| Node {
            feature: n.feature,
            threshold: n.threshold,
            split: Split::Leq,
            left: n.left,
            right: n.right,
            values: if n.feature < 0 { vec![0.0, n.value] } else { Vec::new() },
        };
        Ensemble {
            dim: self.dim,
            outputs: 2,
            base: vec![0.0, self.base],
            trees: self.trees.iter().map(|t| t.iter().map(node).collect()).collect(),
        }
    }

    /// The ensemble's logit for one row.
    pub fn logit(&self, x: &[f32]) -> f64 {
        self.base + self.trees.iter().map(|t| tree_value(t, x)).sum::<f64>()
    }

    /// Predicted class (1 when the logit is positive) for every row.
    pub fn predict(&self, ds: &Dataset) -> Vec<u32> {
        (0..ds.len()).map(|i| u32::from(self.logit(ds.row(i)) > 0.0)).collect()
    }

    /// Writes the ensemble as safetensors (flat node arrays, tree roots, base) with `task` in
    /// the metadata.
    pub fn save(&self, path: &Path, task: &str) -> Result<()> {
        let (mut feature, mut threshold, mut left, mut right, mut value, mut roots) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for t in &self.trees {
            let off = feature.len() as i64;
            roots.push(off);
            for n in t {
                feature.push(n.feature);
                threshold.push(n.threshold);
                left.push(if n.feature < 0 { 0 } else { off + n.left as i64 });
                right.push(if n.feature < 0 { 0 } else { off + n.right as i64 });
                value.push(n.value);
            }
        }
        let cpu = &Device::Cpu;
        let ints = |v: Vec<i64>| Tensor::new(v, cpu);
        let tensors = vec![
            ("base".to_string(), Tensor::new(&[self.base], cpu)?),
            ("dim".to_string(), ints(vec![self.dim as i64])?),
            ("feature".to_string(), ints(feature)?),
            ("left".to_string(), ints(left)?),
            ("right".to_string(), ints(right)?),
            ("roots".to_string(), ints(roots)?),
            ("threshold".to_string(), Tensor::new(threshold, cpu)?),
            ("value".to_string(), Tensor::new(value, cpu)?),
        ];
        let meta = HashMap::from([("fixpoint.task".to_string(), task.to_string())]);
        safetensors::serialize_to_file(tensors, Some(meta), path)?;
        Ok(())
    }

    /// Reads an ensemble written by [`Gbdt::save`], checking every index.
    pub fn from_tensors(t: &HashMap<String, Tensor>) -> Result<Self> {
        let get = |name: &str| t.get(name).ok_or_else(|| Error::Weights(format!("missing tensor {name}")));
        let ints = |name: &str| -> Result<Vec<i64>> { Ok(get(name)?.to_vec1::<i64>()?) };
        let floats = |name: &str| -> Result<Vec<f64>> { Ok(get(name)?.to_vec1::<f64>()?) };
        let (feature, left, right, roots) = (ints("feature")?, ints("left")?, ints("right")?, ints("roots")?);
        let (threshold, value, base) = (floats("threshold")?, floats("value")?, floats("base")?);
        let dim = ints("dim")?.first().copied().unwrap_or(0);
        let n = feature.len();
        if [left.len(), right.len(), threshold.len(), value.len()].iter().any(|&l| l != n) || base.len() != 1 {
            return Err(Error::Weights("node arrays differ in length".into()));
        }
        let mut trees = Vec::new();
        for (ti, &root) in roots.iter().enumerate() {
            let end = roots.get(ti + 1).copied().unwrap_or(n as i64);
            if root < 0 || end <= root || end > n as i64 {
                return Err(Error::Weights(format!("tree {ti} has bad bounds {root}..{end}")));
            }
            let mut tree = Vec::new();
            for i in root as usize..end as usize {
                let child = |c: i64| -> Result<usize> {
                    if c > i as i64 && c < end {
                        Ok((c - root) as usize)
                    } else {
                        Err(Error::Weights(format!("node {i} has child {c} outside its tree or before it")))
                    }
                };
                let leaf = feature[i] < 0;
                if !leaf && feature[i] >= dim {
                    return Err(Error::Weights(format!("node {i} tests feature {} of {dim}", feature[i])));
                }
                tree.push(TreeNode {
                    feature: if leaf { -1 } else { feature[i] },
                    threshold: threshold[i],
                    left: if leaf { 0 } else { child(left[i])? },
                    right: if leaf { 0 } else { child(right[i])? },
                    value: value[i],
                });
            }
            trees.push(tree);
        }
        Ok(Gbdt { dim: dim as usize, base: base[0], trees })
    }
}

fn tree_value(tree: &[TreeNode], x: &[f32]) -> f64 {
    let mut i = 0;
    while let Some(n) = tree.get(i) {
        if n.feature < 0 {
            return n.value;
        }
        let v = x.get(n.feature as usize).map_or(0.0, |&v| f64::from(v));
        i = if v <= n.threshold { n.left } else { n.right };
    }
    0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_a_threshold_and_round_trips() {
        // Class 1 exactly when feature 0 exceeds 0.5; feature 1 is noise.
        let n = 200;
        let features = (0..n).flat_map(|i| [i as f32 / n as f32, ((i * 37) % 11) as f32]).collect();
        let labels = (0..n).map(|i| u32::from(i as f32 / n as f32 > 0.5)).collect();
        let ds = Dataset { features, labels, dim: 2, classes: 2 };
        let m = Gbdt::train(&ds, GbdtParams { trees: 10, ..Default::default() }, |_| {}).unwrap();
        assert_eq!(m.predict(&ds), ds.labels);
        let dir = std::env::temp_dir().join(format!("fixpoint-gbdt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.safetensors");
        m.save(&path, "test").unwrap();
        let (t, task) = crate::net::read_weights(&path).unwrap();
        assert_eq!(task.as_deref(), Some("test"));
        assert_eq!(Gbdt::from_tensors(&t).unwrap(), m);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
