//! The `fixpoint-model` binary as a user runs it: good files work, bad ones get clear errors and
//! a non-zero exit, never a panic.

use std::path::PathBuf;
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fixpoint-model"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn tmp(test: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fixpoint-cli-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(o.status.success(), "{args:?} failed: {}", text(&o));
    text(&o)
}

fn fails(args: &[&str], needle: &str) {
    let o = run(args);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?} should fail cleanly: {t}");
    assert!(t.contains(needle), "{args:?}: expected {needle:?} in {t}");
    assert!(!t.contains("panicked"), "{t}");
}

#[test]
fn train_quantize_inspect_run_verify() {
    let w = tmp("ok", "trees.safetensors");
    let m = tmp("ok", "trees.fxp");
    let (w, m) = (w.to_str().unwrap(), m.to_str().unwrap());
    ok(&["train", "--task", "cancer-gbdt", "--rounds", "5", "--out", w]);
    assert!(ok(&["quantize", "--weights", w, "--out", m]).contains("id 0x"));
    let inspect = ok(&["inspect", m]);
    assert!(inspect.contains("TreeEnsemble") && inspect.contains("ArgMax"), "{inspect}");
    assert!(ok(&["verify", m]).starts_with("OK"));
    // 30 features at 2^16: zeros and a large row both classify.
    let zeros = vec!["0"; 30].join(",");
    let out = ok(&["run", m, "--input", &zeros]);
    assert!(out.contains("output #0 i32 [1]") && out.contains("real:"), "{out}");
    let eval = ok(&["eval", "--model", m, "--weights", w]);
    // "float F% (a/n), integer I% (b/n), agreement A% (c/n)": the claim (quantize/ACCURACY.md)
    // is at least 97 % agreement between float and integer on the 113 held-out rows.
    let counts: Vec<(u64, u64)> = eval
        .split('(')
        .skip(1)
        .filter_map(|p| {
            let (frac, _) = p.split_once(')')?;
            let (a, n) = frac.split_once('/')?;
            Some((a.trim().parse().ok()?, n.trim().parse().ok()?))
        })
        .collect();
    assert_eq!(counts.len(), 3, "{eval}");
    let [(float, n), (int, _), (agree, _)] = [counts[0], counts[1], counts[2]];
    assert_eq!(n, 113, "{eval}");
    assert!(agree * 100 >= 97 * n, "agreement {agree}/{n} below 97 %: {eval}");
    assert!(float * 100 >= 90 * n && int * 100 >= 90 * n, "accuracy below 90 %: {eval}");

    fails(&["run", m, "--input", "1,2,3"], "takes 30 input values, got 3");
    fails(&["run", m, "--input", &vec!["x"; 30].join(",")], "is not an integer");
    fails(&["run", m], "give the input");
    fails(&["run", m, "--hex", "zz"], "not valid hex");
    fails(&["run", m, "--hex", "00"], "input");
    std::fs::remove_dir_all(std::path::Path::new(w).parent().unwrap()).unwrap();
}

#[test]
fn bad_files_are_rejected_with_reasons() {
    let w = tmp("bad", "mlp.safetensors");
    let m = tmp("bad", "mlp.fxp");
    let (w, m) = (w.to_str().unwrap(), m.to_str().unwrap());
    ok(&["train", "--task", "digits-mlp", "--rounds", "1", "--out", w]);
    ok(&["quantize", "--weights", w, "--task", "digits-mlp", "--out", m]);
    let good = std::fs::read(m).unwrap();

    let bad = tmp("bad", "bad.fxp");
    let b = bad.to_str().unwrap();
    let mut magic = good.clone();
    magic[0] = b'X';
    std::fs::write(&bad, &magic).unwrap();
    fails(&["verify", b], "rejected");
    std::fs::write(&bad, &good[..good.len() / 2]).unwrap();
    fails(&["verify", b], "rejected");
    let mut trailing = good.clone();
    trailing.push(0);
    std::fs::write(&bad, &trailing).unwrap();
    fails(&["verify", b], "rejected");
    fails(&["inspect", b], "rejected");
    fails(&["verify", "/nonexistent/model.fxp"], "reading /nonexistent/model.fxp");

    fails(&["train", "--task", "cats", "--out", w], "unknown task \"cats\"");
    std::fs::write(&bad, b"not safetensors").unwrap();
    fails(&["quantize", "--weights", b, "--out", m], "loading");
    // Weights of one task cannot be quantized as another.
    fails(&["quantize", "--weights", w, "--task", "digits-cnn", "--out", m], "expected F32 [16, 1, 3, 3]");
    std::fs::remove_dir_all(bad.parent().unwrap()).unwrap();
}
