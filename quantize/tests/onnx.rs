//! The ONNX importer on the committed fixtures (tests/fixtures/onnx, written by
//! tools/onnx-fixtures): integer accuracy against the float reference (the ONNX file run by
//! tract), determinism, exact tree splits and typed errors for what is not mapped.

use std::path::{Path, PathBuf};

use fixpoint_quantize::Error;
use fixpoint_quantize::onnx::report::Accuracy;
use fixpoint_quantize::onnx::{self, Imported, Options, Report, TargetColumn};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/onnx").join(name)
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
    for name in ["digits_cnn", "cancer_xgb", "iris_logreg", "digits_mlp_qdq", "digits_cnn_qop"] {
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

/// Truncated and mutated files return errors or models, never a panic.
#[test]
fn mutated_files_never_panic() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
    let dir = std::env::temp_dir().join(format!("fixpoint-onnx-mutants-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut ok, mut err) = (0, 0);
    for name in ["iris_logreg", "diabetes_ridge", "digits_mlp_qdq", "digits_cnn_qop", "cancer_xgb"] {
        let original = std::fs::read(fixture(name).join("model.onnx")).unwrap();
        for i in 0..60 {
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
