"""What the weight-only matmul tests share (rrwkv::MatMulW8, MatMulW4, MatMulWF16: test_matmul_<format>_ort.py and
test_matmul_<format>_kernels.py): the test data the spec tolerances are stated for, the per-row scaling, bit-exact
comparisons, the ISA skips, the one-node model of a block-quantised op (x, w and scale as initializers) and the graph
of the MatMul rewrite tests. Each test module keeps what is format-specific: packing, reference, cases, limits."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from kernel_shim import ORT_OPS, require_library
from onnx import TensorProto, numpy_helper
from onnx import helper as oh

from rrwkv_trt.core.graph import strip_functions
from rrwkv_trt.export.ops import register_schemas


def ort_case(M: int, K: int, N: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x [M, K] ~ N(0, 1) with row 0 scaled by 1e-3 and the last by 1e3 (M > 2); W [K, N] ~ N(0, 1/K)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((M, K)).astype(np.float32)
    if M > 2:
        x[0] *= 1e-3
        x[-1] *= 1e3
    weight = (rng.standard_normal((K, N)) / np.sqrt(K)).astype(np.float32)
    return x, weight


def kernel_case(M: int, K: int, N: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The data spec.yaml's tolerances are stated for: x [M, K] ~ N(0, 1), rows r % 3 == 1 scaled by 1e-3 and rows
    r % 3 == 2 by 1e3, and a weight [K, N] ~ N(0, 1 / K) (to be packed)."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((M, K)) * np.array([1.0, 1e-3, 1e3])[np.arange(M) % 3, None]).astype(np.float32)
    return x, (rng.standard_normal((K, N)) / np.sqrt(K)).astype(np.float32)


def per_row(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """y / max |x| of its row (1 for zero rows): spec.yaml's tolerances are for rows of unit scale."""
    row = np.abs(x).max(axis=-1, keepdims=True) if x.size else np.ones((*x.shape[:-1], 1))
    return y / np.where(row > 0, row, 1)


def require_isa(isa: str, best: int, isas: dict[str, int], skips: dict[str, str]) -> None:
    """Skip, with the reason in `skips`, unless the CPU kernels' best path `best` reaches `isa`."""
    if best < isas[isa]:
        pytest.skip(skips[isa])


def assert_same_bits(name: str, ref: np.ndarray, out: np.ndarray) -> None:
    """ref and out identical bit for bit (NaNs included: a poisoned element fails); 2- or 4-byte elements."""
    assert ref.shape == out.shape and ref.dtype == out.dtype, (f"{name}: {out.shape} {out.dtype} != {ref.shape} "
                                                               f"{ref.dtype}")
    bits = {2: np.uint16, 4: np.uint32}[ref.itemsize]
    bad = np.flatnonzero(ref.view(bits) != out.view(bits))
    assert bad.size == 0, (f"{name}: {bad.size}/{ref.size} elements differ, first at flat index {bad[0]}: "
                           f"{ref.reshape(-1)[bad[:3]]} vs {out.reshape(-1)[bad[:3]]}")


def assert_same_outputs(name: str, ref: tuple, out: tuple) -> None:
    """A block-quantised op's (y, xq, x_scale) identical bit for bit."""
    for label, r, o in zip(("y", "xq", "x_scale"), ref, out):
        assert_same_bits(f"{name}/{label}", r, o)


def block_quantized_model(op_type: str, function: Callable[[int], onnx.FunctionProto], K: int, N: int,
                          w: np.ndarray, scale: np.ndarray, block: int, strip: bool) -> bytes:
    """y = `op_type`(x [M, K]) with w and scale as initializers, its FunctionProto `function(18)` attached unless
    `strip`."""
    register_schemas()
    node = oh.make_node(op_type, ["x", "w", "scale"], ["y"], domain="rrwkv", N=N, block_size=block,
                        plugin_namespace="rrwkv", plugin_version="1")
    graph = oh.make_graph([node], f"one_{op_type}", [oh.make_tensor_value_info("x", TensorProto.FLOAT, ["M", K])],
                          [oh.make_tensor_value_info("y", TensorProto.FLOAT, ["M", N])],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(scale, "scale")])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 18), oh.make_opsetid("rrwkv", 1)],
                          functions=[function(18)])
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    return (strip_functions(model) if strip else model).SerializeToString()


