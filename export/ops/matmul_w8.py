"""rrwkv::MatMulW8 (plugins/matmul_w8/README.md): y = x @ W with W stored as int8, one fp32 scale per block.

`naive_matmul_w8` is the PyTorch reference of the CPU and CUDA kernels: it does their arithmetic (matmulW8Math.h)
step by step: each row of x quantised to int16 with one scale, exact integer dot products per block, the blocks
accumulated in order in fp32. Beside it: the OpSchema and the FunctionProto (which lets stock ONNX Runtime run the
same file: it unpacks q * scale into W [K, N] with standard ops and quantises x exactly as the kernels do, so its
result differs from the kernels' only by fp32 summation order). Nothing here is traced: `rrwkv-trt export
--precision int8` rewrites MatMuls after tracing (export/quantize_w8.py); the weight format is export/w8_pack.py.
"""
from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import TensorProto, defs, numpy_helper
from onnx import helper as oh
from torch import Tensor

from rrwkv_trt.core.ops import DOMAIN, DOMAIN_VERSION

from ..w8_pack import GROUP_COLS, MAX_BLOCK, check_block_size
from .onnx_schemas import PLUGIN_ATTRS, plugin_attributes
from .registry import OpDefinition

DEFAULT_BLOCK = 128
ACT_MAX = 32767.0


def quantize_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """x [M, K] f32 -> (xq [M, K] int64 in [-32767, 32767], x_scale [M] f32): w8RowScale / w8QuantizeActivation.
    A row with a NaN or infinity gets x_scale NaN (and xq 0); an all-zero row gets x_scale 0."""
    x = x.to(torch.float32)
    max_abs = x.abs().amax(dim=1)
    bad = ~torch.isfinite(x).all(dim=1)
    inv = torch.where(max_abs > 0, torch.tensor(float(ACT_MAX)) / max_abs.clamp_min(1e-45), torch.zeros_like(max_abs))
    inv = torch.where(bad, torch.zeros_like(inv), inv)
    xq = torch.round(torch.nan_to_num(x * inv[:, None], nan=0.0)).to(torch.int64)
    x_scale = torch.where(bad, torch.full_like(max_abs, float("nan")), max_abs / ACT_MAX)
    return xq, x_scale


