//! The built-in tasks still lower to the committed model vectors (tests/vectors/models): the
//! ONNX importer shares `net`, `lower` and `gbdt` with them, and any change there that moves a
//! built-in model's bytes would silently change the models the chain's vectors pin down.
//! Trains each task exactly as `fixpoint-model vectors` does (seed 1, default rounds, fixed split).

use fixpoint_ml::model_id;
use fixpoint_quantize::Task;

fn committed_id(task: Task) -> String {
    let path = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../tests/vectors/models")
    .join(format!("{}.json", task.name()));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["cases"][0]["model_id"].as_str().unwrap().to_string()
}

fn check(task: Task) {
    let (train, _) = task.split().unwrap();
    let float = task.train(&train, task.default_rounds(), 1, |_, _| {}).unwrap();
    let model = float.quantize(&train, |_| {}).unwrap();
    assert_eq!(hex::encode(model_id(&model.to_bytes())), committed_id(task), "{}", task.name());
}

#[test]
fn digits_mlp_is_the_committed_vector() {
    check(Task::DigitsMlp);
}

#[test]
fn digits_cnn_is_the_committed_vector() {
    check(Task::DigitsCnn);
}

#[test]
fn cancer_gbdt_is_the_committed_vector() {
    check(Task::CancerGbdt);
}
