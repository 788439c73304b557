"""rrwkv::MatMulW4 (plugins/matmul_w4/README.md): y = x @ W with W stored as int4, one fp32 scale per block.

`naive_matmul_w4` is the PyTorch reference of the CPU and CUDA kernels: their arithmetic (matmulW4Math.h) step by
step: each row of x quantised to int16 with one scale exactly as MatMulW8 does (`quantize_rows`), exact integer dot
products per block, the blocks accumulated in order in fp32. Beside it: the OpSchema and the FunctionProto (which
lets stock ONNX Runtime run the same file: it unpacks the nibbles into q * scale = W [K, N] with standard integer
ops and quantises x as the kernels do, so its result differs from the kernels' only by fp32 summation order).
Nothing here is traced: `rrwkv-trt export --precision int4` rewrites MatMuls after tracing (export/quantize_w4.py);
the weight format is export/w4_pack.py.
"""
from __future__ import annotations

import onnx
import torch
from onnx import TensorProto, defs
from onnx import helper as oh
from torch import Tensor

from rrwkv_trt.core.ops import DOMAIN

from ..w8_pack import GROUP_COLS, check_block_size
from .matmul_w8 import (DEFAULT_BLOCK, block_quantized_schema, block_scaled_matmul, constant_node,
                        dequantized_matmul_nodes)
from .onnx_schemas import PLUGIN_ATTRS
from .registry import OpDefinition


def unpack_q(w: Tensor) -> Tensor:
    """The int4 values q [Kpad, 64G] (int64) of a packed w int8 [G, P, 64] (export/w4_pack.py unpack_w4)."""
    G, P, _ = w.shape
    u = w.to(torch.int64) & 0xFF
    nib = torch.stack([u & 0xF, u >> 4], dim=-1).reshape(G, P, 16, 2, 4)   # [G, P, c, i, t]
    q = torch.where(nib >= 8, nib - 16, nib)
    return q.permute(1, 3, 0, 4, 2).reshape(2 * P, G * GROUP_COLS)          # [P, i, G, t, c]


def naive_matmul_w4(x: Tensor, w: Tensor, scale: Tensor, N: int, block_size: int = DEFAULT_BLOCK) -> Tensor:
    """y [..., N] f32 = MatMulW4(x [..., K] f32, w int8 [G, P, 64], scale f32 [G, NB, 64]).

    The block sum is fp32 as in the kernels: fmaf(float(dot), scale, sum) emulated in float64 (the product of two
    floats is exact there) and rounded to float32, equal to the kernels' fmaf except for rare double-rounding ties."""
    check_block_size(block_size)
    G, P, lanes = w.shape
    NB = scale.shape[1]
    K = x.shape[-1]
    if lanes != GROUP_COLS or NB * block_size != 2 * P or -(-K // block_size) != NB or -(-N // GROUP_COLS) != G:
        raise ValueError(f"matmul_w4: x [..., {K}], w {tuple(w.shape)}, scale {tuple(scale.shape)} and "
                         f"N={N}, block_size={block_size} do not fit (w: [ceil(N/64), Kpad/2, 64])")
    return block_scaled_matmul(x, unpack_q(w), scale, N, block_size)


def matmul_w4_schema() -> defs.OpSchema:
    """rrwkv::MatMulW4: x [..., K] f32, w int8 [G, P, 64] (packed nibbles), scale f32 [G, NB, 64] -> y [..., N] f32."""
    return block_quantized_schema("MatMulW4", "y = x @ W with W stored as symmetric int4 (two per byte), one fp32 "
                                  "scale per (block of block_size rows, column); each row of x is quantised to int16 "
                                  "with one scale.")


def matmul_w4_function(opset: int = 18) -> onnx.FunctionProto:
    """rrwkv::MatMulW4 in standard ONNX (default-domain `opset` >= 18: ReduceMax takes axes as an input)."""
    if opset < 18:
        raise ValueError(f"the MatMulW4 function needs default-domain opset >= 18; got {opset}")
    n, c = oh.make_node, constant_node
    nodes = [
        # the nibbles: byte u = w mod 256 (Mod takes the divisor's sign), low nibble u mod 16, high nibble u / 16
        n("Cast", ["w"], ["w_i"], to=TensorProto.INT32),
        c("i256", 256, TensorProto.INT32), c("i16", 16, TensorProto.INT32), c("i8", 8, TensorProto.INT32),
        n("Mod", ["w_i", "i256"], ["w_u"]),
        n("Mod", ["w_u", "i16"], ["w_lo"]),
        n("Div", ["w_u", "i16"], ["w_hi"]),
        c("i_m1", [-1]),
        n("Unsqueeze", ["w_lo", "i_m1"], ["w_lo1"]),
        n("Unsqueeze", ["w_hi", "i_m1"], ["w_hi1"]),
        n("Concat", ["w_lo1", "w_hi1"], ["w_nib"], axis=-1),             # [G, P, 64, 2]: byte, nibble
        n("GreaterOrEqual", ["w_nib", "i8"], ["w_neg"]),
        n("Sub", ["w_nib", "i16"], ["w_nib_m16"]),
        n("Where", ["w_neg", "w_nib_m16", "w_nib"], ["w_q"]),             # sign-extended from 4 bits
        c("shape6", [0, 0, 16, 2, 2, 2]),
        n("Reshape", ["w_q", "shape6"], ["w_6"]),                          # [G, P, c, i, t >> 1, t & 1]
        n("Transpose", ["w_6"], ["w_t"], perm=[1, 3, 0, 4, 5, 2]),        # [P, i, G, t >> 1, t & 1, c]
        n("Cast", ["w_t"], ["w_f"], to=TensorProto.FLOAT),
        *dequantized_matmul_nodes("w_f"),                                 # W = q * scale and y, as MatMulW8
    ]
    return oh.make_function(DOMAIN, "MatMulW4", ["x", "w", "scale"], ["y"], nodes,
                            opset_imports=[oh.make_opsetid("", opset)],
                            attributes=["N", "block_size", *PLUGIN_ATTRS],
                            doc_string="rrwkv::MatMulW4 in standard ONNX ops")


OP = OpDefinition(schema=matmul_w4_schema, function=matmul_w4_function, reference=naive_matmul_w4)
