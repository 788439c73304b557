"""Seeded op inputs and one-node ONNX models (function attached) run in stock ONNX Runtime."""
from __future__ import annotations

import functools
import math

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto
from onnx import helper as oh

from rrwkv_trt.export.ops import attach_functions, register_schemas

WKV4_INPUTS = ("w", "u", "k", "v", "aa", "bb", "pp")
MEDIUM_INPUTS = ("w", "u", "k", "v", "k_m", "v_m", "aa", "bb", "pp", "pos0")
OUTPUTS = ("y", "aa_out", "bb_out", "pp_out")
_ONNX_DTYPE = {torch.float32: TensorProto.FLOAT, torch.float16: TensorProto.FLOAT16,
               torch.float64: TensorProto.DOUBLE, torch.int64: TensorProto.INT64}
_SHAPES = {"w": ["C"], "u": ["C"], "k": ["B", "T", "C"], "v": ["B", "T", "C"], "y": ["B", "T", "C"],
           "k_m": ["B", "M", "C"], "v_m": ["B", "M", "C"], "pos0": ["B"]}


def wkv4_inputs(B: int, T: int, C: int, dtype=torch.float32, seed: int = 0, init_state: bool = False,
                state_dtype=torch.float32) -> dict[str, torch.Tensor]:
    """w, u [C]; k, v [B, T, C] in `dtype`; aa, bb, pp [B, C] in `state_dtype` (init: 0, 0, -1e30)."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    x = {"w": -torch.exp(torch.rand(C, generator=g, dtype=torch.float64) * 4 - 3), "u": r(C),
         "k": 1.5 * r(B, T, C), "v": r(B, T, C)}
    if init_state:
        x |= {"aa": torch.zeros(B, C), "bb": torch.zeros(B, C), "pp": torch.full((B, C), -1e30)}
    else:
        x |= {"aa": r(B, C), "bb": torch.rand(B, C, generator=g, dtype=torch.float64) * 2 + 0.1, "pp": r(B, C)}
    x = {n: t.to(state_dtype) for n, t in x.items()}
    x["k"], x["v"] = x["k"].to(dtype), x["v"].to(dtype)
    return x


def medium_inputs(B: int, T: int, C: int, s: int, pos0: list[int], dtype=torch.float32, seed: int = 0,
                  init_state: bool = False, state_dtype=torch.float32) -> dict[str, torch.Tensor]:
    """wkv4_inputs plus k_m, v_m [B, ceil(T/s), C] in `state_dtype` and pos0 [B] int64."""
    x = wkv4_inputs(B, T, C, dtype, seed, init_state, state_dtype)
    g = torch.Generator().manual_seed(seed + 1000)
    mmax = max(1, math.ceil(T / s))
    x["k_m"] = (torch.randn(B, mmax, C, generator=g, dtype=torch.float64) * 1.5 - 1).to(state_dtype)
    x["v_m"] = torch.randn(B, mmax, C, generator=g, dtype=torch.float64).to(state_dtype)
    x["pos0"] = torch.tensor(pos0, dtype=torch.int64)
    return {n: x[n] for n in MEDIUM_INPUTS}


def one_node_model(op_type: str, input_dtypes: dict[str, torch.dtype], attrs: dict, ir_version: int = 10
                   ) -> onnx.ModelProto:
    """A model with one rrwkv node (symbolic B, T, C, M) and its FunctionProto attached."""
    register_schemas()
    names = MEDIUM_INPUTS if op_type == "WKV4Medium" else WKV4_INPUTS
    vi = lambda n, dt: oh.make_tensor_value_info(n, _ONNX_DTYPE[dt], _SHAPES.get(n, ["B", "C"]))  # noqa: E731
    node = oh.make_node(op_type, list(names), list(OUTPUTS), domain="rrwkv", **attrs)
    graph = oh.make_graph([node], f"one_{op_type}", [vi(n, input_dtypes[n]) for n in names],
                          [vi("y", input_dtypes["k"])] + [vi(n, torch.float32) for n in OUTPUTS[1:]])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 18), oh.make_opsetid("rrwkv", 1)],
                          ir_version=ir_version)
    return attach_functions(model)


@functools.cache
def _session(op_type: str, k_dtype: torch.dtype, attrs: tuple) -> ort.InferenceSession:
    dtypes = {n: torch.float32 for n in MEDIUM_INPUTS} | {"k": k_dtype, "v": k_dtype, "pos0": torch.int64}
    model = one_node_model(op_type, dtypes, dict(attrs))
    onnx.checker.check_model(model, full_check=True)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def run_function_body(op_type: str, feeds: dict[str, torch.Tensor], **attrs) -> list[np.ndarray]:
    """Run the op's FunctionProto in stock ORT (one cached session per op, k dtype and attributes)."""
    sess = _session(op_type, feeds["k"].dtype, tuple(sorted(attrs.items())))
    return sess.run(None, {n: t.numpy() for n, t in feeds.items()})


