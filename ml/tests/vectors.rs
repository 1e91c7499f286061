//! Conformance vectors (tests/vectors/, docs/conformance.md). Checks that every file matches its
//! hash in MANIFEST and that every kernel path reproduces every expected output. With
//! `FIXPOINT_REGENERATE_VECTORS=1` it rewrites the op vectors and the manifest and then fails:
//! regenerating is an explicit approval of a change to the arithmetic, to be reviewed as such,
//! and the MANIFEST's own hash pinned in docs/conformance.md must be updated by hand.

mod common;

use std::fs;
use std::path::PathBuf;

use common::*;
use fixpoint_ml::format::{Model, ModelBuilder, NO_TENSOR, Quant};
use fixpoint_ml::kernels::Path;
use fixpoint_ml::ops::*;
use fixpoint_ml::{DType, Engine, Limits, Tensor, io, model_id};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

/// tests/vectors, found from the crate directory at run time (cargo sets it), so a test binary
/// reused from another checkout sharing the target directory reads this checkout's vectors.
fn dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../tests/vectors")
}

fn random_input(r: &mut ChaCha8Rng, m: &Model) -> Vec<u8> {
    (0..io::input_len(m)).map(|_| r.random()).collect()
}

/// Random tree-ensemble inputs must be valid i32 features; any bytes are, so no special case.
fn single_op(op: Op, inputs: &[(DType, Vec<usize>)], b: ModelBuilder) -> Model {
    let mut b = b;
    // Inputs were declared by the caller before tensors; here only the op and output.
    let ids: Vec<u32> = (0..inputs.len() as u32).collect();
    let y = b.op(op, &ids);
    b.output(y, Quant::NONE);
    b.finish().unwrap()
}

fn with_inputs(inputs: &[(DType, Vec<usize>)]) -> ModelBuilder {
    let mut b = ModelBuilder::new();
    for (d, s) in inputs {
        b.input(*d, s.clone(), Quant::NONE);
    }
    b
}

fn random_window(r: &mut ChaCha8Rng, pool: bool) -> Window {
    let mut w = Window::new(r.random_range(1..=3), r.random_range(1..=3));
    w.stride_h = r.random_range(1..=2);
    w.stride_w = r.random_range(1..=2);
    if pool {
        w.pad_top = r.random_range(0..w.kernel_h);
        w.pad_bottom = r.random_range(0..w.kernel_h);
        w.pad_left = r.random_range(0..w.kernel_w);
        w.pad_right = r.random_range(0..w.kernel_w);
    } else {
        (w.pad_top, w.pad_bottom, w.pad_left, w.pad_right) = (1, 0, 0, 1);
    }
    w
}

fn random_tree_model(r: &mut ChaCha8Rng) -> Model {
    let f = r.random_range(1..=6);
    let o = r.random_range(1..=3);
    let n_trees = r.random_range(1..=4);
    let (mut nodes, mut leaves, mut roots) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n_trees {
        // A complete tree of depth 2: node, two children nodes, four leaves.
        let base = (nodes.len() / 4) as i32;
        roots.push(base);
        for (i, children) in [(0, Some((1, 2))), (1, Some((3, 4))), (2, Some((5, 6)))] {
            let _ = i;
            let (l, rr) = children.unwrap();
            nodes.extend([r.random_range(0..f as i32), r.random_range(-1000..1000), base + l, base + rr]);
            leaves.extend(std::iter::repeat_n(0i64, o));
        }
        for _ in 0..4 {
            nodes.extend([-1, 0, 0, 0]);
            leaves.extend((0..o).map(|_| r.random_range(-1_000_000i64..1_000_000)));
        }
    }
    let n = nodes.len() / 4;
    let mut b = with_inputs(&[(DType::I32, vec![f])]);
    let te = TreeEnsemble {
        nodes: b.tensor(Tensor::i32(vec![n, 4], nodes).unwrap()),
        leaves: b.tensor(Tensor::i64(vec![n, o], leaves).unwrap()),
        roots: b.tensor(Tensor::i32(vec![roots.len()], roots).unwrap()),
        base: b.tensor(Tensor::i64(vec![o], (0..o).map(|_| r.random_range(-99i64..99)).collect()).unwrap()),
    };
    single_op(Op::TreeEnsemble(te), &[(DType::I32, vec![f])], b)
}

