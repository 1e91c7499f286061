//! The conformance vectors checked by a second, independent evaluator of the spec
//! (`tools/refeval/refeval.py`, Python written from docs/arithmetic.md and docs/model-format.md
//! alone, sharing no code with `ml/`). Lives in this crate because it is cheap to build; it tests
//! the vectors, not the quantizer. See docs/conformance.md.
//!
//! The negative cases prove the evaluator is not a rubber stamp: a vector with one output byte,
//! one model byte or its `model_id` changed must make it exit non-zero.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
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
    // Every file was visited (11 op files, 3 model files) and the manifest was checked.
    assert!(t.contains("files 14"), "{t}");
    assert!(t.contains("MANIFEST ok"), "{t}");
    assert!(t.contains(" 0 failed"), "{t}");
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
