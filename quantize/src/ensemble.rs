//! Tree ensembles in general form: several outputs, `<=` or `<` splits, values on every leaf.
//! The boosted trees trained here ([`crate::gbdt`]) and imported ONNX-ML ensembles
//! ([`crate::onnx`]) both become an [`Ensemble`], which `lower::lower_ensemble` turns into one
//! TreeEnsemble op (docs/arithmetic.md §9).

/// How an internal node compares its feature with its threshold (true goes to `left`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// `x <= threshold`.
    Leq,
    /// `x < threshold`.
    Lt,
}

/// One node: a split `x[feature] (<= | <) threshold ? left : right`, or a leaf (`feature < 0`).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Feature index, or −1 for a leaf.
    pub feature: i64,
    /// Split threshold (splits only).
    pub threshold: f64,
    /// The comparison (splits only).
    pub split: Split,
    /// Index of the child taken when the test holds, within the tree (after this node).
    pub left: usize,
    /// Index of the other child, within the tree (after this node).
    pub right: usize,
    /// One value per output (leaves only).
    pub values: Vec<f64>,
}

/// `scores(x) = base + Σ_t leaf_t(x)`, a vector of `outputs` values.
#[derive(Debug, Clone, PartialEq)]
pub struct Ensemble {
    /// Features per row.
    pub dim: usize,
    /// Values per leaf and in the result.
    pub outputs: usize,
    /// Initial scores.
    pub base: Vec<f64>,
    /// Trees, each rooted at its node 0; children come after their parent.
    pub trees: Vec<Vec<Node>>,
}

impl Ensemble {
    /// The scores of one row, in f64.
    pub fn scores(&self, x: &[f32]) -> Vec<f64> {
        let mut out = self.base.clone();
        out.resize(self.outputs, 0.0);
        for tree in &self.trees {
            let mut i = 0;
            while let Some(n) = tree.get(i) {
                if n.feature < 0 {
                    for (o, v) in out.iter_mut().zip(&n.values) {
                        *o += v;
                    }
                    break;
                }
                let v = x.get(n.feature as usize).map_or(0.0, |&v| f64::from(v));
                let go_left = match n.split {
                    Split::Leq => v <= n.threshold,
                    Split::Lt => v < n.threshold,
                };
                i = if go_left { n.left } else { n.right };
            }
        }
        out
    }

    /// Largest `|threshold|` over all splits (0 when there are none).
    pub fn max_abs_threshold(&self) -> f64 {
        self.trees.iter().flatten().filter(|n| n.feature >= 0).fold(0.0, |m, n| m.max(n.threshold.abs()))
    }

    /// A bound on `|score|`: `max|base| + Σ_trees max|leaf value|`.
    pub fn score_bound(&self) -> f64 {
        let base = self.base.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        base + self
            .trees
            .iter()
            .map(|t| t.iter().flat_map(|n| n.values.iter()).fold(0.0f64, |m, v| m.max(v.abs())))
            .sum::<f64>()
    }
}
