#!/usr/bin/env python3
"""Train small real models on data sets bundled with scikit-learn and write ONNX fixtures.

Every fixture lands in ``<out>/<name>/`` (default ``tests/fixtures/onnx``):

- ``model.onnx``    the model as its converter/exporter wrote it (opsets pinned, see OPSET)
- ``calib.csv``     training rows (inputs only, header = feature names) for calibration
- ``test.csv``      held-out rows, the same columns plus ``target``
- ``expected.json`` task, input/output description, the float metric measured with
                    onnxruntime on test.csv, onnxruntime's outputs for the first rows,
                    opsets, producer, op types, and sha256 of every file above
- image models also get ``calib.npy`` / ``test.npy`` (N,1,8,8) float32 and ``test_target.npy``

Run from anywhere:  python tools/onnx-fixtures/make_fixtures.py [--out DIR]
See README.md beside this file for the environment and the data sources.
"""

from __future__ import annotations

import os
import sys

# String hashing decides set iteration order, and converters build opset lists from sets
# (onnxmltools' LightGBM converter wrote its opset_import in a different order per run): pin
# the hash seed, which only takes effect at interpreter start, so re-execute once with it.
if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable, *sys.argv])

# Single-threaded BLAS/OpenMP before numpy, xgboost or lightgbm load: multi-threaded reductions
# may sum in a different order from run to run, and the fixtures must be byte-identical.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse
import csv
import hashlib
import json
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris, load_wine
from sklearn.model_selection import train_test_split

SEED = 0
OPSET = 17  # default ONNX domain
OPSET_ONNXMLTOOLS = 15  # the highest onnxmltools 1.16 converts xgboost/lightgbm to
ML_OPSET = 3  # ai.onnx.ml: TreeEnsemble*/Linear*/ZipMap/Scaler as most runtimes know them
CNN_EPOCHS = 40
N_CALIB = 256  # at most this many training rows go to calib.csv
N_FIRST = 20  # onnxruntime outputs recorded for this many test rows

REPO = Path(__file__).resolve().parents[2]
INDEX: list = []  # (expected.json contents, model bytes) of every fixture written, in order

SKLEARN_LICENCE = (
    "Bundled with scikit-learn (BSD-3-Clause); see README.md in tools/onnx-fixtures for the "
    "origin of the data set as scikit-learn documents it."
)

DATASETS = {
    "digits": {
        "loader": "sklearn.datasets.load_digits",
        "origin": "UCI ML hand-written digits (Optical Recognition of Handwritten Digits), "
        "test set: 1797 8x8 images, pixel values 0..16",
        "uci": "https://archive.ics.uci.edu/dataset/80",
    },
    "breast_cancer": {
        "loader": "sklearn.datasets.load_breast_cancer",
        "origin": "UCI ML Breast Cancer Wisconsin (Diagnostic), 569 samples, 30 features",
        "uci": "https://archive.ics.uci.edu/dataset/17",
    },
    "iris": {
        "loader": "sklearn.datasets.load_iris",
        "origin": "R.A. Fisher's Iris data (UCI ML Iris), 150 samples, 4 features",
        "uci": "https://archive.ics.uci.edu/dataset/53",
    },
    "wine": {
        "loader": "sklearn.datasets.load_wine",
        "origin": "UCI ML Wine recognition data, 178 samples, 13 features",
        "uci": "https://archive.ics.uci.edu/dataset/109",
    },
    "diabetes": {
        "loader": "sklearn.datasets.load_diabetes(scaled=False)",
        "origin": "Efron, Hastie, Johnstone, Tibshirani (2004) 'Least Angle Regression' diabetes "
        "data, 442 patients, 10 raw (unscaled) baseline variables, target = disease progression "
        "one year later",
        "uci": None,
    },
}


# --------------------------------------------------------------------------------------------
# helpers


def seed_everything() -> None:
    random.seed(SEED)
    np.random.seed(SEED)


def f32_str(v) -> str:
    """Shortest decimal that parses back to the same float32."""
    s = np.format_float_positional(np.float32(v), unique=True, trim="-")
    assert np.float32(s) == np.float32(v), (s, v)
    return s


