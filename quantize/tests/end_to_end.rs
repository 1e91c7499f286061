//! Float → integer on the real data sets: accuracy within the goal, every kernel path identical,
//! weights surviving a save/load round trip.

use fixpoint_ml::kernels::Path;
use fixpoint_ml::{Engine, Limits, Model};
use fixpoint_quantize::task::evaluate;
use fixpoint_quantize::{FloatModel, Task};

/// Trains a task briefly, quantizes it and checks accuracy and agreement on the test split.
fn check(task: Task, rounds: usize) -> Model {
    let (train, test) = task.split().unwrap();
    let float = task.train(&train, rounds, 1, |_, _| {}).unwrap();
    let model = float.quantize(&train, |_| {}).unwrap();
    let bytes = model.to_bytes();
    let engine = Engine::load(&bytes, &Limits::default()).unwrap();
    let r = evaluate(task, &float, &engine, &test).unwrap();
    println!("{}: {r}", task.name());
    assert!(r.float_accuracy() >= 90.0, "{}: float model undertrained: {r}", task.name());
    assert!(r.int_accuracy() >= r.float_accuracy() - 1.5, "{}: integer too far below float: {r}", task.name());
    assert!(r.agreement() >= 97.0, "{}: {r}", task.name());

    // Every kernel path gives the same outputs, row by row.
    let reference = Engine::load_with_path(&bytes, &Limits::default(), Path::Reference).unwrap();
    for i in 0..test.len() {
        let x = task.encode(test.row(i)).unwrap();
        let want = reference.run(vec![x.clone()]).unwrap();
        for p in Path::available() {
            assert_eq!(reference.with_path(p).unwrap().run(vec![x.clone()]).unwrap(), want, "row {i} on {p:?}");
        }
    }

    // Saved weights reload to the same float model: same integer model, byte for byte.
    let dir = std::env::temp_dir().join(format!("fixpoint-e2e-{}-{}", task.name(), std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("w.safetensors");
    float.save(&path, task).unwrap();
    let (named, again) = FloatModel::load(&path, None).unwrap();
    assert_eq!(named, task);
    assert_eq!(again.quantize(&train, |_| {}).unwrap().to_bytes(), bytes);
    std::fs::remove_dir_all(dir).unwrap();
    model
}

#[test]
fn digits_mlp() {
    check(Task::DigitsMlp, 15);
}

#[test]
fn digits_cnn() {
    let m = check(Task::DigitsCnn, 8);
    assert!(m.nodes.iter().any(|n| n.op.name() == "Conv2D"), "the CNN lowers to Conv2D ops");
}

#[test]
fn cancer_trees() {
    check(Task::CancerGbdt, 30);
}
