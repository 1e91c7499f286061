#!/usr/bin/env python3
"""refeval: a second, independent evaluator of fixpoint's arithmetic profile 1 and model format v1.

What it is. A small interpreter written from docs/arithmetic.md, docs/model-format.md and
docs/conformance.md alone, without reading the engine in ml/. It uses Python's unbounded integers
everywhere (no fixed-width tricks, no shared code), so a mistake in the Rust engine's kernels,
parser or verifier is unlikely to be repeated here. For every case of every vector file it checks:

  1. keccak256(model) == model_id (Keccak-256 implemented below; hashlib has only SHA-3);
  2. the model bytes parse canonically (model-format.md §2-§6) and pass the verifier checks the
     spec states (§7: dtypes, shapes, ranges, window geometry, groups, tree structure, overflow
     proofs of arithmetic.md §3 and §9, the element and op caps);
  3. running the model on `input` (packed I/O, §8) gives exactly `output`.

If the directory holds a MANIFEST, every listed file's keccak256 is checked too. A file in the
`fixpoint-verdicts/1` format ({name, model, accepted} cases, tools/refeval/verdicts.json) checks
the parser and verifier alone: each model must be accepted or refused as stated.

How to run it (CPython 3.11, standard library only):

    python3 tools/refeval/refeval.py tests/vectors          # every file under the directory
    python3 tools/refeval/refeval.py tests/vectors/ops/add.json
    python3 tools/refeval/refeval.py tools/refeval/edge-cases.json tools/refeval/verdicts.json
    python3 tools/refeval/refeval.py --coverage tests/vectors   # also: which corners were reached
    python3 tools/refeval/refeval.py --self-test             # keccak and rounding known answers

It prints one line per file and a summary; the exit code is 0 only when every case matched, 1 on
any mismatch or rejection, 2 on a usage error. CI runs it through quantize/tests/refeval.rs.
"""

import collections
import json
import math
import os
import struct
import sys

# Which subtle corners of the spec the vectors actually reach (printed with --coverage): a rule the
# vectors never exercise (say a negative rounding tie) is a rule they cannot catch a mistake in.
COV = collections.Counter()

# ---------------------------------------------------------------------------------------------
# Keccak-256 (the original Keccak padding 0x01, not SHA3's 0x06), rate 136 bytes.

_ROT = [[0, 36, 3, 41, 18], [1, 44, 10, 45, 2], [62, 6, 43, 15, 61], [28, 55, 25, 21, 56],
        [27, 20, 39, 8, 14]]  # _ROT[x][y]
_M64 = (1 << 64) - 1


def _round_constants():
    def rc_bit(t):
        r = 1
        for _ in range(t % 255):
            r <<= 1
            if r & 0x100:
                r ^= 0x171
        return r & 1

    out = []
    for i in range(24):
        c = 0
        for j in range(7):
            if rc_bit(j + 7 * i):
                c |= 1 << ((1 << j) - 1)
        out.append(c)
    return out


_RC = _round_constants()


def _rol(v, n):
    return ((v << n) | (v >> (64 - n))) & _M64 if n else v


