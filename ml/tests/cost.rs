//! The verifier's cost bounds the work the interpreter really does (issue 11): for random and
//! adversarial models, on the portable path and every other available production path,
//! `Engine::run_counted`'s count is within `Cost::work()` component by component (the reference
//! path, the tests' definition, in MACs), and every path gives the reference's bits. The `regression_*` tests are the findings of issue 11; each
//! failed against the costs of the verifier before the fix.

#[path = "common/adversarial.rs"]
mod adversarial;
mod common;

use common::*;
use fixpoint_ml::format::Model;
use fixpoint_ml::kernels::Path;
use fixpoint_ml::{DType, Engine, Limits, Tensor, Work};
use rand::Rng;

/// Runs `model` on every available path; checks the count against the cost on each and the
/// outputs against the reference. Returns the portable path's count and the bound.
fn check(model: &Model, inputs: &[Tensor]) -> (Work, Work) {
    let bytes = model.to_bytes();
    let reference = Engine::load_with_path(&bytes, &Limits::default(), Path::Reference).unwrap();
    let bound = reference.cost().work();
    let (expect, _) = reference.run_counted(inputs.to_vec()).unwrap();
    let mut portable = Work::default();
    for path in Path::available() {
        let e = reference.with_path(path).unwrap();
        let (out, counted) = e.run_counted(inputs.to_vec()).unwrap();
        assert_eq!(out, expect, "path {path:?} differs from the reference");
        if path == Path::Reference {
            // The definition (a test oracle, not a validator's path) is bounded in MACs only.
            assert!(counted.macs <= bound.macs, "reference: counted {counted:?} exceeds the cost {bound:?}");
            continue;
        }
        assert!(counted.within(&bound), "path {path:?}: counted {counted:?} exceeds the cost {bound:?}");
        if path == Path::Portable {
            portable = counted;
        }
    }
    (portable, bound)
}

#[test]
fn adversarial_models_stay_within_their_cost() {
    let cases = adversarial::cases(1 << 12);
    assert!(cases.len() > 40, "every family must survive verification at the test scale");
    for case in cases {
        let (counted, bound) = check(&case.model, &case.inputs);
        // The bound is tight enough to price by: no component more than 8x (plus a constant)
        // above what the portable path counted.
        let loose = |c: u64, b: u64| b > c.saturating_mul(8).saturating_add(64);
        assert!(
            !(loose(counted.macs, bound.macs)
                || loose(counted.elem_ops, bound.elem_ops)
                || loose(counted.steps, bound.steps)
                || loose(counted.calls, bound.calls)
                || loose(counted.bytes, bound.bytes)),
            "{} {}: cost {bound:?} is far above the count {counted:?}",
            case.op,
            case.name
        );
    }
}

fn random_input(model: &Model, rng: &mut rand_chacha::ChaCha8Rng) -> Vec<Tensor> {
    model
        .inputs
        .iter()
        .map(|d| {
            let n: usize = d.shape.iter().product();
            match d.dtype {
                DType::I8 => Tensor::i8(d.shape.clone(), random_i8(rng, n)).unwrap(),
                DType::I32 => {
                    Tensor::i32(d.shape.clone(), (0..n).map(|_| rng.random_range(-999..999)).collect()).unwrap()
                }
                other => panic!("no random input for {other:?}"),
            }
        })
        .collect()
}

#[test]
fn random_convolutions_and_dense_layers_stay_within_their_cost() {
    let mut rng = rng(11);
    for _ in 0..150 {
        let (model, _) = random_conv_model(&mut rng);
        let inputs = random_input(&model, &mut rng);
        check(&model, &inputs);
    }
    for _ in 0..60 {
        let (m, k, n) = (rng.random_range(1..=9), rng.random_range(1..=70), rng.random_range(1..=40));
        let model = random_fc_model(&mut rng, m, k, n);
        let inputs = random_input(&model, &mut rng);
        check(&model, &inputs);
    }
}

