"""Fuzz of the C++ ONNX Runtime ops of librrwkv_ort_ops.so (WKV4, WKV4Medium, MatMulW8, MatMulW4, MatMulWF16): one-node
models with random attribute values (0, negative, huge, missing, wrong ONNX type) and random inputs (mismatched dims,
wrong ranks, empty dims, B / T / M = 0, wrong dtypes, huge K on an empty x). Every run must either return the
reference's outputs (torch references, spec tolerances) or fail with an onnxruntime error that names the problem (the
attribute, an input whose shape or dtype breaks the contract); never crash or hang. The models run in a child process
(ort_op_worker.py), so a crash is a finding, not a dead pytest. Example counts come from the hypothesis profile
(tests/conftest.py)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from helpers import assert_close, assert_op_outputs_close, tolerance
from hypothesis import given
from hypothesis import strategies as st
from kernel_shim import ORT_OPS, require_library
from onnx import TensorProto
from onnx import helper as oh
from ops.op_models import medium_inputs, wkv4_inputs
from ort_op_worker import OrtOpWorker

from rrwkv_trt.export.ops import naive_wkv4, naive_wkv4_medium
from rrwkv_trt.export.ops.matmul_w4 import naive_matmul_w4
from rrwkv_trt.export.ops.matmul_w8 import naive_matmul_w8
from rrwkv_trt.export.ops.matmul_wf16 import naive_matmul_wf16
from rrwkv_trt.export.w4_pack import quantize_w4
from rrwkv_trt.export.w8_pack import quantize_w8
from rrwkv_trt.export.wf16_pack import pack_wf16

pytestmark = pytest.mark.fuzz

INT32_MAX = 2**31 - 1
W8_MAX_N = 0x7FFFFFC0  # kW8MaxN, plugins/matmul_w8/matmulW8Math.h
W8_MAX_K = 1 << 30     # kW8MaxK
WF16_MAX_N, WF16_MAX_K = W8_MAX_N, W8_MAX_K  # kWF16MaxN, kWF16MaxK (plugins/matmul_wf16/matmulWF16Math.h): the same
MISSING = "<missing>"
DTYPE = "dtype:"       # + input name: a dtype outside the contract, refused by ORT's kernel lookup
_ONNX = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float16): TensorProto.FLOAT16,
         np.dtype(np.float64): TensorProto.DOUBLE, np.dtype(np.int64): TensorProto.INT64,
         np.dtype(np.int32): TensorProto.INT32, np.dtype(np.int8): TensorProto.INT8,
         np.dtype(np.uint8): TensorProto.UINT8}
WKV4_NAMES = ("w", "u", "k", "v", "aa", "bb", "pp")
MEDIUM_NAMES = ("w", "u", "k", "v", "k_m", "v_m", "aa", "bb", "pp", "pos0")
OTHER_DTYPES = (np.float64, np.int32, np.float16, np.float32, np.int64, np.int8)

# Attribute values: INT in and out of range, and the other ONNX types (FLOAT, STRING, INTS) an INT may not take.
WRONG_TYPE = st.sampled_from([1.0, 2.5, "2", [2], [1, 2]])
HUGE = st.sampled_from([2**31 - 1, 2**31, 2**32 + 1, 2**63 - 1, -(2**31), -(2**63), W8_MAX_N, W8_MAX_N + 1])


@dataclass
class Case:
    op: str
    inputs: list[tuple[str, np.ndarray]]
    attrs: dict
    violations: set[str] = field(default_factory=set)  # empty: valid, the outputs are checked against `reference`
    reference: object = None                            # () -> (key, outputs) for a valid case


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def model_bytes(case: Case, n_outputs: int) -> bytes:
    attrs = {k: v for k, v in case.attrs.items() if v is not MISSING}
    node = oh.make_node(case.op, [n for n, _ in case.inputs], [f"out{i}" for i in range(n_outputs)],
                        domain="rrwkv", **attrs)
    graph = oh.make_graph([node], f"fuzz_{case.op}",
                          [oh.make_tensor_value_info(n, _ONNX[a.dtype], None) for n, a in case.inputs],
                          [oh.make_empty_tensor_value_info(f"out{i}") for i in range(n_outputs)])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 18), oh.make_opsetid("rrwkv", 1)])
    model.ir_version = 10
    return model.SerializeToString()


# ---- shape and dtype mutations shared by the ops ----

@st.composite
def mutate_inputs(draw, arrays: dict[str, np.ndarray], names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Up to two changes: an axis resized (to 0, +-1 or up to 5), a rank change, or another dtype."""
    arrays = dict(arrays)
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(names))
        a = arrays[name]
        kind = draw(st.sampled_from(["axis", "axis", "rank", "dtype"]))
        if kind == "axis" and a.ndim:
            shape = list(a.shape)
            axis = draw(st.integers(0, a.ndim - 1))
            shape[axis] = draw(st.sampled_from([0, shape[axis] + 1, max(shape[axis] - 1, 0), draw(st.integers(0, 5))]))
            if math.prod(shape) <= 1 << 16:  # not the rows of an x with a huge K
                arrays[name] = np.resize(a, shape) if a.size and math.prod(shape) else np.zeros(shape, a.dtype)
        elif kind == "rank":  # one more axis, or the last two merged (a vector becomes a scalar)
            if a.ndim == 0 or draw(st.booleans()):
                arrays[name] = a.reshape(*a.shape, 1)
            elif a.ndim >= 2:
                arrays[name] = a.reshape(*a.shape[:-2], a.shape[-2] * a.shape[-1])
            else:
                arrays[name] = np.asarray(a[0] if a.size else 0, a.dtype)
        elif kind == "dtype":
            arrays[name] = a.astype(draw(st.sampled_from(OTHER_DTYPES)))
    return arrays


