//! Generation with a key/value cache (docs/model-format.md §9).
//!
//! A *causal* model is one whose graph computes every value row by row along a position axis,
//! with attention the only op that reads other rows, and only earlier ones. [`Plan::new`] proves
//! that from the verified graph, op by op: it gives each value a [`Layout`] and each op input a
//! [`Feed`]. A generation then runs the same ops on one position at a time ([`Generation::feed`]):
//! every value is computed for that position only, except the values attention reads whole (keys
//! and values), which are kept in a cache and read as a prefix. Since every op the plan admits
//! computes a row from the same inputs in both forms, each step's logits equal the corresponding
//! row of the whole-window run, bit for bit (tested in `ml/tests/decode.rs`). The cost of a step
//! is the verifier's cost of the ops on one-row shapes with a full-window prefix, so a step's
//! counted work is within [`Plan::step_cost`] at every position.

use std::borrow::Cow;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ops::slice::{slice_cost, slice_data, write_axis, write_cost};
use crate::ops::{EvalCx, InferCx, Op, Reshape, ValueInfo};
use crate::tensor::{DType, Tensor, TensorData};
use crate::verify::{OP_CALLS, Verified};
use crate::work::{Counter, Work};

/// Where a value keeps its positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One row per position along this axis; row `t` depends only on the inputs' rows `≤ t`.
    Rows(usize),
    /// Attention scores `[.., queries, keys]`: query positions along the second-last axis, key
    /// positions along the last. Entries for keys after their query are not computed in a step.
    Scores,
    /// A causal softmax of scores: entries for keys after their query are zero.
    Probs,
}

/// How an op reads one of its inputs in a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// The step's own rows.
    Rows,
    /// Every position so far, from the cache: the prefix along this axis.
    Prefix(usize),
}

/// What [`Plan::new`] proved about a causal model.
#[derive(Debug, Clone)]
pub struct Plan {
    context: usize,
    vocab: usize,
    token_dtype: DType,
    layouts: Vec<Layout>,
    feeds: Vec<Vec<Feed>>,
    cached: Vec<Option<usize>>,
    cache_bytes: u64,
    step_cost: Work,
}

fn not_causal(op: usize, name: &'static str, what: impl Into<String>) -> Error {
    Error::NotCausal { op, name, what: what.into() }
}

/// The op as it runs on `n` rows: a Reshape's position dim becomes `n` (every other op's
/// attributes hold no position count).
fn op_for_rows(op: &Op, n: usize) -> Cow<'_, Op> {
    match op {
        Op::Reshape(r) => {
            let mut shape = r.shape.clone();
            if let Some(d) = shape.first_mut() {
                *d = u32::try_from(n).unwrap_or(u32::MAX);
            }
            Cow::Owned(Op::Reshape(Reshape { shape }))
        }
        _ => Cow::Borrowed(op),
    }
}

/// The shape a value has in a step of `n` rows with `prefix` positions so far.
fn step_shape(shape: &[usize], layout: Layout, n: usize, prefix: usize) -> Vec<usize> {
    let mut s = shape.to_vec();
    let r = s.len();
    match layout {
        Layout::Rows(a) => {
            if let Some(d) = s.get_mut(a) {
                *d = n;
            }
        }
        Layout::Scores | Layout::Probs => {
            if let Some(d) = r.checked_sub(2).and_then(|i| s.get_mut(i)) {
                *d = n;
            }
            if let Some(d) = s.last_mut() {
                *d = prefix;
            }
        }
    }
    s
}