#[test]
fn random_adversarial_shapes_stay_within_their_cost() {
    let mut rng = rng(12);
    for _ in 0..120 {
        let c = rng.random_range(1..=6);
        let (h, w) = (rng.random_range(1..=9), rng.random_range(1..=9));
        let k = rng.random_range(1..=4u16);
        let mut win = fixpoint_ml::ops::Window::new(k, rng.random_range(1..=4));
        win.stride_h = rng.random_range(1..=3);
        win.stride_w = rng.random_range(1..=3);
        win.pad_top = rng.random_range(0..k);
        win.pad_left = rng.random_range(0..win.kernel_w);
        win.pad_bottom = rng.random_range(0..k);
        win.pad_right = rng.random_range(0..win.kernel_w);
        let case = match rng.random_range(0..6) {
            0 => adversarial::pool(true, h, w, c, win),
            1 => adversarial::pool(false, h, w, c, win),
            2 => adversarial::trees(rng.random_range(1..=40), rng.random_range(1..=12), rng.random_range(1..=30), 3),
            3 => adversarial::concat(
                DType::I8,
                rng.random_range(2..=16),
                rng.random_range(1..=20),
                rng.random_range(1..=3),
            ),
            4 => adversarial::argmax(DType::I32, rng.random_range(1..=30), rng.random_range(1..=5)),
            _ => adversarial::requantize(DType::I16, rng.random_range(1..=30), rng.random_range(1..=5)),
        };
        // Windows larger than their padded input are refused by the verifier: skip those.
        let Some(case) = case else { continue };
        if fixpoint_ml::verify(case.model.clone(), &Limits::default()).is_err() {
            continue;
        }
        check(&case.model, &case.inputs);
    }
}

// Regression tests for the findings of issue 11. Each failed on the verifier's old cost
// (`visits + O` for trees, MACs only for convolutions, `oh·ow·c·kh·kw` for pools, no steps,
// calls or bytes anywhere), checked by running them before the cost was fixed.

/// Finding 1: T roots reaching one leaf of O outputs add T·O values, not `visits + O`.
#[test]
fn regression_tree_leaf_rows_are_priced() {
    let case = adversarial::trees(256, 1, 512, 4).unwrap();
    let (counted, bound) = check(&case.model, &case.inputs);
    assert!(counted.elem_ops >= 256 * 512);
    assert!(bound.elem_ops >= counted.elem_ops);
}

/// Finding 2: depthwise Conv2D does per-group work (a kernel call, allocations, an im2col pass)
/// that MACs alone do not price.
#[test]
fn regression_depthwise_groups_are_priced() {
    let case = adversarial::conv(1, 1, 1024, 1024, 1024, fixpoint_ml::ops::Window::new(1, 1), false).unwrap();
    let (counted, bound) = check(&case.model, &case.inputs);
    assert!(counted.calls >= 3 * 1024, "per-group calls are counted: {counted:?}");
    assert!(bound.calls >= counted.calls && bound.steps >= counted.steps);
}

/// Finding 2 (pools): one channel makes every window cell a separate step.
#[test]
fn regression_one_channel_pools_are_priced() {
    for max in [true, false] {
        let case = adversarial::pool(max, 64, 64, 1, fixpoint_ml::ops::Window::new(1, 1)).unwrap();
        let (counted, bound) = check(&case.model, &case.inputs);
        assert!(counted.steps >= 64 * 64 * 2);
        assert!(bound.steps >= counted.steps && bound.elem_ops >= counted.elem_ops);
    }
}

/// Finding 2 (dense rows of one): a dot product per output is a step of its own.
#[test]
fn regression_dense_rows_of_one_are_priced() {
    let case = adversarial::fc(4096, 1, 1, true).unwrap();
    let (counted, bound) = check(&case.model, &case.inputs);
    assert!(counted.steps >= 4096);
    assert!(bound.steps >= counted.steps);
}

/// The interpreter's own copies (outputs leaving the value table) are counted and priced.
#[test]
fn output_copies_are_priced() {
    let case = adversarial::reshape(DType::I64, 1000).unwrap();
    let (counted, bound) = check(&case.model, &case.inputs);
    assert!(counted.bytes >= 2 * 8000, "the reshape copy and the output copy: {counted:?}");
    assert!(bound.bytes >= counted.bytes);
}