/// Small tree inputs so thresholds in ±1000 split them: bytes of i32 in ±2000.
fn tree_input(r: &mut ChaCha8Rng, m: &Model) -> Vec<u8> {
    (0..io::input_len(m) / 4).flat_map(|_| r.random_range(-2000i32..2000).to_le_bytes()).collect()
}

/// Valid Gather indices: any byte for u8 ids, i32 below the table's rows.
fn gather_input(r: &mut ChaCha8Rng, m: &Model) -> Vec<u8> {
    if m.inputs[0].dtype == DType::U8 {
        return random_input(r, m);
    }
    let rows = m.tensors.iter().find(|t| t.dtype() == DType::I8).map_or(1, |t| t.shape()[0]) as i32;
    (0..io::input_len(m) / 4).flat_map(|_| r.random_range(0..rows).to_le_bytes()).collect()
}

/// The op vector families: (file stem, models).
fn families() -> Vec<(&'static str, Vec<Model>)> {
    let mut r = rng(2026);
    let mut fams = Vec::new();
    fams.push(("fully_connected", (0..6).map(|i| random_fc_model(&mut r, 1 + i % 3, 3 + 11 * i, 1 + 5 * i)).collect()));
    fams.push(("conv2d", (0..10).map(|_| random_conv_model(&mut r).0).collect()));
    let mut adds = Vec::new();
    for _ in 0..4 {
        let shape = vec![r.random_range(1..=4), r.random_range(1..=5)];
        let ins = [(DType::I8, shape.clone()), (DType::I8, shape)];
        let add = Add {
            a_zero_point: r.random_range(-128..=127),
            a_multiplier: r.random_range(0..i32::MAX),
            b_zero_point: r.random_range(-128..=127),
            b_multiplier: r.random_range(0..i32::MAX),
            shift: r.random_range(30..=33),
            zero_point: r.random_range(-10..=10),
            lo: -128,
            hi: r.random_range(0..=127),
        };
        adds.push(single_op(Op::Add(add), &ins, with_inputs(&ins)));
    }
    fams.push(("add", adds));
    for (name, avg) in [("max_pool", false), ("avg_pool", true)] {
        let models = (0..5)
            .map(|_| {
                let window = random_window(&mut r, true);
                let ins = [(DType::I8, vec![r.random_range(3..=6), r.random_range(3..=6), r.random_range(1..=3)])];
                let op = if avg { Op::AvgPool(AvgPool { window }) } else { Op::MaxPool(MaxPool { window }) };
                single_op(op, &ins, with_inputs(&ins))
            })
            .collect();
        fams.push((name, models));
    }
    let ins = [(DType::I8, vec![2, 3, 4])];
    let reshape = single_op(Op::Reshape(Reshape { shape: vec![4, 6] }), &ins, with_inputs(&ins));
    fams.push(("reshape", vec![reshape]));
    let ins = [(DType::I8, vec![2, 3]), (DType::I8, vec![2, 1]), (DType::I8, vec![2, 2])];
    let concat = single_op(Op::Concat(Concat { axis: 1 }), &ins, with_inputs(&ins));
    fams.push(("concat", vec![concat]));
    let ins = [(DType::I8, vec![3, 5])];
    let mut b = with_inputs(&ins);
    let table = b.tensor(Tensor::i8(vec![256], (0..256).map(|_| r.random()).collect()).unwrap());
    fams.push(("lut8", vec![single_op(Op::Lut8(Lut8 { table }), &ins, b)]));
    let mut argmaxes = Vec::new();
    for d in [DType::I8, DType::I16, DType::I32, DType::I64] {
        let ins = [(d, vec![4, 3])];
        argmaxes.push(single_op(Op::ArgMax(ArgMax), &ins, with_inputs(&ins)));
    }
    fams.push(("argmax", argmaxes));
    let mut rqs = Vec::new();
    for d in [DType::I8, DType::I16, DType::I32] {
        let ins = [(d, vec![3, 4])];
        let mut b = with_inputs(&ins);
        let shift = match d {
            DType::I8 => 31,
            DType::I16 => 38,
            _ => 54,
        };
        let rq =
            requant(&mut b, (0..4).map(|_| r.random_range(1 << 30..i32::MAX)).collect(), vec![shift; 4], 3, -100, 120);
        rqs.push(single_op(Op::Requantize(Requantize { input_zero_point: 5, requant: rq }), &ins, b));
    }
    fams.push(("requantize", rqs));
    fams.push(("tree_ensemble", (0..4).map(|_| random_tree_model(&mut r)).collect()));
    // Softmax: a decaying table 2^30·ρ^d (ρ in Q30), plain and causal, both outputs.
    let mut softmaxes = Vec::new();
    for (shape, causal, out) in
        [(vec![3, 5], 0u8, 1u8), (vec![2, 4, 4], 1, 1), (vec![3, 6], 1, 2), (vec![1, 9], 0, 2), (vec![2, 2, 3], 1, 2)]
    {
        let ins = [(DType::I8, shape)];
        let mut b = with_inputs(&ins);
        let rho: i64 = r.random_range(700_000_000..1_070_000_000);
        let mut v: i64 = 1 << 30;
        let table: Vec<i32> = (0..256)
            .map(|_| {
                let e = v as i32;
                v = (v * rho) >> 30;
                e
            })
            .collect();
        let table = b.tensor(Tensor::i32(vec![256], table).unwrap());
        softmaxes.push(single_op(Op::Softmax(Softmax { table, causal, out }), &ins, b));
    }
    fams.push(("softmax", softmaxes));
    // LayerNorm and RMSNorm: random γ, β (or none), ε, F and per-channel or per-tensor requant.
    for (name, rms) in [("layer_norm", false), ("rms_norm", true)] {
        let mut models = Vec::new();
        for (k, shape) in [vec![2, 5], vec![3, 1], vec![1, 2, 16], vec![4, 7]].into_iter().enumerate() {
            let c = *shape.last().unwrap();
            let ins = [(DType::I8, shape)];
            let mut b = with_inputs(&ins);
            let gamma = b.tensor(Tensor::i32(vec![c], (0..c).map(|_| r.random_range(-4000..=4000)).collect()).unwrap());
            let beta = if k == 1 {
                NO_TENSOR
            } else {
                b.tensor(Tensor::i32(vec![c], (0..c).map(|_| r.random_range(-50_000..=50_000)).collect()).unwrap())
            };
            let channels = if k % 2 == 0 { c } else { 1 };
            // |γ·z| reaches about 2^(13+F): a shift near F + 36 lands the outputs in i8.
            let frac: u8 = r.random_range(4..=12);
            let rq = requant(
                &mut b,
                (0..channels).map(|_| r.random_range(1 << 30..i32::MAX)).collect(),
                vec![frac + r.random_range(34..=37); channels],
                r.random_range(-5..=5),
                -128,
                127,
            );
            let params = NormParams { gamma, beta, eps: r.random_range(1..=400), frac_bits: frac, requant: rq };
            let op = if rms {
                Op::RmsNorm(RmsNorm { input_zero_point: r.random_range(-20..=20), params })
            } else {
                Op::LayerNorm(LayerNorm { params })
            };
            models.push(single_op(op, &ins, b));
        }
        fams.push((name, models));
    }
    // Gather: u8 token ids into a 256-row table, i32 positions into a small one.
    let mut gathers = Vec::new();
    for (dtype, shape, rows, d) in
        [(DType::U8, vec![5], 256, 3), (DType::I32, vec![2, 3], 7, 4), (DType::I32, vec![4], 1, 2)]
    {
        let ins = [(dtype, shape)];
        let mut b = with_inputs(&ins);
        let table = b.tensor(Tensor::i8(vec![rows, d], (0..rows * d).map(|_| r.random()).collect()).unwrap());
        gathers.push(single_op(Op::Gather(Gather { table }), &ins, b));
    }
    fams.push(("gather", gathers));
    // MatMul of two activations: plain and B transposed, batched, raw and requantized.
    let mut matmuls = Vec::new();
    for (a_shape, b_shape, transposed, rq) in [
        (vec![3, 4], vec![4, 2], 0u8, false),
        (vec![2, 3, 5], vec![2, 4, 5], 1, true),
        (vec![1, 6], vec![6, 3], 0, true),
        (vec![2, 2, 2, 3], vec![2, 2, 3, 2], 0, false),
    ] {
        let n = if transposed == 1 { b_shape[b_shape.len() - 2] } else { *b_shape.last().unwrap() };
        let ins = [(DType::I8, a_shape), (DType::I8, b_shape)];
        let mut b = with_inputs(&ins);
        let requant = rq.then(|| {
            requant(&mut b, (0..n).map(|_| r.random_range(1 << 30..i32::MAX)).collect(), vec![38; n], 2, -128, 127)
        });
        let mm = MatMul {
            a_zero_point: r.random_range(-128..=127),
            b_zero_point: r.random_range(-128..=127),
            b_transposed: transposed,
            requant,
        };
        matmuls.push(single_op(Op::MatMul(mm), &ins, b));
    }
    fams.push(("matmul", matmuls));
    // Mul: per-tensor and per-channel requantization, zero points anywhere in i8.
    let mut muls = Vec::new();
    for (shape, per_channel) in [(vec![2, 3], false), (vec![4, 5], true), (vec![7], false)] {
        let ins = [(DType::I8, shape.clone()), (DType::I8, shape.clone())];
        let mut b = with_inputs(&ins);
        let ch = if per_channel { *shape.last().unwrap() } else { 1 };
        let requant = requant(
            &mut b,
            (0..ch).map(|_| r.random_range(1 << 30..i32::MAX)).collect(),
            vec![r.random_range(36..=39); ch],
            r.random_range(-10..=10),
            -128,
            127,
        );
        let mul = Mul { a_zero_point: r.random_range(-128..=127), b_zero_point: r.random_range(-128..=127), requant };
        muls.push(single_op(Op::Mul(mul), &ins, b));
    }
    fams.push(("mul", muls));
    // Transpose: heads split [T, H, d] -> [H, T, d], a 4-axis permutation, i32 values.
    let mut transposes = Vec::new();
    for (dtype, shape, perm) in [
        (DType::I8, vec![3, 2, 4], vec![1u8, 0, 2]),
        (DType::I8, vec![2, 3, 2, 2], vec![2, 0, 3, 1]),
        (DType::I32, vec![3, 5], vec![1, 0]),
    ] {
        let ins = [(dtype, shape)];
        transposes.push(single_op(Op::Transpose(Transpose { perm }), &ins, with_inputs(&ins)));
    }
    fams.push(("transpose", transposes));
    // Slice: the last position's logits, a middle band of channels, a u8 first entry.
    let mut slices = Vec::new();
    for (dtype, shape, axis, start, len) in
        [(DType::I32, vec![5, 7], 0u8, 4u32, 1u32), (DType::I8, vec![2, 6, 3], 1, 2, 3), (DType::U8, vec![4], 0, 0, 1)]
    {
        let ins = [(dtype, shape)];
        slices.push(single_op(Op::Slice(Slice { axis, start, len }), &ins, with_inputs(&ins)));
    }
    fams.push(("slice", slices));
    // AddWide: every pairing of i8 and i16 inputs, zero points anywhere in i16, shifts that land
    // the sum inside the i16 range (wide inputs) or i8 inputs scaled up, and a narrow clamp.
    let mut add_wides = Vec::new();
    for (da, db, shifts, lo, hi) in [
        (DType::I16, DType::I8, 31..=33, -32_768, 32_767),
        (DType::I16, DType::I16, 31..=33, -32_768, 32_767),
        (DType::I8, DType::I8, 22..=24, -32_768, 32_767),
        (DType::I8, DType::I16, 31..=33, -1000, 2000),
    ] {
        let shape = vec![r.random_range(1..=4), r.random_range(1..=6)];
        let ins = [(da, shape.clone()), (db, shape)];
        let zp = |r: &mut ChaCha8Rng, d: DType| {
            if d == DType::I8 { r.random_range(-128..=127) } else { r.random_range(-32_768..=32_767) }
        };
        let op = AddWide(Add {
            a_zero_point: zp(&mut r, da),
            a_multiplier: r.random_range(0..i32::MAX),
            b_zero_point: zp(&mut r, db),
            b_multiplier: r.random_range(0..i32::MAX),
            shift: r.random_range(shifts),
            zero_point: r.random_range(-3000..=3000),
            lo,
            hi,
        });
        add_wides.push(single_op(Op::AddWide(op), &ins, with_inputs(&ins)));
    }
    fams.push(("add_wide", add_wides));
    // LayerNorm and RMSNorm of i16 rows (a wide residual stream): full-range inputs, RMSNorm's zero
    // point anywhere in i16.
    let mut wide_norms = Vec::new();
    for (k, shape) in [vec![2, 5], vec![3, 8], vec![1, 2, 16], vec![4, 7]].into_iter().enumerate() {
        let c = *shape.last().unwrap();
        let ins = [(DType::I16, shape)];
        let mut b = with_inputs(&ins);
        let gamma = b.tensor(Tensor::i32(vec![c], (0..c).map(|_| r.random_range(-4000..=4000)).collect()).unwrap());
        let beta = b.tensor(Tensor::i32(vec![c], (0..c).map(|_| r.random_range(-50_000..=50_000)).collect()).unwrap());
        let channels = if k % 2 == 0 { c } else { 1 };
        let frac: u8 = r.random_range(4..=12);
        let rq = requant(
            &mut b,
            (0..channels).map(|_| r.random_range(1 << 30..i32::MAX)).collect(),
            vec![frac + r.random_range(34..=37); channels],
            r.random_range(-5..=5),
            -128,
            127,
        );
        let params = NormParams { gamma, beta, eps: r.random_range(1..=400), frac_bits: frac, requant: rq };
        let op = if k % 2 == 1 {
            Op::RmsNorm(RmsNorm { input_zero_point: r.random_range(-32_768..=32_767), params })
        } else {
            Op::LayerNorm(LayerNorm { params })
        };
        wide_norms.push(single_op(op, &ins, b));
    }
    fams.push(("norm_i16", wide_norms));
    fams
}