/// The layout of a node's output and its feeds, given its inputs' layouts and shapes, or why the
/// op has no row-by-row form.
fn infer_layout(
    op: &Op,
    ins: &[(Layout, &ValueInfo)],
    out: &ValueInfo,
    t: usize,
) -> std::result::Result<(Layout, Vec<Feed>), String> {
    let rows = vec![Feed::Rows; ins.len()];
    let only = |what: &str| -> std::result::Result<(usize, usize), String> {
        match ins {
            [(Layout::Rows(a), x)] => Ok((*a, x.shape.len())),
            [(l, _)] => Err(format!("{what} reads a {l:?} value; only row layouts")),
            _ => Err("expected one input".into()),
        }
    };
    match op {
        // Ops over the last axis (or per row): the position must be another axis.
        Op::FullyConnected(_) | Op::LayerNorm(_) | Op::RmsNorm(_) | Op::ArgMax(_) => {
            let (a, rank) = only("it")?;
            if a + 1 >= rank {
                return Err(format!("the position axis {a} is the axis it reduces"));
            }
            Ok((Layout::Rows(a), rows))
        }
        Op::Softmax(s) if s.causal == 0 => {
            let (a, rank) = only("a non-causal softmax")?;
            if a + 1 >= rank {
                return Err(format!("the position axis {a} is the axis it normalizes"));
            }
            Ok((Layout::Rows(a), rows))
        }
        Op::Softmax(_) => match ins {
            [(Layout::Scores, _)] => Ok((Layout::Probs, rows)),
            _ => Err("a causal softmax must read attention scores (a MatMul of rows by earlier rows)".into()),
        },
        Op::Gather(_) => Ok((Layout::Rows(only("it")?.0), rows)),
        Op::Lut8(_) | Op::Requantize(_) => match ins {
            [(Layout::Rows(a), x)] if a + 1 < x.shape.len() || matches!(op, Op::Lut8(_)) => {
                Ok((Layout::Rows(*a), rows))
            }
            [(Layout::Scores, _)] => Ok((Layout::Scores, rows)),
            [(l, _)] => Err(format!("cannot map a {l:?} value per channel along its position axis")),
            _ => Err("expected one input".into()),
        },
        Op::Add(_) | Op::AddWide(_) | Op::Mul(_) => match ins {
            [(a, _), (b, _)] if a == b && *a != Layout::Probs => Ok((*a, rows)),
            [(a, _), (b, _)] => Err(format!("its inputs have layouts {a:?} and {b:?}")),
            _ => Err("expected two inputs".into()),
        },
        Op::Concat(c) => {
            let axis = usize::from(c.axis);
            let Some((Layout::Rows(a), _)) = ins.first() else { return Err("joins a non-row value".into()) };
            if ins.iter().any(|(l, _)| *l != Layout::Rows(*a)) || axis == *a {
                return Err(format!(
                    "joins along the position axis or values with different position axes (axis {axis})"
                ));
            }
            Ok((Layout::Rows(*a), rows))
        }
        Op::Slice(s) => {
            let (a, _) = only("it")?;
            if usize::from(s.axis) == a {
                return Err("it cuts the position axis".into());
            }
            Ok((Layout::Rows(a), rows))
        }
        Op::Reshape(_) => {
            let (a, _) = only("it")?;
            let keeps = ins.first().is_some_and(|(_, x)| x.shape.first() == Some(&t)) && out.shape.first() == Some(&t);
            if a != 0 || !keeps {
                return Err(format!("only reshapes that keep the positions as axis 0 (extent {t}) have a row form"));
            }
            Ok((Layout::Rows(0), rows))
        }
        Op::Transpose(p) => {
            let (a, _) = only("it")?;
            let to = p.perm.iter().position(|&q| usize::from(q) == a).ok_or("the position axis is not permuted")?;
            Ok((Layout::Rows(to), rows))
        }
        Op::MatMul(m) => {
            let [(la, a), (lb, b)] = ins else { return Err("expected two inputs".into()) };
            let r = a.shape.len();
            if b.shape.len() != r || r < 2 {
                return Err("operands of different ranks".into());
            }
            let (m_axis, k_axis) = (r - 2, r - 1);
            // B's axes: N (the output columns) and K (the reduction).
            let (b_n, b_k) = if m.b_transposed == 1 { (r - 2, r - 1) } else { (r - 1, r - 2) };
            match (*la, *lb) {
                // Q·Kᵀ: each query row against every key so far.
                (Layout::Rows(qa), Layout::Rows(ka)) if qa == m_axis && ka == b_n => {
                    Ok((Layout::Scores, vec![Feed::Rows, Feed::Prefix(ka)]))
                }
                // P·V: each row's probabilities over the values so far.
                (Layout::Probs, Layout::Rows(va)) if va == b_k => {
                    Ok((Layout::Rows(m_axis), vec![Feed::Rows, Feed::Prefix(va)]))
                }
                // A product per position (positions along a batch axis of both).
                (Layout::Rows(x), Layout::Rows(y)) if x == y && x < m_axis => Ok((Layout::Rows(x), rows)),
                (x, y) => Err(format!(
                    "its operands have layouts {x:?} and {y:?}; attention needs rows (axis {m_axis}) × earlier rows (axis {b_n}), then probabilities × earlier rows (axis {b_k}) (K axis {k_axis})"
                )),
            }
        }
        Op::Conv2d(_) | Op::MaxPool(_) | Op::AvgPool(_) | Op::TreeEnsemble(_) => {
            Err("it has no row-by-row form in generation".into())
        }
    }
}