def _keccak_f(a):
    for rc in _RC:
        c = [a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20] for x in range(5)]
        d = [c[(x - 1) % 5] ^ _rol(c[(x + 1) % 5], 1) for x in range(5)]
        a = [a[i] ^ d[i % 5] for i in range(25)]
        b = [0] * 25
        for x in range(5):
            for y in range(5):
                b[y + 5 * ((2 * x + 3 * y) % 5)] = _rol(a[x + 5 * y], _ROT[x][y])
        a = [b[i] ^ ((~b[(i % 5 + 1) % 5 + 5 * (i // 5)]) & b[(i % 5 + 2) % 5 + 5 * (i // 5)])
             for i in range(25)]
        a[0] ^= rc
    return a


def keccak256(data: bytes) -> bytes:
    rate = 136
    msg = bytearray(data)
    msg.append(0x01)
    while len(msg) % rate:
        msg.append(0)
    msg[-1] |= 0x80
    a = [0] * 25
    for off in range(0, len(msg), rate):
        block = msg[off:off + rate]
        for i in range(rate // 8):
            a[i] ^= int.from_bytes(block[8 * i:8 * i + 8], "little")
        a = _keccak_f(a)
    return b"".join(a[i].to_bytes(8, "little") for i in range(4))


# ---------------------------------------------------------------------------------------------
# Arithmetic (docs/arithmetic.md). Python ints are exact; >> on a negative int is a floor.

def round_shift(v, n):
    """§1: floor((v + 2^(n-1)) / 2^n), ties toward +inf."""
    assert 1 <= n <= 62
    if v % (1 << n) == 1 << (n - 1):
        COV["round_shift tie, negative" if v < 0 else "round_shift tie, positive"] += 1
    return (v + (1 << (n - 1))) >> n


def clamp(x, lo, hi):
    if x < lo or x > hi:
        COV["clamp saturated"] += 1
    return min(max(x, lo), hi)


def requant(v, m, n, zp, lo, hi):
    """§4: one rounding of the exact product v*m."""
    return clamp(zp + round_shift(v * m, n), lo, hi)


def wrap_i32(v):
    """§3: i32 accumulation mod 2^32 (a no-op when the overflow proof holds)."""
    return ((v + (1 << 31)) % (1 << 32)) - (1 << 31)


def avg_round(s, cnt):
    """§5 AvgPool: sign(s)*floor((|s| + floor(cnt/2)) / cnt), ties away from zero."""
    if cnt == 0:
        raise Reject("AvgPool window of padding only")
    if cnt % 2 == 0 and abs(s) % cnt == cnt // 2:
        COV["avg_pool tie, negative" if s < 0 else "avg_pool tie, positive"] += 1
    q = (abs(s) + cnt // 2) // cnt
    return q if s >= 0 else -q


# ---------------------------------------------------------------------------------------------
# Model format (docs/model-format.md).

I8, U8, I16, I32, I64 = 0, 1, 2, 3, 4
DTYPES = {I8: ("i8", 1, "b"), U8: ("u8", 1, "B"), I16: ("i16", 2, "h"), I32: ("i32", 4, "i"),
          I64: ("i64", 8, "q")}
NONE = 0xFFFFFFFF
OPS = {1: "FullyConnected", 2: "Conv2D", 3: "Add", 4: "MaxPool", 5: "AvgPool", 6: "Reshape",
       7: "Concat", 8: "Lut8", 9: "ArgMax", 10: "Requantize", 11: "TreeEnsemble", 12: "Softmax",
       13: "LayerNorm", 14: "RMSNorm", 15: "Gather",
       16: "MatMul", 17: "Mul", 18: "Transpose", 19: "Slice", 20: "AddWide"}
ARITY = {1: (1, 1), 2: (1, 1), 3: (2, 2), 4: (1, 1), 5: (1, 1), 6: (1, 1), 7: (2, 16), 8: (1, 1),
         9: (1, 1), 10: (1, 1), 11: (1, 1), 12: (1, 1), 13: (1, 1), 14: (1, 1), 15: (1, 1), 16: (2, 2), 17: (2, 2), 18: (1, 1), 19: (1, 1),
         20: (2, 2)}
# Default caps (§7).
MAX_MODEL_BYTES = 32 << 20
MAX_OPS = 1024
MAX_ELEMENTS = 1 << 24
MAX_MACS = 1 << 30


class Reject(Exception):
    """The model is refused (parser or verifier); the message names the rule."""


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


class Reader:
    def __init__(self, b):
        self.b = b
        self.p = 0

    def take(self, n):
        # §5.6: lengths are checked against the remaining bytes before anything is used.
        if n > len(self.b) - self.p:
            raise Reject(f"truncated: need {n} bytes at offset {self.p}, "
                         f"{len(self.b) - self.p} left")
        s = self.b[self.p:self.p + n]
        self.p += n
        return s

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack("<H", self.take(2))[0]

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def i32(self):
        return struct.unpack("<i", self.take(4))[0]

    def boolean(self):
        v = self.u8()
        if v not in (0, 1):
            raise Reject(f"boolean byte {v} is not 0 or 1")
        return v == 1

    def dtype(self):
        d = self.u8()
        if d not in DTYPES:
            raise Reject(f"unknown dtype code {d}")
        return d

    def shape(self):
        rank = self.u8()
        if rank > 6:
            raise Reject(f"rank {rank} > 6")
        dims = [self.u32() for _ in range(rank)]
        if any(d < 1 for d in dims):
            raise Reject(f"dimension 0 in shape {dims}")
        return dims

    def quant(self):
        zp, mult, shift = self.i32(), self.i32(), self.u8()
        ok = (mult == 0 and shift == 0) or ((1 << 30) <= mult < (1 << 31) and shift <= 127)
        if not ok:
            raise Reject(f"bad quant description (multiplier {mult}, shift {shift})")
        return (zp, mult, shift)


class Tensor:
    def __init__(self, dtype, shape, data):
        self.dtype, self.shape, self.data = dtype, shape, data


class Op:
    def __init__(self, code, inputs):
        self.code, self.inputs, self.attrs, self.tensors = code, inputs, {}, []

    @property
    def name(self):
        return OPS[self.code]


class Model:
    pass


def parse(b: bytes) -> Model:
    if len(b) > MAX_MODEL_BYTES:
        raise Reject("LimitExceeded: model bytes")
    r = Reader(b)
    if r.take(4) != b"FXPM":
        raise Reject("bad magic")
    if r.u16() != 1:
        raise Reject("version is not 1")
    if r.u16() != 1:
        raise Reject("profile is not 1")
    m = Model()
    m.tensors = []
    for _ in range(r.u32()):
        dt = r.dtype()
        shape = r.shape()
        n = numel(shape)
        if n > MAX_ELEMENTS:
            raise Reject("LimitExceeded: tensor elements")
        _, size, fmt = DTYPES[dt]
        raw = r.take(n * size)
        m.tensors.append(Tensor(dt, shape, list(struct.unpack(f"<{n}{fmt}", raw))))
    n_in = r.u8()
    if not 1 <= n_in <= 16:
        raise Reject(f"{n_in} inputs, not 1..16")
    m.inputs = [(r.dtype(), r.shape(), r.quant()) for _ in range(n_in)]
    n_ops = r.u32()
    if n_ops > MAX_OPS:
        raise Reject("LimitExceeded: ops")
    m.ops = []
    for i in range(n_ops):
        code = r.u8()
        if code not in OPS:
            raise Reject(f"op {i}: unknown op code {code}")
        k = r.u8()
        lo, hi = ARITY[code]
        if not lo <= k <= hi:
            raise Reject(f"op {i} ({OPS[code]}): arity {k}")
        op = Op(code, [r.u32() for _ in range(k)])
        for v in op.inputs:
            # §5.2: reads only values made before it.
            if v >= n_in + i:
                raise Reject(f"op {i} reads value {v} not yet made")
        parse_attrs(r, op)
        m.ops.append(op)
    n_out = r.u8()
    if not 1 <= n_out <= 16:
        raise Reject(f"{n_out} outputs, not 1..16")
    m.outputs = [(r.u32(), r.quant()) for _ in range(n_out)]
    if r.p != len(b):
        raise Reject(f"{len(b) - r.p} trailing bytes after the outputs")
    n_values = n_in + n_ops
    outs = [v for v, _ in m.outputs]
    if any(v >= n_values for v in outs):
        raise Reject("output names a value that does not exist")
    if len(set(outs)) != len(outs):
        raise Reject("outputs are not distinct")
    read = set(outs)
    for op in m.ops:
        read.update(op.inputs)
    for v in range(n_values):
        if v not in read:
            raise Reject(f"value {v} is neither read nor an output")
    # §5.4: constants stored in order of first reference; every tensor referenced.
    seen = 0
    for i, op in enumerate(m.ops):
        for t in op.tensors:
            if t == NONE:
                continue
            if t > seen:
                raise Reject(f"op {i}: tensor {t} referenced before tensor {seen} "
                             "(constants out of first-reference order)")
            if t == seen:
                seen += 1
    if seen != len(m.tensors):
        raise Reject(f"{len(m.tensors) - seen} constant tensors never referenced")
    return m


def _tensor_ref(r, op, key, optional=False):
    t = r.u32()
    if t == NONE and not optional:
        raise Reject(f"{op.name}: {key} may not be absent")
    op.attrs[key] = t
    op.tensors.append(t)


def _requant_body(r, op):
    _tensor_ref(r, op, "mult")
    _tensor_ref(r, op, "shift")
    op.attrs["rq"] = (r.i32(), r.i32(), r.i32())  # zero_point, lo, hi


def _window(r, op):
    op.attrs["window"] = [r.u16() for _ in range(10)]


def parse_attrs(r, op):
    c = op.code
    if c in (1, 2):
        _tensor_ref(r, op, "weights")
        _tensor_ref(r, op, "bias", optional=True)
        op.attrs["in_zp"] = r.i32()
        if c == 2:
            _window(r, op)
            op.attrs["groups"] = r.u32()
        op.attrs["has_rq"] = r.boolean()
        if op.attrs["has_rq"]:
            _requant_body(r, op)
    elif c in (3, 20):
        a_zp, a_m, b_zp, b_m = r.i32(), r.i32(), r.i32(), r.i32()
        shift = r.u8()
        op.attrs.update(a_zp=a_zp, a_m=a_m, b_zp=b_zp, b_m=b_m, shift=shift,
                        rq=(r.i32(), r.i32(), r.i32()))
    elif c in (4, 5):
        _window(r, op)
    elif c == 6:
        rank = r.u8()
        if rank > 6:
            raise Reject(f"Reshape: rank {rank} > 6")
        dims = [r.u32() for _ in range(rank)]
        if any(d < 1 for d in dims):
            raise Reject("Reshape: dimension 0")
        op.attrs["dims"] = dims
    elif c == 7:
        op.attrs["axis"] = r.u8()
    elif c == 8:
        _tensor_ref(r, op, "table")
    elif c == 9:
        pass
    elif c == 10:
        op.attrs["in_zp"] = r.i32()
        _requant_body(r, op)
    elif c == 11:
        for k in ("nodes", "leaves", "roots", "base"):
            _tensor_ref(r, op, k)
    elif c == 12:
        _tensor_ref(r, op, "table")
        op.attrs["causal"] = r.u8()
        op.attrs["out"] = r.u8()
    elif c == 15:
        _tensor_ref(r, op, "table")
    elif c == 17:
        op.attrs["a_zp"] = r.i32()
        op.attrs["b_zp"] = r.i32()
        _requant_body(r, op)
    elif c == 19:
        op.attrs["axis"] = r.u8()
        op.attrs["start"] = r.u32()
        op.attrs["len"] = r.u32()
    elif c == 18:
        rank = r.u8()
        if rank > 6:
            raise Reject(f"Transpose: rank {rank} > 6")
        op.attrs["perm"] = [r.u8() for _ in range(rank)]
    elif c == 16:
        op.attrs["a_zp"] = r.i32()
        op.attrs["b_zp"] = r.i32()
        op.attrs["bt"] = r.u8()
        op.attrs["has_rq"] = r.boolean()
        if op.attrs["has_rq"]:
            _requant_body(r, op)
    elif c in (13, 14):
        if c == 14:
            op.attrs["in_zp"] = r.i32()
        _tensor_ref(r, op, "gamma")
        _tensor_ref(r, op, "beta", optional=True)
        op.attrs["eps"] = r.u32()
        op.attrs["frac"] = r.u8()
        _requant_body(r, op)


# ---------------------------------------------------------------------------------------------
# Verifier (model-format.md §7): infer every value's dtype and shape, check each op.

def _i8_range(x, what):
    if not -128 <= x <= 127:
        raise Reject(f"{what} {x} outside the i8 range")


def _clamp_bounds(zp, lo, hi, what):
    _i8_range(zp, f"{what} zero point")
    if not -128 <= lo <= hi <= 127:
        raise Reject(f"{what}: clamp bounds [{lo}, {hi}]")


def _check_tensor(m, t, dtype, shape, what):
    ten = m.tensors[t]
    if ten.dtype != dtype or ten.shape != shape:
        raise Reject(f"{what}: tensor {t} is {DTYPES[ten.dtype][0]} {ten.shape}, "
                     f"expected {DTYPES[dtype][0]} {shape}")
    return ten


def _check_requant(m, op, channels):
    """Multiplier tensor i32, shift tensor u8, each of length `channels` or 1."""
    mt, st = m.tensors[op.attrs["mult"]], m.tensors[op.attrs["shift"]]
    for ten, dt, nm in ((mt, I32, "multiplier"), (st, U8, "shift")):
        if ten.dtype != dt or ten.shape not in ([channels], [1]):
            raise Reject(f"{op.name}: {nm} tensor is {DTYPES[ten.dtype][0]} {ten.shape}, "
                         f"expected {DTYPES[dt][0]} [{channels}] or [1]")
    if any(not (1 << 30) <= x < (1 << 31) for x in mt.data):
        raise Reject(f"{op.name}: multiplier outside [2^30, 2^31)")
    if any(not 1 <= x <= 62 for x in st.data):
        raise Reject(f"{op.name}: shift outside [1, 62]")
    _clamp_bounds(*op.attrs["rq"], op.name)


def _window_out(op, h, w, pool):
    kh, kw, sh, sw, dh, dw, pt, pl, pb, pr = op.attrs["window"]
    if min(kh, kw, sh, sw, dh, dw) < 1:
        raise Reject(f"{op.name}: kernel, stride and dilation must be >= 1")
    if pool:
        if dh != 1 or dw != 1:
            raise Reject(f"{op.name}: pools take no dilation")
        if pt >= kh or pb >= kh or pl >= kw or pr >= kw:
            raise Reject(f"{op.name}: every pad must be smaller than the kernel")
    nh = h + pt + pb - dh * (kh - 1) - 1
    nw = w + pl + pr - dw * (kw - 1) - 1
    if nh < 0 or nw < 0:
        raise Reject(f"{op.name}: window larger than the padded input")
    return nh // sh + 1, nw // sw + 1


def _overflow_proof(op, in_zp, w_rows, bias):
    span = max(127 - in_zp, in_zp + 128)
    for c, row in enumerate(w_rows):
        b = abs(bias[c]) if bias is not None else 0
        if span * sum(abs(x) for x in row) + b >= (1 << 31):
            raise Reject(f"{op.name}: AccumulatorOverflow in output channel {c}")


def verify(m):
    """Returns the list of (dtype, shape) per value; raises Reject."""
    vals = [(dt, shape) for dt, shape, _ in m.inputs]
    macs = 0
    for i, op in enumerate(m.ops):
        ins = [vals[v] for v in op.inputs]
        dt, shape = ins[0]
        a = op.attrs
        name = f"op {i} ({op.name})"
        c = op.code
        if c in (1, 2, 3, 4, 5, 8) and any(d != I8 for d, _ in ins):
            raise Reject(f"{name}: input must be i8")
        if c == 1:
            if len(shape) < 1:
                raise Reject(f"{name}: input of rank 0")
            k = shape[-1]
            wt = m.tensors[a["weights"]]
            if wt.dtype != I8 or len(wt.shape) != 2 or wt.shape[1] != k:
                raise Reject(f"{name}: weights must be i8 [N, {k}]")
            n = wt.shape[0]
            bias = None
            if a["bias"] != NONE:
                bias = _check_tensor(m, a["bias"], I32, [n], name).data
            _i8_range(a["in_zp"], f"{name}: input zero point")
            if a["has_rq"]:
                _check_requant(m, op, n)
            _overflow_proof(op, a["in_zp"], [wt.data[j * k:(j + 1) * k] for j in range(n)], bias)
            macs += numel(shape) // k * n * k
            out = (I8 if a["has_rq"] else I32, shape[:-1] + [n])
        elif c == 2:
            if len(shape) != 3:
                raise Reject(f"{name}: input must be [H, W, C]")
            h, w, ch = shape
            g = a["groups"]
            wt = m.tensors[a["weights"]]
            kh, kw = a["window"][0], a["window"][1]
            if g < 1 or ch % g:
                raise Reject(f"{name}: groups {g} do not divide C = {ch}")
            if wt.dtype != I8 or len(wt.shape) != 4 or wt.shape[1:] != [kh, kw, ch // g]:
                raise Reject(f"{name}: weights must be i8 [OC, {kh}, {kw}, {ch // g}]")
            oc = wt.shape[0]
            if oc % g:
                raise Reject(f"{name}: groups {g} do not divide OC = {oc}")
            bias = None
            if a["bias"] != NONE:
                bias = _check_tensor(m, a["bias"], I32, [oc], name).data
            _i8_range(a["in_zp"], f"{name}: input zero point")
            if a["has_rq"]:
                _check_requant(m, op, oc)
            per = kh * kw * (ch // g)
            _overflow_proof(op, a["in_zp"], [wt.data[j * per:(j + 1) * per] for j in range(oc)],
                            bias)
            oh, ow = _window_out(op, h, w, pool=False)
            macs += oh * ow * oc * per
            out = (I8 if a["has_rq"] else I32, [oh, ow, oc])
        elif c == 3:
            if ins[1][1] != shape:
                raise Reject(f"{name}: shapes differ")
            _i8_range(a["a_zp"], f"{name}: a zero point")
            _i8_range(a["b_zp"], f"{name}: b zero point")
            for key in ("a_m", "b_m"):
                if not 0 <= a[key] < (1 << 31):
                    raise Reject(f"{name}: multiplier {a[key]} negative")
            if not 1 <= a["shift"] <= 62:
                raise Reject(f"{name}: shift outside [1, 62]")
            _clamp_bounds(*a["rq"], name)
            out = (I8, shape)
        elif c == 20:
            # arithmetic.md §18: Add with i8/i16 inputs, i16 output, i16-range parameters.
            (da, sa), (db, sb) = ins
            if da not in (I8, I16) or db not in (I8, I16):
                raise Reject(f"{name}: inputs must be i8 or i16")
            if sb != sa:
                raise Reject(f"{name}: shapes differ")
            zp, lo, hi = a["rq"]
            for key, v in (("a zero point", a["a_zp"]), ("b zero point", a["b_zp"]), ("zero point", zp)):
                if not -32768 <= v <= 32767:
                    raise Reject(f"{name}: {key} {v} outside the i16 range")
            for key in ("a_m", "b_m"):
                if not 0 <= a[key] < (1 << 31):
                    raise Reject(f"{name}: multiplier {a[key]} negative")
            if not 1 <= a["shift"] <= 62:
                raise Reject(f"{name}: shift outside [1, 62]")
            if not -32768 <= lo <= hi <= 32767:
                raise Reject(f"{name}: clamp bounds [{lo}, {hi}]")
            out = (I16, sa)
        elif c in (4, 5):
            if len(shape) != 3:
                raise Reject(f"{name}: input must be [H, W, C]")
            oh, ow = _window_out(op, shape[0], shape[1], pool=True)
            out = (I8, [oh, ow, shape[2]])
        elif c == 6:
            if numel(a["dims"]) != numel(shape):
                raise Reject(f"{name}: {shape} cannot become {a['dims']}")
            out = (dt, a["dims"])
        elif c == 7:
            ax = a["axis"]
            if any(d != dt for d, _ in ins):
                raise Reject(f"{name}: inputs of different dtypes")
            if ax >= len(shape):
                raise Reject(f"{name}: axis {ax} >= rank {len(shape)}")
            for _, s in ins:
                if len(s) != len(shape) or s[:ax] + s[ax + 1:] != shape[:ax] + shape[ax + 1:]:
                    raise Reject(f"{name}: shapes {s} and {shape} do not concatenate")
            out = (dt, shape[:ax] + [sum(s[ax] for _, s in ins)] + shape[ax + 1:])
        elif c == 8:
            _check_tensor(m, a["table"], I8, [256], name)
            out = (I8, shape)
        elif c == 9:
            if dt not in (I8, I16, I32, I64) or len(shape) < 1:
                raise Reject(f"{name}: input must be a signed integer tensor of rank >= 1")
            out = (I32, shape[:-1] if len(shape) > 1 else [1])
        elif c == 10:
            if dt not in (I8, I16, I32):
                raise Reject(f"{name}: input must be i8/i16/i32")
            _check_requant(m, op, shape[-1] if shape else 1)
            out = (I8, shape)
        elif c == 11:
            out = _verify_tree(m, op, name, dt, shape)
        elif c == 12:
            if dt != I8 or len(shape) < 1 or shape[-1] < 1:
                raise Reject(f"{name}: input must be i8 with a non-empty last axis")
            if a["out"] not in (1, 2):
                raise Reject(f"{name}: output dtype code {a['out']}")
            if a["causal"] not in (0, 1):
                raise Reject(f"{name}: causal must be 0 or 1")
            if a["causal"] == 1 and (len(shape) < 2 or shape[-2] > shape[-1]):
                raise Reject(f"{name}: causal mask needs rank >= 2 and Tq <= Tk")
            _check_tensor(m, a["table"], I32, [256], name)
            table = m.tensors[a["table"]].data
            if any(e < 0 or e > 1 << 30 for e in table) or table[0] < 1:
                raise Reject(f"{name}: table entries must be in [0, 2^30], entry 0 at least 1")
            out = (I8 if a["out"] == 1 else I16, shape)
        elif c in (13, 14):
            if dt not in (I8, I16) or len(shape) < 1 or not 1 <= shape[-1] <= 1 << 16:
                raise Reject(f"{name}: input must be i8/i16 with a last axis of 1 to 2^16")
            ch = shape[-1]
            zr = (-128, 127) if dt == I8 else (-32768, 32767)
            if c == 14 and not zr[0] <= a["in_zp"] <= zr[1]:
                raise Reject(f"{name}: input zero point outside {DTYPES[dt][0]}")
            if a["eps"] < 1 or a["frac"] > 12:
                raise Reject(f"{name}: eps must be >= 1 and frac_bits <= 12")
            g = _check_tensor(m, a["gamma"], I32, [ch], name).data
            b = [0] if a["beta"] == NONE else _check_tensor(m, a["beta"], I32, [ch], name).data
            zmax = (math.isqrt(ch) + 1) << a["frac"]
            if max(abs(v) for v in g) * zmax + max(abs(v) for v in b) >= 1 << 31:
                raise Reject(f"{name}: overflow: gamma*z + beta does not fit i32")
            _check_requant(m, op, ch)
            out = (I8, shape)
        elif c == 19:
            ax, start, n = a["axis"], a["start"], a["len"]
            if ax >= len(shape) or n < 1 or start + n > shape[ax]:
                raise Reject(f"{name}: entries {start}..{start}+{n} do not fit axis {ax} of {shape}")
            out = (dt, shape[:ax] + [n] + shape[ax + 1:])
        elif c == 18:
            perm = a["perm"]
            if len(shape) < 1 or sorted(perm) != list(range(len(shape))):
                raise Reject(f"{name}: perm {perm} is not a permutation of {len(shape)} axes")
            out = (dt, [shape[p] for p in perm])
        elif c == 17:
            (da, sa), (db, sb) = ins
            if da != I8 or db != I8 or sa != sb:
                raise Reject(f"{name}: inputs must be i8 of one shape")
            if not -128 <= a["a_zp"] <= 127 or not -128 <= a["b_zp"] <= 127:
                raise Reject(f"{name}: zero point outside i8")
            _check_requant(m, op, sa[-1] if sa else 1)
            out = (I8, sa)
        elif c == 16:
            (da, sa), (db, sb) = ins
            if da != I8 or db != I8 or len(sa) < 2 or len(sb) < 2 or sa[:-2] != sb[:-2]:
                raise Reject(f"{name}: A and B must be i8 of rank >= 2 with the same batch axes")
            if a["bt"] not in (0, 1) or not -128 <= a["a_zp"] <= 127 or not -128 <= a["b_zp"] <= 127:
                raise Reject(f"{name}: bad attributes")
            m_, k_ = sa[-2], sa[-1]
            bk, n_ = (sb[-1], sb[-2]) if a["bt"] else (sb[-2], sb[-1])
            if bk != k_ or min(m_, k_, n_) < 1:
                raise Reject(f"{name}: shapes {sa} and {sb} do not multiply")
            md = lambda zp: max(abs(-128 - zp), abs(127 - zp))
            if k_ * md(a["a_zp"]) * md(a["b_zp"]) >= 1 << 31:
                raise Reject(f"{name}: AccumulatorOverflow")
            if a["has_rq"]:
                _check_requant(m, op, n_)
            out = (I8 if a["has_rq"] else I32, sa[:-1] + [n_])
        elif c == 15:
            if dt not in (U8, I32):
                raise Reject(f"{name}: indices must be u8 or i32")
            t = m.tensors[a["table"]]
            if t.dtype != I8 or len(t.shape) != 2 or min(t.shape) < 1:
                raise Reject(f"{name}: table must be i8 [V, D] with V, D >= 1")
            out = (I8, shape + [t.shape[1]])
        if numel(out[1]) > MAX_ELEMENTS:
            raise Reject(f"{name}: LimitExceeded: tensor elements")
        vals.append(out)
    if macs > MAX_MACS:
        raise Reject("LimitExceeded: macs")
    return vals


def _verify_tree(m, op, name, dt, shape):
    a = op.attrs
    if dt not in (I8, I16, I32) or len(shape) != 1:
        raise Reject(f"{name}: input must be i8/i16/i32 [F]")
    f_count = shape[0]
    nodes = m.tensors[a["nodes"]]
    if nodes.dtype != I32 or len(nodes.shape) != 2 or nodes.shape[1] != 4:
        raise Reject(f"{name}: nodes must be i32 [N, 4]")
    n = nodes.shape[0]
    leaves = m.tensors[a["leaves"]]
    if leaves.dtype != I64 or len(leaves.shape) != 2 or leaves.shape[0] != n:
        raise Reject(f"{name}: leaves must be i64 [{n}, O]")
    o = leaves.shape[1]
    roots = m.tensors[a["roots"]]
    if roots.dtype != I32 or len(roots.shape) != 1:
        raise Reject(f"{name}: roots must be i32 [T]")
    base = _check_tensor(m, a["base"], I64, [o], name)
    for j in range(n):
        f, t, left, right = nodes.data[4 * j:4 * j + 4]
        if f == -1:
            # A leaf (spec gap, see docs/arithmetic.md §9): feature -1, other fields zero.
            if (t, left, right) != (0, 0, 0):
                raise Reject(f"{name}: leaf {j} has non-zero threshold or children")
        else:
            if not 0 <= f < f_count:
                raise Reject(f"{name}: node {j} reads feature {f} of {f_count}")
            if not (j < left < n and j < right < n):
                raise Reject(f"{name}: node {j}: children must come after their parent")
            if any(leaves.data[j * o:(j + 1) * o]):
                raise Reject(f"{name}: internal node {j} has non-zero leaf values")
    if any(not 0 <= r < n for r in roots.data):
        raise Reject(f"{name}: root outside the node table")
    max_leaf = max((abs(x) for x in leaves.data), default=0)
    max_base = max((abs(x) for x in base.data), default=0)
    if max_base + len(roots.data) * max_leaf >= (1 << 63):
        raise Reject(f"{name}: tree sum may overflow i64")
    return (I64, [o])


# ---------------------------------------------------------------------------------------------
# Interpreter: values are flat row-major lists of Python ints.

def run(m, vals, packed_in: bytes) -> bytes:
    sizes = [numel(s) * DTYPES[d][1] for d, s, _ in m.inputs]
    if len(packed_in) != sum(sizes):
        raise Reject(f"input is {len(packed_in)} bytes, the model takes {sum(sizes)}")
    data = []
    off = 0
    for (dt, shape, _), size in zip(m.inputs, sizes):
        fmt = DTYPES[dt][2]
        data.append(list(struct.unpack(f"<{numel(shape)}{fmt}", packed_in[off:off + size])))
        off += size
    for i, op in enumerate(m.ops):
        v = len(m.inputs) + i
        _note(m, op, [vals[j] for j in op.inputs])
        data.append(EVAL[op.code](m, op, [data[j] for j in op.inputs],
                                  [vals[j][1] for j in op.inputs], vals[v][1]))
    out = b""
    for v, _ in m.outputs:
        out += struct.pack(f"<{len(data[v])}{DTYPES[vals[v][0]][2]}", *data[v])
    return out


def _note(m, op, ins):
    """Coverage of the op's variants (see COV)."""
    a = op.attrs
    COV[f"{op.name} on {'/'.join(DTYPES[d][0] for d, _ in ins)} rank {len(ins[0][1])}"] += 1
    if "mult" in a:
        per = "per-channel" if len(m.tensors[a["mult"]].data) > 1 else "per-tensor"
        COV[f"{op.name} requant {per}"] += 1
    if a.get("bias") == NONE:
        COV[f"{op.name} without bias"] += 1
    if "window" in a:
        kh, kw, sh, sw, dh, dw, pt, pl, pb, pr = a["window"]
        if max(pt, pl, pb, pr) > 0:
            COV[f"{op.name} padded"] += 1
        if max(dh, dw) > 1:
            COV[f"{op.name} dilated"] += 1
        if max(sh, sw) > 1:
            COV[f"{op.name} strided"] += 1
    if a.get("groups", 1) > 1:
        COV[f"{op.name} grouped" + (" (depthwise)" if a["groups"] == ins[0][1][2] else "")] += 1
    if "axis" in a:
        COV[f"{op.name} axis {a['axis']} of rank {len(ins[0][1])}"] += 1


def _rq_params(m, op, c):
    mt, st = m.tensors[op.attrs["mult"]].data, m.tensors[op.attrs["shift"]].data
    return (mt[c] if len(mt) > 1 else mt[0]), (st[c] if len(st) > 1 else st[0])


def _finish(m, op, acc, channels):
    """i32 accumulators to the op's output: wrapped i32, or requantized per channel (§4)."""
    if not op.attrs["has_rq"]:
        return [wrap_i32(x) for x in acc]
    zp, lo, hi = op.attrs["rq"]
    params = [_rq_params(m, op, c) for c in range(channels)]
    return [requant(x, *params[j % channels], zp, lo, hi) for j, x in enumerate(acc)]


def ev_fc(m, op, ins, shapes, out_shape):
    x = ins[0]
    k = shapes[0][-1]
    wt = m.tensors[op.attrs["weights"]].data
    n = len(wt) // k
    bias = m.tensors[op.attrs["bias"]].data if op.attrs["bias"] != NONE else [0] * n
    zx = op.attrs["in_zp"]
    acc = []
    for r in range(len(x) // k):
        row = [xv - zx for xv in x[r * k:(r + 1) * k]]
        for c in range(n):
            w = wt[c * k:(c + 1) * k]
            acc.append(wrap_i32(bias[c] + sum(a * b for a, b in zip(row, w))))
    return _finish(m, op, acc, n)


def ev_conv(m, op, ins, shapes, out_shape):
    x = ins[0]
    h, w, ch = shapes[0]
    oh, ow, oc = out_shape
    kh, kw, sh, sw, dh, dw, pt, pl, _, _ = op.attrs["window"]
    g = op.attrs["groups"]
    cg, og = ch // g, oc // g
    wt = m.tensors[op.attrs["weights"]].data
    bias = m.tensors[op.attrs["bias"]].data if op.attrs["bias"] != NONE else [0] * oc
    zx = op.attrs["in_zp"]
    acc = []
    for oy in range(oh):
        for ox in range(ow):
            for o in range(oc):
                grp = o // og
                s = bias[o]
                for ky in range(kh):
                    iy = oy * sh + ky * dh - pt
                    if not 0 <= iy < h:
                        continue
                    for kx in range(kw):
                        ix = ox * sw + kx * dw - pl
                        if not 0 <= ix < w:
                            continue
                        xb = (iy * w + ix) * ch + grp * cg
                        wb = ((o * kh + ky) * kw + kx) * cg
                        for ci in range(cg):
                            s += (x[xb + ci] - zx) * wt[wb + ci]
                acc.append(wrap_i32(s))
    return _finish(m, op, acc, oc)


def ev_add(m, op, ins, shapes, out_shape):
    """arithmetic.md §6 (Add) and §18 (AddWide: the same formula, i16-range parameters)."""
    a = op.attrs
    zp, lo, hi = a["rq"]
    return [clamp(zp + round_shift((x - a["a_zp"]) * a["a_m"] + (y - a["b_zp"]) * a["b_m"],
                                   a["shift"]), lo, hi) for x, y in zip(ins[0], ins[1])]


def _pool(op, ins, shapes, out_shape, reduce):
    x = ins[0]
    h, w, ch = shapes[0]
    oh, ow, _ = out_shape
    kh, kw, sh, sw, _, _, pt, pl, _, _ = op.attrs["window"]
    out = []
    for oy in range(oh):
        for ox in range(ow):
            for c in range(ch):
                win = []
                for ky in range(kh):
                    iy = oy * sh + ky - pt
                    if not 0 <= iy < h:
                        continue
                    for kx in range(kw):
                        ix = ox * sw + kx - pl
                        if 0 <= ix < w:
                            win.append(x[(iy * w + ix) * ch + c])
                out.append(reduce(win))
    return out


def ev_max(m, op, ins, shapes, out_shape):
    return _pool(op, ins, shapes, out_shape, max)


def ev_avg(m, op, ins, shapes, out_shape):
    return _pool(op, ins, shapes, out_shape, lambda win: avg_round(sum(win), len(win)))


def ev_reshape(m, op, ins, shapes, out_shape):
    return list(ins[0])


def ev_concat(m, op, ins, shapes, out_shape):
    ax = op.attrs["axis"]
    outer = numel(out_shape[:ax])
    inner = numel(out_shape[ax + 1:])
    out = []
    for o in range(outer):
        for x, s in zip(ins, shapes):
            blk = s[ax] * inner
            out.extend(x[o * blk:(o + 1) * blk])
    return out


def ev_lut(m, op, ins, shapes, out_shape):
    table = m.tensors[op.attrs["table"]].data
    return [table[x + 128] for x in ins[0]]


def ev_argmax(m, op, ins, shapes, out_shape):
    x = ins[0]
    k = shapes[0][-1]
    out = []
    for r in range(len(x) // k):
        row = x[r * k:(r + 1) * k]
        best = 0
        for j in range(1, k):
            if row[j] > row[best]:  # strict: ties keep the lowest index
                best = j
        if row.count(row[best]) > 1:
            COV["argmax tie"] += 1
        out.append(best)
    return out


def ev_requantize(m, op, ins, shapes, out_shape):
    zx = op.attrs["in_zp"]
    zp, lo, hi = op.attrs["rq"]
    ch = shapes[0][-1] if shapes[0] else 1
    params = [_rq_params(m, op, c) for c in range(ch)]
    return [requant(x - zx, *params[j % ch], zp, lo, hi) for j, x in enumerate(ins[0])]


def ev_tree(m, op, ins, shapes, out_shape):
    x = ins[0]
    nodes = m.tensors[op.attrs["nodes"]].data
    leaves = m.tensors[op.attrs["leaves"]].data
    out = list(m.tensors[op.attrs["base"]].data)
    o = len(out)
    for root in m.tensors[op.attrs["roots"]].data:
        j = root
        while nodes[4 * j] != -1:
            f, t, left, right = nodes[4 * j:4 * j + 4]
            if x[f] == t:
                COV["tree x[f] == t"] += 1
            j = left if x[f] <= t else right
        for c in range(o):
            out[c] += leaves[j * o + c]
    return out


def ev_softmax(m, op, ins, shapes, out_shape):
    """arithmetic.md §11."""
    table = m.tensors[op.attrs["table"]].data
    q = 127 if op.attrs["out"] == 1 else 32767
    x, shape = ins[0], shapes[0]
    n = shape[-1]
    causal = op.attrs["causal"] == 1
    tq = shape[-2] if causal else None
    if causal:
        COV["softmax causal"] += 1
    out = []
    for r in range(len(x) // n):
        row = x[r * n:(r + 1) * n]
        v = (r % tq) + 1 + n - tq if causal else n
        mx = max(row[:v])
        e = [table[mx - xj] for xj in row[:v]]
        s = sum(e)
        big_r = (q << 32) // s
        out += [(ej * big_r + (1 << 31)) >> 32 for ej in e] + [0] * (n - v)
    return out


def _div_half_away(a, b):
    """a / b (b > 0) rounded to nearest, ties away from zero."""
    q = (2 * abs(a) + b) // (2 * b)
    return q if a >= 0 else -q


def ev_norm(m, op, ins, shapes, out_shape):
    """arithmetic.md §12: LayerNorm (13) and RMSNorm (14)."""
    a = op.attrs
    ch = shapes[0][-1]
    g = m.tensors[a["gamma"]].data
    b = [0] * ch if a["beta"] == NONE else m.tensors[a["beta"]].data
    f = a["frac"]
    zmax = (math.isqrt(ch) + 1) << f
    zp, lo, hi = a["rq"]
    params = [_rq_params(m, op, c) for c in range(ch)]
    out = []
    x = ins[0]
    for r in range(len(x) // ch):
        row = x[r * ch:(r + 1) * ch]
        if op.code == 13:
            d = [ch * v - sum(row) for v in row]
        else:
            d = [v - a["in_zp"] for v in row]
        den = math.isqrt(sum(v * v for v in d) // ch + a["eps"])
        for j, dj in enumerate(d):
            z = max(-zmax, min(zmax, _div_half_away(dj * (1 << f), den)))
            out.append(requant(g[j] * z + b[j], *params[j], zp, lo, hi))
    return out


def ev_gather(m, op, ins, shapes, out_shape):
    """arithmetic.md §13."""
    t = m.tensors[op.attrs["table"]]
    v, d = t.shape
    out = []
    for i in ins[0]:
        if not 0 <= i < v:
            raise Reject(f"Gather: index {i} outside [0, {v})")
        out += t.data[i * d:(i + 1) * d]
    return out


def ev_matmul(m, op, ins, shapes, out_shape):
    """arithmetic.md §14."""
    a = op.attrs
    A, B = ins
    sa, sb = shapes
    mm, k = sa[-2], sa[-1]
    n = sb[-2] if a["bt"] else sb[-1]
    za, zb = a["a_zp"], a["b_zp"]
    acc = []
    for t in range(len(A) // (mm * k)):
        for i in range(mm):
            for j in range(n):
                s = 0
                for x in range(k):
                    bv = B[t * k * n + j * k + x] if a["bt"] else B[t * k * n + x * n + j]
                    s += (A[t * mm * k + i * k + x] - za) * (bv - zb)
                acc.append(s)
    if not a["has_rq"]:
        return acc
    zp, lo, hi = a["rq"]
    params = [_rq_params(m, op, c) for c in range(n)]
    return [requant(v, *params[j % n], zp, lo, hi) for j, v in enumerate(acc)]


def ev_mul(m, op, ins, shapes, out_shape):
    """arithmetic.md §15."""
    a = op.attrs
    ch = shapes[0][-1] if shapes[0] else 1
    zp, lo, hi = a["rq"]
    params = [_rq_params(m, op, c) for c in range(ch)]
    return [requant((x - a["a_zp"]) * (y - a["b_zp"]), *params[j % ch], zp, lo, hi)
            for j, (x, y) in enumerate(zip(ins[0], ins[1]))]


def ev_transpose(m, op, ins, shapes, out_shape):
    """arithmetic.md §16: y[i_0..] = x[j] with j[perm[a]] = i_a."""
    perm, shape, x = op.attrs["perm"], shapes[0], ins[0]
    strides = [1] * len(shape)
    for a in range(len(shape) - 2, -1, -1):
        strides[a] = strides[a + 1] * shape[a + 1]
    out = []
    for flat in range(len(x)):
        idx, rest = [], flat
        for d in reversed(out_shape):
            idx.append(rest % d)
            rest //= d
        idx.reverse()
        out.append(x[sum(idx[a] * strides[perm[a]] for a in range(len(perm)))])
    return out


def ev_slice(m, op, ins, shapes, out_shape):
    """arithmetic.md §17: entries start..start+len of one axis."""
    a, shape, x = op.attrs, shapes[0], ins[0]
    ax = a["axis"]
    inner = 1
    for d in shape[ax + 1:]:
        inner *= d
    outer = len(x) // (shape[ax] * inner)
    out = []
    for o in range(outer):
        base = (o * shape[ax] + a["start"]) * inner
        out.extend(x[base:base + a["len"] * inner])
    return out


EVAL = {1: ev_fc, 2: ev_conv, 3: ev_add, 4: ev_max, 5: ev_avg, 6: ev_reshape, 7: ev_concat,
        8: ev_lut, 9: ev_argmax, 10: ev_requantize, 11: ev_tree, 12: ev_softmax,
        13: ev_norm, 14: ev_norm, 15: ev_gather, 16: ev_matmul,
        17: ev_mul, 18: ev_transpose, 19: ev_slice, 20: ev_add}


# ---------------------------------------------------------------------------------------------
# Driver.

def check_case(case, cache):
    """Returns a list of problems (empty when the case is reproduced)."""
    problems = []
    try:
        model = bytes.fromhex(case["model"])
        inp = bytes.fromhex(case["input"])
        want = bytes.fromhex(case["output"])
    except (KeyError, ValueError) as e:
        return [f"malformed case: {e}"]
    if model not in cache:
        cache[model] = keccak256(model).hex()
    if cache[model] != case.get("model_id", "").lower():
        problems.append(f"model_id mismatch: keccak256(model) = {cache[model]}, "
                        f"vector says {case.get('model_id')!r}")
    try:
        m = parse(model)
        vals = verify(m)
        got = run(m, vals, inp)
    except Reject as e:
        problems.append(f"rejected: {e}")
        return problems
    except Exception as e:  # noqa: BLE001 - a bug here must fail the case, not end the run
        problems.append(f"evaluator error: {type(e).__name__}: {e}")
        return problems
    if got != want:
        first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b),
                     min(len(got), len(want)))
        problems.append(f"output mismatch at byte {first}: got {got.hex()}, expected "
                        f"{want.hex()}")
    return problems


def check_file(path, cache, ops_seen):
    with open(path) as f:
        doc = json.load(f)
    if doc.get("format") == "fixpoint-verdicts/1":
        return check_verdicts(doc)
    if doc.get("format") != "fixpoint-vectors/1" or doc.get("profile") != 1:
        return 0, [("<file>", "not a fixpoint-vectors/1 profile-1 file")]
    cases = doc.get("cases", [])
    failures = []
    for case in cases:
        name = case.get("name", "?")
        for p in check_case(case, cache):
            failures.append((name, p))
        try:
            for op in parse(bytes.fromhex(case["model"])).ops:
                ops_seen.add(op.name)
        except (Reject, KeyError, ValueError):
            pass
    return len(cases), failures


def check_verdicts(doc):
    """`fixpoint-verdicts/1`: cases {name, model, accepted}; the verifier's verdict must match."""
    cases = doc.get("cases", [])
    failures = []
    for case in cases:
        try:
            verify(parse(bytes.fromhex(case["model"])))
            got, why = True, ""
        except Reject as e:
            got, why = False, f" ({e})"
        if got != case["accepted"]:
            failures.append((case["name"], f"verdict mismatch: accepted={got}{why}, expected "
                                           f"accepted={case['accepted']}"))
    return len(cases), failures


def check_manifest(root):
    path = os.path.join(root, "MANIFEST")
    if not os.path.exists(path):
        return None
    bad = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            digest, rel = line.split(None, 1)
            with open(os.path.join(root, rel), "rb") as g:
                if keccak256(g.read()).hex() != digest:
                    bad.append(rel)
    return bad


def self_test():
    assert keccak256(b"").hex() == \
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert keccak256(b"abc").hex() == \
        "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
    assert keccak256(b"a" * 200).hex() == keccak256(bytes(b"a" * 200)).hex()
    # §1 round_shift: ties toward +inf.
    assert round_shift(5, 1) == 3 and round_shift(-5, 1) == -2 and round_shift(-6, 2) == -1
    # §5 AvgPool: ties away from zero.
    assert avg_round(5, 2) == 3 and avg_round(-5, 2) == -3 and avg_round(-4, 3) == -1
    assert wrap_i32(1 << 31) == -(1 << 31)


def main(argv):
    if len(argv) == 2 and argv[1] == "--self-test":
        self_test()
        print("self-test ok")
        return 0
    coverage = "--coverage" in argv
    argv = [a for a in argv if a != "--coverage"]
    if len(argv) < 2:
        print(__doc__)
        return 2
    self_test()
    COV.clear()  # the self-test's known answers are not vector coverage
    files = []
    manifests = []
    for arg in argv[1:]:
        if os.path.isdir(arg):
            manifests.append(arg)
            for dirpath, _, names in os.walk(arg):
                files += [os.path.join(dirpath, n) for n in names if n.endswith(".json")]
        elif os.path.isfile(arg):
            files.append(arg)
        else:
            print(f"no such file or directory: {arg}")
            return 2
    files.sort()
    cache = {}
    total = failed = 0
    ops_seen = set()
    for path in files:
        n, failures = check_file(path, cache, ops_seen)
        bad_cases = sorted({name for name, _ in failures})
        total += n
        failed += len(bad_cases)
        print(f"{'ok  ' if not failures else 'FAIL'} {path}: {n - len(bad_cases)}/{n} cases")
        for name, problem in failures:
            print(f"     {name}: {problem}")
    manifest_bad = False
    for root in manifests:
        bad = check_manifest(root)
        if bad is None:
            continue
        if bad:
            manifest_bad = True
            print(f"FAIL {root}/MANIFEST: hash differs for {', '.join(bad)}")
        else:
            print(f"MANIFEST ok ({root})")
    if coverage:
        print("coverage (how often the vectors reach each corner of the spec):")
        for key in sorted(COV):
            print(f"  {COV[key]:8d}  {key}")
    print(f"refeval: files {len(files)}, cases {total}, {total - failed} reproduced, "
          f"{failed} failed; ops covered: {', '.join(sorted(ops_seen)) or 'none'}")
    return 1 if failed or manifest_bad or total == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