def write_csv(path: Path, header: list[str], x: np.ndarray, target=None, target_fmt=str) -> None:
    x = np.asarray(x, dtype=np.float32)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header + (["target"] if target is not None else []))
        for i, row in enumerate(x):
            cells = [f32_str(v) for v in row]
            if target is not None:
                cells.append(target_fmt(target[i]))
            w.writerow(cells)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def normalise_model(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """Pin what converters leave to chance or to their own version: graph name, IR version."""
    model.graph.name = name
    # quant_pre_process imports every domain onnxruntime knows (com.microsoft.nchwc, ...): keep
    # the default domain and the domains some node uses.
    used = {n.domain for n in model.graph.node}
    opsets = sorted((o.domain, o.version) for o in model.opset_import
                    if o.domain in used or o.domain == "")
    del model.opset_import[:]
    model.opset_import.extend(helper.make_opsetid(d, v) for d, v in opsets)
    model.ir_version = helper.find_min_ir_version_for(
        [helper.make_opsetid(d, v) for d, v in opsets], ignore_unknown=True
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def op_types(model: onnx.ModelProto) -> list[str]:
    seen = set()
    for n in model.graph.node:
        seen.add(f"{n.domain}:{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type)
    return sorted(seen)


def session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def round_list(a, digits=7):
    """JSON-friendly floats: float32 values printed to their shortest round-trip decimal."""
    a = np.asarray(a)
    if a.dtype.kind == "f":
        return [float(f32_str(v)) for v in a.astype(np.float32).ravel()]
    return [int(v) if a.dtype.kind in "iu" else v for v in a.ravel().tolist()]


def zipmap_to_matrix(out, classes) -> np.ndarray:
    """onnxruntime returns ZipMap output as a list of {class: prob}; turn it into (N, C)."""
    return np.array([[row[c] for c in classes] for row in out], dtype=np.float32)


def describe_io(model: onnx.ModelProto):
    def one(v):
        t = v.type
        if t.HasField("tensor_type"):
            dims = [d.dim_param or d.dim_value if (d.dim_param or d.dim_value) else None
                    for d in t.tensor_type.shape.dim]
            dims = [d if isinstance(d, int) else None for d in dims]
            return {"name": v.name, "kind": "tensor",
                    "dtype": TensorProto.DataType.Name(t.tensor_type.elem_type).lower(),
                    "shape": dims}
        if t.HasField("sequence_type"):
            return {"name": v.name, "kind": "sequence(map)", "dtype": "seq(map(int64,float))",
                    "shape": None}
        return {"name": v.name, "kind": "other"}

    return [one(v) for v in model.graph.input], [one(v) for v in model.graph.output]


def split(x, y, stratify=True, test_size=0.25):
    return train_test_split(
        x, y, test_size=test_size, random_state=SEED, stratify=y if stratify else None
    )


def finish(
    out_root: Path,
    name: str,
    model: onnx.ModelProto,
    *,
    task: str,
    dataset: str,
    description: str,
    feature_names: list[str],
    x_calib: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    label_output: str | None = None,
    scores_output: str | None = None,
    value_output: str | None = None,
    scores_kind: str | None = None,
    classes: list | None = None,
    input_layout: list | None = None,
    preprocessing: str = "none: feed the CSV values as they are",
    trained_with: str,
    native_metric: float | None = None,
    extra: dict | None = None,
) -> dict:
    """Write model.onnx + CSVs, run onnxruntime on test rows, write expected.json."""
    d = out_root / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    model = normalise_model(model, name)
    onnx.save_model(model, str(d / "model.onnx"))

    x_calib = np.asarray(x_calib, dtype=np.float32)
    x_test = np.asarray(x_test, dtype=np.float32)
    flat_calib = x_calib.reshape(len(x_calib), -1)
    flat_test = x_test.reshape(len(x_test), -1)
    write_csv(d / "calib.csv", feature_names, flat_calib)
    tfmt = (lambda v: str(int(v))) if task == "classification" else f32_str
    write_csv(d / "test.csv", feature_names, flat_test, y_test, tfmt)
    files = ["model.onnx", "calib.csv", "test.csv"]
    if input_layout is not None and len(input_layout) > 1:
        np.save(d / "calib.npy", x_calib)
        np.save(d / "test.npy", x_test)
        np.save(d / "test_target.npy", np.asarray(y_test, dtype=np.int64))
        files += ["calib.npy", "test.npy", "test_target.npy"]

    # The float reference: onnxruntime on exactly the values in test.csv.
    sess = session(d / "model.onnx")
    in_name = sess.get_inputs()[0].name
    outs = sess.run(None, {in_name: x_test})
    by_name = {o.name: v for o, v in zip(sess.get_outputs(), outs)}

    first = []
    result: dict = {}
    if task == "classification":
        labels = np.asarray(by_name[label_output]).ravel()
        raw_scores = by_name[scores_output]
        if scores_kind == "zipmap":
            scores = zipmap_to_matrix(raw_scores, classes)
        else:
            scores = np.asarray(raw_scores, dtype=np.float32)
        acc = float(np.mean(labels.astype(np.int64) == np.asarray(y_test).astype(np.int64)))
        argmax_agrees = float(np.mean(np.asarray(classes)[scores.argmax(axis=1)] == labels))
        result = {
            "metric": "accuracy",
            "value": round(acc, 6),
            "correct": int(round(acc * len(y_test))),
            "rows": int(len(y_test)),
            "label_equals_argmax_of_scores": argmax_agrees,
        }
        for i in range(min(N_FIRST, len(x_test))):
            first.append({"row": i, "label": int(labels[i]), "scores": round_list(scores[i])})
    else:
        pred = np.asarray(by_name[value_output], dtype=np.float32).ravel()
        err = pred.astype(np.float64) - np.asarray(y_test, dtype=np.float64)
        rmse = float(np.sqrt(np.mean(err**2)))
        result = {
            "metric": "rmse",
            "value": round(rmse, 6),
            "mae": round(float(np.mean(np.abs(err))), 6),
            "rows": int(len(y_test)),
        }
        for i in range(min(N_FIRST, len(x_test))):
            first.append({"row": i, "value": round_list(pred[i : i + 1])[0]})
    if native_metric is not None:
        result["trainer_metric_same_rows"] = round(float(native_metric), 6)

    inputs, outputs = describe_io(model)
    for o in outputs:
        if o["name"] == label_output:
            o["role"] = "label"
        elif o["name"] == scores_output:
            o["role"] = "scores" if scores_kind != "zipmap" else "scores (ZipMap: one map per row)"
        elif o["name"] == value_output:
            o["role"] = "value"
        else:
            o["role"] = "other"

    info = {
        "name": name,
        "description": description,
        "task": task,
        "dataset": {"name": dataset, **DATASETS[dataset], "licence": SKLEARN_LICENCE},
        "trained_with": trained_with,
        "input": {
            **inputs[0],
            "shape_per_row": input_layout or [len(feature_names)],
            "features": len(feature_names),
            "preprocessing": preprocessing,
        },
        "outputs": outputs,
        "label_output": label_output,
        "scores_output": scores_output,
        "value_output": value_output,
        "classes": classes,
        "float_reference": {"runtime": f"onnxruntime {ort.__version__} (CPU, 1 thread)", **result},
        "first_rows": first,
        "calib_rows": int(len(x_calib)),
        "test_rows": int(len(x_test)),
        "target_column": "target",
        "ir_version": int(model.ir_version),
        "opset": {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import},
        "producer": {"name": model.producer_name, "version": model.producer_version},
        "op_types": op_types(model),
        "nodes": len(model.graph.node),
        "files": {f: sha256(d / f) for f in files},
    }
    if extra:
        info.update(extra)
    with open(d / "expected.json", "w") as f:
        json.dump(info, f, indent=1, sort_keys=False)
        f.write("\n")
    size = (d / "model.onnx").stat().st_size
    INDEX.append((info, size))
    print(f"{name:24s} {result['metric']}={result['value']:<10} {size:>8} B  {' '.join(info['op_types'])}")
    return info


def calib_rows(x_train):
    return x_train[:N_CALIB]


# --------------------------------------------------------------------------------------------
# fixtures


def digits_mlp(out: Path, state: dict) -> None:
    """StandardScaler + MLPClassifier (sklearn Pipeline) on digits, skl2onnx, no ZipMap."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    ds = load_digits()
    x, y = ds.data.astype(np.float32), ds.target
    xtr, xte, ytr, yte = split(x, y)
    clf = MLPClassifier(hidden_layer_sizes=(32,), activation="relu", solver="adam",
                        alpha=1e-3, max_iter=300, random_state=SEED)
    pipe = Pipeline([("scaler", StandardScaler()), ("mlp", clf)])
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe.fit(xtr, ytr)
    onx = convert_sklearn(
        pipe, name="digits_mlp", initial_types=[("input", FloatTensorType([None, 64]))],
        target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
        options={id(clf): {"zipmap": False}},
    )
    state["digits"] = (pipe, xtr, xte, ytr, yte, list(ds.feature_names))
    finish(out, "digits_mlp", onx, task="classification", dataset="digits",
           description="sklearn Pipeline(StandardScaler, MLPClassifier(hidden=(32,), relu)) on "
           "8x8 digits; the scaler is in the graph (ai.onnx.ml Scaler) and should be folded into "
           "the first layer's input quantization. ZipMap off: probabilities are a tensor.",
           feature_names=list(ds.feature_names), x_calib=calib_rows(xtr), x_test=xte, y_test=yte,
           label_output="label", scores_output="probabilities", scores_kind="tensor",
           classes=[int(c) for c in clf.classes_],
           preprocessing="none: raw pixel values 0..16 (the scaler is part of the model)",
           trained_with="scikit-learn MLPClassifier, converted by skl2onnx",
           native_metric=pipe.score(xte, yte))


def plain_mlp_from_sklearn(mlp, name: str, matmul_add: bool) -> onnx.ModelProto:
    """A trained MLPClassifier (fitted on pixels / 16) as a plain float graph taking raw pixels.

    x -> Gemm(W1 / 16, b1) -> Relu -> Gemm(W2, b2) -> Softmax   (or MatMul+Add for each Gemm)
    Dividing W1 by 16 is exact in float32, so the graph computes what sklearn computes.

    Why not reuse digits_mlp and fold its StandardScaler into W1: a few digits pixels have a tiny
    standard deviation, W1 / std then has a handful of huge rows, and per-tensor int8 weights
    lose everything else (tried: 40 % accuracy after quantize_static).
    """
    w1, w2 = mlp.coefs_
    b1, b2 = mlp.intercepts_
    w1f = (w1.astype(np.float32) / np.float32(16.0)).astype(np.float32)
    b1f = b1.astype(np.float32)
    inits = [
        numpy_helper.from_array(w1f, "fc1.weight"),
        numpy_helper.from_array(b1f, "fc1.bias"),
        numpy_helper.from_array(w2.astype(np.float32), "fc2.weight"),
        numpy_helper.from_array(b2.astype(np.float32), "fc2.bias"),
    ]
    nodes = []
    if matmul_add:
        nodes += [
            helper.make_node("MatMul", ["input", "fc1.weight"], ["fc1.mm"], name="fc1/MatMul"),
            helper.make_node("Add", ["fc1.mm", "fc1.bias"], ["fc1.out"], name="fc1/Add"),
        ]
    else:
        nodes.append(helper.make_node("Gemm", ["input", "fc1.weight", "fc1.bias"], ["fc1.out"],
                                      name="fc1/Gemm"))
    nodes.append(helper.make_node("Relu", ["fc1.out"], ["relu1.out"], name="relu1"))
    if matmul_add:
        nodes += [
            helper.make_node("MatMul", ["relu1.out", "fc2.weight"], ["fc2.mm"], name="fc2/MatMul"),
            helper.make_node("Add", ["fc2.mm", "fc2.bias"], ["logits"], name="fc2/Add"),
        ]
    else:
        nodes.append(helper.make_node("Gemm", ["relu1.out", "fc2.weight", "fc2.bias"], ["logits"],
                                      name="fc2/Gemm"))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1))
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="fixpoint onnx-fixtures", producer_version="1")
    return model


class CsvReader:
    """onnxruntime CalibrationDataReader over calibration rows, one row per batch."""

    def __init__(self, x: np.ndarray, input_name: str = "input"):
        self.rows = [x[i : i + 1].astype(np.float32) for i in range(len(x))]
        self.name = input_name
        self.i = 0

    def get_next(self):
        if self.i >= len(self.rows):
            return None
        self.i += 1
        return {self.name: self.rows[self.i - 1]}

    def rewind(self):
        self.i = 0


def read_calib_csv(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float32, ndmin=2)


def quantize(float_model: onnx.ModelProto, calib: np.ndarray, fmt: str, ops=None) -> onnx.ModelProto:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    with tempfile.TemporaryDirectory() as td:
        src, dst = Path(td) / "float.onnx", Path(td) / "q.onnx"
        onnx.save_model(float_model, str(src))
        quantize_static(
            str(src), str(dst), CsvReader(calib, float_model.graph.input[0].name),
            quant_format=QuantFormat.QDQ if fmt == "QDQ" else QuantFormat.QOperator,
            op_types_to_quantize=ops, per_channel=False, reduce_range=False,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
        )
        return onnx.load_model(str(dst))


def digits_mlp_qdq(out: Path, state: dict) -> None:
    from sklearn.metrics import accuracy_score
    from sklearn.neural_network import MLPClassifier

    _, xtr, xte, ytr, yte, feats = state["digits"]
    calib = read_calib_csv(out / "digits_mlp" / "calib.csv")
    mlp = MLPClassifier(hidden_layer_sizes=(32,), activation="relu", solver="adam",
                        alpha=1e-3, max_iter=400, random_state=SEED)
    import warnings
    from sklearn.exceptions import ConvergenceWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(xtr / np.float32(16.0), ytr)
    float_acc = {}
    for kind in ("gemm", "matmul"):
        fm = plain_mlp_from_sklearn(mlp, "f", matmul_add=kind == "matmul")
        s = ort.InferenceSession(fm.SerializeToString(), providers=["CPUExecutionProvider"])
        p = s.run(None, {"input": xte.astype(np.float32)})[0].argmax(axis=1)
        float_acc[kind] = float(accuracy_score(yte, p))
    common = dict(task="classification", dataset="digits", feature_names=feats,
                  x_calib=calib, x_test=xte, y_test=yte, scores_output="probabilities",
                  scores_kind="tensor", classes=list(range(10)),
                  preprocessing="none: raw pixel values 0..16 (the 1/16 input scaling is folded into fc1)")

    # argmax label added by an ArgMax node so every classifier has a label output
    def with_label(model: onnx.ModelProto) -> onnx.ModelProto:
        g = model.graph
        g.node.append(helper.make_node("ArgMax", ["probabilities"], ["label"], name="argmax",
                                       axis=1, keepdims=0))
        g.output.append(helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]))
        return model

    plain = plain_mlp_from_sklearn(mlp, "digits_mlp_qdq", matmul_add=False)
    q = with_label(quantize(plain, calib, "QDQ"))
    finish(out, "digits_mlp_qdq", q, **common, label_output="label",
           description="An MLPClassifier(hidden=(32,), relu) trained on pixels/16 (same split as "
           "digits_mlp), written as a plain float Gemm+Relu+Gemm+Softmax graph on raw pixels "
           "(1/16 folded into fc1, exact), then statically quantized by onnxruntime.quantization."
           "quantize_static: QDQ format, per-tensor int8 activations (asymmetric) and weights "
           "(symmetric), MinMax calibration on calib.csv. An ArgMax gives the label.",
           trained_with="scikit-learn MLPClassifier, graph written with onnx.helper, quantized by onnxruntime "
           "quantize_static (QDQ)",
           extra={"quantization": {"format": "QDQ", "per_channel": False,
                                   "activations": "int8 asymmetric per-tensor",
                                   "weights": "int8 symmetric per-tensor",
                                   "calibration": "MinMax on calib.csv (256 rows)"},
                  "float_model_before_quantization": {"metric": "accuracy",
                                                      "value": round(float_acc["gemm"], 6)},
                  "notes": "onnxruntime dropped the Relu after fc1: the QuantizeLinear on fc1's "
                  "output (tensor 'relu1.out') has zero point -128 with a range starting at 0, "
                  "so quantization itself clamps negatives. Weights are stored as int8 "
                  "initializers behind DequantizeLinear, biases as int32 with scale = input "
                  "scale * weight scale. The Softmax output is quantized too (scale 1/255, "
                  "zero point -128) before the ArgMax."})

    plain_mm = plain_mlp_from_sklearn(mlp, "digits_mlp_qop", matmul_add=True)
    q2 = with_label(quantize(plain_mm, calib, "QOperator", ops=["MatMul"]))
    finish(out, "digits_mlp_qop", q2, **common, label_output="label",
           description="The same MLP as digits_mlp_qdq, written as MatMul+Add+Relu+MatMul+Add+"
           "Softmax, quantized "
           "by onnxruntime quantize_static in QOperator format with only MatMul quantized: "
           "QLinearMatMul between QuantizeLinear/DequantizeLinear, bias Add/Relu/Softmax in float "
           "(standard ONNX ops only, no com.microsoft contrib ops).",
           trained_with="scikit-learn MLPClassifier, graph written with onnx.helper, quantized by onnxruntime "
           "quantize_static (QOperator)",
           extra={"quantization": {"format": "QOperator", "op_types_quantized": ["MatMul"],
                                   "per_channel": False,
                                   "activations": "int8 asymmetric per-tensor",
                                   "weights": "int8 symmetric per-tensor",
                                   "calibration": "MinMax on calib.csv (256 rows)"},
                  "float_model_before_quantization": {"metric": "accuracy",
                                                      "value": round(float_acc["matmul"], 6)}})


def digits_cnn(out: Path, state: dict) -> None:
    """Conv+BN+Relu+MaxPool, Conv+BN+Relu, GlobalAveragePool, Gemm: torch, torch.onnx.export."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    _, xtr, xte, ytr, yte, feats = state["digits"]  # same split as digits_mlp
    img_tr = (xtr / np.float32(16.0)).reshape(-1, 1, 8, 8).astype(np.float32)
    img_te = (xte / np.float32(16.0)).reshape(-1, 1, 8, 8).astype(np.float32)

    class DigitsCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(8)
            self.pool = nn.MaxPool2d(2)
            self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
            self.bn2 = nn.BatchNorm2d(16)
            self.gap = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            x = self.pool(torch.relu(self.bn1(self.conv1(x))))
            x = torch.relu(self.bn2(self.conv2(x)))
            return self.fc(torch.flatten(self.gap(x), 1))

    net = DigitsCNN()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(img_tr), torch.from_numpy(ytr.astype(np.int64))
    gen = torch.Generator().manual_seed(SEED)
    net.train()
    for _epoch in range(CNN_EPOCHS):
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        torch_acc = float((net(torch.from_numpy(img_te)).argmax(1).numpy() == yte).mean())

    with tempfile.TemporaryDirectory() as td:
        path = Path(td) / "cnn.onnx"
        torch.onnx.export(
            net, (torch.from_numpy(img_te[:1]),), str(path), dynamo=False,
            input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
            opset_version=OPSET, training=torch.onnx.TrainingMode.PRESERVE,
            do_constant_folding=True,
        )
        onx = onnx.load_model(str(path))
    # The logits are the scores; an ArgMax gives the label, as for the quantized MLPs.
    onx.graph.node.append(helper.make_node("ArgMax", ["logits"], ["label"], name="argmax",
                                           axis=1, keepdims=0))
    onx.graph.output.append(helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]))
    onx.producer_version = torch.__version__.split("+")[0]
    feats_img = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    state["digits_cnn"] = (onx, img_tr, img_te, yte, feats_img)
    finish(out, "digits_cnn", onx, task="classification", dataset="digits",
           description="PyTorch CNN on digits as 1x8x8 images in [0, 1]: Conv(1->8, 3x3, pad 1)+"
           "BatchNorm+Relu+MaxPool(2), Conv(8->16, 3x3, pad 1)+BatchNorm+Relu, GlobalAveragePool, "
           "Flatten, Gemm(16->10). Exported by torch.onnx.export (TorchScript exporter, "
           "training=PRESERVE so BatchNormalization stays a node; model in eval mode). "
           "An ArgMax node was appended for the label.",
           feature_names=feats_img, x_calib=img_tr[:N_CALIB], x_test=img_te, y_test=yte,
           label_output="label", scores_output="logits", scores_kind="tensor",
           classes=list(range(10)), input_layout=[1, 8, 8],
           preprocessing="pixels / 16 (values in [0, 1]); CSV columns are the 8x8 image row-major",
           trained_with=f"torch {torch.__version__.split('+')[0]} (CPU, Adam, {CNN_EPOCHS} epochs), "
           "torch.onnx.export", native_metric=torch_acc)

    # The same network through torch's default (torch.export-based) exporter, as a user of a
    # current torch gets it: BatchNormalization folded into Conv, GlobalAveragePool written as
    # ReduceMean, opset 18.
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        prog = torch.onnx.export(
            net, (torch.from_numpy(img_te[:1]),), dynamo=True, external_data=False,
            input_names=["input"], output_names=["logits"],
            dynamic_shapes=({0: torch.export.Dim("N")},), opset_version=18,
        )
    dyn = onnx.ModelProto()
    dyn.CopyFrom(prog.model_proto)
    # The exporter annotates every node and value with its Python stack trace and FX node
    # (absolute paths of this checkout): drop that debug metadata so the file is reproducible.
    for coll in (dyn.graph.node, dyn.graph.value_info, dyn.graph.input, dyn.graph.output,
                 dyn.graph.initializer):
        for item in coll:
            del item.metadata_props[:]
            item.doc_string = ""
    del dyn.graph.metadata_props[:]
    dyn.producer_version = torch.__version__.split("+")[0]
    dyn.graph.node.append(helper.make_node("ArgMax", ["logits"], ["label"], name="argmax",
                                           axis=1, keepdims=0))
    dyn.graph.output.append(helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]))
    finish(out, "digits_cnn_dynamo", dyn, task="classification", dataset="digits",
           description="The digits_cnn network (same weights) exported by torch.onnx.export with "
           "its default torch.export-based exporter (dynamo=True, opset 18): the exporter's "
           "optimizer folds BatchNormalization into Conv and writes the global average pool as "
           "ReduceMean + Reshape. An ArgMax node was appended for the label.",
           feature_names=feats_img, x_calib=img_tr[:N_CALIB], x_test=img_te, y_test=yte,
           label_output="label", scores_output="logits", scores_kind="tensor",
           classes=list(range(10)), input_layout=[1, 8, 8],
           preprocessing="pixels / 16 (values in [0, 1]); CSV columns are the 8x8 image row-major",
           trained_with=f"torch {torch.__version__.split('+')[0]} (digits_cnn), "
           "torch.onnx.export(dynamo=True)", native_metric=torch_acc)


