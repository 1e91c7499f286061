//! Generation with a key/value cache (crate::decode, docs/model-format.md §9): each step equals
//! its row of the whole-window run on every kernel path, greedy generation equals re-running the
//! window, a step's counted work stays within the planned step cost at every position, and
//! graphs that read later positions are refused.

#[path = "common/adversarial.rs"]
mod adversarial;
#[path = "common/causal.rs"]
mod causal;

use adversarial::Gen;
use causal::{Dims, decoder, exp_table};
use fixpoint_ml::decode::Layout;
use fixpoint_ml::format::{Model, ModelBuilder, Quant};
use fixpoint_ml::kernels::Path;
use fixpoint_ml::ops::{FullyConnected, Gather, MatMul, Op, Reshape, Softmax, Transpose};
use fixpoint_ml::{Counter, DType, Engine, Error, Generation, Limits, Tensor, TensorData};

const DIMS: Dims = Dims { t: 24, vocab: 40, d: 32, heads: 4, layers: 2 };

fn engine(model: &Model, path: Path) -> Engine {
    Engine::load_with_path(&model.to_bytes(), &Limits::default(), path).unwrap()
}

fn tokens(g: &mut Gen, n: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|_| g.below(vocab as u64) as u32).collect()
}

/// The whole-window run on `seq` (padded with token 0): logits `[T, V]` as i64 rows.
fn window(e: &Engine, seq: &[u32]) -> Vec<Vec<i64>> {
    let t = DIMS.t;
    let mut toks: Vec<u8> = seq.iter().map(|&x| x as u8).collect();
    toks.resize(t, 0);
    let inputs = vec![
        Tensor::new(vec![t], TensorData::U8(toks)).unwrap(),
        Tensor::new(vec![t], TensorData::U8((0..t as u8).collect())).unwrap(),
    ];
    let out = e.run(inputs).unwrap().remove(0);
    rows(&out)
}

fn rows(t: &Tensor) -> Vec<Vec<i64>> {
    let v = *t.shape().last().unwrap();
    (0..t.len() / v).map(|r| (0..v).map(|j| t.data().get_i64(r * v + j).unwrap()).collect()).collect()
}

#[test]
fn the_decoder_is_causal_and_caches_only_keys_and_values() {
    let e = engine(&decoder(DIMS, 1), Path::Reference);
    let plan = e.plan().unwrap();
    assert_eq!((plan.context(), plan.vocab(), plan.token_dtype()), (DIMS.t, DIMS.vocab, DType::U8));
    // Two scores and two probability tensors per block; everything else in rows.
    let scores = plan.layouts().iter().filter(|l| **l == Layout::Scores).count();
    assert_eq!(scores, DIMS.layers);
    // Keys and values of each block: [H, T, dh] i8 each.
    let dh = DIMS.d / DIMS.heads;
    assert_eq!(plan.cache_bytes(), (DIMS.layers * 2 * DIMS.heads * DIMS.t * dh) as u64);
}

#[test]
fn every_step_equals_its_row_of_the_whole_window_on_every_path() {
    let model = decoder(DIMS, 2);
    let mut g = Gen::new(7);
    for path in Path::available() {
        let e = engine(&model, path);
        for trial in 0..3 {
            let seq = tokens(&mut g, DIMS.t, DIMS.vocab);
            let whole = window(&e, &seq);
            // One position at a time, then in uneven chunks: the same rows either way.
            let work = Counter::new();
            let mut one = Generation::new(&e, &work).unwrap();
            for (p, &tok) in seq.iter().enumerate() {
                let step = rows(&one.feed(&[tok], &work).unwrap());
                assert_eq!(step, vec![whole[p].clone()], "path {path:?} trial {trial} position {p}");
            }
            let mut chunked = Generation::new(&e, &work).unwrap();
            let mut at = 0;
            for n in [5usize, 1, 7, 3, 8] {
                let got = rows(&chunked.feed(&seq[at..at + n], &work).unwrap());
                assert_eq!(got, whole[at..at + n].to_vec(), "path {path:?} chunk at {at}");
                at += n;
            }
            assert_eq!(at, DIMS.t);
        }
        // The logits are not degenerate (the comparison above could not pass by accident).
        let seq = tokens(&mut g, DIMS.t, DIMS.vocab);
        let whole = window(&e, &seq);
        assert!(whole.iter().any(|r| r.iter().any(|&x| x != r[0])));
        assert!(whole.windows(2).any(|w| w[0] != w[1]));
    }
}

