"""`rrwkv-trt export --precision int4`: the MatMul -> rrwkv::MatMulW4 rewrite of a traced fp32 graph. torch-free.

Every MatMul whose weight is a 2-D float initializer becomes one MatMulW4 node (export/ops/matmul_w4.py) whose
weight is packed as int4 with per-block scales (export/w4_pack.py); the rewrite itself is export/matmul_rewrite.py.
"""
from __future__ import annotations

import onnx

from .matmul_rewrite import rewrite_constant_matmuls
from .ops.matmul_w8 import DEFAULT_BLOCK
from .w4_pack import quantize_w4


def quantize_matmuls_w4(proto: onnx.ModelProto, block_size: int = DEFAULT_BLOCK) -> int:
    """Replace, in place, every MatMul of the main graph whose weight is a 2-D float initializer by one MatMulW4
    node (the weight initializer is replaced by its packed int4 and scale), attach the FunctionProto and the rrwkv
    opset. Returns how many MatMuls were converted."""
    def pack(weight, _name):
        w, scale = quantize_w4(weight, block_size)
        return {"w4": w, "w4_scale": scale}, {"N": weight.shape[1], "block_size": block_size}

    return rewrite_constant_matmuls(proto, "MatMulW4", pack)
