"""rrwkv::MatMulW8: the format (export/w8_pack.py), the PyTorch reference, the FunctionProto in stock ONNX Runtime,
the CPU kernel inside librrwkv_ort_ops.so, and the MatMul -> MatMulW8 rewrite, on odd sizes. Tolerances:
plugins/matmul_w8/spec.yaml. (The kernels' bit-identity: test_matmul_w8_kernels.py.)"""
from __future__ import annotations

import functools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from helpers import assert_close, tolerance
from weight_only_matmul_cases import ort_case, per_row, rewrite_case, run_block_quantized

from rrwkv_trt.export.ops.matmul_w8 import matmul_w8_function, naive_matmul_w8
from rrwkv_trt.export.quantize_w8 import quantize_matmuls_w8
from rrwkv_trt.export.w8_pack import dequantize_w8, quantize_w8, unpack_w8

# (M, K, N, block_size): M rows of x; K, N odd against the 64-column groups and the blocks
CASES = [(1, 5, 1, 2), (3, 130, 65, 32), (7, 768, 200, 128), (70, 257, 63, 256), (1, 768, 768, 128),
         (2, 3072, 130, 128)]
CASE_IDS = [f"M{m}-K{k}-N{n}-b{b}" for m, k, n, b in CASES]


def case(M: int, K: int, N: int, block: int, seed: int = 0):
    """ort_case's x [M, K] and W [K, N], and W quantised (quantize_w8)."""
    x, weight = ort_case(M, K, N, seed + M + K + N + block)
    w, scale = quantize_w8(weight, block)
    return x, weight, w, scale


def reference(x, w, scale, N, block) -> np.ndarray:
    return naive_matmul_w8(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(scale), N, block).numpy()


# run(x, w, scale, N, block, kernel, strip=True): the function body in stock ORT, or the library's kernel
run = functools.partial(run_block_quantized, "MatMulW8", matmul_w8_function)


@pytest.mark.parametrize("M,K,N,block", CASES, ids=CASE_IDS)
def test_pack_roundtrip(M, K, N, block):
    _, weight, w, scale = case(M, K, N, block)
    G, NB = -(-N // 64), -(-K // block)
    assert w.shape == (G, NB * block // 2, 64, 2) and w.dtype == np.int8
    assert scale.shape == (G, NB, 64) and scale.dtype == np.float32
    q = unpack_w8(w)
    assert not q[K:].any() and not q[:, N:].any() and np.abs(q).max() <= 127
    step = np.repeat(scale.transpose(1, 0, 2).reshape(NB, -1), block, axis=0)[:K, :N]
    assert (np.abs(dequantize_w8(w, scale, K, N) - weight) <= step / 2 * (1 + 1e-6)).all()


def test_pack_rejects_bad_weights():
    with pytest.raises(ValueError, match="block_size must be an even value"):
        quantize_w8(np.ones((4, 4), np.float32), 3)
    with pytest.raises(ValueError, match="NaN or infinite"):
        quantize_w8(np.full((4, 4), np.inf, np.float32), 2)
    with pytest.raises(ValueError, match=r"\[K, N\] matrix"):
        quantize_w8(np.ones(4, np.float32), 2)


@pytest.mark.parametrize("M,K,N,block", CASES, ids=CASE_IDS)
def test_reference_is_weight_only_int8_up_to_int16_activations(M, K, N, block):
    x, _, w, scale = case(M, K, N, block)
    ideal = x.astype(np.float64) @ dequantize_w8(w, scale, K, N).astype(np.float64)
    atol, rtol = tolerance("matmul_w8", "weight_only_fp32", "y")
    assert_close("matmul_w8/weight_only", per_row(ideal, x), per_row(reference(x, w, scale, N, block), x), atol, rtol)


@pytest.mark.parametrize("M,K,N,block", CASES, ids=CASE_IDS)
def test_function_body_and_kernel_vs_reference(M, K, N, block):
    x, _, w, scale = case(M, K, N, block)
    ref = per_row(reference(x, w, scale, N, block), x)
    function, kernel = run(x, w, scale, N, block, kernel=False), run(x, w, scale, N, block, kernel=True)
    assert_close("matmul_w8/function_body", ref, per_row(function, x),
                 *tolerance("matmul_w8", "function_body_fp32", "y"))
    assert_close("matmul_w8/cpu_kernel", ref, per_row(kernel, x), *tolerance("matmul_w8", "cpu_kernel_fp32", "y"))
    # with the function present the library's kernel still runs (same bits as the stripped model)
    np.testing.assert_array_equal(kernel, run(x, w, scale, N, block, kernel=True, strip=False))


def test_kernel_zero_rows_and_non_finite_rows():
    x, _, w, scale = case(4, 130, 65, 32)
    x[1] = 0.0
    x[2, 7] = np.nan
    x[3, 100] = -np.inf
    y = run(x, w, scale, 65, 32, kernel=True)
    assert not y[1].any() and np.isnan(y[2]).all() and np.isnan(y[3]).all()
    np.testing.assert_array_equal(y[0], reference(x[:1], w, scale, 65, 32)[0])
    assert run(np.zeros((0, 130), np.float32), w, scale, 65, 32, kernel=True).shape == (0, 65)


def test_kernel_errors_name_the_input():
    x, _, w, scale = case(2, 130, 65, 32)
    with pytest.raises(Exception, match=r"MatMulW8: input 'w' has shape \[2, 80, 64, 2\], expected"):
        run(x[:, :100], w, scale, 65, 32, kernel=True)
    with pytest.raises(Exception, match="attribute block_size = 3 is invalid"):
        run(x, w, scale, 65, 3, kernel=True)
    with pytest.raises(Exception, match=r"input 'x' has shape \[2, 0\], expected \[\.\.\., K\] with K >= 1"):
        run(np.zeros((2, 0), np.float32), w, scale, 65, 32, kernel=True)


def test_rewrite_replaces_constant_matmuls():
    rng = np.random.default_rng(0)
    model, W1, W2 = rewrite_case(rng)
    assert quantize_matmuls_w8(model, 32) == 2  # the activation x activation MatMul stays
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node] == ["MatMulW8", "MatMulW8", "Transpose", "MatMul"]
    assert {i.name for i in model.graph.initializer} == {"W1.w8", "W1.w8_scale", "W2.w8", "W2.w8_scale"}
    x = rng.standard_normal((2, 3, 130)).astype(np.float32)
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    w1, s1 = quantize_w8(W1, 32)
    w2, s2 = quantize_w8(W2, 32)
    h = reference(x.reshape(6, 130), w1, s1, 65, 32)
    y0 = reference(h, w2, s2, 7, 32).reshape(2, 3, 7)
    assert_close("matmul_w8/rewrite", y0 @ y0.transpose(0, 2, 1), got, 1e-4, 1e-4)