def naive_matmul_w8(x: Tensor, w: Tensor, scale: Tensor, N: int, block_size: int = 128) -> Tensor:
    """y [..., N] f32 = MatMulW8(x [..., K] f32, w int8 [G, P, 64, 2], scale f32 [G, NB, 64]).

    The block sum is fp32 as in the kernels: fmaf(float(dot), scale, sum) emulated in float64 (the product of two
    floats is exact there) and rounded to float32, equal to the kernels' fmaf except for rare double-rounding ties."""
    check_block_size(block_size)
    G, P, _, _ = w.shape
    NB = scale.shape[1]
    K = x.shape[-1]
    if NB * block_size != 2 * P or -(-K // block_size) != NB or -(-N // GROUP_COLS) != G:
        raise ValueError(f"matmul_w8: x [..., {K}], w {tuple(w.shape)}, scale {tuple(scale.shape)} and "
                         f"N={N}, block_size={block_size} do not fit (w: [ceil(N/64), Kpad/2, 64, 2])")
    q = w.to(torch.int64).permute(1, 3, 0, 2).reshape(2 * P, G * GROUP_COLS)   # [Kpad, 64 G]
    return block_scaled_matmul(x, q, scale, N, block_size)


def block_scaled_matmul(x: Tensor, q: Tensor, scale: Tensor, N: int, block_size: int) -> Tensor:
    """The arithmetic MatMulW8 and MatMulW4 share once their weights are integers q [Kpad, 64 G] (int64): each row
    of x [..., K] quantised to int16 with one scale, exact integer dot products per block of block_size rows, the
    blocks accumulated in order in fp32 with scale f32 [G, NB, 64]; y [..., N] f32."""
    G, NB, K = scale.shape[0], scale.shape[1], x.shape[-1]
    rows = x.reshape(-1, K)
    xq, x_scale = quantize_rows(rows)
    xq = torch.nn.functional.pad(xq, (0, q.shape[0] - K))                   # [M, Kpad]
    s = scale.permute(1, 0, 2).reshape(NB, G * GROUP_COLS).to(torch.float64)
    total = torch.zeros(rows.shape[0], G * GROUP_COLS, dtype=torch.float32)
    for b in range(NB):
        rows_b = slice(b * block_size, (b + 1) * block_size)
        dot = (xq[:, rows_b] @ q[rows_b]).to(torch.float32).to(torch.float64)  # exact sums, rounded like float(dot)
        total = (dot * s[b] + total.to(torch.float64)).to(torch.float32)
    y = total[:, :N] * x_scale[:, None]
    return y.reshape(*x.shape[:-1], N)


def matmul_w8_schema() -> defs.OpSchema:
    """rrwkv::MatMulW8: x [..., K] f32, w int8 [G, P, 64, 2], scale f32 [G, NB, 64] -> y [..., N] f32."""
    return block_quantized_schema("MatMulW8", "y = x @ W with W stored as symmetric int8, one fp32 scale per (block "
                                  "of block_size rows, column); each row of x is quantised to int16 with one scale.")


def block_quantized_schema(name: str, doc: str) -> defs.OpSchema:
    """The schema MatMulW8 and MatMulW4 share: x f32, w int8 (packed as `name` packs it), scale f32 -> y f32."""
    S, F = defs.OpSchema, defs.OpSchema.FormalParameter
    return S(
        name, DOMAIN, DOMAIN_VERSION, doc,
        inputs=[F("x", "tensor(float)"), F("w", "tensor(int8)"), F("scale", "tensor(float)")],
        outputs=[F("y", "tensor(float)")],
        attributes=[S.Attribute("N", S.AttrType.INT, "output features (columns of W)", required=True),
                    S.Attribute("block_size", oh.make_attribute("block_size", DEFAULT_BLOCK),
                                f"rows per scale; even, 2..{MAX_BLOCK}"),
                    *plugin_attributes()])


def matmul_w8_function(opset: int = 18) -> onnx.FunctionProto:
    """rrwkv::MatMulW8 in standard ONNX (default-domain `opset` >= 18: ReduceMax takes axes as an input)."""
    if opset < 18:
        raise ValueError(f"the MatMulW8 function needs default-domain opset >= 18; got {opset}")
    n, c = oh.make_node, constant_node
    nodes = [
        # W [K, N] = unpacked q * scale
        n("Cast", ["w"], ["w_f"], to=TensorProto.FLOAT),
        n("Transpose", ["w_f"], ["w_t"], perm=[1, 3, 0, 2]),              # [P, 2, G, 64]
        c("i_m1", [-1]),
        *dequantized_matmul_nodes("w_t"),
    ]
    return oh.make_function(DOMAIN, "MatMulW8", ["x", "w", "scale"], ["y"], nodes,
                            opset_imports=[oh.make_opsetid("", opset)],
                            attributes=["N", "block_size", *PLUGIN_ATTRS],
                            doc_string="rrwkv::MatMulW8 in standard ONNX ops")


def dequantized_matmul_nodes(levels: str) -> list[onnx.NodeProto]:
    """The function body from the weights' integer levels on, shared by MatMulW8 and MatMulW4: `levels` (float, the
    rows of W in order: [Kpad, G, 64] in any shape with that element order) times `scale` [G, NB, 64] is W, cropped to
    [K, N]; x is quantised per row to int16 levels (ACT_MAX) as the kernels do; y = x_q @ W * x_scale. Needs the
    constant `i_m1` (-1) defined before it; reads the function's attribute N."""
    n, c = oh.make_node, constant_node
    n_const = n("Constant", [], ["n_scalar"])
    n_const.attribute.append(onnx.AttributeProto(name="value_int", ref_attr_name="N", type=onnx.AttributeProto.INT))
    return [
        n("Transpose", ["scale"], ["s_t"], perm=[1, 0, 2]),                # [NB, G, 64]
        n("Shape", ["s_t"], ["s_shape"]),
        c("i0", [0]), c("i1", [1]), c("i3", [3]), c("axes01", [0, 1]), c("zeros2", [0, 0]),
        n("Slice", ["s_shape", "i0", "i1"], ["nb"]),
        n("Slice", ["s_shape", "i1", "i3"], ["g64"]),
        n("Concat", ["nb", "i_m1", "g64"], ["shape4"], axis=0),
        n("Reshape", [levels, "shape4"], ["w_blocks"]),                     # [NB, block_size, G, 64]
        n("Unsqueeze", ["s_t", "i1"], ["s_blocks"]),                       # [NB, 1, G, 64]
        n("Mul", ["w_blocks", "s_blocks"], ["w_deq"]),
        n("ReduceProd", ["g64"], ["n_pad"], keepdims=1),
        n("Concat", ["i_m1", "n_pad"], ["shape2"], axis=0),
        n("Reshape", ["w_deq", "shape2"], ["w_pad"]),                      # [Kpad, 64 G]
        n("Shape", ["x"], ["x_shape"]),
        c("i_big", [2 ** 62]),
        n("Slice", ["x_shape", "i_m1", "i_big"], ["k_dim"]),
        n_const,
        n("Unsqueeze", ["n_scalar", "i0"], ["n_dim"]),
        n("Concat", ["k_dim", "n_dim"], ["ends"], axis=0),
        n("Slice", ["w_pad", "zeros2", "ends", "axes01"], ["w_kn"]),       # [K, N]
        # x ~= round(x * 32767 / max|x|) * max|x| / 32767, per row
        n("Abs", ["x"], ["x_abs"]),
        n("ReduceMax", ["x_abs", "i_m1"], ["x_max"], keepdims=1),
        c("f0", 0.0, TensorProto.FLOAT), c("f1", 1.0, TensorProto.FLOAT), c("f_act", ACT_MAX, TensorProto.FLOAT),
        n("Equal", ["x_max", "f0"], ["is_zero"]),
        n("Where", ["is_zero", "f1", "x_max"], ["x_max_safe"]),
        n("Div", ["f_act", "x_max_safe"], ["inv"]),
        n("Mul", ["x", "inv"], ["x_scaled"]),
        n("Round", ["x_scaled"], ["x_q"]),
        n("MatMul", ["x_q", "w_kn"], ["y_q"]),
        n("Div", ["x_max", "f_act"], ["x_scale"]),
        n("Mul", ["y_q", "x_scale"], ["y"]),
    ]


def constant_node(name: str, value, dtype: int = TensorProto.INT64) -> onnx.NodeProto:
    array = np.asarray(value, dtype=onnx.helper.tensor_dtype_to_np_dtype(dtype))
    return oh.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name))


OP = OpDefinition(schema=matmul_w8_schema, function=matmul_w8_function, reference=naive_matmul_w8)
