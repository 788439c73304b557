"""ContinuousGaussianAttention in librrwkv_ort_ops.so: one-node models on the fused CPU kernel vs the function body
(stock ORT) vs the naive reference in float64; the library's kernel preferred over the function; the thread pool does
not change a bit; invalid attributes and shapes rejected with a message naming them."""
from __future__ import annotations

import functools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from continuous_gaussian_attention_inputs import DTYPES, assert_outputs_close, cga_inputs, reference
from one_node_ort import one_node_model as one_node
from one_node_ort import ort_session
from onnx import TensorProto

OP_TYPE = "ContinuousGaussianAttention"
INPUTS = {"q": ["B", "H", "T", "d"], "K": ["B", "H", "N", "d"], "V": ["B", "H", "N", "d"], "w_mu": ["N"],
          "w_sigma": ["N"], "basis_mu": ["N"], "basis_sigma": ["N"]}
OUTPUTS = {"ctx": ["B", "H", "T", "d"], "mu": ["B", "H", "T"], "sigma2": ["B", "H", "T"]}
ACTIVATIONS = ("q", "K", "V", "ctx")
SHAPES = [(1, 1, 1, 1, 1), (2, 3, 7, 33, 5), (1, 2, 63, 512, 64), (3, 4, 1, 512, 50)]  # (B, H, T, N, d)
SHAPE_IDS = ["B{}H{}T{}N{}d{}".format(*s) for s in SHAPES]


def one_node_model(dtype: str, attrs: dict, functions: bool, ranked: bool = True) -> onnx.ModelProto:
    act = TensorProto.FLOAT16 if dtype == "fp16" else TensorProto.FLOAT
    return one_node(OP_TYPE, INPUTS, OUTPUTS, dict.fromkeys(ACTIVATIONS, act), attrs, functions, ranked)


@functools.cache
def session(dtype: str, attrs: tuple, library: bool = True, functions: bool = False, threads: int = 0,
            ranked: bool = True) -> ort.InferenceSession:
    return ort_session(one_node_model(dtype, dict(attrs), functions, ranked), library, threads)


def run(x: dict, library: bool = True, functions: bool = False, threads: int = 0, ranked: bool = True,
        **attrs) -> list[np.ndarray]:
    dtype = "fp16" if x["q"].dtype == torch.float16 else "fp32"
    attrs = {"sigma2_min": x["sigma2_min"], "scale": x["scale"]} | attrs
    sess = session(dtype, tuple(sorted(attrs.items())), library, functions, threads, ranked)
    return sess.run(None, {n: x[n].numpy() for n in INPUTS})


@pytest.mark.parametrize("setup", ["sorting", "gpt2"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,H,T,N,d", SHAPES, ids=SHAPE_IDS)
def test_kernel_vs_function_vs_naive(B, H, T, N, d, dtype, setup):
    x = cga_inputs(B, H, T, N, d, DTYPES[dtype], seed=T + N + d, setup=setup)
    kernel = run(x)
    assert [o.dtype for o in kernel] == [x["q"].numpy().dtype, np.float32, np.float32]
    assert_outputs_close(f"cpu_kernel_{dtype}", reference(x), kernel)
    function = run(x, library=False, functions=True)
    assert_outputs_close(f"function_body_{dtype}", reference(x), function)
    if T == 7:  # the library's kernel is preferred over the model-local function when both exist
        for a, b in zip(kernel, run(x, functions=True)):
            np.testing.assert_array_equal(a, b)


def test_threads_change_nothing():
    x = cga_inputs(3, 3, 40, 100, 20, seed=2, w_scale=5.0)
    base = run(x, threads=1)
    for a, b in zip(base, run(x, threads=2)):
        np.testing.assert_array_equal(a, b)


def test_stripped_model_needs_the_library():
    model = one_node_model("fp32", {"sigma2_min": 1e-4, "scale": 1.0}, functions=False)
    with pytest.raises(Exception, match="rrwkv:ContinuousGaussianAttention.*is not a registered function/op"):
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


P = "ContinuousGaussianAttention: "


@pytest.mark.parametrize("attrs,message", [
    ({"sigma2_min": None}, P + r"required FLOAT attribute 'sigma2_min' \(variance floor, finite and > 0\) is missing"),
    ({"scale": None}, P + r"required FLOAT attribute 'scale' \(score scale, finite and > 0\) is missing"),
    ({"sigma2_min": 0.0}, P + r"attribute sigma2_min = 0 is invalid; expected a finite value > 0"),
    ({"sigma2_min": -1e-4}, r"attribute sigma2_min = -0.0001 is invalid"),
    ({"sigma2_min": float("inf")}, r"attribute sigma2_min = inf is invalid"),
    ({"scale": 0.0}, P + r"attribute scale = 0 is invalid; expected a finite value > 0"),
    ({"scale": float("nan")}, r"attribute scale = nan is invalid"),
    ({"scale": 1}, P + r"attribute 'scale' must be a FLOAT, got INT"),
    ({"sigma2_min": "1e-4"}, P + r"attribute 'sigma2_min' must be a FLOAT, got STRING"),
], ids=["missing-sigma2_min", "missing-scale", "sigma2_min0", "sigma2_min-neg", "sigma2_min-inf", "scale0",
        "scale-nan", "scale-int", "sigma2_min-string"])
def test_invalid_attributes_rejected(attrs, message):
    x = cga_inputs(1, 1, 2, 3, 4, seed=0)
    attrs = {k: v for k, v in ({"sigma2_min": x["sigma2_min"], "scale": x["scale"]} | attrs).items() if v is not None}
    sess = session("fp32", tuple(sorted(attrs.items())))
    with pytest.raises(Exception, match=message):
        sess.run(None, {n: x[n].numpy() for n in INPUTS})


@pytest.mark.parametrize("name,bad_shape,message", [
    ("q", (2, 3, 7), r"input 'q' has shape \[2, 3, 7\], expected rank 4 \[B, H, T, d\]"),
    ("K", (2, 3, 6), r"input 'K' has shape \[2, 3, 6\], expected rank 4 \[B, H, N, d\]"),
    ("K", (2, 3, 6, 4), r"input 'K' has shape \[2, 3, 6, 4\], expected \[B, H, N, d\] = \[2, 3, 6, 5\]"),
    ("K", (1, 3, 6, 5), r"input 'K' has shape \[1, 3, 6, 5\], expected \[B, H, N, d\] = \[2, 3, 6, 5\]"),
    ("V", (2, 3, 5, 5), r"input 'V' has shape \[2, 3, 5, 5\], expected \[B, H, N, d\] = \[2, 3, 6, 5\]"),
    ("w_mu", (5,), r"input 'w_mu' has shape \[5\], expected \[N\] = \[6\]"),
    ("basis_sigma", (1, 6), r"input 'basis_sigma' has shape \[1, 6\], expected \[N\] = \[6\]"),
], ids=["q-rank", "K-rank", "K-d", "K-B", "V-N", "w_mu-N", "basis_sigma-rank"])
def test_shape_errors_name_the_input(name, bad_shape, message):
    x = cga_inputs(2, 3, 7, 6, 5, seed=0)
    x[name] = torch.zeros(bad_shape, dtype=x[name].dtype)
    with pytest.raises(Exception, match="ContinuousGaussianAttention: " + message):
        run(x, ranked=False)