fn keccak_hex(b: &[u8]) -> String {
    hex::encode(model_id(b))
}

/// The op vector files as the fixed seeds generate them: (file name, exact file contents).
fn op_vector_files() -> Vec<(String, String)> {
    let mut r = rng(7);
    let mut files = Vec::new();
    for (name, models) in families() {
        let mut cases = Vec::new();
        for (i, m) in models.iter().enumerate() {
            let bytes = m.to_bytes();
            let e = Engine::load_with_path(&bytes, &Limits::default(), Path::Reference).unwrap();
            for j in 0..3 {
                let input = match name {
                    "tree_ensemble" => tree_input(&mut r, m),
                    "gather" => gather_input(&mut r, m),
                    _ => random_input(&mut r, m),
                };
                let output = e.run_packed(&input).unwrap();
                cases.push(json!({
                    "name": format!("{name}-{i}-{j}"),
                    "model": hex::encode(&bytes),
                    "model_id": keccak_hex(&bytes),
                    "input": hex::encode(&input),
                    "output": hex::encode(&output),
                }));
            }
        }
        let doc = json!({ "format": "fixpoint-vectors/1", "profile": 1, "op": name, "cases": cases });
        files.push((format!("{name}.json"), serde_json::to_string_pretty(&doc).unwrap() + "\n"));
    }
    files
}

