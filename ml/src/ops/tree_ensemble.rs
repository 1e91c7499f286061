//! TreeEnsemble (code 11): a sum of decision trees over an integer feature vector.
//!
//! Each internal node tests `x[feature] <= threshold` (integers: float thresholds become
//! `floor(t·2^F)` at import, docs/arithmetic.md §9) and goes left when true. Children have larger
//! indices than their parent, so every walk ends, within the depth the verifier computes.
//! Output i64 `[O]` = `base + Σ_trees leaf(tree)`; the verifier proves the sum cannot overflow.
//!
//! Tensors: `nodes` i32 `[N, 4]` = (feature, threshold, left, right), a leaf has feature −1 and
//! zeros elsewhere; `leaves` i64 `[N, O]`, zero rows for internal nodes; `roots` i32 `[T]`;
//! `base` i64 `[O]`.

use super::{EvalCx, InferCx, OpCost, Operator, ValueInfo, one};
use crate::error::{Error, Result};
use crate::format::{Reader, Writer};
use crate::tensor::{DType, Tensor, TensorData};

/// Attributes of TreeEnsemble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEnsemble {
    /// Tensor id of the i32 nodes `[N, 4]`.
    pub nodes: u32,
    /// Tensor id of the i64 leaf values `[N, O]`.
    pub leaves: u32,
    /// Tensor id of the i32 roots `[T]`.
    pub roots: u32,
    /// Tensor id of the i64 base values `[O]`.
    pub base: u32,
}

const LEAF: i32 = -1;

/// Node `i` as (feature, threshold, left, right).
fn node_row(nodes: &[i32], i: usize) -> Result<[i32; 4]> {
    nodes
        .get(i * 4..i * 4 + 4)
        .and_then(|r| <[i32; 4]>::try_from(r).ok())
        .ok_or(Error::Internal("node index out of range"))
}

impl Operator for TreeEnsemble {
    const CODE: u8 = 11;
    const NAME: &'static str = "TreeEnsemble";

    fn arity_ok(n: usize) -> bool {
        n == 1
    }

    fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self { nodes: r.u32()?, leaves: r.u32()?, roots: r.u32()?, base: r.u32()? })
    }

    fn write(&self, w: &mut Writer) {
        w.u32(self.nodes);
        w.u32(self.leaves);
        w.u32(self.roots);
        w.u32(self.base);
    }

    fn tensor_refs(&self, out: &mut Vec<u32>) {
        out.extend([self.nodes, self.leaves, self.roots, self.base]);
    }

    fn infer(&self, cx: &InferCx<'_>, inputs: &[&ValueInfo]) -> Result<(ValueInfo, OpCost)> {
        let x = one(inputs)?;
        cx.expect_dtype(x, "input", &[DType::I8, DType::I16, DType::I32])?;
        let features = match x.shape.as_slice() {
            [f] => *f,
            s => return Err(cx.err(format!("input must be [F], is {s:?}"))),
        };
        let nodes_t = cx.tensor(self.nodes, "nodes", DType::I32, None)?;
        let n = match nodes_t.shape() {
            [n, 4] => *n,
            s => return Err(cx.err(format!("nodes must be [N, 4], are {s:?}"))),
        };
        let base_t = cx.tensor(self.base, "base", DType::I64, None)?;
        let o = match base_t.shape() {
            [o] => *o,
            s => return Err(cx.err(format!("base must be [O], is {s:?}"))),
        };
        let leaves_t = cx.tensor(self.leaves, "leaves", DType::I64, Some(&[n, o]))?;
        let roots_t = cx.tensor(self.roots, "roots", DType::I32, None)?;
        if roots_t.shape().len() != 1 {
            return Err(cx.err("roots must be [T]"));
        }
        let nodes = nodes_t.as_i32().unwrap_or(&[]);
        let leaves = leaves_t.as_i64().unwrap_or(&[]);
        // depth[i]: nodes visited from i to a leaf. Children are later, so go backwards.
        let mut depth = vec![0u64; n];
        let mut max_leaf: i128 = 0;
        for i in (0..n).rev() {
            let [f, thr, l, r] = node_row(nodes, i)?;
            let vals = leaves.get(i * o..(i + 1) * o).ok_or(Error::Internal("leaves row"))?;
            let d = if f == LEAF {
                if thr != 0 || l != 0 || r != 0 {
                    return Err(cx.err(format!("leaf {i} must have threshold, left and right 0")));
                }
                max_leaf = vals.iter().fold(max_leaf, |m, &v| m.max(i128::from(v).abs()));
                1
            } else {
                if f < 0 || f as usize >= features {
                    return Err(cx.err(format!("node {i} tests feature {f}, input has {features}")));
                }
                if vals.iter().any(|&v| v != 0) {
                    return Err(cx.err(format!("internal node {i} must have zero leaf values")));
                }
                let child = |c: i32| -> Result<u64> {
                    let c = usize::try_from(c).ok().filter(|&c| c > i && c < n);
                    c.and_then(|c| depth.get(c).copied())
                        .ok_or_else(|| cx.err(format!("node {i}: children must lie after it, below {n}")))
                };
                1 + child(l)?.max(child(r)?)
            };
            if let Some(slot) = depth.get_mut(i) {
                *slot = d;
            }
        }
        let roots = roots_t.as_i32().unwrap_or(&[]);
        let mut visits = 0u64;
        for &root in roots {
            let d = usize::try_from(root)
                .ok()
                .and_then(|r| depth.get(r))
                .ok_or_else(|| cx.err(format!("root {root} out of range")))?;
            visits = visits.saturating_add(*d);
        }
        let base_max = base_t.as_i64().unwrap_or(&[]).iter().fold(0i128, |m, &v| m.max(i128::from(v).abs()));
        if base_max + max_leaf * roots.len() as i128 >= 1i128 << 63 {
            return Err(cx.err("leaf sums may overflow i64"));
        }
        // Every root's walk ends at a leaf whose O-wide row is added: T·O additions (the copy
        // of `base` is its allocated bytes); one step per root, one visit per node visited.
        let t = roots.len() as u64;
        let cost = OpCost {
            elem_ops: (o as u64).saturating_mul(t),
            steps: t,
            visits,
            calls: 3,
            bytes: (o as u64).saturating_add(features as u64).saturating_mul(8),
            ..OpCost::default()
        };
        Ok((ValueInfo { dtype: DType::I64, shape: vec![o] }, cost))
    }

    fn eval(&self, cx: &EvalCx<'_>, inputs: &[&Tensor]) -> Result<Tensor> {
        let x = one(inputs)?;
        let nodes = cx.tensor(self.nodes)?.as_i32().ok_or(Error::Internal("nodes"))?;
        let leaves = cx.tensor(self.leaves)?.as_i64().ok_or(Error::Internal("leaves"))?;
        let roots = cx.tensor(self.roots)?.as_i32().ok_or(Error::Internal("roots"))?;
        let base = cx.tensor(self.base)?.as_i64().ok_or(Error::Internal("base"))?;
        // The features widened once, so a node test is one load (not a dtype match per visit).
        cx.work.alloc(x.len() * 8);
        let features: Vec<i64> = (0..x.len()).map(|j| x.data().get_i64(j).unwrap_or(0)).collect();
        cx.work.alloc(base.len() * 8);
        cx.work.calls(1);
        let mut out = base.to_vec();
        let o = out.len();
        for &root in roots {
            let mut i = usize::try_from(root).map_err(|_| Error::Internal("root"))?;
            // Nodes visited by this walk, added to the counter when it ends.
            let mut visits = 0usize;
            cx.work.steps(1);
            loop {
                visits += 1;
                let [f, thr, l, r] = node_row(nodes, i)?;
                if f == LEAF {
                    cx.work.visits(visits);
                    cx.work.elems(o);
                    let vals = leaves.get(i * o..(i + 1) * o).ok_or(Error::Internal("leaf index"))?;
                    out.iter_mut().zip(vals).for_each(|(s, &v)| *s = s.wrapping_add(v));
                    break;
                }
                let xv = *features.get(f as usize).ok_or(Error::Internal("feature index"))?;
                let next = if xv <= i64::from(thr) { l } else { r };
                let next = usize::try_from(next).map_err(|_| Error::Internal("child"))?;
                if next <= i {
                    return Err(Error::Internal("tree child before parent"));
                }
                i = next;
            }
        }
        Tensor::new(vec![o], TensorData::I64(out))
    }
}