#[test]
fn greedy_generation_equals_rerunning_the_window_each_token() {
    let model = decoder(DIMS, 3);
    let e = engine(&model, Path::Reference);
    let mut g = Gen::new(11);
    for prompt_len in [1usize, 6, 13] {
        let prompt = tokens(&mut g, prompt_len, DIMS.vocab);
        let n = DIMS.t + 1 - prompt_len;
        let got = e.generate(&prompt, n, &Counter::new()).unwrap();
        // The slow way: the whole window for each new token, the largest logit of the last row
        // (the first of equals).
        let mut seq = prompt.clone();
        for _ in 0..n {
            let last = &window(&e, &seq)[seq.len() - 1];
            let best = (0..last.len()).fold(0, |b, j| if last[j] > last[b] { j } else { b });
            seq.push(best as u32);
        }
        assert_eq!(got, seq[prompt_len..].to_vec(), "prompt of {prompt_len}");
        // Not a fixed point of one token.
        assert!(got.iter().any(|&t| t != got[0]), "degenerate generation {got:?}");
    }
}

#[test]
fn a_step_counts_no_more_than_the_step_cost_at_any_position() {
    let model = decoder(DIMS, 4);
    let mut g = Gen::new(5);
    for path in Path::available() {
        let e = engine(&model, path);
        let plan = e.plan().unwrap();
        let setup = Counter::new();
        let mut run = Generation::new(&e, &setup).unwrap();
        assert!(setup.get().within(&plan.setup_cost()));
        for p in 0..DIMS.t {
            let work = Counter::new();
            let logits = run.feed(&tokens(&mut g, 1, DIMS.vocab), &work).unwrap();
            fixpoint_ml::decode::greedy(&logits, &work).unwrap();
            assert!(
                work.get().within(&plan.step_cost()),
                "path {path:?} position {p}: {:?} > {:?}",
                work.get(),
                plan.step_cost()
            );
        }
        // And a whole generation within its cost, which is what gas is priced from.
        let work = Counter::new();
        e.generate(&tokens(&mut g, 4, DIMS.vocab), DIMS.t - 3, &work).unwrap();
        assert!(work.get().within(&plan.generation_cost(4, DIMS.t - 3).unwrap()));
        // The cost is tight enough to mean something: the last step's MACs within 25 % of it.
        let last = Counter::new();
        let mut run = Generation::new(&e, &last).unwrap();
        run.feed(&tokens(&mut g, DIMS.t - 1, DIMS.vocab), &Counter::new()).unwrap();
        let work = Counter::new();
        run.feed(&[1], &work).unwrap();
        assert!(work.get().macs * 4 >= plan.step_cost().macs * 3, "{:?} vs {:?}", work.get(), plan.step_cost());
    }
}

#[test]
fn bad_prompts_are_errors_not_panics() {
    let e = engine(&decoder(DIMS, 5), Path::Reference);
    let c = Counter::new();
    assert_eq!(e.generate(&[], 3, &c), Err(Error::EmptyPrompt));
    assert!(matches!(e.generate(&[1, 2, 3], DIMS.t - 1, &c), Err(Error::ContextExceeded { .. })));
    assert_eq!(e.generate(&[1, 2, 3], DIMS.t - 2, &c).map(|v| v.len()), Ok(DIMS.t - 2));
    // A token the embedding table does not have, and one u8 cannot hold.
    assert!(matches!(e.generate(&[1, DIMS.vocab as u32], 2, &c), Err(Error::IndexOutOfRange { .. })));
    assert!(matches!(e.generate(&[300], 2, &c), Err(Error::TokenOutOfRange { token: 300, .. })));
    let mut run = Generation::new(&e, &c).unwrap();
    assert!(matches!(run.feed(&[], &c), Err(Error::ContextExceeded { .. })));
}

