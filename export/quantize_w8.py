"""`rrwkv-trt export --precision int8`: the MatMul -> rrwkv::MatMulW8 rewrite of a traced fp32 graph. torch-free.

Every MatMul whose weight is a 2-D float initializer becomes one MatMulW8 node (export/ops/matmul_w8.py) whose
weight is packed as int8 with per-block scales (export/w8_pack.py); the rewrite itself is export/matmul_rewrite.py.
"""
from __future__ import annotations

import onnx

from .matmul_rewrite import rewrite_constant_matmuls
from .ops.matmul_w8 import DEFAULT_BLOCK
from .w8_pack import quantize_w8


def quantize_matmuls_w8(proto: onnx.ModelProto, block_size: int = DEFAULT_BLOCK) -> int:
    """Replace, in place, every MatMul of the main graph whose weight is a 2-D float initializer by one MatMulW8
    node (the weight initializer is replaced by its packed int8 and scale), attach the FunctionProto and the rrwkv
    opset. Returns how many MatMuls were converted."""
    def pack(weight, _name):
        w, scale = quantize_w8(weight, block_size)
        return {"w8": w, "w8_scale": scale}, {"N": weight.shape[1], "block_size": block_size}

    return rewrite_constant_matmuls(proto, "MatMulW8", pack)
