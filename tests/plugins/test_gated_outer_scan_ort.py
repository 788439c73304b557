"""GatedOuterScan in librrwkv_ort_ops.so: one-node models on the fused CPU kernel vs the function body (stock ORT) vs
the naive reference in float64; the library's kernel preferred over the function; chunk_size and the thread pool do
not change a bit; invalid attributes and shapes rejected with a message naming them."""
from __future__ import annotations

import functools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from gated_outer_scan_inputs import DTYPES, NAMES, OP, gos_inputs, reference
from helpers import assert_op_outputs_close
from one_node_ort import one_node_model as one_node
from one_node_ort import ort_session
from onnx import TensorProto

OP_TYPE = "GatedOuterScan"
INPUTS = {"q": ["B", "T", "H", "K"], "f": ["B", "T", "H", "K"], "lb": ["H", "K"], "v": ["B", "T", "H", "V"],
          "S0": ["B", "H", "K", "V"]}
OUTPUTS = {"o": ["B", "T", "H", "V"], "S_out": ["B", "H", "K", "V"]}
ACTIVATIONS = ("q", "f", "v", "o")
SHAPES = [(T, H, K, V, B) for T in (1, 7, 63) for H, K, V in [(1, 1, 1), (3, 5, 7), (2, 33, 17), (1, 128, 128)]
          for B in (1, 3)]
SHAPE_IDS = [f"T{T}-H{H}-K{K}-V{V}-B{B}" for T, H, K, V, B in SHAPES]


def one_node_model(dtype: str, attrs: dict, functions: bool, ranked: bool = True) -> onnx.ModelProto:
    act = TensorProto.FLOAT16 if dtype == "fp16" else TensorProto.FLOAT
    return one_node(OP_TYPE, INPUTS, OUTPUTS, dict.fromkeys(ACTIVATIONS, act), attrs, functions, ranked)


@functools.cache
def session(dtype: str, attrs: tuple, library: bool = True, functions: bool = False, threads: int = 0,
            ranked: bool = True) -> ort.InferenceSession:
    return ort_session(one_node_model(dtype, dict(attrs), functions, ranked), library, threads)


def feeds(x: dict) -> dict[str, np.ndarray]:
    return {"q": x["q"].numpy(), "f": x["f"].numpy(), "lb": x["lb"].numpy(), "v": x["v"].numpy(),
            "S0": x["state"].numpy()}


def run(x: dict, library: bool = True, functions: bool = False, threads: int = 0, ranked: bool = True,
        **attrs) -> list[np.ndarray]:
    dtype = "fp16" if x["q"].dtype == torch.float16 else "fp32"
    attrs = {"scale": x["scale"]} | attrs
    return session(dtype, tuple(sorted(attrs.items())), library, functions, threads, ranked).run(None, feeds(x))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T,H,K,V,B", SHAPES, ids=SHAPE_IDS)
def test_kernel_vs_function_vs_naive(T, H, K, V, B, dtype):
    lb = ("zero", "mixed", "high")[(T + K + B) % 3]
    x = gos_inputs(B, T, H, K, V, DTYPES[dtype], seed=T + K + B, lb=lb, zero_state=(T == 7 and B == 1))
    kernel = run(x)
    assert kernel[0].dtype == x["q"].numpy().dtype and kernel[1].dtype == np.float32
    assert_op_outputs_close(OP, f"cpu_kernel_{dtype}", reference(x), kernel, NAMES)
    function = run(x, library=False, functions=True)
    assert_op_outputs_close(OP, f"function_body_{dtype}", function, kernel, NAMES)
    if T == 7:  # the library's kernel is preferred over the model-local function when both exist
        for a, b in zip(kernel, run(x, functions=True)):
            np.testing.assert_array_equal(a, b)


def test_chunk_size_and_threads_change_nothing():
    """chunk_size (the CPU kernel runs the recurrence) and ORT's thread pool over the (b, h) slices: the same bits."""
    x = gos_inputs(3, 40, 3, 33, 20, seed=2)
    base = run(x, threads=1)
    for out in (run(x, chunk_size=1), run(x, chunk_size=64), run(x, chunk_size=1000), run(x, threads=2)):
        for a, b in zip(base, out):
            np.testing.assert_array_equal(a, b)


