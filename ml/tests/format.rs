//! The canonical format: round trips, every non-canonical encoding rejected, and no panic or
//! runaway allocation on any byte string.

mod common;

use common::*;
use fixpoint_ml::format::{Model, ModelBuilder, NO_TENSOR};
use fixpoint_ml::ops::*;
use fixpoint_ml::{DType, Engine, Error, Limits, Tensor, model_id, verify};
use rand::Rng;

/// A small CNN touching most ops: conv → maxpool → depthwise conv → avgpool → flatten → FC →
/// ArgMax, plus Lut8/Add/Concat/Requantize on a side branch.
fn sample_model() -> Model {
    let mut r = rng(3);
    let mut b = ModelBuilder::new();
    let x = b.input(
        DType::I8,
        vec![8, 8, 1],
        fixpoint_ml::format::Quant { zero_point: -128, multiplier: 1 << 30, shift: 34 },
    );
    let w1 = b.tensor(Tensor::i8(vec![4, 3, 3, 1], random_i8(&mut r, 36)).unwrap());
    let rq1 = random_requant(&mut b, &mut r, 4, 9);
    let mut win = Window::new(3, 3);
    (win.pad_top, win.pad_left, win.pad_bottom, win.pad_right) = (1, 1, 1, 1);
    let c1 = b.op(
        Op::Conv2d(Conv2d {
            weights: w1,
            bias: NO_TENSOR,
            input_zero_point: -128,
            window: win,
            groups: 1,
            requant: Some(rq1),
        }),
        &[x],
    );
    let mut pw = Window::new(2, 2);
    (pw.stride_h, pw.stride_w) = (2, 2);
    let p1 = b.op(Op::MaxPool(MaxPool { window: pw }), &[c1]);
    let w2 = b.tensor(Tensor::i8(vec![4, 3, 3, 1], random_i8(&mut r, 36)).unwrap());
    let bias2 = b.tensor(Tensor::i32(vec![4], vec![1, -2, 3, -4]).unwrap());
    let rq2 = random_requant(&mut b, &mut r, 4, 9);
    let c2 = b.op(
        Op::Conv2d(Conv2d {
            weights: w2,
            bias: bias2,
            input_zero_point: 3,
            window: win,
            groups: 4,
            requant: Some(rq2),
        }),
        &[p1],
    );
    let p2 = b.op(Op::AvgPool(AvgPool { window: pw }), &[c2]);
    let table = b.tensor(Tensor::i8(vec![256], (0..256).map(|i: i32| ((i - 128) / 2) as i8).collect()).unwrap());
    let l = b.op(Op::Lut8(Lut8 { table }), &[p2]);
    let add = Add {
        a_zero_point: 0,
        a_multiplier: 1 << 30,
        b_zero_point: 1,
        b_multiplier: 3 << 28,
        shift: 31,
        zero_point: -1,
        lo: -128,
        hi: 127,
    };
    let s = b.op(Op::Add(add), &[p2, l]);
    let cat = b.op(Op::Concat(Concat { axis: 2 }), &[p2, s]);
    let flat = b.op(Op::Reshape(Reshape { shape: vec![32] }), &[cat]);
    let wf = b.tensor(Tensor::i8(vec![10, 32], random_i8(&mut r, 320)).unwrap());
    let bf = b.tensor(Tensor::i32(vec![10], (0..10).collect()).unwrap());
    let logits =
        b.op(Op::FullyConnected(FullyConnected { weights: wf, bias: bf, input_zero_point: 0, requant: None }), &[flat]);
    let label = b.op(Op::ArgMax(ArgMax), &[logits]);
    let rq3 = requant(&mut b, vec![1 << 30], vec![40], 0, -128, 127);
    let small = b.op(Op::Requantize(Requantize { input_zero_point: 0, requant: rq3 }), &[logits]);
    b.output(label, q());
    b.output(small, q());
    b.finish().unwrap()
}