def wkv_violations(arrays: dict[str, np.ndarray], dtypes: dict[str, np.dtype], medium: bool) -> set[str]:
    """The contract (plugins/wkv4*/spec.yaml) as rules: the names of the inputs that break it."""
    if any(arrays[n].dtype != dtypes[n] for n in arrays):
        return {DTYPE + n for n in arrays if arrays[n].dtype != dtypes[n]}
    k = arrays["k"]
    if k.ndim != 3:
        return {"k"}
    B, T, C = k.shape
    expected = {"v": (B, T, C), "w": (C,), "u": (C,), "aa": (B, C), "bb": (B, C), "pp": (B, C)}
    if medium:
        km = arrays["k_m"]
        if km.ndim != 3:
            return {"k_m"}
        M = km.shape[1]
        expected |= {"k_m": (B, M, C), "v_m": (B, M, C), "pos0": (B,)}
    bad = {n for n, shape in expected.items() if arrays[n].shape != shape}
    if medium and not bad and arrays["k_m"].shape[1] < 1:
        bad.add("k_m")
    return bad


@st.composite
def wkv4_cases(draw) -> Case:
    B, T, C = draw(st.integers(0, 3)), draw(st.integers(0, 5)), draw(st.integers(0, 70))
    act = np.dtype(draw(st.sampled_from([np.float32, np.float16])))
    x = wkv4_inputs(B, T, C, torch.float32 if act == np.float32 else torch.float16, seed=draw(st.integers(0, 99)))
    dtypes = {n: act if n in ("k", "v") else np.dtype(np.float32) for n in WKV4_NAMES}
    arrays = draw(mutate_inputs({n: x[n].numpy() for n in WKV4_NAMES}, WKV4_NAMES))
    # WKV4 takes no attribute: anything a node carries is ignored, the identity attributes of any type included.
    attrs = draw(st.dictionaries(st.sampled_from(["plugin_namespace", "plugin_version", "s", "N"]),
                                 st.one_of(st.just("rrwkv"), st.integers(-5, 5), WRONG_TYPE), max_size=2))
    bad = wkv_violations(arrays, dtypes, medium=False)
    key = f"cpu_kernel_{'fp32' if act == np.float32 else 'fp16'}"
    ref = lambda: (key, naive_wkv4(**{n: torch.from_numpy(a) for n, a in arrays.items()}))  # noqa: E731
    return Case("WKV4", [(n, arrays[n]) for n in WKV4_NAMES], attrs, bad, ref)