def digits_cnn_qop(out: Path, state: dict) -> None:
    """digits_cnn after onnxruntime's pre-processing (BN folded), QOperator: QLinearConv."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    onx, img_tr, img_te, yte, feats_img = state["digits_cnn"]
    calib = np.load(out / "digits_cnn" / "calib.npy")
    float_model = onnx.ModelProto()
    float_model.CopyFrom(onx)
    # drop the ArgMax for quantization, re-add after
    del float_model.graph.node[-1]
    del float_model.graph.output[-1]
    with tempfile.TemporaryDirectory() as td:
        src, pre = Path(td) / "f.onnx", Path(td) / "pre.onnx"
        onnx.save_model(float_model, str(src))
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        pre_model = onnx.load_model(str(pre))
    q = quantize(pre_model, calib, "QOperator", ops=["Conv"])
    q.graph.node.append(helper.make_node("ArgMax", ["logits"], ["label"], name="argmax",
                                         axis=1, keepdims=0))
    q.graph.output.append(helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]))
    finish(out, "digits_cnn_qop", q, task="classification", dataset="digits",
           description="digits_cnn run through onnxruntime.quantization quant_pre_process "
           "(BatchNormalization folded into Conv) and quantize_static in QOperator format with "
           "only Conv quantized: QLinearConv (int8, per-tensor, symmetric weights, int32 bias) "
           "between QuantizeLinear/DequantizeLinear; the rest stays float.",
           feature_names=feats_img, x_calib=calib, x_test=img_te, y_test=yte,
           label_output="label", scores_output="logits", scores_kind="tensor",
           classes=list(range(10)), input_layout=[1, 8, 8],
           preprocessing="pixels / 16 (values in [0, 1]); CSV columns are the 8x8 image row-major",
           trained_with="digits_cnn (torch), quantized by onnxruntime quantize_static (QOperator)",
           extra={"quantization": {"format": "QOperator", "op_types_quantized": ["Conv"],
                                   "per_channel": False,
                                   "activations": "int8 asymmetric per-tensor",
                                   "weights": "int8 symmetric per-tensor",
                                   "calibration": "MinMax on calib.npy (256 images)"}})


def cancer_rf(out: Path, state: dict) -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import RandomForestClassifier

    ds = load_breast_cancer()
    x, y = ds.data.astype(np.float32), ds.target
    xtr, xte, ytr, yte = split(x, y)
    clf = RandomForestClassifier(n_estimators=25, max_depth=6, random_state=SEED, n_jobs=1)
    clf.fit(xtr, ytr)
    onx = convert_sklearn(clf, name="cancer_rf",
                          initial_types=[("input", FloatTensorType([None, x.shape[1]]))],
                          target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET})
    finish(out, "cancer_rf", onx, task="classification", dataset="breast_cancer",
           description="RandomForestClassifier(25 trees, max_depth 6) on breast cancer "
           "(0 = malignant, 1 = benign), skl2onnx with its default ZipMap output.",
           feature_names=list(ds.feature_names), x_calib=calib_rows(xtr), x_test=xte, y_test=yte,
           label_output="output_label", scores_output="output_probability", scores_kind="zipmap",
           classes=[int(c) for c in clf.classes_],
           trained_with="scikit-learn RandomForestClassifier, converted by skl2onnx",
           native_metric=clf.score(xte, yte))


def cancer_xgb(out: Path, state: dict) -> None:
    import xgboost as xgb
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    ds = load_breast_cancer()
    x, y = ds.data.astype(np.float32), ds.target
    xtr, xte, ytr, yte = split(x, y)
    clf = xgb.XGBClassifier(n_estimators=30, max_depth=3, learning_rate=0.3,
                            random_state=SEED, n_jobs=1, tree_method="exact",
                            base_score=0.5)
    clf.fit(xtr, ytr)
    onx = convert_xgboost(clf, name="cancer_xgb",
                          initial_types=[("input", FloatTensorType([None, x.shape[1]]))],
                          target_opset=OPSET_ONNXMLTOOLS)
    finish(out, "cancer_xgb", onx, task="classification", dataset="breast_cancer",
           description="XGBClassifier(30 trees, depth 3, binary:logistic) on breast cancer, "
           "converted by onnxmltools (TreeEnsembleClassifier with LOGISTIC post-transform).",
           feature_names=list(ds.feature_names), x_calib=calib_rows(xtr), x_test=xte, y_test=yte,
           label_output="label", scores_output="probabilities", scores_kind="tensor",
           classes=[0, 1], trained_with=f"xgboost {xgb.__version__}, converted by onnxmltools",
           native_metric=clf.score(xte, yte))


def wine_lgbm(out: Path, state: dict) -> None:
    import lightgbm as lgb
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    ds = load_wine()
    x, y = ds.data.astype(np.float32), ds.target
    xtr, xte, ytr, yte = split(x, y)
    clf = lgb.LGBMClassifier(n_estimators=40, num_leaves=8, max_depth=3, learning_rate=0.2,
                             min_child_samples=5, random_state=SEED, n_jobs=1,
                             deterministic=True, force_row_wise=True, verbose=-1)
    clf.fit(xtr, ytr)
    onx = convert_lightgbm(clf, name="wine_lgbm",
                           initial_types=[("input", FloatTensorType([None, x.shape[1]]))],
                           target_opset=OPSET_ONNXMLTOOLS, zipmap=False)
    finish(out, "wine_lgbm", onx, task="classification", dataset="wine",
           description="LightGBM LGBMClassifier(40 rounds, 3 classes, softmax) on wine, "
           "converted by onnxmltools without ZipMap.",
           feature_names=list(ds.feature_names), x_calib=calib_rows(xtr), x_test=xte, y_test=yte,
           label_output="label", scores_output="probabilities", scores_kind="tensor",
           classes=[0, 1, 2], trained_with=f"lightgbm {lgb.__version__}, converted by onnxmltools",
           native_metric=clf.score(xte, yte),
           extra={"notes": "Kept as onnxmltools writes it: the graph declares the label output "
                  "with shape [1] although it has one label per row (onnxruntime warns and "
                  "returns N labels). An importer should trust the batch dimension, not the "
                  "declared shape."})


def iris_logreg(out: Path, state: dict) -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    ds = load_iris()
    x, y = ds.data.astype(np.float32), ds.target
    xtr, xte, ytr, yte = split(x, y, test_size=0.3)
    clf = LogisticRegression(max_iter=1000, random_state=SEED)
    clf.fit(xtr, ytr)
    onx = convert_sklearn(clf, name="iris_logreg",
                          initial_types=[("input", FloatTensorType([None, 4]))],
                          target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET})
    finish(out, "iris_logreg", onx, task="classification", dataset="iris",
           description="LogisticRegression (multinomial) on iris, skl2onnx with ZipMap "
           "(LinearClassifier + Normalizer + ZipMap).",
           feature_names=list(ds.feature_names), x_calib=xtr, x_test=xte, y_test=yte,
           label_output="output_label", scores_output="output_probability", scores_kind="zipmap",
           classes=[0, 1, 2], trained_with="scikit-learn LogisticRegression, converted by skl2onnx",
           native_metric=clf.score(xte, yte))


def diabetes_regressors(out: Path, state: dict) -> None:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import Ridge

    ds = load_diabetes(scaled=False)
    x, y = ds.data.astype(np.float32), ds.target.astype(np.float32)
    xtr, xte, ytr, yte = split(x, y, stratify=False)
    feats = list(ds.feature_names)

    def rmse(m):
        return float(np.sqrt(np.mean((m.predict(xte) - yte) ** 2)))

    ridge = Ridge(alpha=1.0)
    ridge.fit(xtr, ytr)
    onx = convert_sklearn(ridge, name="diabetes_ridge",
                          initial_types=[("input", FloatTensorType([None, x.shape[1]]))],
                          target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET})
    finish(out, "diabetes_ridge", onx, task="regression", dataset="diabetes",
           description="Ridge(alpha=1) on the raw (unscaled) diabetes features, skl2onnx "
           "(LinearRegressor).", feature_names=feats, x_calib=calib_rows(xtr), x_test=xte,
           y_test=yte, value_output="variable",
           trained_with="scikit-learn Ridge, converted by skl2onnx", native_metric=rmse(ridge))

    gbr = GradientBoostingRegressor(n_estimators=60, max_depth=3, learning_rate=0.1,
                                    subsample=1.0, random_state=SEED)
    gbr.fit(xtr, ytr)
    onx = convert_sklearn(gbr, name="diabetes_gbr",
                          initial_types=[("input", FloatTensorType([None, x.shape[1]]))],
                          target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET})
    finish(out, "diabetes_gbr", onx, task="regression", dataset="diabetes",
           description="GradientBoostingRegressor(60 trees, depth 3) on the raw diabetes "
           "features, skl2onnx (TreeEnsembleRegressor).", feature_names=feats,
           x_calib=calib_rows(xtr), x_test=xte, y_test=yte, value_output="variable",
           trained_with="scikit-learn GradientBoostingRegressor, converted by skl2onnx",
           native_metric=rmse(gbr))


def _train_torch(net, xt, yt, epochs):
    import torch
    from torch import nn

    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    gen = torch.Generator().manual_seed(SEED)
    net.train()
    for _epoch in range(epochs):
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    net.eval()


def _export_torch(net, example, opset: int) -> onnx.ModelProto:
    import torch

    with tempfile.TemporaryDirectory() as td:
        path = Path(td) / "net.onnx"
        torch.onnx.export(
            net, (example,), str(path), dynamo=False,
            input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
            opset_version=opset, do_constant_folding=True,
        )
        onx = onnx.load_model(str(path))
    onx.graph.node.append(helper.make_node("ArgMax", ["logits"], ["label"], name="argmax",
                                           axis=1, keepdims=0))
    onx.graph.output.append(helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]))
    onx.producer_version = torch.__version__.split("+")[0]
    return onx


def digits_cnn_ops(out: Path, state: dict) -> None:
    """Pad, LeakyRelu, AveragePool, HardSwish, ReduceMean, Gelu: the other CNN ops, small."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    _, xtr, xte, ytr, yte, _ = state["digits"]
    img_tr = (xtr / np.float32(16.0)).reshape(-1, 1, 8, 8).astype(np.float32)
    img_te = (xte / np.float32(16.0)).reshape(-1, 1, 8, 8).astype(np.float32)

    class OpsCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 8, 3)
            self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
            self.fc1 = nn.Linear(16, 32)
            self.fc2 = nn.Linear(32, 10)

        def forward(self, x):
            x = nn.functional.pad(x, (1, 1, 1, 1))
            x = nn.functional.avg_pool2d(nn.functional.leaky_relu(self.conv1(x), 0.1), 2)
            x = nn.functional.hardswish(self.conv2(x)).mean(dim=(2, 3))
            return self.fc2(nn.functional.gelu(self.fc1(x)))

    net = OpsCNN()
    _train_torch(net, torch.from_numpy(img_tr), torch.from_numpy(ytr.astype(np.int64)), CNN_EPOCHS)
    with torch.no_grad():
        torch_acc = float((net(torch.from_numpy(img_te)).argmax(1).numpy() == yte).mean())
    onx = _export_torch(net, torch.from_numpy(img_te[:1]), 20)
    # The TorchScript exporter computes F.pad's pads with a chain of constant-only nodes
    # (ConstantOfShape, Concat, Slice, Transpose, Reshape, Cast); fold it into one int64
    # initializer, as onnx-simplifier would, and drop the nodes no longer used.
    pad = next(n for n in onx.graph.node if n.op_type == "Pad")
    onx.graph.initializer.append(numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64),
                                                         "pad.pads"))
    pad.input[1] = "pad.pads"
    while True:
        used = {i for n in onx.graph.node for i in n.input} | {o.name for o in onx.graph.output}
        dead = [n for n in onx.graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            onx.graph.node.remove(n)
    feats_img = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    finish(out, "digits_cnn_ops", onx, task="classification", dataset="digits",
           description="PyTorch CNN on digits as 1x8x8 images in [0, 1] using the ops the other "
           "fixtures lack: Pad(1) (its pads folded to a constant initializer) then Conv(1->8, 3x3, no pad), LeakyRelu(0.1), AveragePool(2), "
           "Conv(8->16, 3x3, pad 1), HardSwish, mean over H and W (ReduceMean), Gemm(16->32), "
           "Gelu, Gemm(32->10). TorchScript exporter, opset 20 (Gelu is an op from 20). "
           "An ArgMax node was appended for the label.",
           feature_names=feats_img, x_calib=img_tr[:N_CALIB], x_test=img_te, y_test=yte,
           label_output="label", scores_output="logits", scores_kind="tensor",
           classes=list(range(10)), input_layout=[1, 8, 8],
           preprocessing="pixels / 16 (values in [0, 1]); CSV columns are the 8x8 image row-major",
           trained_with=f"torch {torch.__version__.split('+')[0]} (CPU, Adam, {CNN_EPOCHS} epochs), "
           "torch.onnx.export(dynamo=False, opset 20)", native_metric=torch_acc)


def digits_mlp_act(out: Path, state: dict) -> None:
    """SiLU, Clip (ReLU6), Tanh, Softplus, Sigmoid between dense layers: a small torch MLP."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    _, xtr, xte, ytr, yte, feats = state["digits"]

    class ActMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.ModuleList([nn.Linear(64, 32)] + [nn.Linear(32, 32) for _ in range(4)]
                                    + [nn.Linear(32, 10)])
            self.acts = [nn.functional.silu, nn.functional.relu6, torch.tanh,
                         nn.functional.softplus, torch.sigmoid]

        def forward(self, x):
            x = x / 16.0
            for fc, act in zip(self.fc, self.acts):
                x = act(fc(x))
            return self.fc[-1](x)

    net = ActMLP()
    _train_torch(net, torch.from_numpy(xtr.astype(np.float32)), torch.from_numpy(ytr.astype(np.int64)),
                 CNN_EPOCHS)
    with torch.no_grad():
        torch_acc = float((net(torch.from_numpy(xte.astype(np.float32))).argmax(1).numpy() == yte).mean())
    onx = _export_torch(net, torch.from_numpy(xte[:1].astype(np.float32)), OPSET)
    finish(out, "digits_mlp_act", onx, task="classification", dataset="digits",
           description="PyTorch MLP on raw digit pixels (the /16 is a Div node): Gemm(64->32), "
           "SiLU (exported as Sigmoid and Mul), Gemm, ReLU6 (Clip 0..6), Gemm, Tanh, Gemm, "
           "Softplus, Gemm, Sigmoid, Gemm(32->10). TorchScript exporter, opset 17. "
           "An ArgMax node was appended for the label.",
           feature_names=feats, x_calib=calib_rows(xtr), x_test=xte, y_test=yte,
           label_output="label", scores_output="logits", scores_kind="tensor",
           classes=list(range(10)),
           trained_with=f"torch {torch.__version__.split('+')[0]} (CPU, Adam, {CNN_EPOCHS} epochs), "
           "torch.onnx.export(dynamo=False)", native_metric=torch_acc)


def cancer_scaler_rf(out: Path, state: dict) -> None:
    """StandardScaler then RandomForest in one sklearn Pipeline: Scaler before the trees."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ds = load_breast_cancer()
    x, y = ds.data.astype(np.float32), ds.target
    xtr, xte, ytr, yte = split(x, y)
    clf = make_pipeline(StandardScaler(),
                        RandomForestClassifier(n_estimators=10, max_depth=5, random_state=SEED, n_jobs=1))
    clf.fit(xtr, ytr)
    onx = convert_sklearn(clf, name="cancer_scaler_rf",
                          initial_types=[("input", FloatTensorType([None, x.shape[1]]))],
                          target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET})
    finish(out, "cancer_scaler_rf", onx, task="classification", dataset="breast_cancer",
           description="Pipeline(StandardScaler, RandomForestClassifier(10 trees, max_depth 5)) on "
           "breast cancer, skl2onnx: a Scaler node before the TreeEnsembleClassifier, ZipMap output.",
           feature_names=list(ds.feature_names), x_calib=calib_rows(xtr), x_test=xte, y_test=yte,
           label_output="output_label", scores_output="output_probability", scores_kind="zipmap",
           classes=[int(c) for c in clf.classes_],
           trained_with="scikit-learn StandardScaler + RandomForestClassifier, converted by skl2onnx",
           native_metric=clf.score(xte, yte))