/// Rewrites the op vectors and the manifest, then fails: a regeneration is never a passing run.
/// Review the diff, pin the new MANIFEST hash in docs/conformance.md, rerun without the variable.
fn regenerate() -> ! {
    let ops_dir = dir().join("ops");
    fs::create_dir_all(&ops_dir).unwrap();
    for (name, text) in op_vector_files() {
        fs::write(ops_dir.join(name), text).unwrap();
    }
    write_manifest();
    let hash = keccak_hex(&fs::read(dir().join("MANIFEST")).unwrap());
    panic!(
        "vectors and MANIFEST rewritten (MANIFEST keccak256 0x{hash}): review the diff, pin this hash in \
         docs/conformance.md, and rerun without FIXPOINT_REGENERATE_VECTORS"
    );
}

/// Every vector file with its keccak256, sorted by path.
fn vector_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for sub in ["ops", "models"] {
        if let Ok(rd) = fs::read_dir(dir().join(sub)) {
            files.extend(
                rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")),
            );
        }
    }
    files.sort();
    files
}

fn rel(p: &std::path::Path) -> String {
    p.strip_prefix(dir()).unwrap().to_string_lossy().replace('\\', "/")
}

fn write_manifest() {
    let mut out =
        String::from("# keccak256 of each vector file; regenerating one is an explicit approval of a format change.\n");
    for f in vector_files() {
        out.push_str(&format!("{}  {}\n", keccak_hex(&fs::read(&f).unwrap()), rel(&f)));
    }
    fs::write(dir().join("MANIFEST"), out).unwrap();
}