def run_block_quantized(op_type: str, function: Callable[[int], onnx.FunctionProto], x: np.ndarray, w: np.ndarray,
                        scale: np.ndarray, N: int, block: int, kernel: bool, strip: bool = True) -> np.ndarray:
    """block_quantized_model on stock ORT (the function body) or, when `kernel`, with librrwkv_ort_ops.so
    registered (the function stripped unless `strip` is False)."""
    so = ort.SessionOptions()
    if kernel:
        so.register_custom_ops_library(str(require_library(ORT_OPS)))
    model = block_quantized_model(op_type, function, x.shape[1], N, w, scale, block, strip=strip and kernel)
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def rewrite_case(rng: np.random.Generator) -> tuple[onnx.ModelProto, np.ndarray, np.ndarray]:
    """y = (x W1 W2) (x W1 W2)^T over x [2, T, 130]: two MatMuls by constants W1 [130, 65], W2 [65, 7] for a rewrite
    to replace, then a Transpose and an activation x activation MatMul that must stay. Returns (model, W1, W2)."""
    W1 = rng.standard_normal((130, 65)).astype(np.float32)
    W2 = rng.standard_normal((65, 7)).astype(np.float32)
    nodes = [oh.make_node("MatMul", ["x", "W1"], ["h"]), oh.make_node("MatMul", ["h", "W2"], ["y0"]),
             oh.make_node("Transpose", ["y0"], ["y0t"], perm=[0, 2, 1]), oh.make_node("MatMul", ["y0", "y0t"], ["y"])]
    graph = oh.make_graph(nodes, "g", [oh.make_tensor_value_info("x", TensorProto.FLOAT, [2, "T", 130])],
                          [oh.make_tensor_value_info("y", TensorProto.FLOAT, [2, "T", "T"])],
                          [numpy_helper.from_array(W1, "W1"), numpy_helper.from_array(W2, "W2")])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 18)], ir_version=10)
    return model, W1, W2


def check_zero_and_non_finite_rows(run: Callable, make_inputs: Callable) -> None:
    """A block-quantised op's kernel on x with an all-zero row (y = 0, x_scale = 0) and rows holding a NaN or an
    infinity (NaN rows, NaN x_scale); every other row is bit-identical to the same rows computed without the bad
    ones. run(x, w, scale, N, bs) -> (y, xq, x_scale); make_inputs(M, K, N, bs, seed) -> (x, w, scale)."""
    M, K, N, bs = 9, 130, 65, 32
    x, w, scale = make_inputs(M, K, N, bs, seed=11)
    x[1] = 0.0
    x[2, 7] = np.nan
    x[4, 0] = np.inf
    x[5, K - 1] = -np.inf
    x[6] = np.nan
    y, _, x_scale = run(x, w, scale, N, bs)
    assert (y[1] == 0).all() and x_scale[1] == 0, y[1]
    bad = [2, 4, 5, 6]
    assert np.isnan(y[bad]).all() and np.isnan(x_scale[bad]).all(), "a non-finite row must give a NaN row"
    good = [r for r in range(M) if r not in bad]
    y_good, _, _ = run(np.ascontiguousarray(x[good]), w, scale, N, bs)
    assert np.array_equal(y[good].view(np.uint32), y_good.view(np.uint32)), "a bad row changed another row"


def check_leading_dims_are_rows(run: Callable, make_inputs: Callable) -> None:
    """x [2, 5, K] is M = 10 rows: y [2, 5, N] equals the flat [10, K] product bit for bit (a block-quantised op's
    kernel; run and make_inputs as for check_zero_and_non_finite_rows)."""
    K, N, bs = 130, 200, 128
    x, w, scale = make_inputs(10, K, N, bs, seed=5)
    y3, _, _ = run(x.reshape(2, 5, K), w, scale, N, bs)
    y2, _, _ = run(x, w, scale, N, bs)
    assert y3.shape == (2, 5, N)
    assert np.array_equal(y3.reshape(10, N).view(np.uint32), y2.view(np.uint32))


def check_empty_rows_and_columns(run: Callable, quantize: Callable, w_empty: np.ndarray,
                                 launches: Callable[[], int]) -> None:
    """M = 0 writes nothing (and launches nothing); K = 0 (no weight rows, Kpad = 0: w_empty, a G = 2 weight) gives
    y = 0 and x_scale = 0 (a block-quantised op's kernel; run as for check_zero_and_non_finite_rows; quantize the
    format's packing; launches() the emulated launch count)."""
    N = 65
    before = launches()
    y, _, _ = run(np.zeros((0, 7), np.float32), *quantize(np.ones((7, N), np.float32), 2), N, 2)
    assert y.shape == (0, N)
    assert launches() == before
    y, _, x_scale = run(np.zeros((3, 0), np.float32), w_empty, np.zeros((2, 0, 64), np.float32), N, 2)
    assert (y == 0).all() and (x_scale == 0).all(), y