#[test]
fn parse_serialize_round_trip() {
    let m = sample_model();
    let bytes = m.to_bytes();
    let parsed = Model::parse(&bytes).unwrap();
    assert_eq!(parsed, m);
    assert_eq!(parsed.to_bytes(), bytes);
    assert_eq!(parsed.id(), model_id(&bytes));
    // And it runs, identically on every path.
    let x = Tensor::i8(vec![8, 8, 1], random_i8(&mut rng(4), 64)).unwrap();
    let out = run_all_paths(&m, vec![x]);
    assert_eq!(out[0].shape(), [1]);
}

#[test]
fn model_id_is_keccak256() {
    // keccak256("") is the well-known c5d2...a470.
    assert_eq!(hex::encode(model_id(b"")), "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
}

#[test]
fn every_truncation_is_rejected() {
    let bytes = sample_model().to_bytes();
    for n in 0..bytes.len() {
        assert!(Model::parse(&bytes[..n]).is_err(), "prefix of {n} bytes accepted");
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut bytes = sample_model().to_bytes();
    bytes.push(0);
    assert_eq!(Model::parse(&bytes), Err(Error::TrailingBytes(1)));
}

#[test]
fn header_fields_are_checked() {
    let bytes = sample_model().to_bytes();
    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert_eq!(Model::parse(&bad), Err(Error::BadMagic));
    let mut bad = bytes.clone();
    bad[4] = 2;
    assert_eq!(Model::parse(&bad), Err(Error::UnsupportedVersion(2)));
    let mut bad = bytes;
    bad[6] = 9;
    assert_eq!(Model::parse(&bad), Err(Error::UnsupportedProfile(9)));
}

/// A two-op model whose tensors can be put out of order or left unused.
fn two_tensor_model(order_swapped: bool, extra_unused: bool) -> Vec<u8> {
    let mut m = Model::default();
    let mut b = ModelBuilder::new();
    let x = b.input(DType::I8, vec![4], q());
    let t0 = b.tensor(Tensor::i8(vec![256], vec![1; 256]).unwrap());
    let a = b.op(Op::Lut8(Lut8 { table: t0 }), &[x]);
    let t1 = b.tensor(Tensor::i8(vec![256], vec![2; 256]).unwrap());
    let y = b.op(Op::Lut8(Lut8 { table: t1 }), &[a]);
    b.output(y, q());
    m.clone_from(&b.finish().unwrap());
    if order_swapped {
        m.tensors.swap(0, 1);
        if let Op::Lut8(l) = &mut m.nodes[0].op {
            l.table = 1;
        }
        if let Op::Lut8(l) = &mut m.nodes[1].op {
            l.table = 0;
        }
    }
    if extra_unused {
        m.tensors.push(Tensor::i8(vec![1], vec![0]).unwrap());
    }
    m.to_bytes()
}

#[test]
fn tensor_order_and_use_are_canonical() {
    assert!(Model::parse(&two_tensor_model(false, false)).is_ok());
    assert!(matches!(Model::parse(&two_tensor_model(true, false)), Err(Error::NonCanonical(_))));
    assert!(matches!(Model::parse(&two_tensor_model(false, true)), Err(Error::NonCanonical(_))));
}

#[test]
fn graph_references_are_checked() {
    let mut m = Model::parse(&two_tensor_model(false, false)).unwrap();
    // An op reading its own output (a forward reference).
    m.nodes[0].inputs[0] = 1;
    assert!(matches!(Model::parse(&m.to_bytes()), Err(Error::BadReference { .. })));
    // A dead op: its output is never read.
    let mut m = Model::parse(&two_tensor_model(false, false)).unwrap();
    m.nodes[1].inputs[0] = 0;
    assert!(matches!(Model::parse(&m.to_bytes()), Err(Error::NonCanonical(_))));
    // An output repeated.
    let mut m = Model::parse(&two_tensor_model(false, false)).unwrap();
    m.outputs.push(m.outputs[0].clone());
    assert!(matches!(Model::parse(&m.to_bytes()), Err(Error::NonCanonical(_))));
}

#[test]
fn random_mutations_never_panic_and_accepted_bytes_round_trip() {
    let bytes = sample_model().to_bytes();
    let mut r = rng(99);
    let mut accepted = 0;
    for _ in 0..20_000 {
        let mut b = bytes.clone();
        for _ in 0..r.random_range(1..=4) {
            match r.random_range(0..4) {
                0 => {
                    let i = r.random_range(0..b.len());
                    b[i] = r.random();
                }
                1 => {
                    let i = r.random_range(0..b.len());
                    b[i] ^= 1 << r.random_range(0..8);
                }
                2 => {
                    let i = r.random_range(0..b.len());
                    b.remove(i);
                }
                _ => {
                    let i = r.random_range(0..=b.len());
                    b.insert(i, r.random());
                }
            }
        }
        if let Ok(m) = Model::parse(&b) {
            accepted += 1;
            // Canonical: whatever parses serializes back to the same bytes.
            assert_eq!(m.to_bytes(), b);
            // And verifying/running it returns, never panics.
            if let Ok(e) = Engine::load(&b, &Limits::default()) {
                let inputs =
                    fixpoint_ml::io::unpack_inputs(e.model(), &vec![7u8; fixpoint_ml::io::input_len(e.model())])
                        .unwrap();
                let _ = e.run(inputs);
            }
        }
    }
    assert!(accepted > 0, "no mutation was accepted; the round-trip property was never exercised");
}

#[test]
fn lying_sizes_do_not_allocate() {
    // A tensor header claiming 2^32-1 x 2^32-1 elements with no data: rejected, not allocated.
    let mut b = b"FXPM".to_vec();
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    b.push(4); // i64
    b.push(2);
    b.extend_from_slice(&u32::MAX.to_le_bytes());
    b.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(Model::parse(&b).is_err());
}

#[test]
fn overflow_proof_rejects_what_could_wrap() {
    // K = 66_000 weights of -128 with zero point -128: 255·128·66000 > 2^31.
    let k = 66_000;
    let build = |wv: i8, bias: i32| {
        let mut b = ModelBuilder::new();
        let x = b.input(DType::I8, vec![k], q());
        let weights = b.tensor(Tensor::i8(vec![1, k], vec![wv; k]).unwrap());
        let bias = b.tensor(Tensor::i32(vec![1], vec![bias]).unwrap());
        let y = b.op(Op::FullyConnected(FullyConnected { weights, bias, input_zero_point: -128, requant: None }), &[x]);
        b.output(y, q());
        b.finish().unwrap()
    };
    assert!(matches!(verify(build(-128, 0), &Limits::default()), Err(Error::AccumulatorOverflow { channel: 0, .. })));
    // 255·1·66000 + bias just under 2^31 passes; one more fails.
    let ok = (1i64 << 31) - 1 - 255 * 66_000;
    assert!(verify(build(1, ok as i32), &Limits::default()).is_ok());
    assert!(matches!(verify(build(1, ok as i32 + 1), &Limits::default()), Err(Error::AccumulatorOverflow { .. })));
}

#[test]
fn limits_are_enforced() {
    let m = sample_model();
    let v = verified(m.clone());
    let c = *v.cost();
    assert!(c.macs > 0 && c.peak_activation_bytes > 0 && c.bytes_read > c.weight_bytes);
    let tight = Limits { max_macs: c.macs - 1, ..Limits::default() };
    assert!(matches!(verify(m.clone(), &tight), Err(Error::LimitExceeded { what: "MACs", .. })));
    let tight = Limits { max_peak_activation_bytes: c.peak_activation_bytes - 1, ..Limits::default() };
    assert!(matches!(verify(m.clone(), &tight), Err(Error::LimitExceeded { what: "peak activation bytes", .. })));
    let bytes = m.to_bytes();
    let tight = Limits { max_model_bytes: bytes.len() as u64 - 1, ..Limits::default() };
    assert!(matches!(Engine::load(&bytes, &tight), Err(Error::LimitExceeded { what: "model bytes", .. })));
}

#[test]
fn bad_inputs_are_errors() {
    let e = Engine::load(&sample_model().to_bytes(), &Limits::default()).unwrap();
    assert!(matches!(e.run_packed(&[0; 63]), Err(Error::InputLength { expected: 64, got: 63 })));
    assert!(matches!(e.run(vec![]), Err(Error::InputCount { .. })));
    let wrong = Tensor::i8(vec![64], vec![0; 64]).unwrap();
    assert!(matches!(e.run(vec![wrong]), Err(Error::InputMismatch { .. })));
}