def digits_resnet(out: Path, state: dict) -> None:
    """A residual block: Add of two live tensors (y = relu(bn(conv2(relu(bn(conv1(x))))) + x))."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    _, xtr, xte, ytr, yte, _ = state["digits"]
    img_tr = (xtr / np.float32(16.0)).reshape(-1, 1, 8, 8).astype(np.float32)
    img_te = (xte / np.float32(16.0)).reshape(-1, 1, 8, 8).astype(np.float32)

    class ResCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 8, 3, padding=1)
            self.bn0 = nn.BatchNorm2d(8)
            self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(8)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
            self.bn2 = nn.BatchNorm2d(8)
            self.fc = nn.Linear(8, 10)

        def forward(self, x):
            x = torch.relu(self.bn0(self.stem(x)))
            y = torch.relu(self.bn1(self.conv1(x)))
            x = torch.relu(self.bn2(self.conv2(y)) + x)
            x = nn.functional.max_pool2d(x, 2)
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    net = ResCNN()
    _train_torch(net, torch.from_numpy(img_tr), torch.from_numpy(ytr.astype(np.int64)), CNN_EPOCHS)
    with torch.no_grad():
        torch_acc = float((net(torch.from_numpy(img_te)).argmax(1).numpy() == yte).mean())
    onx = _export_torch(net, torch.from_numpy(img_te[:1]), OPSET)
    feats_img = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    finish(out, "digits_resnet", onx, task="classification", dataset="digits",
           description="PyTorch CNN on digits as 1x8x8 images in [0, 1] with one residual block: "
           "Conv(1->8, 3x3, pad 1)+BN+Relu = x; Conv(8->8)+BN+Relu, Conv(8->8)+BN, Add(., x) (two live "
           "tensors), Relu; MaxPool(2), GlobalAveragePool, Gemm(8->10). TorchScript exporter (BN folded "
           "into the convs). An ArgMax node was appended for the label.",
           feature_names=feats_img, x_calib=img_tr[:N_CALIB], x_test=img_te, y_test=yte,
           label_output="label", scores_output="logits", scores_kind="tensor",
           classes=list(range(10)), input_layout=[1, 8, 8],
           preprocessing="pixels / 16 (values in [0, 1]); CSV columns are the 8x8 image row-major",
           trained_with=f"torch {torch.__version__.split('+')[0]} (CPU, Adam, {CNN_EPOCHS} epochs), "
           f"torch.onnx.export(dynamo=False, opset {OPSET})", native_metric=torch_acc)


def digits_inception(out: Path, state: dict) -> None:
    """Two conv branches of one tensor concatenated on channels (Inception-style): Concat of live tensors."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    _, xtr, xte, ytr, yte, _ = state["digits"]
    img_tr = (xtr / np.float32(16.0)).reshape(-1, 1, 8, 8).astype(np.float32)
    img_te = (xte / np.float32(16.0)).reshape(-1, 1, 8, 8).astype(np.float32)

    class InceptionCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 8, 3, padding=1)
            self.bn0 = nn.BatchNorm2d(8)
            self.b1 = nn.Conv2d(8, 8, 1)
            self.b3 = nn.Conv2d(8, 8, 3, padding=1)
            self.bn3 = nn.BatchNorm2d(8)
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            x = torch.relu(self.bn0(self.stem(x)))
            x = torch.cat([torch.relu(self.b1(x)), torch.relu(self.bn3(self.b3(x)))], 1)
            x = nn.functional.max_pool2d(x, 2)
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    net = InceptionCNN()
    _train_torch(net, torch.from_numpy(img_tr), torch.from_numpy(ytr.astype(np.int64)), CNN_EPOCHS)
    with torch.no_grad():
        torch_acc = float((net(torch.from_numpy(img_te)).argmax(1).numpy() == yte).mean())
    onx = _export_torch(net, torch.from_numpy(img_te[:1]), OPSET)
    feats_img = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    finish(out, "digits_inception", onx, task="classification", dataset="digits",
           description="PyTorch CNN on digits as 1x8x8 images in [0, 1] with two branches concatenated: "
           "Conv(1->8, 3x3, pad 1)+BN+Relu = x; Concat(Relu(Conv 1x1 8->8 of x), Relu(BN(Conv 3x3 8->8 of x))) "
           "on channels (two live tensors); MaxPool(2), GlobalAveragePool, Gemm(16->10). TorchScript exporter "
           "(BN folded into the convs). An ArgMax node was appended for the label.",
           feature_names=feats_img, x_calib=img_tr[:N_CALIB], x_test=img_te, y_test=yte,
           label_output="label", scores_output="logits", scores_kind="tensor",
           classes=list(range(10)), input_layout=[1, 8, 8],
           preprocessing="pixels / 16 (values in [0, 1]); CSV columns are the 8x8 image row-major",
           trained_with=f"torch {torch.__version__.split('+')[0]} (CPU, Adam, {CNN_EPOCHS} epochs), "
           f"torch.onnx.export(dynamo=False, opset {OPSET})", native_metric=torch_acc)


