"""The C++ ops at the int32 limits, without allocating the tensors: the size arithmetic of the CPU kernels through the
test shim (w8BlockCount / w8GroupCount / w8PaddedK, matmulW8SizeError, the pass-2 and WKV4 slicing near 2^31), the
refusals of the ORT ops (MatMulW8, MatMulW4, MatMulWF16) for a huge K on an empty x or a huge N, INT attributes of
another ONNX type, and WKV4Medium's window test at pos0 near 2^63 (the wrap of int64, as in the references)."""
from __future__ import annotations

import re

import numpy as np
import onnxruntime as ort
import pytest
import torch
from helpers import assert_op_outputs_close
from kernel_shim import (ORT_OPS, cpu_matmul_w8_status, require_library, run_wkv4_medium, w8_cpu_slice, w8_size_error,
                         w8_sizes, wkv4_cpu_slice)
from onnx import TensorProto
from onnx import helper as oh
from ops.op_models import medium_inputs

from rrwkv_trt.export.ops import naive_wkv4_medium

INT32_MAX = 2**31 - 1
W8_MAX_N = 0x7FFFFFC0  # kW8MaxN
W8_MAX_K = 1 << 30     # kW8MaxK
WF16_MAX_N = 0x7FFFFFC0  # kWF16MaxN (plugins/matmul_wf16/matmulWF16Math.h)
WF16_MAX_K = 1 << 30     # kWF16MaxK


@pytest.mark.parametrize("K,block", [(INT32_MAX, 256), (INT32_MAX, 2), (INT32_MAX - 1, 254), (2**31 - 64, 128),
                                     (W8_MAX_K, 256), (1, 256), (0, 2)])
