//! The conformance vectors checked by a second, independent evaluator of the spec
//! (`tools/refeval/refeval.py`, Python written from docs/arithmetic.md and docs/model-format.md
//! alone, sharing no code with `ml/`). Lives in this crate because it is cheap to build; it tests
//! the vectors, not the quantizer. See docs/conformance.md.
//!
//! The negative cases prove the evaluator is not a rubber stamp: a vector with one output byte
//! or its `model_id` changed, or a model with a trailing byte, must make it exit non-zero.
//!
//! `tools/refeval/edge-cases.json` holds hand-worked cases for rules the committed vectors never
//! decide (rounding and ArgMax ties, a tree threshold equal to its feature, a middle-axis Concat, a
//! FullyConnected without bias, a Conv2D window of padding only); both evaluators must reproduce them, the engine on every path.
//! `tools/refeval/verdicts.json` holds small models the verifier must accept or refuse, for rules
//! the docs stated only once the second evaluator was written; both must give every verdict.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fixpoint_ml::kernels::Path as KernelPath;
use fixpoint_ml::{Engine, Limits};

fn root() -> PathBuf {
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("..")
}

fn refeval(dir: &Path) -> Output {
    let script = root().join("tools/refeval/refeval.py");
    match Command::new("python3").arg(&script).arg(dir).output() {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run `python3 {}`: {e}. The independent evaluator needs CPython 3.11 \
             (standard library only) on PATH; CI machines have it, install it locally to run \
             this test.",
            script.display()
        ),
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn scratch(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fixpoint-refeval-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Copies `ops/<file>` into a scratch directory with `edit` applied to its first case.
fn altered(test: &str, file: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let src = std::fs::read_to_string(root().join("tests/vectors/ops").join(file)).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&src).unwrap();
    edit(&mut v["cases"][0]);
    let d = scratch(test);
    std::fs::write(d.join(file), serde_json::to_string(&v).unwrap()).unwrap();
    d
}

/// Flips the low bit of the hex byte at `at` (counted from the end when negative).
fn flip(hex: &str, at: isize) -> String {
    let mut b = hex::decode(hex).unwrap();
    let i = if at < 0 { b.len() - at.unsigned_abs() } else { at as usize };
    b[i] ^= 1;
    hex::encode(b)
}

fn field(case: &mut serde_json::Value, key: &str, at: isize) {
    let s = flip(case[key].as_str().unwrap(), at);
    case[key] = serde_json::Value::String(s);
}

#[test]
fn independent_evaluator_reproduces_every_vector() {
    let o = refeval(&root().join("tests/vectors"));
    let t = text(&o);
    assert!(o.status.success(), "independent evaluator disagrees with the vectors:\n{t}");
    // Every file was visited (21 op files, 3 model files) and the manifest was checked.
    assert!(t.contains("files 24"), "{t}");
    assert!(t.contains("MANIFEST ok"), "{t}");
    assert!(t.contains(" 0 failed"), "{t}");
}

fn edge_cases() -> PathBuf {
    root().join("tools/refeval/edge-cases.json")
}

#[test]
fn independent_evaluator_reproduces_the_hand_worked_edge_cases() {
    let o = refeval(&edge_cases());
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("cases 9, 9 reproduced"), "{t}");
}

#[test]
fn engine_reproduces_the_hand_worked_edge_cases_on_every_path() {
    let doc = json("edge-cases.json");
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 9);
    let paths = KernelPath::available();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let model = hex::decode(case["model"].as_str().unwrap()).unwrap();
        let input = hex::decode(case["input"].as_str().unwrap()).unwrap();
        let expect = case["output"].as_str().unwrap();
        assert_eq!(hex::encode(fixpoint_ml::model_id(&model)), case["model_id"].as_str().unwrap(), "{name}: model id");
        let e = Engine::load_with_path(&model, &Limits::default(), KernelPath::Reference)
            .unwrap_or_else(|err| panic!("{name}: the engine refuses the model: {err}"));
        for p in &paths {
            let out = e.with_path(*p).unwrap().run_packed(&input).unwrap();
            assert_eq!(hex::encode(out), expect, "{name} on {p:?}");
        }
    }
    println!("edge cases checked on {paths:?}");
}

fn json(name: &str) -> serde_json::Value {
    let path = root().join("tools/refeval").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn independent_evaluator_gives_every_verdict() {
    let o = refeval(&root().join("tools/refeval/verdicts.json"));
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains(" 0 failed"), "{t}");
}

#[test]
fn engine_gives_every_verdict() {
    let doc = json("verdicts.json");
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 30, "only {} verdicts", cases.len());
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let model = hex::decode(case["model"].as_str().unwrap()).unwrap();
        let accepted = case["accepted"].as_bool().unwrap();
        let got = Engine::load(&model, &Limits::default());
        assert_eq!(got.is_ok(), accepted, "{name}: the engine says {:?}", got.err());
    }
}

#[test]
fn independent_evaluator_reports_an_altered_output() {
    let d = altered("output", "add.json", |c| field(c, "output", 0));
    let o = refeval(&d);
    let t = text(&o);
    assert!(!o.status.success(), "an altered output was accepted:\n{t}");
    assert!(t.contains("add-0-0") && t.contains("output mismatch"), "{t}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn independent_evaluator_reports_an_altered_model_id() {
    let d = altered("model-id", "conv2d.json", |c| field(c, "model_id", 31));
    let o = refeval(&d);
    let t = text(&o);
    assert!(!o.status.success(), "an altered model_id was accepted:\n{t}");
    assert!(t.contains("model_id mismatch"), "{t}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn independent_evaluator_rejects_a_trailing_byte() {
    // Model bytes with one byte appended: canonical parsing must refuse them (model-format §5.5),
    // even with a model_id that matches the altered bytes.
    let d = altered("trailing", "reshape.json", |c| {
        let m = format!("{}00", c["model"].as_str().unwrap());
        c["model"] = serde_json::Value::String(m);
        c["model_id"] = serde_json::Value::String(String::new());
    });
    let o = refeval(&d);
    let t = text(&o);
    assert!(!o.status.success(), "a model with a trailing byte was accepted:\n{t}");
    assert!(t.contains("trailing"), "{t}");
    let _ = std::fs::remove_dir_all(&d);
}