def digits_window(out: Path, state: dict) -> None:
    """Conv with a rectangular kernel and asymmetric pads, a dilated Conv, a rectangular stride,
    MaxPool and AveragePool with pads (count_include_pad=0)."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    _, xtr, xte, ytr, yte, _ = state["digits"]
    img_tr = (xtr / np.float32(16.0)).reshape(-1, 1, 8, 8).astype(np.float32)
    img_te = (xte / np.float32(16.0)).reshape(-1, 1, 8, 8).astype(np.float32)

    class WindowCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(1, 8, (3, 2))
            self.c2 = nn.Conv2d(8, 8, 3, padding=2, dilation=2)
            self.pool1 = nn.MaxPool2d(3, stride=2, padding=1)
            self.c3 = nn.Conv2d(8, 16, (1, 3), padding=(0, 1), stride=(1, 2))
            self.pool2 = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            x = torch.relu(self.c1(nn.functional.pad(x, (0, 1, 1, 1))))
            x = self.pool1(torch.relu(self.c2(x)))
            x = self.pool2(torch.relu(self.c3(x)))
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    net = WindowCNN()
    _train_torch(net, torch.from_numpy(img_tr), torch.from_numpy(ytr.astype(np.int64)), CNN_EPOCHS)
    with torch.no_grad():
        torch_acc = float((net(torch.from_numpy(img_te)).argmax(1).numpy() == yte).mean())
    onx = _export_torch(net, torch.from_numpy(img_te[:1]), OPSET)
    # F.pad(x, (0, 1, 1, 1)) before the first Conv becomes the Conv's own asymmetric pads
    # [top 1, left 0, bottom 1, right 1] (as onnxruntime's Pad+Conv fusion does); the exporter's
    # constant-only nodes computing the Pad's pads are dropped with it.
    pad = next(n for n in onx.graph.node if n.op_type == "Pad")
    conv = next(n for n in onx.graph.node if n.op_type == "Conv" and n.input[0] == pad.output[0])
    conv.input[0] = pad.input[0]
    for a in list(conv.attribute):
        if a.name == "pads":
            conv.attribute.remove(a)
    conv.attribute.append(helper.make_attribute("pads", [1, 0, 1, 1]))
    while True:
        used = {i for n in onx.graph.node for i in n.input} | {o.name for o in onx.graph.output}
        dead = [n for n in onx.graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            onx.graph.node.remove(n)
    feats_img = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    finish(out, "digits_window", onx, task="classification", dataset="digits",
           description="PyTorch CNN on digits as 1x8x8 images in [0, 1] with the window variants: "
           "Conv(1->8, 3x2 kernel, pads top 1 left 0 bottom 1 right 1: F.pad folded into the Conv), Relu; "
           "Conv(8->8, 3x3, dilation 2, pad 2), Relu; MaxPool(3, stride 2, pad 1); Conv(8->16, 1x3, "
           "stride (1, 2), pad (0, 1)), Relu; AveragePool(3, stride 1, pad 1, count_include_pad=0); "
           "GlobalAveragePool, Gemm(16->10). TorchScript exporter. An ArgMax node was appended for the label.",
           feature_names=feats_img, x_calib=img_tr[:N_CALIB], x_test=img_te, y_test=yte,
           label_output="label", scores_output="logits", scores_kind="tensor",
           classes=list(range(10)), input_layout=[1, 8, 8],
           preprocessing="pixels / 16 (values in [0, 1]); CSV columns are the 8x8 image row-major",
           trained_with=f"torch {torch.__version__.split('+')[0]} (CPU, Adam, {CNN_EPOCHS} epochs), "
           f"torch.onnx.export(dynamo=False, opset {OPSET})", native_metric=torch_acc)


def digits_nhwc(out: Path, state: dict) -> None:
    """A Transpose of a live tensor to NHWC before Flatten (as Keras-style heads do)."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    _, xtr, xte, ytr, yte, _ = state["digits"]
    img_tr = (xtr / np.float32(16.0)).reshape(-1, 1, 8, 8).astype(np.float32)
    img_te = (xte / np.float32(16.0)).reshape(-1, 1, 8, 8).astype(np.float32)

    class NhwcCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 8, 3, padding=1)
            self.fc = nn.Linear(128, 10)

        def forward(self, x):
            x = nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
            return self.fc(torch.flatten(x.permute(0, 2, 3, 1), 1))

    net = NhwcCNN()
    _train_torch(net, torch.from_numpy(img_tr), torch.from_numpy(ytr.astype(np.int64)), CNN_EPOCHS)
    with torch.no_grad():
        torch_acc = float((net(torch.from_numpy(img_te)).argmax(1).numpy() == yte).mean())
    onx = _export_torch(net, torch.from_numpy(img_te[:1]), OPSET)
    feats_img = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    finish(out, "digits_nhwc", onx, task="classification", dataset="digits",
           description="PyTorch CNN on digits as 1x8x8 images in [0, 1]: Conv(1->8, 3x3, pad 1), Relu, "
           "MaxPool(2), Transpose(perm 0,2,3,1: NCHW to NHWC), Flatten, Gemm(128->10). TorchScript exporter. "
           "An ArgMax node was appended for the label.",
           feature_names=feats_img, x_calib=img_tr[:N_CALIB], x_test=img_te, y_test=yte,
           label_output="label", scores_output="logits", scores_kind="tensor",
           classes=list(range(10)), input_layout=[1, 8, 8],
           preprocessing="pixels / 16 (values in [0, 1]); CSV columns are the 8x8 image row-major",
           trained_with=f"torch {torch.__version__.split('+')[0]} (CPU, Adam, {CNN_EPOCHS} epochs), "
           f"torch.onnx.export(dynamo=False, opset {OPSET})", native_metric=torch_acc)


