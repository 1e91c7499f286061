//! Helpers shared by the integration tests: small model builders and an all-paths runner.
#![allow(dead_code, unreachable_pub, missing_docs)]

use fixpoint_ml::format::{Model, ModelBuilder, Quant};
use fixpoint_ml::kernels::Path;
use fixpoint_ml::ops::{Conv2d, FullyConnected, Op, Requant, Window};
use fixpoint_ml::{DType, Engine, Limits, Tensor, verify};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

pub fn q() -> Quant {
    Quant::NONE
}

/// Adds per-channel requant tensors and returns the Requant attribute.
pub fn requant(b: &mut ModelBuilder, m: Vec<i32>, n: Vec<u8>, zp: i32, lo: i32, hi: i32) -> Requant {
    let len_m = m.len();
    let len_n = n.len();
    let multiplier = b.tensor(Tensor::i32(vec![len_m], m).unwrap());
    let shift = b.tensor(Tensor::new(vec![len_n], fixpoint_ml::TensorData::U8(n)).unwrap());
    Requant { multiplier, shift, zero_point: zp, lo, hi }
}

/// Runs a model on every available path and checks they agree; returns the reference outputs.
pub fn run_all_paths(model: &Model, inputs: Vec<Tensor>) -> Vec<Tensor> {
    let bytes = model.to_bytes();
    let reference = Engine::load_with_path(&bytes, &Limits::default(), Path::Reference).unwrap();
    let expect = reference.run(inputs.clone()).unwrap();
    for path in Path::available() {
        let e = reference.with_path(path).unwrap();
        assert_eq!(e.run(inputs.clone()).unwrap(), expect, "path {path:?} differs from the reference");
    }
    expect
}

pub fn random_i8(rng: &mut ChaCha8Rng, n: usize) -> Vec<i8> {
    (0..n).map(|_| rng.random::<i8>()).collect()
}

/// A random requant block for `n` channels with accumulators of about `k` products.
pub fn random_requant(b: &mut ModelBuilder, rng: &mut ChaCha8Rng, n: usize, k: usize) -> Requant {
    // Accumulators of k random products have a spread of about sqrt(k)·5400; scale them to
    // about ±40 so outputs use the i8 range without saturating.
    let bits = ((k as f64).sqrt() * 135.0).log2().round() as i32;
    let m = (0..n).map(|_| rng.random_range((1i32 << 30)..i32::MAX)).collect();
    let s = (0..n).map(|_| (31 + bits + rng.random_range(-1..=1)).clamp(1, 62) as u8).collect();
    let zp = rng.random_range(-20..=20);
    let relu = rng.random::<bool>();
    requant(b, m, s, zp, if relu { zp } else { -128 }, 127)
}

/// One random Conv2D layer (random geometry, groups, padding), requantized or raw.
pub fn random_conv_model(rng: &mut ChaCha8Rng) -> (Model, Vec<usize>) {
    let groups = [1usize, 1, 2, 3][rng.random_range(0..4)];
    let depthwise = rng.random_ratio(1, 4);
    let cg = if depthwise { 1 } else { rng.random_range(1..=4) };
    let groups = if depthwise { rng.random_range(1..=6) } else { groups };
    let c = cg * groups;
    let ocg = rng.random_range(1..=5);
    let oc = ocg * groups;
    let (kh, kw) = (rng.random_range(1..=3), rng.random_range(1..=3));
    let mut win = Window::new(kh as u16, kw as u16);
    win.stride_h = rng.random_range(1..=2);
    win.stride_w = rng.random_range(1..=2);
    win.dilation_h = rng.random_range(1..=2);
    win.dilation_w = rng.random_range(1..=2);
    win.pad_top = rng.random_range(0..=2);
    win.pad_left = rng.random_range(0..=2);
    win.pad_bottom = rng.random_range(0..=2);
    win.pad_right = rng.random_range(0..=2);
    let ext_h = usize::from(win.dilation_h) * (kh - 1) + 1;
    let ext_w = usize::from(win.dilation_w) * (kw - 1) + 1;
    let h = rng.random_range(ext_h.max(1)..=ext_h + 6);
    let w = rng.random_range(ext_w.max(1)..=ext_w + 6);
    let mut b = ModelBuilder::new();
    let zp = rng.random_range(-128..=127);
    let x = b.input(DType::I8, vec![h, w, c], q());
    let weights = b.tensor(Tensor::i8(vec![oc, kh, kw, cg], random_i8(rng, oc * kh * kw * cg)).unwrap());
    let bias = if rng.random() {
        b.tensor(Tensor::i32(vec![oc], (0..oc).map(|_| rng.random_range(-5000..5000)).collect()).unwrap())
    } else {
        fixpoint_ml::format::NO_TENSOR
    };
    let rq = if rng.random() { Some(random_requant(&mut b, rng, oc, kh * kw * cg)) } else { None };
    let y = b.op(
        Op::Conv2d(Conv2d { weights, bias, input_zero_point: zp, window: win, groups: groups as u32, requant: rq }),
        &[x],
    );
    b.output(y, q());
    (b.finish().unwrap(), vec![h, w, c])
}

/// One random FullyConnected layer over `[m, k]`.
pub fn random_fc_model(rng: &mut ChaCha8Rng, m: usize, k: usize, n: usize) -> Model {
    let mut b = ModelBuilder::new();
    let x = b.input(DType::I8, vec![m, k], q());
    let weights = b.tensor(Tensor::i8(vec![n, k], random_i8(rng, n * k)).unwrap());
    let bias = b.tensor(
        Tensor::i32(vec![n], (0..n).map(|_| rng.random_range(-2000 * k as i32..2000 * k as i32)).collect()).unwrap(),
    );
    let rq = if rng.random() { Some(random_requant(&mut b, rng, n, k)) } else { None };
    let y = b.op(
        Op::FullyConnected(FullyConnected {
            weights,
            bias,
            input_zero_point: rng.random_range(-128..=127),
            requant: rq,
        }),
        &[x],
    );
    b.output(y, q());
    b.finish().unwrap()
}

/// Verifies with default limits (convenience).
pub fn verified(model: Model) -> fixpoint_ml::Verified {
    verify(model, &Limits::default()).unwrap()
}
