//! Traced runs (`Engine::run_traced`, used by `fixpoint_traceInference`): they are the chain's
//! run observed, not a second interpreter. On the example models' conformance vectors (whose
//! outputs the independent evaluator in tools/refeval reproduces): the traced outputs are the
//! vector's, each op's output is the input of the ops that read it, and the per-op work adds up
//! to what the whole run counts.

use fixpoint_ml::kernels::Path;
use fixpoint_ml::{Engine, Limits};

fn case(name: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let dir = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../tests/vectors/models");
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap()).unwrap();
    let c = &doc["cases"][0];
    let h = |k: &str| hex::decode(c[k].as_str().unwrap()).unwrap();
    (h("model"), h("input"), h("output"))
}

#[test]
fn traced_runs_give_the_vectors_outputs_and_account_for_all_the_work() {
    for name in ["digits-mlp", "digits-cnn", "cancer-gbdt"] {
        let (bytes, input, output) = case(name);
        let e = Engine::load_with_path(&bytes, &Limits::default(), Path::Reference).unwrap();
        let inputs = fixpoint_ml::io::unpack_inputs(e.model(), &input).unwrap();
        let (outs, trace) = e.run_traced(inputs.clone()).unwrap();
        assert_eq!(fixpoint_ml::io::pack(&outs), output, "{name}: traced outputs are the vector's");
        assert_eq!(trace.len(), e.model().nodes.len(), "{name}: one step per op");
        let n_in = e.model().inputs.len();
        for (i, (t, node)) in trace.iter().zip(&e.model().nodes).enumerate() {
            assert_eq!((t.index, t.op), (i, node.op.name()), "{name}: steps in op order");
            // Every value an op reads is the input or an earlier step's output, as traced.
            for &v in &node.inputs {
                let v = v as usize;
                assert!(v < n_in || v - n_in < i, "{name}: op {i} reads a later value");
            }
        }
        // Each model output is the traced output of the op that produced it.
        for (o, out) in e.model().outputs.iter().zip(&outs) {
            let producer = o.value as usize - n_in;
            assert_eq!(&trace[producer].output, out, "{name}: output comes from op {producer}");
        }
        // The ops' work plus the output copies is the run's count.
        let (_, counted) = e.run_counted(inputs).unwrap();
        let mut sum = trace.iter().fold(fixpoint_ml::Work::default(), |a, t| a + t.work);
        for out in &outs {
            sum.calls += 1;
            sum.bytes += out.byte_len() as u64;
        }
        assert_eq!(sum, counted, "{name}");
    }
}