def digits_se(out: Path, state: dict) -> None:
    """Squeeze-excite gate and residual Subs: Mul/Sub of two live tensors, with broadcasting."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    _, xtr, xte, ytr, yte, _ = state["digits"]
    img_tr = (xtr / np.float32(16.0)).reshape(-1, 1, 8, 8).astype(np.float32)
    img_te = (xte / np.float32(16.0)).reshape(-1, 1, 8, 8).astype(np.float32)

    class SeCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 8, 3, padding=1)
            self.bn0 = nn.BatchNorm2d(8)
            self.fc1 = nn.Linear(8, 4)
            self.fc2 = nn.Linear(4, 8)
            self.gamma = nn.Parameter(torch.linspace(0.5, 1.5, 8).reshape(1, 8, 1, 1))
            self.conv = nn.Conv2d(8, 8, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(8)
            self.fc = nn.Linear(128, 10)

        def forward(self, x):
            x = torch.relu(self.bn0(self.stem(x)))
            g = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3))))))
            x = x * g.view(-1, 8, 1, 1)  # squeeze-excite: [N,8,8,8] x [N,8,1,1]
            x = x * self.gamma  # a per-channel constant after the gate (layer scale)
            x = nn.functional.max_pool2d(x, 2)
            x = torch.relu(self.bn1(self.conv(x)) - x)  # residual Sub of two live tensors
            x = torch.relu(x - x.mean((2, 3), keepdim=True))  # Sub with broadcasting
            return self.fc(torch.flatten(x, 1))

    net = SeCNN()
    _train_torch(net, torch.from_numpy(img_tr), torch.from_numpy(ytr.astype(np.int64)), CNN_EPOCHS)
    with torch.no_grad():
        torch_acc = float((net(torch.from_numpy(img_te)).argmax(1).numpy() == yte).mean())
    onx = _export_torch(net, torch.from_numpy(img_te[:1]), OPSET)
    feats_img = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    finish(out, "digits_se", onx, task="classification", dataset="digits",
           description="PyTorch CNN on digits as 1x8x8 images in [0, 1] with a squeeze-excite gate and "
           "residual Subs: Conv(1->8, 3x3, pad 1)+BN+Relu = x; g = Sigmoid(Gemm(4->8, Relu(Gemm(8->4, "
           "ReduceMean_HW(x))))); x = Mul(x, Reshape(g, [N,8,1,1])) (two live tensors, broadcast over H, W); "
           "x = Mul(x, gamma [1,8,1,1]) (a constant after the gate); MaxPool(2); x = Relu(Sub(BN(Conv(8->8, "
           "3x3, pad 1)(x)), x)); x = Relu(Sub(x, ReduceMean_HW(x, keepdims))) (broadcast); Flatten, "
           "Gemm(128->10). TorchScript exporter (BN folded into the convs). An ArgMax node was appended for "
           "the label.",
           feature_names=feats_img, x_calib=img_tr[:N_CALIB], x_test=img_te, y_test=yte,
           label_output="label", scores_output="logits", scores_kind="tensor",
           classes=list(range(10)), input_layout=[1, 8, 8],
           preprocessing="pixels / 16 (values in [0, 1]); CSV columns are the 8x8 image row-major",
           trained_with=f"torch {torch.__version__.split('+')[0]} (CPU, Adam, {CNN_EPOCHS} epochs), "
           f"torch.onnx.export(dynamo=False, opset {OPSET})", native_metric=torch_acc)


def digits_transpose(out: Path, state: dict) -> None:
    """Transposes of live tensors between convolutions (not before a flatten)."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    _, xtr, xte, ytr, yte, _ = state["digits"]
    img_tr = (xtr / np.float32(16.0)).reshape(-1, 1, 8, 8).astype(np.float32)
    img_te = (xte / np.float32(16.0)).reshape(-1, 1, 8, 8).astype(np.float32)

    class TransposeCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(1, 4, 3, padding=1)
            self.c2 = nn.Conv2d(8, 16, 3, padding=1)
            self.fc = nn.Linear(128, 10)

        def forward(self, x):
            x = torch.relu(self.c1(x))  # [N, 4, 8, 8]
            x = x.permute(0, 3, 1, 2)  # [N, 8, 4, 8]: image columns become channels
            x = nn.functional.max_pool2d(torch.relu(self.c2(x)), 2)  # [N, 16, 2, 4]
            x = x.transpose(2, 3)  # [N, 16, 4, 2]
            return self.fc(torch.flatten(x, 1))

    net = TransposeCNN()
    _train_torch(net, torch.from_numpy(img_tr), torch.from_numpy(ytr.astype(np.int64)), CNN_EPOCHS)
    with torch.no_grad():
        torch_acc = float((net(torch.from_numpy(img_te)).argmax(1).numpy() == yte).mean())
    onx = _export_torch(net, torch.from_numpy(img_te[:1]), OPSET)
    feats_img = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    finish(out, "digits_transpose", onx, task="classification", dataset="digits",
           description="PyTorch CNN on digits as 1x8x8 images in [0, 1] with Transposes of live tensors: "
           "Conv(1->4, 3x3, pad 1), Relu; Transpose(perm 0,3,1,2: [N,4,8,8] -> [N,8,4,8], image columns as "
           "channels); Conv(8->16, 3x3, pad 1), Relu, MaxPool(2); Transpose(perm 0,1,3,2: H and W swapped); "
           "Flatten, Gemm(128->10). TorchScript exporter. An ArgMax node was appended for the label.",
           feature_names=feats_img, x_calib=img_tr[:N_CALIB], x_test=img_te, y_test=yte,
           label_output="label", scores_output="logits", scores_kind="tensor",
           classes=list(range(10)), input_layout=[1, 8, 8],
           preprocessing="pixels / 16 (values in [0, 1]); CSV columns are the 8x8 image row-major",
           trained_with=f"torch {torch.__version__.split('+')[0]} (CPU, Adam, {CNN_EPOCHS} epochs), "
           f"torch.onnx.export(dynamo=False, opset {OPSET})", native_metric=torch_acc)