@st.composite
def medium_cases(draw) -> Case:
    B, T, C = draw(st.integers(0, 3)), draw(st.integers(0, 5)), draw(st.integers(0, 70))
    s = draw(st.one_of(st.integers(1, 6), st.integers(1, 6), HUGE, st.integers(-3, 0), WRONG_TYPE, st.just(MISSING)))
    decays = draw(st.one_of(st.sampled_from([0, 1, MISSING]), st.sampled_from([2, -1, 2**40]), WRONG_TYPE))
    act = np.dtype(draw(st.sampled_from([np.float32, np.float16])))
    s_data = s if _is_int(s) and 1 <= s <= 64 else 3
    pos0 = draw(st.lists(st.one_of(st.integers(-10, 10), st.sampled_from([2**62, -(2**62), 2**63 - 1, -(2**63)])),
                         min_size=B, max_size=B))
    x = medium_inputs(B, T, C, s_data, pos0, torch.float32 if act == np.float32 else torch.float16,
                      seed=draw(st.integers(0, 99)))
    arrays = {n: x[n].numpy() for n in MEDIUM_NAMES}
    if draw(st.booleans()):  # Mmax other than ceil(T / s): rows are clamped (0 is refused)
        M = draw(st.integers(0, 3))
        for n in ("k_m", "v_m"):
            arrays[n] = np.resize(arrays[n], (B, M, C)) if arrays[n].size and B * M * C else np.zeros((B, M, C),
                                                                                                     np.float32)
    dtypes = {n: act if n in ("k", "v") else np.dtype(np.int64 if n == "pos0" else np.float32) for n in MEDIUM_NAMES}
    arrays = draw(mutate_inputs(arrays, MEDIUM_NAMES))
    attrs = {"s": s, "medium_decays": decays}
    attrs |= draw(st.dictionaries(st.sampled_from(["plugin_namespace", "plugin_version", "foo"]),
                                  st.one_of(st.just("rrwkv"), st.integers(-5, 5)), max_size=1))
    bad = set()
    if not (_is_int(s) and 1 <= s <= INT32_MAX):
        bad.add("s")
    if not (decays is MISSING or (_is_int(decays) and decays in (0, 1))):
        bad.add("medium_decays")
    bad |= wkv_violations(arrays, dtypes, medium=True)  # all: ORT checks dtypes before the kernel checks attributes
    key = f"cpu_kernel_{'fp32' if act == np.float32 else 'fp16'}"
    md = 0 if decays is MISSING else decays
    ref = lambda: (key, naive_wkv4_medium(**{n: torch.from_numpy(a) for n, a in arrays.items()},  # noqa: E731
                                           s=s, medium_decays=md))
    return Case("WKV4Medium", [(n, arrays[n]) for n in MEDIUM_NAMES], attrs, bad, ref)


# MatMulW8 and MatMulW4 take the same attributes and x, scale; they differ in the quantizer, w's shape and reference.
BLOCK_OPS = {"MatMulW8": (quantize_w8, naive_matmul_w8, lambda G, P: (G, P, 64, 2)),
             "MatMulW4": (quantize_w4, naive_matmul_w4, lambda G, P: (G, P, 64))}


