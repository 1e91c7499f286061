//! Each op on small inputs whose outputs were worked out by hand, then random shapes on every
//! kernel path against the reference.

mod common;

use common::*;
use fixpoint_ml::format::{ModelBuilder, NO_TENSOR};
use fixpoint_ml::ops::*;
use fixpoint_ml::{DType, Engine, Limits, Tensor, TensorData};

fn i8t(shape: Vec<usize>, v: &[i8]) -> Tensor {
    Tensor::i8(shape, v.to_vec()).unwrap()
}

#[test]
fn fully_connected_raw_and_requantized() {
    // x - zp = [0, 1, 2]; rows [1,1,1] and [-1,0,2]; bias [10,-10] -> [13, -6].
    for requantized in [false, true] {
        let mut b = ModelBuilder::new();
        let x = b.input(DType::I8, vec![1, 3], q());
        let weights = b.tensor(i8t(vec![2, 3], &[1, 1, 1, -1, 0, 2]));
        let bias = b.tensor(Tensor::i32(vec![2], vec![10, -10]).unwrap());
        // scale 2^30 / 2^31 = 0.5 on both channels, ReLU: [6.5 -> 7, -3 -> 0].
        let rq = requantized.then(|| requant(&mut b, vec![1 << 30], vec![31], 0, 0, 127));
        let y = b.op(Op::FullyConnected(FullyConnected { weights, bias, input_zero_point: 1, requant: rq }), &[x]);
        b.output(y, q());
        let out = run_all_paths(&b.finish().unwrap(), vec![i8t(vec![1, 3], &[1, 2, 3])]);
        if requantized {
            assert_eq!(out[0], i8t(vec![1, 2], &[7, 0]));
        } else {
            assert_eq!(out[0], Tensor::i32(vec![1, 2], vec![13, -6]).unwrap());
        }
    }
}

fn conv(window: Window, groups: u32, x: Tensor, w: Tensor) -> Tensor {
    let mut b = ModelBuilder::new();
    let xi = b.input(DType::I8, x.shape().to_vec(), q());
    let weights = b.tensor(w);
    let y = b
        .op(Op::Conv2d(Conv2d { weights, bias: NO_TENSOR, input_zero_point: 0, window, groups, requant: None }), &[xi]);
    b.output(y, q());
    run_all_paths(&b.finish().unwrap(), vec![x]).remove(0)
}