#[test]
fn conformance_vectors() {
    if std::env::var("FIXPOINT_REGENERATE_VECTORS").is_ok_and(|v| v == "1") {
        regenerate();
    }
    let manifest = fs::read_to_string(dir().join("MANIFEST")).expect("tests/vectors/MANIFEST missing");
    let listed: Vec<(String, String)> = manifest
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (h, p) = l.split_once("  ").expect("manifest line: <hash>  <path>");
            (h.to_string(), p.to_string())
        })
        .collect();
    let files: Vec<String> = vector_files().iter().map(|p| rel(p)).collect();
    assert_eq!(
        listed.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>(),
        files,
        "MANIFEST and tests/vectors/ disagree"
    );
    let mut n_cases = 0;
    for (hash, path) in &listed {
        let bytes = fs::read(dir().join(path)).unwrap();
        assert_eq!(&keccak_hex(&bytes), hash, "{path} changed without regenerating MANIFEST");
        let doc: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(doc["format"], "fixpoint-vectors/1");
        for case in doc["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let model = hex::decode(case["model"].as_str().unwrap()).unwrap();
            assert_eq!(keccak_hex(&model), case["model_id"].as_str().unwrap(), "{name}: model id");
            let input = hex::decode(case["input"].as_str().unwrap()).unwrap();
            let expect = case["output"].as_str().unwrap();
            let e = Engine::load_with_path(&model, &Limits::default(), Path::Reference).unwrap();
            for p in Path::available() {
                let out = e.with_path(p).unwrap().run_packed(&input).unwrap();
                assert_eq!(hex::encode(out), expect, "{name} on {p:?}");
            }
            n_cases += 1;
        }
    }
    assert!(n_cases >= 100, "only {n_cases} vector cases");
    let _ = NO_TENSOR;
    eprintln!(
        "conformance vectors: {n_cases} cases on paths {:?}",
        Path::available().iter().map(|p| p.name()).collect::<Vec<_>>()
    );
}

/// The committed op vectors are exactly what their fixed seeds generate: nobody edited a case
/// by hand, and generation is reproducible.
#[test]
fn op_vectors_are_what_their_seeds_generate() {
    for (name, text) in op_vector_files() {
        let committed = fs::read_to_string(dir().join("ops").join(&name)).unwrap();
        assert!(committed == text, "tests/vectors/ops/{name} differs from what its seed generates");
    }
}

/// The MANIFEST itself is pinned in docs/conformance.md, so changing a vector and its manifest
/// line together still shows up as a change to the spec.
#[test]
fn the_manifest_hash_is_pinned_in_the_spec() {
    let doc = fs::read_to_string(dir().join("../../docs/conformance.md")).unwrap();
    let pinned = doc
        .split("MANIFEST keccak256: `0x")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .expect("docs/conformance.md pins the MANIFEST hash as: MANIFEST keccak256: `0x...`");
    let actual = keccak_hex(&fs::read(dir().join("MANIFEST")).unwrap());
    assert_eq!(pinned, actual, "tests/vectors/MANIFEST changed: pin its new hash in docs/conformance.md");
}
