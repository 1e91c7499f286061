//! The ONNX importer on the committed fixtures (tests/fixtures/onnx, written by
//! tools/onnx-fixtures): integer accuracy against the float reference (the ONNX file run by
//! tract), determinism, exact tree splits and typed errors for what is not mapped.

use std::path::{Path, PathBuf};

use fixpoint_quantize::Error;
use fixpoint_quantize::onnx::report::Accuracy;
use fixpoint_quantize::onnx::{self, Imported, Options, Report, TargetColumn};

fn fixture(name: &str) -> PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../tests/fixtures/onnx")
    .join(name)
}

fn opts() -> Options {
    Options { target: Some(TargetColumn::Name("target".into())), classify: None }
}

fn import(name: &str) -> Imported {
    let d = fixture(name);
    onnx::import(&d.join("model.onnx"), &d.join("calib.csv"), &opts(), |_, _, _| {}).unwrap()
}

fn run(name: &str) -> (Imported, Report) {
    let im = import(name);
    let table = onnx::data::load(&fixture(name).join("test.csv"), im.input_dim, opts().target.as_ref()).unwrap();
    let report = im.evaluate(&table, |_, _| {}).unwrap();
    println!("{name}: {report}");
    (im, report)
}

/// The float metric onnxruntime measured (expected.json), which tract must reproduce.
fn expected_metric(name: &str) -> f64 {
    let text = std::fs::read_to_string(fixture(name).join("expected.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["float_reference"]["value"].as_f64().unwrap()
}

/// Integer accuracy within 1 point of float, agreement ≥ 98%, float accuracy = onnxruntime's.
fn classification(name: &str) -> Report {
    let (_, r) = run(name);
    let Accuracy::Classification(a) = r.accuracy else { panic!("{name} is not a classifier") };
    assert!((a.float_accuracy() - 100.0 * expected_metric(name)).abs() < 0.01, "{name}: tract {a} vs onnxruntime");
    assert!(a.float_accuracy() - a.int_accuracy() <= 1.0, "{name}: {a}");
    assert!(a.agreement() >= 98.0, "{name}: {a}");
    r
}

/// Integer RMSE within 2% of float, agreement ≥ 98%, float RMSE = onnxruntime's.
fn regression(name: &str) -> Report {
    let (_, r) = run(name);
    let Accuracy::Regression(a) = r.accuracy else { panic!("{name} is not a regressor") };
    assert!((a.float_rmse - expected_metric(name)).abs() < 1e-3, "{name}: tract RMSE {}", a.float_rmse);
    assert!(a.int_rmse <= a.float_rmse * 1.02, "{name}: {a:?}");
    assert!(a.agreement() >= 98.0, "{name}: {a:?}");
    r
}

fn all_splits_exact_on_grid(r: &Report) {
    let s = r.splits.expect("a tree model");
    assert!(s.total > 0);
    assert_eq!(s.exact_on_grid, s.total, "a split flips on the grid: {s:?}");
}

#[test]
fn digits_mlp() {
    classification("digits_mlp");
}

#[test]
fn digits_cnn() {
    let r = classification("digits_cnn");
    // Conv+BN+ReLU, MaxPool, Conv+BN+ReLU, GlobalAvgPool, Flatten, Gemm.
    assert_eq!(r.layers.len(), 6, "{:?}", r.layers);
    assert!(r.layers.iter().all(|l| l.rel_rms < 0.05), "{:?}", r.layers);
}

#[test]
fn iris_logreg() {
    classification("iris_logreg");
}

#[test]
fn cancer_rf() {
    all_splits_exact_on_grid(&classification("cancer_rf"));
}

#[test]
fn cancer_xgb() {
    all_splits_exact_on_grid(&classification("cancer_xgb"));
}

#[test]
fn wine_lgbm() {
    all_splits_exact_on_grid(&classification("wine_lgbm"));
}

#[test]
fn diabetes_gbr() {
    all_splits_exact_on_grid(&regression("diabetes_gbr"));
}

#[test]
fn diabetes_ridge() {
    regression("diabetes_ridge");
}

/// Our integer labels against onnxruntime's on the first 20 test rows (expected.json).
fn onnxruntime_agreement(name: &str, im: &Imported) -> usize {
    let text = std::fs::read_to_string(fixture(name).join("expected.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rows = v["first_rows"].as_array().unwrap();
    let table = onnx::data::load(&fixture(name).join("test.csv"), im.input_dim, opts().target.as_ref()).unwrap();
    let engine = fixpoint_ml::Engine::load(&im.bytes, &fixpoint_ml::Limits::default()).unwrap();
    let mut agree = 0;
    for r in rows {
        let i = r["row"].as_u64().unwrap() as usize;
        let out = engine.run(im.encoding.encode(table.row(i)).unwrap()).unwrap();
        let label = out[0].as_i32().unwrap()[0];
        agree += usize::from(i64::from(label) == r["label"].as_i64().unwrap());
    }
    println!("{name}: {agree}/{} labels equal onnxruntime's", rows.len());
    agree
}

/// Pre-quantized graphs keep the file's quantization: accuracy and agreement as for float
/// models, and the labels of onnxruntime's first 20 rows.
fn prequantized(name: &str) {
    let r = classification(name);
    assert!(r.layers.is_empty());
    let im = import(name);
    assert!(im.steps.iter().any(|s| s.op_type.starts_with('Q')), "{:?}", im.steps);
    assert!(onnxruntime_agreement(name, &im) >= 19, "{name}");
}

#[test]
fn digits_cnn_dynamo() {
    // ReduceMean over H and W is the global average pool.
    classification("digits_cnn_dynamo");
}

#[test]
fn digits_cnn_ops() {
    // Pad folded into Conv, LeakyRelu, AveragePool, HardSwish, ReduceMean, Gelu.
    let r = classification("digits_cnn_ops");
    let im = import("digits_cnn_ops");
    for op in ["Pad", "LeakyRelu", "AveragePool", "HardSwish", "ReduceMean", "Gelu"] {
        assert!(im.steps.iter().any(|s| s.op_type == op), "{op} missing: {:?}", im.steps);
    }
    assert!(r.layers.iter().all(|l| l.rel_rms < 0.1), "{:?}", r.layers);
}

#[test]
fn digits_mlp_act() {
    // SiLU (Sigmoid·Mul), Clip, Tanh, Softplus, Sigmoid: one exact table each.
    classification("digits_mlp_act");
    let im = import("digits_mlp_act");
    assert_eq!(im.steps.iter().filter(|s| s.mapped.starts_with("Lut8")).count(), 5, "{:?}", im.steps);
}

#[test]
fn digits_resnet() {
    // A residual block: the Add of two live tensors is the integer Add op, ReLU in its clamp.
    let r = classification("digits_resnet");
    let im = import("digits_resnet");
    let add = im.steps.iter().find(|s| s.op_type == "Add").expect("an Add step");
    assert!(add.mapped.starts_with("Add (two i8 tensors"), "{add:?}");
    assert!(im.model.nodes.iter().any(|o| matches!(o.op, fixpoint_ml::ops::Op::Add(_))), "no Add op");
    assert!(r.layers.iter().all(|l| l.rel_rms < 0.1), "{:?}", r.layers);
    // The same graph with Sub (x − y instead of x + y; tract runs the changed file as the float
    // reference): the integer Add with the subtrahend negated exactly, as close to float.
    // With Div: refused with a typed error (no integer division).
    let calib = fixture("digits_resnet").join("calib.csv");
    let table = onnx::data::load(&fixture("digits_resnet").join("test.csv"), 64, opts().target.as_ref()).unwrap();
    for (to, ok) in [(b"Sub", true), (b"Div", false)] {
        let mut bytes = std::fs::read(fixture("digits_resnet").join("model.onnx")).unwrap();
        let mut replaced = 0;
        for at in 0..bytes.len().saturating_sub(2) {
            if &bytes[at..at + 3] == b"Add" {
                bytes[at..at + 3].copy_from_slice(to);
                replaced += 1;
            }
        }
        assert!(replaced > 0);
        let path = std::env::temp_dir().join(format!("fixpoint-onnx-{}-resnet-{}.onnx", std::process::id(), to[0]));
        std::fs::write(&path, bytes).unwrap();
        let res = onnx::import(&path, &calib, &opts(), |_, _, _| {});
        let report = res.as_ref().ok().map(|im| im.evaluate(&table, |_, _| {}).unwrap());
        std::fs::remove_file(&path).unwrap();
        match (res, ok) {
            (Ok(im), true) => {
                let sub = im.steps.iter().find(|s| s.op_type == "Sub").expect("a Sub step");
                assert!(sub.mapped.contains("subtrahend negated"), "{sub:?}");
                let r = report.unwrap();
                println!("digits_resnet with Sub: {r}");
                let Accuracy::Classification(a) = r.accuracy else { panic!() };
                assert!(a.agreement() >= 98.0, "{a}");
                assert!(r.layers.iter().all(|l| l.rel_rms < 0.1), "{:?}", r.layers);
            }
            (Err(Error::UnsupportedOp { op_type, hint, .. }), false) => {
                assert!(op_type == "Div" && hint.contains("division"), "{hint}")
            }
            (other, _) => panic!("{}: unexpected {other:?}", to[0] as char),
        }
    }
}

#[test]
fn digits_inception() {
    // Two conv branches of one tensor joined on channels: the integer Concat of two values
    // that share one scale (each branch's last conv requantizes to the joined range).
    let r = classification("digits_inception");
    let im = import("digits_inception");
    assert!(im.steps.iter().any(|s| s.op_type == "Concat" && s.mapped.starts_with("Concat 8+8")), "{:?}", im.steps);
    let nodes = &im.model.nodes;
    let concat = nodes.iter().find(|o| matches!(o.op, fixpoint_ml::ops::Op::Concat(_))).expect("a Concat op");
    let n_in = im.model.inputs.len() as u32;
    let zps: Vec<i32> = concat
        .inputs
        .iter()
        .map(|&v| match &nodes[(v - n_in) as usize].op {
            fixpoint_ml::ops::Op::Conv2d(c) => c.requant.as_ref().unwrap().zero_point,
            other => panic!("a Concat input from {other:?}"),
        })
        .collect();
    assert_eq!(zps.len(), 2);
    assert_eq!(zps[0], zps[1]);
    assert!(r.layers.iter().all(|l| l.rel_rms < 0.1), "{:?}", r.layers);
}

#[test]
fn digits_inception4() {
    // Four branches joined by one Concat (one ends in a max pool), 2×2 Convs with auto_pad
    // SAME_UPPER and SAME_LOWER, MaxPool and AveragePool with ceil_mode.
    let r = classification("digits_inception4");
    let im = import("digits_inception4");
    assert!(im.steps.iter().any(|s| s.op_type == "Concat" && s.mapped.starts_with("Concat 4+4+4+4")), "{:?}", im.steps);
    let ops = &im.model.nodes;
    let n_in = im.model.inputs.len() as u32;
    let op_of = |v: u32| &ops[(v - n_in) as usize];
    // ONNX: out = ⌈8/1⌉ = 8 needs 1 padding cell for a 2×2 kernel: at the end (UPPER), first (LOWER).
    let pads: Vec<_> = ops
        .iter()
        .filter_map(|o| match &o.op {
            fixpoint_ml::ops::Op::Conv2d(c) if c.window.kernel_h == 2 => {
                Some((c.window.pad_top, c.window.pad_left, c.window.pad_bottom, c.window.pad_right))
            }
            _ => None,
        })
        .collect();
    assert_eq!(pads, vec![(0, 0, 1, 1), (1, 1, 0, 0)]);
    // ceil_mode: ⌈(8 − 3)/2⌉ + 1 = 4 windows need 9 cells, ⌈(4 − 3)/2⌉ + 1 = 2 need 5: one more
    // padding row and column each (the engine leaves padding out of max and mean).
    let (max, avg) = (
        ops.iter().find_map(|o| match &o.op {
            fixpoint_ml::ops::Op::MaxPool(p) if p.window.stride_h == 2 => Some(p.window),
            _ => None,
        }),
        ops.iter().find_map(|o| match &o.op {
            fixpoint_ml::ops::Op::AvgPool(p) if p.window.stride_h == 2 => Some(p.window),
            _ => None,
        }),
    );
    for w in [max.unwrap(), avg.unwrap()] {
        assert_eq!((w.pad_top, w.pad_left, w.pad_bottom, w.pad_right), (0, 0, 1, 1), "{w:?}");
    }
    // The Concat joins four values of one zero point; the pooled branch's comes from its Conv.
    let concat = ops.iter().find(|o| matches!(o.op, fixpoint_ml::ops::Op::Concat(_))).expect("a Concat op");
    assert_eq!(concat.inputs.len(), 4);
    let zps: Vec<i32> = concat
        .inputs
        .iter()
        .map(|&v| {
            let mut o = op_of(v);
            if let fixpoint_ml::ops::Op::MaxPool(_) = o.op {
                o = op_of(o.inputs[0]);
            }
            match &o.op {
                fixpoint_ml::ops::Op::Conv2d(c) => c.requant.as_ref().unwrap().zero_point,
                other => panic!("a Concat input from {other:?}"),
            }
        })
        .collect();
    assert!(zps.iter().all(|&z| z == zps[0]), "{zps:?}");
    assert!(r.layers.iter().all(|l| l.rel_rms < 0.1), "{:?}", r.layers);
}

#[test]
fn digits_window() {
    // Rectangular kernel with asymmetric pads, dilation 2, stride 1×2, MaxPool and AveragePool
    // with pads: the engine's general Window, one Conv2D/MaxPool/AvgPool each.
    let r = classification("digits_window");
    let im = import("digits_window");
    for want in ["pads (top, left, bottom, right) [1, 0, 1, 1]", "dilation 2×2", "stride 1×2", "padding not counted"]
    {
        assert!(im.steps.iter().any(|s| s.mapped.contains(want)), "{want} missing: {:?}", im.steps);
    }
    let windows: Vec<_> = im
        .model
        .nodes
        .iter()
        .filter_map(|o| match &o.op {
            fixpoint_ml::ops::Op::Conv2d(c) => Some(c.window),
            fixpoint_ml::ops::Op::AvgPool(p) if p.window.pad_top > 0 => Some(p.window),
            _ => None,
        })
        .collect();
    assert!(windows.iter().any(|w| (w.kernel_h, w.kernel_w, w.pad_left, w.pad_right) == (3, 2, 0, 1)), "{windows:?}");
    assert!(windows.iter().any(|w| (w.dilation_h, w.dilation_w) == (2, 2)), "{windows:?}");
    assert!(windows.iter().any(|w| (w.stride_h, w.stride_w) == (1, 2)), "{windows:?}");
    assert!(r.layers.iter().all(|l| l.rel_rms < 0.1), "{:?}", r.layers);
    // count_include_pad=1 (padding in the divisor) is refused: the integer AvgPool leaves it out.
    let mut bytes = std::fs::read(fixture("digits_window").join("model.onnx")).unwrap();
    let name = b"count_include_pad";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    assert_eq!(&bytes[at..at + 2], &[0x18, 0x00], "the attribute's i field");
    bytes[at + 1] = 1;
    let path = std::env::temp_dir().join(format!("fixpoint-onnx-{}-window-cip.onnx", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    let res = onnx::import(&path, &fixture("digits_window").join("calib.csv"), &opts(), |_, _, _| {});
    std::fs::remove_file(&path).unwrap();
    match res {
        Err(Error::UnsupportedOp { op_type, hint, .. }) => {
            assert!(op_type == "AveragePool" && hint.contains("count_include_pad"), "{hint}")
        }
        other => panic!("expected UnsupportedOp, got {other:?}"),
    }
}

#[test]
fn digits_nhwc() {
    // Transpose to NHWC before Flatten: folded (the engine flattens HWC), no op for it.
    let r = classification("digits_nhwc");
    let im = import("digits_nhwc");
    let t = im.steps.iter().find(|s| s.op_type == "Transpose").expect("a Transpose step");
    assert!(t.mapped.starts_with("folded into the next flatten"), "{t:?}");
    assert_eq!(r.layers.len(), 4, "{:?}", r.layers);
    // Other permutations of the live tensor: H and W swapped imports as the engine's Transpose
    // (checked against tract running the changed file); moving the batch axis is refused.
    let calib = fixture("digits_nhwc").join("calib.csv");
    let table = onnx::data::load(&fixture("digits_nhwc").join("test.csv"), 64, opts().target.as_ref()).unwrap();
    for (to, ok) in [(b"\x40\x00\x40\x01\x40\x03\x40\x02", true), (b"\x40\x01\x40\x00\x40\x02\x40\x03", false)] {
        let mut bytes = std::fs::read(fixture("digits_nhwc").join("model.onnx")).unwrap();
        let perm = b"perm\x40\x00\x40\x02\x40\x03\x40\x01";
        let at = bytes.windows(perm.len()).position(|w| w == perm).expect("perm 0,2,3,1");
        bytes[at + 4..at + 12].copy_from_slice(to);
        let path = std::env::temp_dir().join(format!("fixpoint-onnx-{}-nhwc-perm-{ok}.onnx", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        let res = onnx::import(&path, &calib, &opts(), |_, _, _| {});
        let report = res.as_ref().ok().map(|im| im.evaluate(&table, |_, _| {}).unwrap());
        std::fs::remove_file(&path).unwrap();
        match (res, ok) {
            (Ok(im), true) => {
                assert!(im.model.nodes.iter().any(|o| matches!(o.op, fixpoint_ml::ops::Op::Transpose(_))));
                let r = report.unwrap();
                let Accuracy::Classification(a) = r.accuracy else { panic!() };
                assert!(a.agreement() >= 98.0, "{a}");
                assert!(r.layers.iter().all(|l| l.rel_rms < 0.1), "{:?}", r.layers);
            }
            (Err(Error::UnsupportedOp { op_type, hint, .. }), false) => {
                assert!(op_type == "Transpose" && hint.contains("batch axis first"), "{hint}")
            }
            (other, _) => panic!("{ok}: unexpected {other:?}"),
        }
    }
}

#[test]
fn digits_transpose() {
    // Transposes between convolutions (image columns as channels; H and W swapped before the
    // flatten): the engine's Transpose on the HWC layout, values copied.
    let r = classification("digits_transpose");
    let im = import("digits_transpose");
    let t: Vec<_> = im.steps.iter().filter(|s| s.op_type == "Transpose").collect();
    assert_eq!(t.len(), 2, "{:?}", im.steps);
    assert!(
        t[0].mapped.starts_with("Transpose [0, 3, 1, 2] (the engine's Transpose") && t[0].mapped.ends_with("[8, 4, 8]"),
        "{t:?}"
    );
    assert!(t[1].mapped.starts_with("Transpose [0, 1, 3, 2] (the engine's Transpose"), "{t:?}");
    assert_eq!(im.model.nodes.iter().filter(|o| matches!(o.op, fixpoint_ml::ops::Op::Transpose(_))).count(), 2);
    // The engine's transposed tensor, read back as [C, H, W], is the float one transposed: a
    // copy adds no error to the layer before it (a wrong permutation would give ~1.4).
    let at = |name: &str| {
        r.layers.iter().position(|l| l.layer.starts_with(name)).unwrap_or_else(|| panic!("{name}: {:?}", r.layers))
    };
    let (first, pool) = (at("Transpose [2, 0, 1]"), at("Transpose [0, 2, 1]"));
    assert!((r.layers[first].rel_rms - r.layers[first - 1].rel_rms).abs() < 1e-9, "{:?}", r.layers);
    assert!((r.layers[pool].rel_rms - r.layers[pool - 1].rel_rms).abs() < 1e-9, "{:?}", r.layers);
    assert!(r.layers.iter().all(|l| l.rel_rms < 0.1), "{:?}", r.layers);
}

#[test]
fn digits_se() {
    // A squeeze-excite gate (Mul of the [8, 8, 8] feature map and an [8, 1, 1] gate), a
    // constant per-channel factor after it, a residual Sub and a broadcast Sub of two live
    // tensors: every one an engine op, none refused, each layer close to float.
    let r = classification("digits_se");
    let im = import("digits_se");
    let step =
        |node: &str| im.steps.iter().find(|s| s.node == node).unwrap_or_else(|| panic!("{node}: {:?}", im.steps));
    assert!(step("/Mul").mapped.starts_with("Mul (two i8 tensors") && step("/Mul").mapped.contains("[8, 1, 1]"));
    assert!(step("/Mul_1").mapped.starts_with("Conv2D 1×1 depthwise"), "{:?}", step("/Mul_1"));
    for sub in ["/Sub", "/Sub_1"] {
        assert!(step(sub).mapped.contains("subtrahend negated"), "{:?}", step(sub));
    }
    assert!(step("/Reshape").mapped.starts_with("Reshape [8] → [8, 1, 1]"), "{:?}", step("/Reshape"));
    let ops = &im.model.nodes;
    let count = |f: fn(&fixpoint_ml::ops::Op) -> bool| ops.iter().filter(|o| f(&o.op)).count();
    assert_eq!(count(|o| matches!(o, fixpoint_ml::ops::Op::Mul(_))), 1);
    assert_eq!(count(|o| matches!(o, fixpoint_ml::ops::Op::Add(_))), 2);
    // The Mul's inputs have one shape: the gate was repeated to the feature map's.
    let n_in = im.model.inputs.len();
    let mul = ops.iter().find(|o| matches!(o.op, fixpoint_ml::ops::Op::Mul(_))).unwrap();
    let [a, b] = mul.inputs[..] else { panic!() };
    assert!(
        matches!(ops[b as usize - n_in].op, fixpoint_ml::ops::Op::Concat(_))
            || matches!(ops[a as usize - n_in].op, fixpoint_ml::ops::Op::Concat(_))
    );
    for l in &r.layers {
        assert!(l.rel_rms < 0.1, "{:?}", r.layers);
    }
    assert!(r.layers.iter().any(|l| l.layer.starts_with("Mul (two live tensors)")), "{:?}", r.layers);
    assert_eq!(
        r.layers.iter().filter(|l| l.layer.starts_with("Sub (two live tensors) +ReLU")).count(),
        2,
        "{:?}",
        r.layers
    );
}

#[test]
fn cancer_scaler_rf() {
    // The StandardScaler folded into the thresholds: splits still exact on the feature grid.
    all_splits_exact_on_grid(&classification("cancer_scaler_rf"));
}

#[test]
fn digits_mlp_qdq() {
    prequantized("digits_mlp_qdq");
}

#[test]
fn digits_mlp_qop() {
    prequantized("digits_mlp_qop");
}

#[test]
fn digits_cnn_qop() {
    prequantized("digits_cnn_qop");
}

#[test]
fn qdq_keeps_the_file_scales() {
    // The input's QuantizeLinear (scale 16/255, zero point -128) is the model's input quantization.
    let im = import("digits_mlp_qdq");
    let q = im.model.inputs[0].quant;
    assert_eq!(q.zero_point, -128);
    let s = fixpoint_quantize::multiplier::scale_of(&q);
    assert!((s - 0.0627451).abs() < 1e-7, "{s}");
}

#[test]
fn import_is_deterministic() {
    for name in [
        "digits_cnn",
        "cancer_xgb",
        "iris_logreg",
        "digits_mlp_qdq",
        "digits_cnn_qop",
        "digits_resnet",
        "digits_inception",
        "digits_window",
    ] {
        let (a, b) = (import(name), import(name));
        assert_eq!(a.bytes, b.bytes, "{name}");
        assert_eq!(a.id, b.id, "{name}");
    }
}

/// A fixture's model with `from` renamed to `to` (same length: the protobuf stays valid),
/// written to a temporary file.
fn renamed(name: &str, from: &[u8], to: &[u8]) -> PathBuf {
    let mut bytes = std::fs::read(fixture(name).join("model.onnx")).unwrap();
    let at = bytes.windows(from.len()).position(|w| w == from).expect("op name in the file");
    bytes[at..at + from.len()].copy_from_slice(to);
    let path = std::env::temp_dir().join(format!("fixpoint-onnx-{}-{name}.onnx", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn unmapped_ops_are_typed_errors() {
    // ReduceProd in a float graph, Selu after a QLinear op in a pre-quantized one.
    for (name, from, to) in
        [("digits_cnn_dynamo", &b"ReduceMean"[..], &b"ReduceProd"[..]), ("digits_mlp_qop", b"Relu", b"Selu")]
    {
        let path = renamed(name, from, to);
        let r = onnx::import(&path, &fixture(name).join("calib.csv"), &opts(), |_, _, _| {});
        std::fs::remove_file(&path).unwrap();
        match r {
            Err(Error::UnsupportedOp { op_type, node, hint }) => {
                assert_eq!(op_type.as_bytes(), to, "{name}");
                assert!(!node.is_empty() && !hint.is_empty(), "{name}");
            }
            other => panic!("{name}: expected UnsupportedOp, got {other:?}"),
        }
    }
}

/// Truncated and mutated files return errors or models, never a panic
/// (`FIXPOINT_ONNX_MUTANTS=n` runs `n` mutants per file instead of 60).
#[test]
fn mutated_files_never_panic() {
    let per_file: usize = std::env::var("FIXPOINT_ONNX_MUTANTS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
    let dir = std::env::temp_dir().join(format!("fixpoint-onnx-mutants-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut ok, mut err) = (0, 0);
    for name in [
        "iris_logreg",
        "diabetes_ridge",
        "digits_mlp_qdq",
        "digits_mlp_qop",
        "digits_cnn_qop",
        "digits_mlp_act",
        "digits_cnn_ops",
        "cancer_xgb",
        "digits_resnet",
        "digits_inception",
        "digits_window",
        "digits_nhwc",
        "digits_se",
        "digits_transpose",
        "digits_inception4",
    ] {
        let original = std::fs::read(fixture(name).join("model.onnx")).unwrap();
        for i in 0..per_file {
            let mut bytes = original.clone();
            match i % 3 {
                0 => bytes.truncate(rng.random_range(0..bytes.len())),
                1 => {
                    for _ in 0..rng.random_range(1..8) {
                        let at = rng.random_range(0..bytes.len());
                        bytes[at] = rng.random();
                    }
                }
                _ => {
                    let at = rng.random_range(0..bytes.len());
                    bytes[at] ^= 1 << rng.random_range(0..8);
                }
            }
            let path = dir.join(format!("{name}-{i}.onnx"));
            std::fs::write(&path, &bytes).unwrap();
            match onnx::import(&path, &fixture(name).join("calib.csv"), &opts(), |_, _, _| {}) {
                Ok(_) => ok += 1,
                Err(_) => err += 1,
            }
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    println!("mutants: {ok} imported, {err} rejected");
    assert!(err > 0);
}

#[test]
fn mismatched_data_is_a_typed_error() {
    let d = fixture("iris_logreg");
    let e = onnx::import(&d.join("model.onnx"), &fixture("wine_lgbm").join("calib.csv"), &opts(), |_, _, _| {});
    assert!(matches!(e, Err(Error::Input { .. })), "{e:?}");
}

#[test]
fn npy_calibration_gives_the_csv_model() {
    let d = fixture("digits_cnn");
    let csv = import("digits_cnn");
    let npy = onnx::import(&d.join("model.onnx"), &d.join("calib.npy"), &Options::default(), |_, _, _| {}).unwrap();
    assert_eq!(csv.id, npy.id);
}

/// A scalar float or int8 initializer of an ONNX file, by name.
fn initializer_f32(path: &Path, name: &str) -> f32 {
    use tract_onnx::prelude::Framework;
    let proto = tract_onnx::onnx().proto_model_for_path(path).unwrap();
    let t = proto.graph.unwrap().initializer.into_iter().find(|t| t.name == name).unwrap();
    match (t.data_type, t.raw_data.as_slice()) {
        (1, []) => t.float_data[0],
        (1, raw) => f32::from_le_bytes(raw[..4].try_into().unwrap()),
        (3, [b, ..]) => f32::from(*b as i8),
        (3, []) => t.int32_data[0] as f32,
        (d, _) => panic!("{name}: element type {d}"),
    }
}

/// Where fixpoint's requantization (exact product with the integer multiplier, one rounding
/// half up, docs/arithmetic.md §4) and onnxruntime's (the accumulator times the f32 ratio
/// `s_x·s_w/s_y`, rounded half to even) give different i8 values: every hidden unit of
/// digits_mlp_qdq's first layer on every test row.
#[test]
fn qdq_requantization_against_onnxruntimes_formula() {
    use fixpoint_ml::ops::Op;
    let name = "digits_mlp_qdq";
    let path = fixture(name).join("model.onnx");
    let im = import(name);
    let m = &im.model;
    let Op::FullyConnected(fc) = &m.nodes[0].op else { panic!("first op {:?}", m.nodes[0].op) };
    let rq = fc.requant.as_ref().unwrap();
    let w = m.tensors[fc.weights as usize].as_i8().unwrap();
    let bias = m.tensors[fc.bias as usize].as_i32().unwrap();
    let mult = i64::from(m.tensors[rq.multiplier as usize].as_i32().unwrap()[0]);
    let shift = u32::from(m.tensors[rq.shift as usize].as_u8().unwrap()[0]);
    let (s_x, s_w, s_y) = (
        initializer_f32(&path, "input_scale"),
        initializer_f32(&path, "fc1.weight_scale"),
        initializer_f32(&path, "relu1.out_scale"),
    );
    let ort_scale = s_x * s_w / s_y;
    let table = onnx::data::load(&fixture(name).join("test.csv"), im.input_dim, opts().target.as_ref()).unwrap();
    let (k, n) = (im.input_dim, bias.len());
    let (mut total, mut differ) = (0usize, 0usize);
    for r in 0..table.rows() {
        let x = im.encoding.encode(table.row(r)).unwrap();
        let x = x[0].as_i8().unwrap();
        for o in 0..n {
            let acc: i64 = i64::from(bias[o])
                + (0..k)
                    .map(|i| (i64::from(x[i]) - i64::from(fc.input_zero_point)) * i64::from(w[o * k + i]))
                    .sum::<i64>();
            let ours = (i64::from(rq.zero_point) + ((acc * mult + (1 << (shift - 1))) >> shift)).clamp(-128, 127);
            let ort = ((acc as f32 * ort_scale).round_ties_even() as i64 + i64::from(rq.zero_point)).clamp(-128, 127);
            total += 1;
            differ += usize::from(ours != ort);
        }
    }
    println!("{name} layer 1: {differ} of {total} requantized values differ from onnxruntime's formula");
    assert!(differ * 1000 <= total, "{differ} of {total}");
}

/// The QOperator pattern `QLinearMatMul → DequantizeLinear → Add(bias) → Relu → QuantizeLinear`
/// rounds twice in onnxruntime (to the QLinearMatMul's output scale, then after the float bias
/// and Relu to the next scale); the import keeps both roundings (the second in a 1×1 depthwise
/// Conv2D whose i32 bias is the float bias at 1/127 of the first scale). Counted on
/// digits_mlp_qop's first layer, every hidden unit of every test row.
#[test]
fn qop_two_roundings_like_onnxruntime() {
    use fixpoint_ml::format::{OutputDesc, Quant};
    use fixpoint_ml::ops::Op;
    let name = "digits_mlp_qop";
    let path = fixture(name).join("model.onnx");
    let im = import(name);
    let m = &im.model;
    // FullyConnected (to fc1.mm's scale), Reshape, the bias+Relu Conv2D, Reshape: layer 1's output.
    let Op::FullyConnected(fc) = &m.nodes[0].op else { panic!("first op {:?}", m.nodes[0].op) };
    assert!(matches!(m.nodes[2].op, Op::Conv2d(_)) && matches!(m.nodes[3].op, Op::Reshape(_)), "{:?}", m.nodes);
    let mut diag = m.clone();
    diag.outputs.push(OutputDesc { value: m.inputs.len() as u32, quant: Quant::NONE });
    diag.outputs.push(OutputDesc { value: m.inputs.len() as u32 + 3, quant: Quant::NONE });
    let engine = fixpoint_ml::Engine::load(&diag.to_bytes(), &fixpoint_ml::Limits::default()).unwrap();
    let w = m.tensors[fc.weights as usize].as_i8().unwrap();
    let f = |n: &str| initializer_f32(&path, n);
    let (s_x, s_w, s_mm, z_mm, s_r, z_r) = (
        f("input_scale"),
        f("fc1.weight_scale"),
        f("fc1.mm_scale"),
        f("fc1.mm_zero_point"),
        f("relu1.out_scale"),
        f("relu1.out_zero_point"),
    );
    use tract_onnx::prelude::Framework;
    let proto = tract_onnx::onnx().proto_model_for_path(&path).unwrap();
    let b = proto.graph.unwrap().initializer.into_iter().find(|t| t.name == "fc1.bias").unwrap();
    let bias: Vec<f32> = b.raw_data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    let table = onnx::data::load(&fixture(name).join("test.csv"), im.input_dim, opts().target.as_ref()).unwrap();
    let (k, n) = (im.input_dim, bias.len());
    let (mut total, mut differ, mut max_step, mut mm_differ) = (0usize, 0usize, 0i64, 0usize);
    for r in 0..table.rows() {
        let input = im.encoding.encode(table.row(r)).unwrap();
        let x = input[0].as_i8().unwrap().to_vec();
        let out = engine.run(input).unwrap();
        let ours = out.last().unwrap().as_i8().unwrap();
        let ours_mm = out[out.len() - 2].as_i8().unwrap();
        for o in 0..n {
            let dot: i64 =
                (0..k).map(|i| (i64::from(x[i]) - i64::from(fc.input_zero_point)) * i64::from(w[o * k + i])).sum();
            let q_mm = ((dot as f32 * (s_x * s_w / s_mm)).round_ties_even() + z_mm).clamp(-128.0, 127.0);
            let real = (s_mm * (q_mm - z_mm) + bias[o]).max(0.0);
            let ort = ((real / s_r).round_ties_even() + z_r).clamp(-128.0, 127.0) as i64;
            total += 1;
            mm_differ += usize::from(f32::from(ours_mm[o]) != q_mm);
            differ += usize::from(i64::from(ours[o]) != ort);
            max_step = max_step.max((i64::from(ours[o]) - ort).abs());
        }
    }
    println!(
        "{name} layer 1: {mm_differ} of {total} values differ from onnxruntime's after the first rounding, \
         {differ} after the second (by at most {max_step} step)"
    );
    // The first rounding differs only within the f32 product's error of a tie; the second also
    // where the float bias, held at 1/127 of fc1.mm's step, moves a value across a tie (within
    // 0.006 of an output step). A first-rounding difference of one step is 1.54 output steps.
    assert!(mm_differ * 1000 <= total, "{mm_differ} of {total}");
    assert!(max_step <= 2 && differ * 200 <= total, "{differ} of {total}, max {max_step}");
}
