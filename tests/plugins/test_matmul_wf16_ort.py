"""rrwkv::MatMulWF16: the format (export/wf16_pack.py), the PyTorch reference, the FunctionProto in stock ONNX
Runtime, the CPU kernel inside librrwkv_ort_ops.so, the MatMul -> MatMulWF16 rewrite, and hostile inputs (wrong
dtypes, shapes and attributes refused with messages naming them). Tolerances: plugins/matmul_wf16/spec.yaml. (The
kernels' bit-identity: test_matmul_wf16_kernels.py.)"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from helpers import assert_close, tolerance
from one_node_ort import one_node_model, ort_session
from onnx import TensorProto, numpy_helper
from onnx import helper as oh
from weight_only_matmul_cases import ort_case, per_row, rewrite_case

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.graph import strip_functions
from rrwkv_trt.export.ops.matmul_wf16 import matmul_wf16_function, naive_matmul_wf16
from rrwkv_trt.export.ops.registry import register_schemas
from rrwkv_trt.export.quantize_wf16 import quantize_matmuls_wf16
from rrwkv_trt.export.wf16_pack import pack_wf16, unpack_wf16

# (M, K, N): K and N odd against the vector widths and the 64-column groups; M = 0, 1, 3, 17
CASES = [(1, 5, 1), (3, 130, 65), (17, 257, 63), (0, 130, 65), (1, 768, 768), (3, 3072, 130)]
CASE_IDS = [f"M{m}-K{k}-N{n}" for m, k, n in CASES]
INVALID = ort.capi.onnxruntime_pybind11_state.InvalidArgument


def case(M: int, K: int, N: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ort_case's x [M, K] and W [K, N], and W packed (pack_wf16)."""
    x, weight = ort_case(M, K, N, seed + M + K + N)
    return x, weight, pack_wf16(weight)


def reference(x, w, N) -> np.ndarray:
    return naive_matmul_wf16(torch.from_numpy(x), torch.from_numpy(w), N).numpy()


def initializer_model(K: int, N: int, w: np.ndarray, functions: bool) -> onnx.ModelProto:
    """y = MatMulWF16(x [M, K]) with w as an initializer (the exported form), its FunctionProto attached or not."""
    register_schemas()
    node = oh.make_node("MatMulWF16", ["x", "w"], ["y"], domain="rrwkv", N=N, plugin_namespace="rrwkv",
                        plugin_version="1")
    graph = oh.make_graph([node], "one_matmul_wf16", [oh.make_tensor_value_info("x", TensorProto.FLOAT, ["M", K])],
                          [oh.make_tensor_value_info("y", TensorProto.FLOAT, ["M", N])],
                          [numpy_helper.from_array(w, "w")])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 18), oh.make_opsetid("rrwkv", 1)],
                          functions=[matmul_wf16_function(18)], ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    return model if functions else strip_functions(model)


def run(x, w, N, library: bool, functions: bool = True) -> np.ndarray:
    model = initializer_model(x.shape[1], N, w, functions)
    return ort_session(model, library=library).run(None, {"x": x})[0]