#[test]
fn conv2d_by_hand() {
    let x = i8t(vec![3, 3, 1], &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
    let ones = i8t(vec![1, 2, 2, 1], &[1, 1, 1, 1]);
    // Valid 2x2 sums.
    assert_eq!(
        conv(Window::new(2, 2), 1, x.clone(), ones.clone()),
        Tensor::i32(vec![2, 2, 1], vec![12, 16, 24, 28]).unwrap()
    );
    // Padding 1 top/left, stride 2: windows {1}, {2,3}, {4,7}, {5,6,8,9}.
    let mut w = Window::new(2, 2);
    (w.pad_top, w.pad_left, w.stride_h, w.stride_w) = (1, 1, 2, 2);
    assert_eq!(conv(w, 1, x.clone(), ones.clone()), Tensor::i32(vec![2, 2, 1], vec![1, 5, 11, 28]).unwrap());
    // Dilation 2: the four corners.
    let mut w = Window::new(2, 2);
    (w.dilation_h, w.dilation_w) = (2, 2);
    assert_eq!(conv(w, 1, x, ones), Tensor::i32(vec![1, 1, 1], vec![20]).unwrap());
    // Depthwise, 2 channels: weights +1 and -1.
    let x2 = i8t(vec![1, 2, 2], &[3, 4, -5, 6]);
    let w2 = i8t(vec![2, 1, 1, 1], &[1, -1]);
    assert_eq!(conv(Window::new(1, 1), 2, x2, w2), Tensor::i32(vec![1, 2, 2], vec![3, -4, -5, -6]).unwrap());
}

#[test]
fn add_rounds_once_half_up() {
    let mut b = ModelBuilder::new();
    let a = b.input(DType::I8, vec![3], q());
    let c = b.input(DType::I8, vec![3], q());
    let add = Add {
        a_zero_point: 0,
        a_multiplier: 1 << 30,
        b_zero_point: 2,
        b_multiplier: 1 << 30,
        shift: 31,
        zero_point: 0,
        lo: -128,
        hi: 127,
    };
    let y = b.op(Op::Add(add), &[a, c]);
    b.output(y, q());
    // (11 + 2)/2 = 6.5 -> 7; (-21 + 2)/2 = -9.5 -> -9; (127 + 125)/2 = 126.
    let out = run_all_paths(&b.finish().unwrap(), vec![i8t(vec![3], &[11, -21, 127]), i8t(vec![3], &[4, 4, 127])]);
    assert_eq!(out[0], i8t(vec![3], &[7, -9, 126]));
}

#[test]
fn pools_by_hand() {
    let x = i8t(vec![2, 2, 1], &[1, 2, 3, 4]);
    let xn = i8t(vec![2, 2, 1], &[-1, -2, -3, -4]);
    let mut w = Window::new(2, 2);
    (w.pad_bottom, w.pad_right) = (1, 1);
    for (input, avg, max) in [(x, [3i8, 3, 4, 4], [4i8, 4, 4, 4]), (xn, [-3, -3, -4, -4], [-1, -2, -3, -4])] {
        for (op, expect) in [(Op::AvgPool(AvgPool { window: w }), avg), (Op::MaxPool(MaxPool { window: w }), max)] {
            let mut b = ModelBuilder::new();
            let xi = b.input(DType::I8, vec![2, 2, 1], q());
            let y = b.op(op, &[xi]);
            b.output(y, q());
            let out = run_all_paths(&b.finish().unwrap(), vec![input.clone()]);
            assert_eq!(out[0], i8t(vec![2, 2, 1], &expect));
        }
    }
}

#[test]
fn lut_reshape_concat_argmax_requantize() {
    let mut b = ModelBuilder::new();
    let x = b.input(DType::I8, vec![2, 2], q());
    // Table: saturating negation.
    let table: Vec<i8> = (-128i32..128).map(|v| (-v).clamp(-128, 127) as i8).collect();
    let t = b.tensor(i8t(vec![256], &table));
    let neg = b.op(Op::Lut8(Lut8 { table: t }), &[x]);
    let cat = b.op(Op::Concat(Concat { axis: 1 }), &[x, neg]); // [2, 4]
    let flat = b.op(Op::Reshape(Reshape { shape: vec![8] }), &[cat]);
    let am = b.op(Op::ArgMax(ArgMax), &[cat]); // per row
    // Requantize i8 -> i8 with scale 0.5, input zp 1, per-tensor.
    let rq = requant(&mut b, vec![1 << 30], vec![31], 0, -128, 127);
    let half = b.op(Op::Requantize(Requantize { input_zero_point: 1, requant: rq }), &[flat]);
    b.output(am, q());
    b.output(half, q());
    let out = run_all_paths(&b.finish().unwrap(), vec![i8t(vec![2, 2], &[-128, 5, 7, 7])]);
    // Rows: [-128, 5, 127, -5] -> argmax 2; [7, 7, -7, -7] -> tie -> 0.
    assert_eq!(out[0], Tensor::i32(vec![2], vec![2, 0]).unwrap());
    // (v - 1) / 2 half up: -129/2=-64.5->-64, 4/2=2, 126/2=63, -6/2=-3, 3, 3, -4, -4.
    assert_eq!(out[1], i8t(vec![8], &[-64, 2, 63, -3, 3, 3, -4, -4]));
}

#[test]
fn tree_ensemble_by_hand() {
    // Tree 0: x0 <= 10 ? (leaf +5) : (x1 <= -3 ? leaf -7 : leaf 100). Tree 1: leaf 1.
    let nodes = vec![
        0, 10, 1, 2, /*1*/ -1, 0, 0, 0, /*2*/ 1, -3, 3, 4, /*3*/ -1, 0, 0, 0, /*4*/ -1, 0, 0, 0,
        /*5*/ -1, 0, 0, 0,
    ];
    let leaves = vec![0, 0, 0, 5, 0, 0, 0, -7, 0, 100, 0, 1];
    let mut b = ModelBuilder::new();
    let x = b.input(DType::I32, vec![2], q());
    let te = TreeEnsemble {
        nodes: b.tensor(Tensor::i32(vec![6, 4], nodes).unwrap()),
        leaves: b.tensor(Tensor::i64(vec![6, 2], leaves).unwrap()),
        roots: b.tensor(Tensor::i32(vec![2], vec![0, 5]).unwrap()),
        base: b.tensor(Tensor::i64(vec![2], vec![1000, 0]).unwrap()),
    };
    let y = b.op(Op::TreeEnsemble(te), &[x]);
    b.output(y, q());
    let model = b.finish().unwrap();
    for (input, expect) in [([10, 0], [1000, 6]), ([11, -3], [1000, -6]), ([11, -2], [1000, 101])] {
        let out = run_all_paths(&model, vec![Tensor::i32(vec![2], input.to_vec()).unwrap()]);
        assert_eq!(out[0], Tensor::i64(vec![2], expect.to_vec()).unwrap());
    }
}

#[test]
fn random_fully_connected_all_paths_agree() {
    let mut r = rng(11);
    for _ in 0..60 {
        use rand::Rng;
        let (m, k, n) = (r.random_range(1..=9), r.random_range(1..=200), r.random_range(1..=40));
        let model = random_fc_model(&mut r, m, k, n);
        let x = Tensor::i8(vec![m, k], random_i8(&mut r, m * k)).unwrap();
        run_all_paths(&model, vec![x]);
    }
}

#[test]
fn random_conv_all_paths_agree() {
    let mut r = rng(12);
    for _ in 0..150 {
        let (model, shape) = random_conv_model(&mut r);
        let n = shape.iter().product();
        let x = Tensor::new(shape, TensorData::I8(random_i8(&mut r, n))).unwrap();
        run_all_paths(&model, vec![x]);
    }
}

#[test]
fn gather_picks_rows_and_an_index_outside_the_table_fails_the_run() {
    let mut b = ModelBuilder::new();
    let x = b.input(DType::I32, vec![2, 2], q());
    let t = b.tensor(i8t(vec![3, 2], &[1, 2, 3, 4, 5, 6]));
    let y = b.op(Op::Gather(Gather { table: t }), &[x]);
    b.output(y, q());
    let model = b.finish().unwrap();
    let ids = |v: Vec<i32>| Tensor::i32(vec![2, 2], v).unwrap();
    let out = run_all_paths(&model, vec![ids(vec![2, 0, 0, 1])]);
    assert_eq!(out[0], i8t(vec![2, 2, 2], &[5, 6, 1, 2, 1, 2, 3, 4]));
    let engine = Engine::load(&model.to_bytes(), &Limits::default()).unwrap();
    for bad in [3, -1, i32::MAX, i32::MIN] {
        let err = engine.run(vec![ids(vec![0, bad, 1, 2])]).unwrap_err();
        assert_eq!(err, fixpoint_ml::Error::IndexOutOfRange { index: i64::from(bad), rows: 3 });
    }
}

/// `Σ_k (a − za)(b − zb)` by the definition, batched; `b` as `[.., K, N]`.
fn naive_matmul(a: &[i8], b: &[i8], (batch, m, k, n): (usize, usize, usize, usize), za: i32, zb: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for t in 0..batch {
        for i in 0..m {
            for j in 0..n {
                let s: i64 = (0..k)
                    .map(|x| {
                        let av = i64::from(a[t * m * k + i * k + x]) - i64::from(za);
                        let bv = i64::from(b[t * k * n + x * n + j]) - i64::from(zb);
                        av * bv
                    })
                    .sum();
                out.push(i32::try_from(s).unwrap());
            }
        }
    }
    out
}

/// Both the direct product (M ≤ 8) and the packed GEMM (M > 8).
#[test]
fn matmul_of_activations_matches_the_definition_on_every_path() {
    use rand::{Rng, SeedableRng};
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(16);
    for case in 0..40 {
        let (batch, m, k, n) =
            (r.random_range(1..=3), r.random_range(1..=20), r.random_range(1..=70), r.random_range(1..=20));
        let (za, zb) = (r.random_range(-128..=127), r.random_range(-128..=127));
        let transposed = case % 2 == 1;
        let a: Vec<i8> = (0..batch * m * k).map(|_| r.random()).collect();
        let b: Vec<i8> = (0..batch * k * n).map(|_| r.random()).collect();
        // B as given to the op: [.., K, N], or its transpose [.., N, K].
        let b_given: Vec<i8> = if transposed {
            (0..batch)
                .flat_map(|t| (0..n).flat_map(move |j| (0..k).map(move |x| (t, x, j))))
                .map(|(t, x, j)| b[t * k * n + x * n + j])
                .collect()
        } else {
            b.clone()
        };
        let mut mb = ModelBuilder::new();
        let xa = mb.input(DType::I8, vec![batch, m, k], q());
        let b_shape = if transposed { vec![batch, n, k] } else { vec![batch, k, n] };
        let xb = mb.input(DType::I8, b_shape.clone(), q());
        let mm = MatMul { a_zero_point: za, b_zero_point: zb, b_transposed: u8::from(transposed), requant: None };
        let y = mb.op(Op::MatMul(mm), &[xa, xb]);
        mb.output(y, q());
        let out = run_all_paths(&mb.finish().unwrap(), vec![i8t(vec![batch, m, k], &a), i8t(b_shape, &b_given)]);
        let want = naive_matmul(&a, &b, (batch, m, k, n), za, zb);
        assert_eq!(out[0], Tensor::i32(vec![batch, m, n], want).unwrap(), "case {case}");
    }
}

#[test]
fn transpose_matches_index_arithmetic_for_every_permutation() {
    // [2, 3, 4] with x[i][j][k] = 100·i + 10·j + k (as i32), every permutation of 3 axes.
    let shape = [2usize, 3, 4];
    let x: Vec<i32> =
        (0..2).flat_map(|i| (0..3).flat_map(move |j| (0..4).map(move |k| 100 * i + 10 * j + k))).collect();
    for perm in [[0u8, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]] {
        let mut b = ModelBuilder::new();
        let xi = b.input(DType::I32, shape.to_vec(), q());
        let y = b.op(Op::Transpose(Transpose { perm: perm.to_vec() }), &[xi]);
        b.output(y, q());
        let out = run_all_paths(&b.finish().unwrap(), vec![Tensor::i32(shape.to_vec(), x.clone()).unwrap()]);
        let p: Vec<usize> = perm.iter().map(|&a| usize::from(a)).collect();
        let out_shape: Vec<usize> = p.iter().map(|&a| shape[a]).collect();
        let mut want = Vec::new();
        for a in 0..out_shape[0] {
            for b2 in 0..out_shape[1] {
                for c in 0..out_shape[2] {
                    let mut src = [0usize; 3];
                    src[p[0]] = a;
                    src[p[1]] = b2;
                    src[p[2]] = c;
                    want.push(100 * src[0] as i32 + 10 * src[1] as i32 + src[2] as i32);
                }
            }
        }
        assert_eq!(out[0], Tensor::i32(out_shape, want).unwrap(), "perm {perm:?}");
    }
}