impl Plan {
    /// Proves `verified` causal and plans its steps. The model must take the tokens as input 0
    /// (`u8` or `i32`, shape `[T]`) and optionally their positions `0..T` as input 1 (same dtype
    /// and shape), and give the logits `[T, V]` (i8 or i32) as output 0.
    pub fn new(verified: &Verified) -> Result<Self> {
        let model = verified.model();
        let values = verified.values();
        let input = |what: &'static str, i: usize| -> Result<(DType, usize)> {
            let d = model.inputs.get(i).ok_or(Error::NotGenerative(what))?;
            match d.shape.as_slice() {
                [t] if matches!(d.dtype, DType::U8 | DType::I32) => Ok((d.dtype, *t)),
                _ => Err(Error::NotGenerative(what)),
            }
        };
        let (token_dtype, context) = input("input 0 must be the tokens, u8 or i32 of shape [T]", 0)?;
        if model.inputs.len() > 2 {
            return Err(Error::NotGenerative("a causal model takes the tokens and at most their positions"));
        }
        if model.inputs.len() == 2
            && input("input 1 must be the positions, like the tokens", 1)? != (token_dtype, context)
        {
            return Err(Error::NotGenerative("input 1 must be the positions, like the tokens"));
        }
        let mut layouts: Vec<Layout> = vec![Layout::Rows(0); model.inputs.len()];
        let mut feeds = Vec::with_capacity(model.nodes.len());
        let mut cached: Vec<Option<usize>> = vec![None; values.len()];
        for (i, node) in model.nodes.iter().enumerate() {
            let name = node.op.name();
            let ins = node
                .inputs
                .iter()
                .map(|&v| Some((*layouts.get(v as usize)?, values.get(v as usize)?)))
                .collect::<Option<Vec<_>>>()
                .ok_or(Error::Internal("value read before it is made"))?;
            let out = values.get(model.inputs.len() + i).ok_or(Error::Internal("value missing"))?;
            let (layout, feed) = infer_layout(&node.op, &ins, out, context).map_err(|w| not_causal(i, name, w))?;
            // Every position axis has the window's extent.
            let spans = match layout {
                Layout::Rows(a) => out.shape.get(a) == Some(&context),
                Layout::Scores | Layout::Probs => out.shape.iter().rev().take(2).all(|&d| d == context),
            };
            if !spans {
                return Err(not_causal(
                    i,
                    name,
                    format!(
                        "output {:?} has no axis of the window's {context} positions where its layout puts one",
                        out.shape
                    ),
                ));
            }
            for (&v, f) in node.inputs.iter().zip(&feed) {
                if let (Feed::Prefix(axis), Some(c)) = (f, cached.get_mut(v as usize)) {
                    *c = Some(*axis);
                }
            }
            layouts.push(layout);
            feeds.push(feed);
        }
        let logits = model.outputs.first().map(|o| o.value as usize).ok_or(Error::NotGenerative("no output"))?;
        let vocab = match (layouts.get(logits), values.get(logits)) {
            (Some(Layout::Rows(0)), Some(v)) if matches!(v.dtype, DType::I8 | DType::I32) => match v.shape.as_slice() {
                [_, vocab] if *vocab > 0 => *vocab,
                _ => return Err(Error::NotGenerative("output 0 must be the logits, [T, V]")),
            },
            _ => return Err(Error::NotGenerative("output 0 must be the logits, i8 or i32 rows [T, V]")),
        };
        if token_dtype == DType::U8 && vocab > 256 {
            return Err(Error::NotGenerative("u8 tokens cannot name more than 256 logits"));
        }
        let cache_bytes =
            cached.iter().zip(values).filter(|(c, _)| c.is_some()).fold(0u64, |a, (_, v)| a.saturating_add(v.bytes()));
        let mut plan =
            Self { context, vocab, token_dtype, layouts, feeds, cached, cache_bytes, step_cost: Work::default() };
        plan.step_cost = plan.cost_of_step(verified)?;
        Ok(plan)
    }

    /// The verifier's cost of one step of one row with a full window of earlier positions: each
    /// op's cost on its one-row shapes, the interpreter's per-op work, the inputs, the prefixes
    /// cut from the cache and the rows written into it.
    fn cost_of_step(&self, verified: &Verified) -> Result<Work> {
        let model = verified.model();
        let values = verified.values();
        let info = |v: usize| -> Result<ValueInfo> {
            let (x, l) = values.get(v).zip(self.layouts.get(v)).ok_or(Error::Internal("value missing"))?;
            Ok(ValueInfo { dtype: x.dtype, shape: step_shape(&x.shape, *l, 1, self.context) })
        };
        let mut total =
            Work { calls: model.inputs.len() as u64, bytes: 2 * self.token_dtype.size() as u64, ..Work::default() };
        for (i, node) in model.nodes.iter().enumerate() {
            let feeds = self.feeds.get(i).ok_or(Error::Internal("feeds missing"))?;
            let mut ins = Vec::with_capacity(node.inputs.len());
            for (&v, f) in node.inputs.iter().zip(feeds) {
                match f {
                    Feed::Rows => ins.push(info(v as usize)?),
                    Feed::Prefix(axis) => {
                        let full = values.get(v as usize).ok_or(Error::Internal("value missing"))?;
                        total = total + slice_cost(&full.shape, *axis, self.context, full.dtype.size());
                        ins.push(full.clone());
                    }
                }
            }
            let op = op_for_rows(&node.op, 1);
            let cx = InferCx { op: i, name: node.op.name(), tensors: &model.tensors };
            let refs: Vec<&ValueInfo> = ins.iter().collect();
            let (out, cost) = op.infer(&cx, &refs)?;
            let v = model.inputs.len() + i;
            if out != info(v)? {
                // A bug of the layout rules, caught at registration.
                return Err(not_causal(
                    i,
                    node.op.name(),
                    format!("one row gives {:?}, not the planned {:?}", out.shape, info(v)?.shape),
                ));
            }
            total = total + cost + Work { calls: OP_CALLS, steps: node.inputs.len() as u64, ..Work::default() };
            if let (Some(Some(axis)), Some(full)) = (self.cached.get(v), values.get(v)) {
                total = total + write_cost(&full.shape, *axis, 1);
            }
        }
        Ok(total + greedy_cost(self.vocab))
    }

    /// Positions in the window (`T`): a generation evaluates at most this many.
    pub fn context(&self) -> usize {
        self.context
    }

    /// Logits per position (`V`): tokens are `0..V`.
    pub fn vocab(&self) -> usize {
        self.vocab
    }

    /// The dtype of the token input.
    pub fn token_dtype(&self) -> DType {
        self.token_dtype
    }

    /// The layout of every value.
    pub fn layouts(&self) -> &[Layout] {
        &self.layouts
    }

    /// Bytes of the key/value cache a generation allocates.
    pub fn cache_bytes(&self) -> u64 {
        self.cache_bytes
    }

    /// The most work one step of one position counts, at any position, with the greedy pick of
    /// its token.
    pub fn step_cost(&self) -> Work {
        self.step_cost
    }

    /// The work of starting a generation: allocating the cache.
    pub fn setup_cost(&self) -> Work {
        let n = self.cached.iter().filter(|c| c.is_some()).count() as u64;
        Work { calls: n, bytes: self.cache_bytes, ..Work::default() }
    }

    /// Steps a greedy generation of `tokens` tokens after a prompt of `prompt` tokens runs
    /// (every prompt token and every new token but the last), or why it cannot run.
    pub fn steps(&self, prompt: usize, tokens: usize) -> Result<usize> {
        if prompt == 0 {
            return Err(Error::EmptyPrompt);
        }
        let steps = prompt.saturating_add(tokens).saturating_sub(1);
        if steps > self.context {
            return Err(Error::ContextExceeded { prompt, tokens, context: self.context });
        }
        Ok(steps)
    }

    /// The most work a greedy generation of `tokens` tokens after `prompt` tokens counts.
    pub fn generation_cost(&self, prompt: usize, tokens: usize) -> Result<Work> {
        let steps = self.steps(prompt, tokens)? as u64;
        let s = self.step_cost;
        let scaled = Work {
            macs: s.macs.saturating_mul(steps),
            elem_ops: s.elem_ops.saturating_mul(steps),
            steps: s.steps.saturating_mul(steps),
            visits: s.visits.saturating_mul(steps),
            calls: s.calls.saturating_mul(steps),
            bytes: s.bytes.saturating_mul(steps),
        };
        Ok(self.setup_cost() + scaled)
    }
}