/// A one-block attention model whose graph `tamper` may change, for the refusals.
fn attention(tamper: &str) -> Model {
    let (t, d, h) = (8usize, 12usize, 2usize);
    let mut g = Gen::new(9);
    let mut b = ModelBuilder::new();
    let tokens = b.input(DType::U8, vec![t], Quant::NONE);
    let emb = b.tensor(Tensor::i8(vec![16, d], g.i8s(16 * d)).unwrap());
    let x = b.op(Op::Gather(Gather { table: emb }), &[tokens]);
    let split = |b: &mut ModelBuilder, v: u32| {
        let r = b.op(Op::Reshape(Reshape { shape: vec![t as u32, h as u32, (d / h) as u32] }), &[v]);
        b.op(Op::Transpose(Transpose { perm: vec![1, 0, 2] }), &[r])
    };
    let x = match tamper {
        // Mixing positions: the rows of a [d, T] view.
        "reshape" => b.op(Op::Reshape(Reshape { shape: vec![d as u32, t as u32] }), &[x]),
        // A layer over the position axis.
        "fc over positions" => {
            let tr = b.op(Op::Transpose(Transpose { perm: vec![1, 0] }), &[x]);
            let w = b.tensor(Tensor::i8(vec![t, t], g.i8s(t * t)).unwrap());
            let y = b.op(
                Op::FullyConnected(FullyConnected {
                    weights: w,
                    bias: fixpoint_ml::format::NO_TENSOR,
                    input_zero_point: 0,
                    requant: None,
                }),
                &[tr],
            );
            return finish(b, y);
        }
        _ => x,
    };
    let (q, k) = (split(&mut b, x), split(&mut b, x));
    let s = b.op(Op::MatMul(MatMul { a_zero_point: 0, b_zero_point: 0, b_transposed: 1, requant: None }), &[q, k]);
    if tamper == "raw scores out" {
        return finish(b, s);
    }
    let causal = u8::from(tamper != "softmax sees the future");
    let s8 = {
        // The scores are i32 without a requant; the softmax needs i8: requantize them.
        let m = b.tensor(Tensor::i32(vec![1], vec![1 << 30]).unwrap());
        let sh = b.tensor(Tensor::new(vec![1], TensorData::U8(vec![36])).unwrap());
        let rq = fixpoint_ml::ops::Requant { multiplier: m, shift: sh, zero_point: 0, lo: -128, hi: 127 };
        b.op(Op::Requantize(fixpoint_ml::ops::Requantize { input_zero_point: 0, requant: rq }), &[s])
    };
    let table = b.tensor(Tensor::i32(vec![256], exp_table()).unwrap());
    let p = b.op(Op::Softmax(Softmax { table, causal, out: 1 }), &[s8]);
    let v = split(&mut b, x);
    let o = b.op(Op::MatMul(MatMul { a_zero_point: 0, b_zero_point: 0, b_transposed: 0, requant: None }), &[p, v]);
    let back = b.op(Op::Transpose(Transpose { perm: vec![1, 0, 2] }), &[o]);
    let y = b.op(Op::Reshape(Reshape { shape: vec![t as u32, d as u32] }), &[back]);
    finish(b, y)
}

fn finish(mut b: ModelBuilder, y: u32) -> Model {
    b.output(y, Quant::NONE);
    b.finish().unwrap()
}

#[test]
fn graphs_that_read_later_positions_cannot_generate() {
    let ok = engine(&attention("none"), Path::Reference);
    assert!(ok.plan().is_ok(), "{:?}", ok.plan().err());
    for (tamper, op) in
        [("reshape", "Reshape"), ("softmax sees the future", "Softmax"), ("fc over positions", "FullyConnected")]
    {
        let e = engine(&attention(tamper), Path::Reference);
        match e.plan() {
            Err(Error::NotCausal { name, .. }) => assert_eq!(name, op, "{tamper}"),
            other => panic!("{tamper}: {other:?}"),
        }
        // The whole-window run still works: only generation is refused.
        assert!(e.generate(&[1], 1, &Counter::new()).is_err());
    }
    // Scores as the output are not logits rows.
    assert!(matches!(engine(&attention("raw scores out"), Path::Reference).plan(), Err(Error::NotGenerative(_))));
    // A classifier is not generative.
    let mut b = ModelBuilder::new();
    let x = b.input(DType::I8, vec![1, 4], Quant::NONE);
    let w = b.tensor(Tensor::i8(vec![2, 4], vec![1; 8]).unwrap());
    let y = b.op(
        Op::FullyConnected(FullyConnected {
            weights: w,
            bias: fixpoint_ml::format::NO_TENSOR,
            input_zero_point: 0,
            requant: None,
        }),
        &[x],
    );
    assert!(matches!(engine(&finish(b, y), Path::Reference).plan(), Err(Error::NotGenerative(_))));
}

#[test]
fn random_decoder_shapes_step_like_the_window_within_their_cost() {
    let mut g = Gen::new(99);
    for case in 0..12 {
        let heads = 1 + g.below(4) as usize;
        let dims = Dims {
            t: 2 + g.below(20) as usize,
            vocab: 2 + g.below(60) as usize,
            d: heads * (1 + g.below(12) as usize),
            heads,
            layers: 1 + g.below(3) as usize,
        };
        let model = decoder(dims, 1000 + case);
        let e = engine(&model, Path::Portable);
        let plan = e.plan().unwrap_or_else(|err| panic!("{dims:?}: {err}"));
        let seq: Vec<u32> = tokens(&mut g, dims.t, dims.vocab);
        let mut toks: Vec<u8> = seq.iter().map(|&x| x as u8).collect();
        toks.resize(dims.t, 0);
        let whole = rows(
            &e.run(vec![
                Tensor::new(vec![dims.t], TensorData::U8(toks)).unwrap(),
                Tensor::new(vec![dims.t], TensorData::U8((0..dims.t as u8).collect())).unwrap(),
            ])
            .unwrap()[0],
        );
        let mut run = Generation::new(&e, &Counter::new()).unwrap();
        for (p, &tok) in seq.iter().enumerate() {
            let work = Counter::new();
            let step = rows(&run.feed(&[tok], &work).unwrap());
            assert_eq!(step, vec![whole[p].clone()], "{dims:?} position {p}");
            assert!(work.get().within(&plan.step_cost()), "{dims:?} position {p}");
        }
    }
}