@st.composite
def matmul_block_cases(draw, op: str) -> Case:
    quantize, naive, w_shape = BLOCK_OPS[op]
    K, N = draw(st.integers(1, 300)), draw(st.integers(1, 130))
    block = draw(st.sampled_from([2, 4, 32, 64, 128, 256, 2 * draw(st.integers(1, 128))]))
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    w, scale = quantize((rng.standard_normal((K, N)) / np.sqrt(K)).astype(np.float32), block)
    lead = draw(st.lists(st.integers(0, 3), max_size=2))
    x = rng.standard_normal((*lead, K)).astype(np.float32)
    if draw(st.integers(0, 9)) == 0:  # x with no rows and a huge K: refused before any size arithmetic
        x = np.zeros((0, draw(st.sampled_from([W8_MAX_K, W8_MAX_K + 1, INT32_MAX, 2**31, 2**40]))), np.float32)
    elif draw(st.integers(0, 9)) == 0:  # another K: the weights may or may not still fit
        x = rng.standard_normal((*lead, draw(st.integers(0, 300)))).astype(np.float32)
    n_attr = draw(st.one_of(st.just(N), st.just(N), st.integers(-3, 200), HUGE, WRONG_TYPE, st.just(MISSING)))
    b_attr = draw(st.one_of(st.just(block), st.just(block), st.integers(-3, 300), HUGE, WRONG_TYPE,
                            st.just(MISSING)))
    arrays = draw(mutate_inputs({"x": x, "w": w, "scale": scale}, ("x", "w", "scale")))
    attrs = {"N": n_attr, "block_size": b_attr}
    attrs |= draw(st.dictionaries(st.sampled_from(["plugin_namespace", "plugin_version", "foo"]),
                                  st.one_of(st.just("1"), st.integers(-5, 5)), max_size=1))
    bad = set()
    if not (_is_int(n_attr) and 1 <= n_attr <= W8_MAX_N):
        bad.add("N")
    b_eff = 128 if b_attr is MISSING else b_attr
    if not (_is_int(b_eff) and 2 <= b_eff <= 256 and b_eff % 2 == 0):
        bad.add("block_size")
    xa, wa, sa = arrays["x"], arrays["w"], arrays["scale"]
    bad |= {DTYPE + n for n, a, t in (("x", xa, np.float32), ("w", wa, np.int8), ("scale", sa, np.float32))
            if a.dtype != t}
    if not bad:
        if xa.ndim == 0 or xa.shape[-1] < 1 or xa.shape[-1] > W8_MAX_K:
            bad.add("x")
        else:
            Kx = xa.shape[-1]
            NB, G = -(-Kx // b_eff), -(-n_attr // 64)
            if NB * b_eff > W8_MAX_K:
                bad.add("x")
            if wa.shape != w_shape(G, NB * b_eff // 2):
                bad.add("w")
            if sa.shape != (G, NB, 64):
                bad.add("scale")

    def ref():
        y = naive(*(torch.from_numpy(a) for a in (xa, wa, sa)), n_attr, b_eff).numpy()
        row = np.abs(xa).max(axis=-1, keepdims=True)
        return "cpu_kernel_fp32", y / np.where(row > 0, row, 1)

    return Case(op, [("x", xa), ("w", wa), ("scale", sa)], attrs, bad, ref)


@st.composite
def matmul_wf16_cases(draw) -> Case:
    K, N = draw(st.integers(1, 300)), draw(st.integers(1, 130))
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    w = pack_wf16((rng.standard_normal((K, N)) / np.sqrt(K)).astype(np.float32))
    lead = draw(st.lists(st.integers(0, 3), max_size=2))
    x = rng.standard_normal((*lead, K)).astype(np.float32)
    if draw(st.integers(0, 9)) == 0:  # x with no rows and a huge K: refused before any size arithmetic
        x = np.zeros((0, draw(st.sampled_from([WF16_MAX_K, WF16_MAX_K + 1, INT32_MAX, 2**31, 2**40]))), np.float32)
    elif draw(st.integers(0, 9)) == 0:  # another K: the weight no longer fits
        x = rng.standard_normal((*lead, draw(st.integers(0, 300)))).astype(np.float32)
    n_attr = draw(st.one_of(st.just(N), st.just(N), st.integers(-3, 200), HUGE, WRONG_TYPE, st.just(MISSING)))
    arrays = draw(mutate_inputs({"x": x, "w": w}, ("x", "w")))
    attrs = {"N": n_attr}
    attrs |= draw(st.dictionaries(st.sampled_from(["plugin_namespace", "plugin_version", "foo"]),
                                  st.one_of(st.just("1"), st.integers(-5, 5)), max_size=1))
    bad = set() if _is_int(n_attr) and 1 <= n_attr <= WF16_MAX_N else {"N"}
    xa, wa = arrays["x"], arrays["w"]
    bad |= {DTYPE + n for n, a, t in (("x", xa, np.float32), ("w", wa, np.float16)) if a.dtype != t}
    if not bad:
        if xa.ndim == 0 or not 1 <= xa.shape[-1] <= WF16_MAX_K:
            bad.add("x")
        elif wa.shape != (-(-n_attr // 64), xa.shape[-1], 64):
            bad.add("w")

    def ref():
        y = naive_matmul_wf16(torch.from_numpy(xa), torch.from_numpy(wa), n_attr).numpy()
        row = np.abs(xa).max(axis=-1, keepdims=True)
        return "cpu_kernel_fp32", y / np.where(row > 0, row, 1)

    return Case("MatMulWF16", [("x", xa), ("w", wa)], attrs, bad, ref)


# ---- the check ----

def names_problem(op: str, message: str, violations: set[str]) -> bool:
    """The error names the op and one of the violations: an attribute, an input with its shape, or an input of the
    wrong dtype (ORT's type check: "Type 'tensor(double)' of input parameter (w) of operator (WKV4)", or for a
    combination of allowed dtypes "no kernel def matches node inputs for Op: WKV4")."""
    if op not in message:
        return False
    for v in violations:
        if v.startswith(DTYPE):
            name = v[len(DTYPE):]
            if re.search(rf"\(({re.escape(name)})\)|input '{re.escape(name)}'", message) and "ype" in message:
                return True
            # k and v of two float dtypes each allowed alone: ORT finds no kernel for the combination
            if "no kernel def matches node inputs" in message or "Could not find an implementation" in message:
                return True
        elif re.search(rf"attribute '?{re.escape(v)}'?\b", message) or f"input '{v}'" in message:
            return True
    return False


@pytest.fixture(scope="module")
def worker():
    w = OrtOpWorker(require_library(ORT_OPS), timeout=60)
    yield w
    w.close()


# one output y, compared per row
MATMUL_SPECS = {"MatMulW8": "matmul_w8", "MatMulW4": "matmul_w4", "MatMulWF16": "matmul_wf16"}


@given(st.one_of(wkv4_cases(), medium_cases(), matmul_block_cases("MatMulW8"), matmul_block_cases("MatMulW4"),
                 matmul_wf16_cases()))
def test_ort_ops_valid_or_named_error(worker, case):
    n_outputs = 1 if case.op in MATMUL_SPECS else 4
    feeds = {n: a for n, a in case.inputs}
    reply = worker.run(model_bytes(case, n_outputs), feeds)
    shapes = {n: (a.shape, a.dtype.name) for n, a in case.inputs}
    where = f"{case.op} attrs={case.attrs} inputs={shapes}"
    assert reply[0] != "crash", f"{where}: {reply[1]}"
    if case.violations:
        assert reply[0] == "error", f"{where}: accepted, but breaks the contract at {case.violations}"
        assert names_problem(case.op, reply[2], case.violations), \
            f"{where}: the error does not name {case.violations}: {reply[2]}"
        return
    assert reply[0] == "ok", f"{where}: refused a valid case: {reply[1:]}"
    outputs = reply[1]
    key, ref = case.reference()
    if case.op in MATMUL_SPECS:
        xa, spec = feeds["x"], MATMUL_SPECS[case.op]
        assert outputs[0].shape == (*xa.shape[:-1], case.attrs["N"]) and outputs[0].dtype == np.float32
        if outputs[0].size:
            row = np.abs(xa).max(axis=-1, keepdims=True)
            assert_close(f"{spec}/fuzz", ref, outputs[0] / np.where(row > 0, row, 1), *tolerance(spec, key, "y"))
        return
    assert outputs[0].dtype == feeds["k"].dtype
    assert_op_outputs_close("wkv4_medium" if case.op == "WKV4Medium" else "wkv4", key, ref, outputs)