/// One generation in progress: the cache and the next position.
#[derive(Debug)]
pub struct Generation<'e> {
    engine: &'e Engine,
    plan: &'e Plan,
    cache: Vec<Option<TensorData>>,
    position: usize,
}

impl<'e> Generation<'e> {
    /// Starts a generation of a causal model, allocating its cache (counted into `work`).
    pub fn new(engine: &'e Engine, work: &Counter) -> Result<Self> {
        let plan = engine.plan()?;
        let values = engine.verified().values();
        let cache = plan
            .cached
            .iter()
            .zip(values)
            .map(|(c, v)| {
                c.map(|_| {
                    let n = usize::try_from(v.numel()).unwrap_or(usize::MAX);
                    work.alloc(n.saturating_mul(v.dtype.size()));
                    TensorData::zeros(v.dtype, n)
                })
            })
            .collect();
        Ok(Self { engine, plan, cache, position: 0 })
    }

    /// Positions evaluated so far.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Evaluates the next `tokens.len()` positions and returns their logits `[n, V]`.
    pub fn feed(&mut self, tokens: &[u32], work: &Counter) -> Result<Tensor> {
        let n = tokens.len();
        let p0 = self.position;
        let end = p0.checked_add(n).filter(|&e| n > 0 && e <= self.plan.context);
        let Some(end) = end else {
            return Err(Error::ContextExceeded { prompt: p0, tokens: n, context: self.plan.context });
        };
        let model = self.engine.model();
        let values = self.engine.verified().values();
        let last_use = self.engine.verified().last_use();
        let n_in = model.inputs.len();
        let ints = |v: Vec<u32>| -> Result<Tensor> {
            work.alloc(n * self.plan.token_dtype.size());
            let data = match self.plan.token_dtype {
                DType::U8 => TensorData::U8(
                    v.iter()
                        .map(|&x| {
                            u8::try_from(x).map_err(|_| Error::TokenOutOfRange { token: x, vocab: self.plan.vocab })
                        })
                        .collect::<Result<_>>()?,
                ),
                _ => TensorData::I32(
                    v.iter()
                        .map(|&x| {
                            i32::try_from(x).map_err(|_| Error::TokenOutOfRange { token: x, vocab: self.plan.vocab })
                        })
                        .collect::<Result<_>>()?,
                ),
            };
            Tensor::new(vec![n], data)
        };
        let mut step: Vec<Option<Tensor>> = Vec::with_capacity(values.len());
        step.push(Some(ints(tokens.to_vec())?));
        if n_in == 2 {
            step.push(Some(ints((p0..end).map(|p| p as u32).collect())?));
        }
        step.resize(values.len(), None);
        for (i, (node, packed)) in model.nodes.iter().zip(self.engine.packed()).enumerate() {
            work.calls(OP_CALLS as usize);
            work.steps(node.inputs.len());
            let feeds = self.plan.feeds.get(i).ok_or(Error::Internal("feeds missing"))?;
            // Prefixes are cut first so the input list can borrow them.
            let mut prefixes = Vec::new();
            for (&v, f) in node.inputs.iter().zip(feeds) {
                if let Feed::Prefix(axis) = f {
                    let (data, full) = self
                        .cache
                        .get(v as usize)
                        .and_then(Option::as_ref)
                        .zip(values.get(v as usize))
                        .ok_or(Error::Internal("cache missing"))?;
                    prefixes.push(slice_data(data, &full.shape, *axis, 0, end, work)?);
                }
            }
            let mut cut = prefixes.iter();
            let ins = node
                .inputs
                .iter()
                .zip(feeds)
                .map(|(&v, f)| match f {
                    Feed::Rows => {
                        step.get(v as usize).and_then(Option::as_ref).ok_or(Error::Internal("value freed before use"))
                    }
                    Feed::Prefix(_) => cut.next().ok_or(Error::Internal("prefix missing")),
                })
                .collect::<Result<Vec<_>>>()?;
            let op = op_for_rows(&node.op, n);
            let cx = EvalCx { tensors: &model.tensors, path: self.engine.path(), packed, work };
            let out = op.eval(&cx, &ins)?;
            let v = n_in + i;
            if let (Some(Some(axis)), Some(Some(data)), Some(full)) =
                (self.plan.cached.get(v), self.cache.get_mut(v), values.get(v))
            {
                write_axis(data, &full.shape, *axis, p0, &out, work)?;
            }
            if let Some(slot) = step.get_mut(v) {
                *slot = Some(out);
            }
            for &u in &node.inputs {
                if last_use.get(u as usize) == Some(&i)
                    && let Some(slot) = step.get_mut(u as usize)
                {
                    *slot = None;
                }
            }
        }
        self.position = end;
        let logits = model.outputs.first().map(|o| o.value as usize).ok_or(Error::Internal("no output"))?;
        step.get_mut(logits).and_then(Option::take).ok_or(Error::Internal("logits missing"))
    }
}