def test_w8_block_count_and_padded_k_in_64_bits(K, block):
    NB, _, Kpad = w8_sizes(K, 1, block)
    assert NB == -(-K // block)
    assert Kpad == NB * block  # 2^31 and more for K near 2^31: an int64


@pytest.mark.parametrize("N", [INT32_MAX, INT32_MAX - 62, W8_MAX_N, W8_MAX_N + 1, 1, 64, 65])
def test_w8_group_count_in_64_bits(N):
    assert w8_sizes(1, N, 2)[1] == -(-N // 64)


def test_w8_size_error_bounds():
    assert w8_size_error(INT32_MAX, W8_MAX_K, W8_MAX_N, 256) == ""  # every limit at once, all taken
    assert w8_size_error(0, 0, 1, 2) == ""
    assert "K = 2147483647 (input features) is outside [0, 1073741824]" in w8_size_error(0, INT32_MAX, 64, 128)
    assert "K = 1073741825" in w8_size_error(0, W8_MAX_K + 1, 64, 2)
    # K <= 2^30 whose padding passes it: 2^30 - 1 in blocks of 254 rows
    K = W8_MAX_K - 1
    assert -(-K // 254) * 254 > W8_MAX_K
    assert "padded to a multiple of block_size = 254" in w8_size_error(0, K, 64, 254)
    assert "N = 2147483585 (output features) is outside [1, 2147483584]" in w8_size_error(1, 4, W8_MAX_N + 1, 2)
    assert "N = 0" in w8_size_error(1, 4, 0, 2)
    assert "M = 2147483648 (rows of x)" in w8_size_error(2**31, 4, 64, 2)
    assert "block_size = 3" in w8_size_error(1, 4, 64, 3)
    assert "block_size = 258" in w8_size_error(1, 4, 64, 258)


@pytest.mark.parametrize("M,K,N,block", [(0, INT32_MAX, 64, 128), (0, W8_MAX_K + 1, 64, 2), (1, 4, INT32_MAX, 2),
                                         (-1, 4, 64, 2), (1, 4, 64, 7)])
def test_cpu_entry_refuses_sizes_before_touching_buffers(M, K, N, block):
    assert cpu_matmul_w8_status(M, K, N, block) == 1


@pytest.mark.parametrize("M", [INT32_MAX, INT32_MAX - 1, INT32_MAX - 63, 2**31 - 64, 130])
@pytest.mark.parametrize("N", [1, 64, 130, W8_MAX_N])
def test_w8_cpu_slices_reach_the_last_row(M, N):
    """The last row block of M near 2^31 (r0 + 64 would overflow int32): its rows end at M, and the slices of the
    last row block cover every column group."""
    groups = -(-N // 64)
    count = w8_cpu_slice(0, M, N)[0]
    assert count == -(-M // 64) * groups
    last_r0 = (M - 1) // 64 * 64
    for s in (count - 1, count - groups, count - 1 - groups):
        _, g, r0, r1 = w8_cpu_slice(s, M, N)
        assert g == s % groups and r0 == s // groups * 64
        assert r1 == min(M, r0 + 64) and r0 < r1
    assert w8_cpu_slice(count - 1, M, N)[2:] == (last_r0, M)


@pytest.mark.parametrize("C", [INT32_MAX, INT32_MAX - 1, 2**31 - 64, 65])
def test_wkv4_cpu_slices_reach_the_last_channel(C):
    blocks = -(-C // 64)
    count, b, c0, c1 = wkv4_cpu_slice(2 * blocks - 1, 2, C)
    assert count == 2 * blocks and b == 1
    assert (c0, c1) == ((blocks - 1) * 64, C)
    assert wkv4_cpu_slice(blocks - 2, 2, C)[1:] == (0, (blocks - 2) * 64, (blocks - 1) * 64)


# ---- the ORT ops ----

def _session(op: str, inputs: dict[str, np.ndarray], n_outputs: int, **attrs) -> ort.InferenceSession:
    onnx_type = {np.float32: TensorProto.FLOAT, np.float16: TensorProto.FLOAT16, np.int8: TensorProto.INT8,
                 np.int64: TensorProto.INT64}
    node = oh.make_node(op, list(inputs), [f"out{i}" for i in range(n_outputs)], domain="rrwkv", **attrs)
    graph = oh.make_graph([node], "limits", [oh.make_tensor_value_info(n, onnx_type[a.dtype.type], None)
                                             for n, a in inputs.items()],
                          [oh.make_empty_tensor_value_info(f"out{i}") for i in range(n_outputs)])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 18), oh.make_opsetid("rrwkv", 1)])
    model.ir_version = 10
    so = ort.SessionOptions()
    so.register_custom_ops_library(str(require_library(ORT_OPS)))
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


# MatMulW8 and MatMulW4 share the attributes, the size limits and the shapes of x and scale; w's lanes differ.
W_LANES = {"MatMulW8": (64, 2), "MatMulW4": (64,)}
BLOCK_OPS = pytest.mark.parametrize("op", list(W_LANES))


def _w8_inputs(K: int, N: int = 64, block: int = 128, rows: int = 0, op: str = "MatMulW8") -> dict[str, np.ndarray]:
    G, NB = -(-N // 64), -(-min(K, 256) // block)
    return {"x": np.zeros((rows, K), np.float32), "w": np.zeros((G, NB * block // 2, *W_LANES[op]), np.int8),
            "scale": np.zeros((G, NB, 64), np.float32)}


@pytest.mark.parametrize("K,expected", [
    (INT32_MAX, "K = 2147483647 (input features) is outside [0, 1073741824]"),
    (2**31, "K = 2147483648 (input features) is outside"),
    (2**40, "K = 1099511627776 (input features) is outside"),
    (W8_MAX_K + 1, "K = 1073741825 (input features) is outside")])
@BLOCK_OPS
def test_matmul_w8_ort_refuses_huge_k_on_empty_x(K, expected, op):
    inputs = _w8_inputs(K, op=op)
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument,
                       match=op + r": input 'x' has shape \[0, \d+\]: " + re.escape(expected)):
        _session(op, inputs, 1, N=64, block_size=128).run(None, inputs)


@BLOCK_OPS
def test_matmul_w8_ort_refuses_padded_k_past_the_limit(op):
    K = W8_MAX_K - 1  # fits, but padded to blocks of 254 rows it does not
    inputs = _w8_inputs(K, block=254, op=op)
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument, match="padded to a multiple of "
                       "block_size = 254"):
        _session(op, inputs, 1, N=64, block_size=254).run(None, inputs)


@pytest.mark.parametrize("N,expected", [
    (INT32_MAX, "attribute N = 2147483647 is invalid; expected 1 <= N <= 2147483584"),
    (W8_MAX_N + 1, "attribute N = 2147483585 is invalid"),
    (2**31, "attribute N = 2147483648 is invalid"),
    (2**63 - 1, "attribute N = 9223372036854775807 is invalid"),
    (-(2**63), "attribute N = -9223372036854775808 is invalid"),
    # the largest N taken: its G = ceil(N / 64) = 33554431, in 64 bits, is what w must have
    (W8_MAX_N, r"input 'w' has shape \[1, 2, 64(, 2)?\], expected \[G = ceil\(N / 64\), .*\] "
               r"= \[33554431, 2, 64(, 2)?\]")])
@BLOCK_OPS
def test_matmul_w8_ort_huge_n(N, expected, op):
    inputs = _w8_inputs(4, block=4, rows=1, op=op)
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument, match=expected):
        _session(op, inputs, 1, N=N, block_size=4).run(None, inputs)


@pytest.mark.parametrize("name,value,got", [("s", 3.0, "FLOAT"), ("s", "3", "STRING"), ("s", [3], "INTS"),
                                            ("s", [3, 4], "INTS"), ("medium_decays", 1.0, "FLOAT"),
                                            ("medium_decays", [0.5], "FLOATS"), ("medium_decays", ["a"], "a list")])
def test_wkv4_medium_ort_refuses_attributes_of_another_type(name, value, got):
    """Before, a FLOAT medium_decays = 1.0 ran as the default 0, and a FLOAT s was reported missing."""
    x = medium_inputs(1, 2, 3, 2, [0])
    inputs = {n: t.numpy() for n, t in x.items()}
    attrs = {"s": 2, "medium_decays": 0} | {name: value}
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument,
                       match=f"WKV4Medium: attribute '{name}' must be an INT, got {got}"):
        _session("WKV4Medium", inputs, 4, **attrs).run(None, inputs)


@pytest.mark.parametrize("name,value,got", [("N", 64.0, "FLOAT"), ("block_size", "128", "STRING")])
@BLOCK_OPS
def test_matmul_w8_ort_refuses_attributes_of_another_type(name, value, got, op):
    inputs = _w8_inputs(4, block=128, rows=1, op=op)
    attrs = {"N": 64, "block_size": 128} | {name: value}
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument,
                       match=f"{op}: attribute '{name}' must be an INT, got {got}"):
        _session(op, inputs, 1, **attrs).run(None, inputs)


@pytest.mark.parametrize("backend", ["cpu", "emu", "ort"])
def test_wkv4_medium_pos0_near_int64_limits(backend):
    """pos0 + t + 1 past 2^63 - 1 wraps as int64 does in the references (it was a signed overflow in C++)."""
    pos0 = [2**63 - 1, 2**63 - 3, -(2**63), 2**63 - 2]
    x = medium_inputs(4, 5, 7, 3, pos0, seed=5)
    ref = naive_wkv4_medium(**x, s=3, medium_decays=1)
    if backend == "ort":
        feeds = {n: t.numpy() for n, t in x.items()}
        out = _session("WKV4Medium", feeds, 4, s=3, medium_decays=1).run(None, feeds)
    else:
        out = run_wkv4_medium(backend, **x, s=3, medium_decays=1)
    assert_op_outputs_close("wkv4_medium", "cpu_kernel_fp32", ref, [torch.as_tensor(o) for o in out])


@pytest.mark.parametrize("K,expected", [
    (INT32_MAX, "K = 2147483647 (input features) is outside [0, 1073741824]"),
    (2**40, "K = 1099511627776 (input features) is outside"),
    (WF16_MAX_K + 1, "K = 1073741825 (input features) is outside")])
def test_matmul_wf16_ort_refuses_huge_k_on_empty_x(K, expected):
    inputs = {"x": np.zeros((0, K), np.float32), "w": np.zeros((1, 4, 64), np.float16)}
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument,
                       match=r"MatMulWF16: input 'x' has shape \[0, \d+\]: " + re.escape(expected)):
        _session("MatMulWF16", inputs, 1, N=64).run(None, inputs)


def test_matmul_wf16_ort_largest_n_needs_its_g():
    """The largest N taken: its G = ceil(N / 64) = 33554431, in 64 bits, is what w must have."""
    inputs = {"x": np.zeros((1, 4), np.float32), "w": np.zeros((1, 4, 64), np.float16)}
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument,
                       match=r"MatMulWF16: input 'w' has shape \[1, 4, 64\], expected .* = \[33554431, 4, 64\]"):
        _session("MatMulWF16", inputs, 1, N=WF16_MAX_N).run(None, inputs)