/// Requantize takes the i64 form where it is exact and the i128 definition elsewhere: the
/// values are the definition's, including i32 extremes and far zero points.
#[test]
fn requantize_equals_its_definition_at_the_extremes() {
    use fixpoint_ml::arith::requantize;
    use fixpoint_ml::format::{ModelBuilder, Quant};
    use fixpoint_ml::ops::{Op, Requantize};
    let mut rng = rng(13);
    for zp in [0, 7, -128, i32::MIN, i32::MAX, 1 << 30] {
        let mut b = ModelBuilder::new();
        let x = b.input(DType::I32, vec![5, 3], Quant::NONE);
        let m: Vec<i32> = (0..3).map(|_| rng.random_range((1 << 30)..i32::MAX)).collect();
        let n: Vec<u8> = (0..3).map(|_| rng.random_range(1..=62)).collect();
        let rq = requant(&mut b, m.clone(), n.clone(), 3, -100, 120);
        let y = b.op(Op::Requantize(Requantize { input_zero_point: zp, requant: rq }), &[x]);
        b.output(y, Quant::NONE);
        let model = b.finish().unwrap();
        let mut xs: Vec<i32> = (0..15).map(|_| rng.random()).collect();
        xs[..4].copy_from_slice(&[i32::MIN, i32::MAX, 0, -1]);
        let out = run_all_paths(&model, vec![Tensor::i32(vec![5, 3], xs.clone()).unwrap()]);
        let want: Vec<i8> = xs
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let c = i % 3;
                requantize(i64::from(v) - i64::from(zp), m[c], n[c], 3, -100, 120) as i8
            })
            .collect();
        assert_eq!(out[0].as_i8().unwrap(), want.as_slice(), "zero point {zp}");
    }
}

/// The example models (tests/vectors/models): their bound stays close to what they count on the
/// portable path, so typical models are not overpriced. Prints both for docs/gas.md.
#[test]
fn example_models_are_priced_close_to_their_count() {
    let dir = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../tests/vectors/models");
    for name in ["digits-mlp", "digits-cnn", "cancer-gbdt"] {
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap()).unwrap();
        let case = &doc["cases"][0];
        let bytes = hex::decode(case["model"].as_str().unwrap()).unwrap();
        let input = hex::decode(case["input"].as_str().unwrap()).unwrap();
        let e = Engine::load_with_path(&bytes, &Limits::default(), Path::Portable).unwrap();
        let inputs = fixpoint_ml::io::unpack_inputs(e.model(), &input).unwrap();
        let (_, counted) = e.run_counted(inputs).unwrap();
        let bound = e.cost().work();
        println!("{name}: counted {counted:?}\n{name}: bound   {bound:?}");
        assert!(counted.within(&bound));
    }
}

/// Add computes in i64 where the definition uses i128: same values over all i8 pairs at the
/// extreme multipliers, zero points and shifts.
#[test]
fn add_matches_the_i128_definition() {
    use fixpoint_ml::arith::{clamp_i128, round_shift};
    use fixpoint_ml::format::{ModelBuilder, Quant};
    use fixpoint_ml::ops::{Add, Op};
    let xs: Vec<i8> = (0..=255u8).flat_map(|a| std::iter::repeat_n(a as i8, 256)).collect();
    let ys: Vec<i8> = (0..65536u32).map(|i| (i % 256) as u8 as i8).collect();
    for (ma, mb, shift, zpa, zpb) in [
        (i32::MAX, i32::MAX, 1u8, -128, 127),
        (i32::MAX, 0, 62, 127, -128),
        (1 << 30, 12345, 31, 3, -7),
        (0, 1, 1, 0, 0),
    ] {
        let op = Add {
            a_zero_point: zpa,
            a_multiplier: ma,
            b_zero_point: zpb,
            b_multiplier: mb,
            shift,
            zero_point: -5,
            lo: -120,
            hi: 110,
        };
        let mut b = ModelBuilder::new();
        let x = b.input(DType::I8, vec![65536], Quant::NONE);
        let y = b.input(DType::I8, vec![65536], Quant::NONE);
        let z = b.op(Op::Add(op.clone()), &[x, y]);
        b.output(z, Quant::NONE);
        let model = b.finish().unwrap();
        let out = run_all_paths(
            &model,
            vec![Tensor::i8(vec![65536], xs.clone()).unwrap(), Tensor::i8(vec![65536], ys.clone()).unwrap()],
        );
        for (i, (&a, &c)) in xs.iter().zip(&ys).enumerate() {
            let ta = (i128::from(a) - i128::from(zpa)) * i128::from(ma);
            let tb = (i128::from(c) - i128::from(zpb)) * i128::from(mb);
            let want = clamp_i128(-5 + round_shift(ta + tb, shift), -120, 110) as i8;
            assert_eq!(out[0].as_i8().unwrap()[i], want, "a {a} b {c} case {ma} {mb} {shift}");
        }
    }
}