@pytest.mark.parametrize("M,K,N", CASES, ids=CASE_IDS)
def test_pack_roundtrip(M, K, N):
    _, weight, w = case(M, K, N)
    assert w.shape == (-(-N // 64), K, 64) and w.dtype == np.float16
    assert np.array_equal(unpack_wf16(w, N), weight.astype(np.float16))
    assert not w.transpose(1, 0, 2).reshape(K, -1)[:, N:].any(), "padded columns must be 0"


def test_pack_rejects_bad_weights():
    with pytest.raises(ValueError, match=r"'W1' has \|w\| up to 70000, beyond fp16's largest finite value 65504"):
        pack_wf16(np.full((4, 4), 7e4, np.float32), "'W1'")
    with pytest.raises(ValueError, match="NaN or infinite"):
        pack_wf16(np.full((4, 4), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"\[K, N\] matrix"):
        pack_wf16(np.ones(4, np.float32))


@pytest.mark.parametrize("M,K,N", CASES, ids=CASE_IDS)
def test_reference_is_the_fp16_weight_product(M, K, N):
    """naive_matmul_wf16 is x @ float(fp16(W)) up to fp32 summation: the only rounding of the weights is fp16's."""
    x, weight, w = case(M, K, N)
    ideal = x.astype(np.float64) @ weight.astype(np.float16).astype(np.float64)
    assert_close("matmul_wf16/reference vs float64", per_row(ideal, x), per_row(reference(x, w, N), x),
                 *tolerance("matmul_wf16", "weight_only_fp32", "y"))


@pytest.mark.parametrize("M,K,N", CASES, ids=CASE_IDS)
def test_function_body_and_kernel_vs_reference(M, K, N):
    x, _, w = case(M, K, N)
    ref = per_row(reference(x, w, N), x)
    function, kernel = run(x, w, N, library=False), run(x, w, N, library=True, functions=False)
    assert function.shape == kernel.shape == (M, N)
    assert_close("matmul_wf16/function_body", ref, per_row(function, x),
                 *tolerance("matmul_wf16", "function_body_fp32", "y"))
    assert_close("matmul_wf16/cpu_kernel", ref, per_row(kernel, x), *tolerance("matmul_wf16", "cpu_kernel_fp32", "y"))
    # with the function present the library's kernel still runs (same bits as the stripped model)
    np.testing.assert_array_equal(kernel, run(x, w, N, library=True, functions=True))


def test_thread_pool_does_not_change_a_bit():
    x, _, w = case(17, 257, 200)
    model = initializer_model(257, 200, w, functions=False)
    one, two = (ort_session(model, threads=t).run(None, {"x": x})[0] for t in (1, 2))
    np.testing.assert_array_equal(one.view(np.uint32), two.view(np.uint32))


# ---- hostile inputs: every input and attribute a graph input, so that only the kernel checks them ----

def hostile_session(attrs: dict, x_type: int = TensorProto.FLOAT, w_type: int = TensorProto.FLOAT16):
    model = one_node_model("MatMulWF16", {"x": ["M", "K"], "w": ["G", "K", "L"]}, {"y": ["M", "N"]},
                           {"x": x_type, "w": w_type}, attrs, functions=False, ranked=False)
    return ort_session(model)


@pytest.mark.parametrize("attrs,message", [
    ({}, "MatMulWF16: required INT attribute 'N' (output features) is missing"),
    ({"N": 0}, "MatMulWF16: attribute N = 0 is invalid; expected 1 <= N <= 2147483584"),
    ({"N": 2**31}, "MatMulWF16: attribute N = 2147483648 is invalid"),
    ({"N": 2.0}, "MatMulWF16: attribute 'N' must be an INT, got FLOAT"),
    ({"N": "65"}, "MatMulWF16: attribute 'N' must be an INT, got STRING"),
], ids=["missing", "zero", "huge", "float", "string"])
def test_bad_attribute_is_refused(attrs, message):
    x, _, w = case(2, 130, 65)
    with pytest.raises(INVALID, match=message.replace("(", r"\(").replace(")", r"\)")):
        hostile_session(attrs).run(None, {"x": x, "w": w})


@pytest.mark.parametrize("x_shape,w_shape,message", [
    ((2, 100), (2, 130, 64), r"input 'w' has shape \[2, 130, 64\], expected \[G = ceil\(N / 64\), K \(x's last dim\), "
                             r"64\] = \[2, 100, 64\]"),
    ((2, 130), (1, 130, 64), r"input 'w' has shape \[1, 130, 64\], expected .* = \[2, 130, 64\]"),
    ((2, 130), (2, 130, 32), r"input 'w' has shape \[2, 130, 32\]"),
    ((2, 130), (2, 130), r"input 'w' has shape \[2, 130\]"),
    ((), (2, 130, 64), r"input 'x' is a scalar, expected \[\.\.\., K\]"),
    ((2, 0), (2, 0, 64), r"input 'x' has shape \[2, 0\], expected \[\.\.\., K\] with K >= 1"),
], ids=["K-mismatch", "G-mismatch", "lanes", "w-rank", "x-scalar", "K0"])
def test_bad_shape_names_the_input(x_shape, w_shape, message):
    x, w = np.zeros(x_shape, np.float32), np.zeros(w_shape, np.float16)
    with pytest.raises(INVALID, match="MatMulWF16: " + message):
        hostile_session({"N": 65}).run(None, {"x": x, "w": w})


@pytest.mark.parametrize("x_type,w_type,message", [
    (TensorProto.FLOAT, TensorProto.FLOAT, r"'tensor\(float\)' of input parameter \(w\)"),
    (TensorProto.DOUBLE, TensorProto.FLOAT16, r"'tensor\(double\)' of input parameter \(x\)"),
    (TensorProto.FLOAT16, TensorProto.FLOAT16, r"'tensor\(float16\)' of input parameter \(x\)"),
    (TensorProto.FLOAT, TensorProto.BFLOAT16, r"'tensor\(bfloat16\)' of input parameter \(w\)"),
], ids=["w-float32", "x-float64", "x-float16", "w-bfloat16"])
def test_wrong_dtype_is_refused(x_type, w_type, message):
    """The kernel is registered for (float32 x, float16 w) only: ORT refuses any other pair when it builds the
    session, naming the input and its type."""
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidGraph,
                       match=f"Type Error: Type {message} of operator \\(MatMulWF16\\)"):
        hostile_session({"N": 65}, x_type, w_type)


def test_kernel_zero_rows_and_non_finite_rows():
    x, _, w = case(4, 130, 65)
    x[1] = 0.0
    x[2, 7] = np.nan
    x[3, 100] = -np.inf
    y = run(x, w, 65, library=True, functions=False)
    assert not y[1].any() and np.isnan(y[2]).all() and not np.isfinite(y[3]).any()
    np.testing.assert_array_equal(y[0], run(x[:1], w, 65, library=True, functions=False)[0])


def test_rewrite_replaces_constant_matmuls():
    rng = np.random.default_rng(0)
    model, W1, W2 = rewrite_case(rng)
    assert quantize_matmuls_wf16(model) == 2  # the activation x activation MatMul stays
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node] == ["MatMulWF16", "MatMulWF16", "Transpose", "MatMul"]
    assert {i.name for i in model.graph.initializer} == {"W1.wf16", "W2.wf16"}
    x = rng.standard_normal((2, 3, 130)).astype(np.float32)
    stock, kernel = (ort_session(model, library=lib).run(None, {"x": x})[0] for lib in (False, True))
    h = reference(x.reshape(6, 130), pack_wf16(W1), 65)
    y0 = reference(h, pack_wf16(W2), 7).reshape(2, 3, 7)
    want = y0 @ y0.transpose(0, 2, 1)
    scale = np.abs(want).max()
    for name, got in (("function body", stock), ("kernel", kernel)):
        assert_close(f"matmul_wf16/rewrite {name}", want / scale, got / scale,
                     *tolerance("matmul_wf16", "function_body_fp32", "y"))


def test_rewrite_refuses_a_weight_fp16_cannot_hold():
    weight = np.ones((4, 3), np.float32)
    weight[2, 1] = -1e6
    graph = oh.make_graph([oh.make_node("MatMul", ["x", "big"], ["y"])], "g",
                          [oh.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [oh.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                          [numpy_helper.from_array(weight, "big")])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 18)], ir_version=10)
    with pytest.raises(UserError, match=r"MatMul weight 'big' has \|w\| up to 1e\+06, beyond fp16's largest finite "
                                        r"value 65504; export at fp32 or int8 instead"):
        quantize_matmuls_wf16(model)
