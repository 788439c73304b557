"""`rrwkv-trt export --precision w16`: the MatMul -> rrwkv::MatMulWF16 rewrite of a traced fp32 graph. torch-free.

Every MatMul whose weight is a 2-D float initializer becomes one MatMulWF16 node (export/ops/matmul_wf16.py) whose
weight is rounded to fp16 and packed (export/wf16_pack.py); the rewrite itself is export/matmul_rewrite.py.
"""
from __future__ import annotations

import onnx

from rrwkv_trt.core.errors import UserError

from .matmul_rewrite import rewrite_constant_matmuls
from .wf16_pack import pack_wf16


def quantize_matmuls_wf16(proto: onnx.ModelProto) -> int:
    """Replace, in place, every MatMul of the main graph whose weight is a 2-D float initializer by one MatMulWF16
    node (the weight initializer is replaced by its packed fp16 copy), attach the FunctionProto and the rrwkv opset.
    Returns how many MatMuls were converted. A weight outside fp16's range is a UserError naming it."""
    def pack(weight, name):
        try:
            return {"wf16": pack_wf16(weight, f"MatMul weight {name!r}")}, {"N": weight.shape[1]}
        except ValueError as err:
            raise UserError(str(err)) from None

    return rewrite_constant_matmuls(proto, "MatMulWF16", pack)