/// The work of picking a token from `vocab` logits ([`greedy`]).
pub fn greedy_cost(vocab: usize) -> Work {
    Work { elem_ops: vocab as u64, steps: 1, calls: 1, ..Work::default() }
}

/// The token the last row of `logits` picks greedily: the largest logit, ties to the lowest
/// token (as ArgMax, docs/arithmetic.md §8). Counts [`greedy_cost`].
pub fn greedy(logits: &Tensor, work: &Counter) -> Result<u32> {
    let vocab = logits.shape().last().copied().unwrap_or(0);
    let last = logits.len().checked_sub(vocab).filter(|_| vocab > 0).ok_or(Error::Internal("no logits"))?;
    work.calls(1);
    work.steps(1);
    work.elems(vocab);
    let (mut best, mut top) = (0usize, i64::MIN);
    for j in 0..vocab {
        let x = logits.data().get_i64(last + j).ok_or(Error::Internal("logit missing"))?;
        if x > top || j == 0 {
            (best, top) = (j, x);
        }
    }
    u32::try_from(best).map_err(|_| Error::Internal("token index"))
}

impl Engine {
    /// Greedy generation: feeds `prompt` one position at a time, then appends the greedy token
    /// `tokens` times; returns the new tokens. Counts its work into `work`, which stays within
    /// [`Plan::generation_cost`].
    pub fn generate(&self, prompt: &[u32], tokens: usize, work: &Counter) -> Result<Vec<u32>> {
        let plan = self.plan()?;
        plan.steps(prompt.len(), tokens)?;
        let mut g = Generation::new(self, work)?;
        let mut logits = None;
        for &t in prompt {
            logits = Some(g.feed(&[t], work)?);
        }
        let mut out = Vec::with_capacity(tokens);
        while out.len() < tokens {
            let next = greedy(logits.as_ref().ok_or(Error::EmptyPrompt)?, work)?;
            out.push(next);
            if out.len() < tokens {
                logits = Some(g.feed(&[next], work)?);
            }
        }
        Ok(out)
    }
}