/// AddWide computes in i64 where the definition uses i128: same values at the extreme i16 inputs,
/// zero points, multipliers and shifts, with an i16 stream and an i8 or i16 branch.
#[test]
fn add_wide_matches_the_i128_definition() {
    use fixpoint_ml::arith::{clamp_i128, round_shift};
    use fixpoint_ml::format::{ModelBuilder, Quant};
    use fixpoint_ml::ops::{AddWide, Op};
    use fixpoint_ml::tensor::TensorData;
    // Every i16 value at the ends and a stride through the middle, against every i8 value.
    let wide: Vec<i16> = (-32_768..=-32_700).chain((-32_700..32_700).step_by(997)).chain(32_700..=32_767).collect();
    let n = wide.len() * 256;
    let xs: Vec<i16> = wide.iter().flat_map(|&a| std::iter::repeat_n(a, 256)).collect();
    let ys8: Vec<i8> = (0..n).map(|i| (i % 256) as u8 as i8).collect();
    let ys16: Vec<i16> = (0..n).map(|i| wide[(i * 7) % wide.len()]).collect();
    for (ma, mb, shift, zpa, zpb, lo, hi) in [
        (i32::MAX, i32::MAX, 1u8, -32_768, 32_767, -32_768, 32_767),
        (i32::MAX, 0, 62, 32_767, -32_768, -32_768, 32_767),
        (1 << 30, 12345, 31, 3, -7, -1000, 20_000),
        (0, 1, 1, 0, 0, -32_768, 32_767),
        (i32::MAX, i32::MAX, 32, -32_768, -32_768, -32_768, 32_767),
    ] {
        let op = AddWide(fixpoint_ml::ops::Add {
            a_zero_point: zpa,
            a_multiplier: ma,
            b_zero_point: zpb,
            b_multiplier: mb,
            shift,
            zero_point: -5,
            lo,
            hi,
        });
        for wide_b in [false, true] {
            let mut b = ModelBuilder::new();
            let x = b.input(DType::I16, vec![n], Quant::NONE);
            let y = b.input(if wide_b { DType::I16 } else { DType::I8 }, vec![n], Quant::NONE);
            let z = b.op(Op::AddWide(op.clone()), &[x, y]);
            b.output(z, Quant::NONE);
            let model = b.finish().unwrap();
            let yt = if wide_b {
                Tensor::new(vec![n], TensorData::I16(ys16.clone())).unwrap()
            } else {
                Tensor::i8(vec![n], ys8.clone()).unwrap()
            };
            let out = run_all_paths(&model, vec![Tensor::new(vec![n], TensorData::I16(xs.clone())).unwrap(), yt]);
            let TensorData::I16(got) = out[0].data() else { panic!("AddWide gives i16") };
            for i in 0..n {
                let c = if wide_b { i128::from(ys16[i]) } else { i128::from(ys8[i]) };
                let ta = (i128::from(xs[i]) - i128::from(zpa)) * i128::from(ma);
                let tb = (c - i128::from(zpb)) * i128::from(mb);
                let want = clamp_i128(-5 + round_shift(ta + tb, shift), lo, hi);
                assert_eq!(i32::from(got[i]), want, "a {} b {c} case {ma} {mb} {shift}", xs[i]);
            }
        }
    }
}

/// ArgMax over typed rows: the first largest index of each row, whatever the dtype.
#[test]
fn argmax_takes_the_first_largest() {
    for dtype in [DType::I8, DType::I32, DType::I64] {
        let case = adversarial::argmax(dtype, 7, 5).unwrap();
        let out = run_all_paths(&case.model, case.inputs.clone());
        let x = &case.inputs[0];
        let got = out[0].as_i32().unwrap();
        for (r, &g) in got.iter().enumerate() {
            let row: Vec<i64> = (0..5).map(|j| x.data().get_i64(r * 5 + j).unwrap()).collect();
            let max = *row.iter().max().unwrap();
            assert_eq!(g as usize, row.iter().position(|&v| v == max).unwrap());
        }
    }
}