def digits_inception4(out: Path, state: dict) -> None:
    """Four branches concatenated (one ending in a max pool), Conv auto_pad SAME_UPPER and
    SAME_LOWER, MaxPool and AveragePool with ceil_mode."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    _, xtr, xte, ytr, yte, _ = state["digits"]
    img_tr = (xtr / np.float32(16.0)).reshape(-1, 1, 8, 8).astype(np.float32)
    img_te = (xte / np.float32(16.0)).reshape(-1, 1, 8, 8).astype(np.float32)

    class Inception4(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 8, 3, padding=1)
            self.bn0 = nn.BatchNorm2d(8)
            self.b1 = nn.Conv2d(8, 4, 1)
            self.b2 = nn.Conv2d(8, 4, 2, padding="same")  # torch pads the odd cell at the end
            self.b3 = nn.Conv2d(8, 4, 2)
            self.b4 = nn.Conv2d(8, 4, 1)
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            x = torch.relu(self.bn0(self.stem(x)))
            x = torch.cat([
                torch.relu(self.b1(x)),
                torch.relu(self.b2(x)),
                torch.relu(self.b3(nn.functional.pad(x, (1, 0, 1, 0)))),  # the odd cell first
                nn.functional.max_pool2d(torch.relu(self.b4(x)), 3, stride=1, padding=1),
            ], 1)
            x = nn.functional.max_pool2d(x, 3, stride=2, ceil_mode=True)  # 8x8 -> 4x4
            x = nn.functional.avg_pool2d(x, 3, stride=2, ceil_mode=True, count_include_pad=False)  # -> 2x2
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    net = Inception4()
    _train_torch(net, torch.from_numpy(img_tr), torch.from_numpy(ytr.astype(np.int64)), CNN_EPOCHS)
    with torch.no_grad():
        torch_acc = float((net(torch.from_numpy(img_te)).argmax(1).numpy() == yte).mean())
    onx = _export_torch(net, torch.from_numpy(img_te[:1]), OPSET)
    # The 2x2 "same" Conv's explicit pads [0, 0, 1, 1] become auto_pad SAME_UPPER; F.pad(x, (1, 0,
    # 1, 0)) before the other 2x2 Conv is folded into it as auto_pad SAME_LOWER (pads [1, 1, 0,
    # 0]); the exporter's constant-only nodes computing the Pad's pads are dropped with it.
    def set_auto_pad(conv, mode):
        for a in list(conv.attribute):
            if a.name in ("pads", "auto_pad"):
                conv.attribute.remove(a)
        conv.attribute.append(helper.make_attribute("auto_pad", mode))

    upper = next(n for n in onx.graph.node if n.op_type == "Conv" and n.input[1] == "b2.weight")
    set_auto_pad(upper, "SAME_UPPER")
    pad = next(n for n in onx.graph.node if n.op_type == "Pad")
    lower = next(n for n in onx.graph.node if n.op_type == "Conv" and n.input[0] == pad.output[0])
    lower.input[0] = pad.input[0]
    set_auto_pad(lower, "SAME_LOWER")
    while True:
        used = {i for n in onx.graph.node for i in n.input} | {o.name for o in onx.graph.output}
        dead = [n for n in onx.graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            onx.graph.node.remove(n)
    feats_img = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]
    finish(out, "digits_inception4", onx, task="classification", dataset="digits",
           description="PyTorch CNN on digits as 1x8x8 images in [0, 1] with four branches concatenated: "
           "Conv(1->8, 3x3, pad 1)+BN+Relu = x; Concat(Relu(Conv 1x1 8->4), Relu(Conv 2x2 8->4 auto_pad "
           "SAME_UPPER), Relu(Conv 2x2 8->4 auto_pad SAME_LOWER), MaxPool(3, stride 1, pad 1)(Relu(Conv 1x1 "
           "8->4))) on channels; MaxPool(3, stride 2, ceil_mode) 8x8 -> 4x4; AveragePool(3, stride 2, "
           "ceil_mode, count_include_pad=0) -> 2x2; GlobalAveragePool, Gemm(16->10). TorchScript exporter (BN "
           "folded into the stem); the script rewrites the 2x2 Convs' padding as auto_pad. An ArgMax node was "
           "appended for the label.",
           feature_names=feats_img, x_calib=img_tr[:N_CALIB], x_test=img_te, y_test=yte,
           label_output="label", scores_output="logits", scores_kind="tensor",
           classes=list(range(10)), input_layout=[1, 8, 8],
           preprocessing="pixels / 16 (values in [0, 1]); CSV columns are the 8x8 image row-major",
           trained_with=f"torch {torch.__version__.split('+')[0]} (CPU, Adam, {CNN_EPOCHS} epochs), "
           f"torch.onnx.export(dynamo=False, opset {OPSET})", native_metric=torch_acc)


FIXTURES = [digits_mlp, digits_mlp_qdq, digits_cnn, digits_cnn_qop, cancer_rf, cancer_xgb, wine_lgbm, iris_logreg,
            diabetes_regressors, digits_cnn_ops, digits_mlp_act, cancer_scaler_rf,
            digits_resnet, digits_inception, digits_window,
            digits_nhwc, digits_se, digits_transpose, digits_inception4]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures" / "onnx")
    ap.add_argument("--only", nargs="*", help="fixture functions to run (default: all)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    state: dict = {}
    for fn in FIXTURES:
        if args.only and fn.__name__ not in args.only and fn.__name__ not in ("digits_mlp", "digits_cnn"):
            continue
        seed_everything()
        fn(args.out, state)
    if not args.only:
        write_index(args.out)
    return 0


def write_index(out: Path) -> None:
    """README.md beside the fixtures: one row each, and the sha256 of every model file."""
    lines = [
        "# ONNX fixtures",
        "",
        "Generated by `tools/onnx-fixtures/make_fixtures.py` (see the README there: how to rerun,",
        "pinned versions, data sources and licences); do not edit by hand. Regenerating changes",
        "the hashes below, and doing so is a deliberate act. Each folder has `model.onnx`,",
        "`calib.csv` (training rows, no target), `test.csv` (held-out rows with `target`) and",
        "`expected.json` (task, inputs/outputs and which is label/scores, the float metric",
        "measured with onnxruntime on test.csv, onnxruntime's outputs for the first",
        f"{N_FIRST} test rows, opsets, producer, op types, file hashes); image models also have",
        "`calib.npy`/`test.npy` (N,1,8,8) float32 and `test_target.npy`.",
        "",
        "| fixture | task | data | float metric (onnxruntime, test.csv) | op types | opsets | bytes |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for info, size in INDEX:
        fr = info["float_reference"]
        metric = f"{fr['metric']} {fr['value']}"
        if fr["metric"] == "accuracy":
            metric += f" ({fr['correct']}/{fr['rows']})"
        opsets = ", ".join(f"{k} {v}" for k, v in sorted(info["opset"].items()))
        lines.append(
            f"| `{info['name']}` | {info['task']} | {info['dataset']['name']} | {metric} | "
            f"{', '.join(info['op_types'])} | {opsets} | {size} |"
        )
    lines += ["", "sha256 of each `model.onnx`:", "", "```"]
    for info, _ in INDEX:
        lines.append(f"{info['files']['model.onnx']}  {info['name']}/model.onnx")
    lines += ["```", ""]
    (out / "README.md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