def test_stripped_model_needs_the_library():
    model = one_node_model("fp32", {"scale": 1.0}, functions=False)
    with pytest.raises(Exception, match="rrwkv:GatedOuterScan.*is not a registered function/op"):
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("attrs,message", [
    ({"scale": None}, r"GatedOuterScan: required FLOAT attribute 'scale' \(query scale, finite and > 0\) is missing"),
    ({"scale": 0.0}, r"GatedOuterScan: attribute scale = 0 is invalid; expected a finite value > 0"),
    ({"scale": -0.5}, r"attribute scale = -0.5 is invalid"),
    ({"scale": float("nan")}, r"attribute scale = nan is invalid"),
    ({"scale": float("inf")}, r"attribute scale = inf is invalid"),
    ({"scale": 1}, r"GatedOuterScan: attribute 'scale' must be a FLOAT, got INT"),
    ({"scale": "1"}, r"attribute 'scale' must be a FLOAT, got STRING"),
    ({"chunk_size": 0}, r"GatedOuterScan: attribute chunk_size = 0 is invalid; expected chunk_size >= 1"),
    ({"chunk_size": -64}, r"attribute chunk_size = -64 is invalid"),
    ({"chunk_size": 64.0}, r"GatedOuterScan: attribute 'chunk_size' must be an INT, got FLOAT"),
], ids=["missing-scale", "scale0", "scale-neg", "scale-nan", "scale-inf", "scale-int", "scale-string", "chunk0",
        "chunk-neg", "chunk-float"])
def test_invalid_attributes_rejected(attrs, message):
    x = gos_inputs(1, 2, 1, 3, 4, seed=0)
    attrs = {k: v for k, v in ({"scale": x["scale"]} | attrs).items() if v is not None}
    sess = session("fp32", tuple(sorted(attrs.items())))
    with pytest.raises(Exception, match=message):
        sess.run(None, feeds(x))


@pytest.mark.parametrize("name,bad_shape,message", [
    ("q", (3, 7, 2), r"input 'q' has shape \[3, 7, 2\], expected rank 4 \[B, T, H, K\]"),
    ("v", (3, 7, 2, 6, 1), r"input 'v' has shape \[3, 7, 2, 6, 1\], expected rank 4 \[B, T, H, V\]"),
    ("f", (3, 7, 2, 4), r"input 'f' has shape \[3, 7, 2, 4\], expected \[B, T, H, K\] = \[3, 7, 2, 5\]"),
    ("lb", (5,), r"input 'lb' has shape \[5\], expected \[H, K\] = \[2, 5\]"),
    ("lb", (1, 5), r"input 'lb' has shape \[1, 5\], expected \[H, K\] = \[2, 5\]"),
    ("v", (3, 6, 2, 6), r"input 'v' has shape \[3, 6, 2, 6\], expected \[B, T, H, V\] = \[3, 7, 2, 6\]"),
    ("S0", (3, 2, 5, 7), r"input 'S0' has shape \[3, 2, 5, 7\], expected \[B, H, K, V\] = \[3, 2, 5, 6\]"),
    ("S0", (2, 2, 5, 6), r"input 'S0' has shape \[2, 2, 5, 6\], expected \[B, H, K, V\] = \[3, 2, 5, 6\]"),
], ids=["q-rank", "v-rank", "f-K", "lb-rank", "lb-H", "v-T", "S0-V", "S0-B"])
def test_shape_errors_name_the_input(name, bad_shape, message):
    x = gos_inputs(3, 7, 2, 5, 6, seed=0)
    key = "state" if name == "S0" else name
    x[key] = torch.zeros(bad_shape, dtype=x[key].dtype)
    with pytest.raises(Exception, match="GatedOuterScan: " + message):
        run(x, ranked=False)