GOS_INPUTS = ("q", "f", "lb", "v", "S0")
GOS_OUTPUTS = ("o", "S_out")
_GOS_SHAPES = {"q": ["B", "T", "H", "K"], "f": ["B", "T", "H", "K"], "lb": ["H", "K"], "v": ["B", "T", "H", "V"],
               "S0": ["B", "H", "K", "V"], "o": ["B", "T", "H", "V"], "S_out": ["B", "H", "K", "V"]}


def gated_outer_scan_inputs(B: int, T: int, H: int, K: int, V: int, dtype=torch.float32, seed: int = 0,
                            lb: str = "rand", init_state: bool = False, state_dtype=torch.float32,
                            f_scale: float = 2.0) -> dict[str, torch.Tensor]:
    """q = swish(randn), f = f_scale * randn [B, T, H, K] and v [B, T, H, V] in `dtype`; lb [H, K] and
    S0 [B, H, K, V] in `state_dtype`. lb: "zero" (layer 0), "rand" (uniform in [0, 0.95), a few channels exactly 0)
    or "mixed" (half the channels 0). init_state: S0 = 0, else randn."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    x = {"q": torch.nn.functional.silu(r(B, T, H, K)), "f": f_scale * r(B, T, H, K), "v": r(B, T, H, V)}
    bound = torch.rand(H, K, generator=g, dtype=torch.float64) * 0.95
    if lb == "zero":
        bound = torch.zeros(H, K, dtype=torch.float64)
    elif lb == "mixed":
        bound = torch.where(torch.arange(H * K).reshape(H, K) % 2 == 0, 0.0, bound)
    elif lb == "rand":
        bound.view(-1)[0] = 0.0
    else:
        raise ValueError(f"lb must be 'zero', 'rand' or 'mixed'; got {lb!r}")
    x["lb"] = bound
    x["S0"] = torch.zeros(B, H, K, V, dtype=torch.float64) if init_state else r(B, H, K, V)
    return {n: x[n].to(dtype if n in ("q", "f", "v") else state_dtype) for n in GOS_INPUTS}


def gated_outer_scan_model(act_dtype: torch.dtype, attrs: dict, opset: int = 18, ir_version: int = 10
                           ) -> onnx.ModelProto:
    """A model with one rrwkv::GatedOuterScan node (symbolic B, T, H, K, V) and its FunctionProto attached."""
    register_schemas()
    dtypes = {"q": act_dtype, "f": act_dtype, "v": act_dtype, "o": act_dtype}
    vi = lambda n: oh.make_tensor_value_info(n, _ONNX_DTYPE[dtypes.get(n, torch.float32)], _GOS_SHAPES[n])  # noqa: E731
    node = oh.make_node("GatedOuterScan", list(GOS_INPUTS), list(GOS_OUTPUTS), domain="rrwkv", **attrs)
    graph = oh.make_graph([node], "one_GatedOuterScan", [vi(n) for n in GOS_INPUTS], [vi(n) for n in GOS_OUTPUTS])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset), oh.make_opsetid("rrwkv", 1)],
                          ir_version=ir_version)
    return attach_functions(model)


@functools.cache
def _gos_session(act_dtype: torch.dtype, attrs: tuple) -> ort.InferenceSession:
    model = gated_outer_scan_model(act_dtype, dict(attrs))
    onnx.checker.check_model(model, full_check=True)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def run_gated_outer_scan_function(feeds: dict[str, torch.Tensor], **attrs) -> list[np.ndarray]:
    """Run GatedOuterScan's FunctionProto in stock ORT (feeds: GOS_INPUTS; one cached session per q dtype and
    attributes, which must include scale)."""
    sess = _gos_session(feeds["q"].dtype, tuple(sorted(attrs.items())))
    return sess.run(None, {n: feeds[n].numpy() for n in GOS_INPUTS})
