"""rrwkv::MatMulWF16 (plugins/matmul_wf16/README.md): y = x @ W with W stored as fp16, activations and sums fp32.

`naive_matmul_wf16` is the PyTorch reference of the CPU and CUDA kernels: their arithmetic (matmulWF16Math.h) step
by step, one fused multiply-add per row k of W in order. Beside it: the OpSchema and the FunctionProto (which lets
stock ONNX Runtime run the same file: it unpacks W [K, N] with standard ops, casts it to fp32 and runs an fp32
MatMul, so its result differs from the kernels' only by fp32 summation order). Nothing here is traced:
`rrwkv-trt export --precision w16` rewrites MatMuls after tracing (export/quantize_wf16.py); the weight format is
export/wf16_pack.py.
"""
from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import TensorProto, defs, numpy_helper
from onnx import helper as oh
from torch import Tensor

from rrwkv_trt.core.ops import DOMAIN, DOMAIN_VERSION

from ..wf16_pack import GROUP_COLS
from .onnx_schemas import PLUGIN_ATTRS, plugin_attributes
from .registry import OpDefinition


def naive_matmul_wf16(x: Tensor, w: Tensor, N: int) -> Tensor:
    """y [..., N] f32 = MatMulWF16(x [..., K] f32, w f16 [G, K, 64]).

    Each output is one fp32 sum over k in order of fmaf(x[k], float(w[k]), sum), emulated in float64 (the product
    of two floats is exact there) and rounded to float32: the kernels' fmaf except for rare double-rounding ties."""
    G, K, lanes = w.shape
    if lanes != GROUP_COLS or x.shape[-1] != K or -(-N // GROUP_COLS) != G:
        raise ValueError(f"matmul_wf16: x [..., {x.shape[-1]}], w {tuple(w.shape)} and N={N} do not fit "
                         "(w: [ceil(N/64), K, 64])")
    rows = x.reshape(-1, K).to(torch.float32).to(torch.float64)
    weight = w.permute(1, 0, 2).reshape(K, G * GROUP_COLS)[:, :N].to(torch.float64)  # [K, N], exact
    total = torch.zeros(rows.shape[0], N, dtype=torch.float32)
    for k in range(K):
        total = (rows[:, k, None] * weight[k] + total.to(torch.float64)).to(torch.float32)
    return total.reshape(*x.shape[:-1], N)


def matmul_wf16_schema() -> defs.OpSchema:
    """rrwkv::MatMulWF16: x [..., K] f32, w f16 [G, K, 64] -> y [..., N] f32."""
    S, F = defs.OpSchema, defs.OpSchema.FormalParameter
    return S(
        "MatMulWF16", DOMAIN, DOMAIN_VERSION,
        "y = x @ W with W stored as fp16 in groups of 64 columns; x, the sums and y are fp32.",
        inputs=[F("x", "tensor(float)"), F("w", "tensor(float16)")],
        outputs=[F("y", "tensor(float)")],
        attributes=[S.Attribute("N", S.AttrType.INT, "output features (columns of W)", required=True),
                    *plugin_attributes()])


def matmul_wf16_function(opset: int = 18) -> onnx.FunctionProto:
    """rrwkv::MatMulWF16 in standard ONNX (default-domain `opset` >= 18, as the other rrwkv functions)."""
    if opset < 18:
        raise ValueError(f"the MatMulWF16 function needs default-domain opset >= 18; got {opset}")
    n = oh.make_node
    n_const = n("Constant", [], ["n_scalar"])
    n_const.attribute.append(onnx.AttributeProto(name="value_int", ref_attr_name="N", type=onnx.AttributeProto.INT))
    nodes = [
        n("Cast", ["w"], ["w_f"], to=TensorProto.FLOAT),
        n("Transpose", ["w_f"], ["w_t"], perm=[1, 0, 2]),              # [K, G, 64]
        _constant("k_keep", [0, -1]),
        n("Reshape", ["w_t", "k_keep"], ["w_pad"]),                     # [K, 64 G]
        n_const,
        _constant("i0", [0]), _constant("i1", [1]),
        n("Unsqueeze", ["n_scalar", "i0"], ["n_end"]),
        n("Slice", ["w_pad", "i0", "n_end", "i1"], ["w_kn"]),           # [K, N]
        n("MatMul", ["x", "w_kn"], ["y"]),
    ]
    return oh.make_function(DOMAIN, "MatMulWF16", ["x", "w"], ["y"], nodes,
                            opset_imports=[oh.make_opsetid("", opset)],
                            attributes=["N", *PLUGIN_ATTRS],
                            doc_string="rrwkv::MatMulWF16 in standard ONNX ops")


def _constant(name: str, value) -> onnx.NodeProto:
    return oh.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value, np.int64), name))


OP = OpDefinition(schema=matmul_wf16_schema, function=matmul_wf16_function, reference=naive_matmul_wf16)
