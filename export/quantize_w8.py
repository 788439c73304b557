"""`rrwkv-trt export --precision int8`: the MatMul -> rrwkv::MatMulW8 rewrite of a traced fp32 graph. torch-free.

Every MatMul whose weight is a 2-D float initializer becomes one MatMulW8 node (export/ops/matmul_w8.py) whose
weight is packed as int8 with per-block scales (export/w8_pack.py).
"""
from __future__ import annotations

import onnx
from onnx import TensorProto, numpy_helper
from onnx import helper as oh

from rrwkv_trt.core.ops import DOMAIN, PLUGIN_ATTRIBUTES

from .ops.matmul_w8 import DEFAULT_BLOCK
from .ops.registry import attach_functions, register_schemas
from .w8_pack import quantize_w8

def quantize_matmuls_w8(proto: onnx.ModelProto, block_size: int = DEFAULT_BLOCK) -> int:
    """Replace, in place, every MatMul of the main graph whose weight is a 2-D float initializer by one MatMulW8
    node (the weight initializer is replaced by its packed int8 and scale), attach the FunctionProto and the rrwkv
    opset. Returns how many MatMuls were converted."""
    register_schemas()
    inits = {i.name: i for i in proto.graph.initializer}
    packed: dict[str, tuple[str, str, int]] = {}
    converted = 0
    for node in proto.graph.node:
        init = inits.get(node.input[1]) if node.op_type == "MatMul" else None
        if init is None or len(init.dims) != 2 or init.data_type != TensorProto.FLOAT:
            continue
        if init.name not in packed:
            weight = numpy_helper.to_array(init)
            w, scale = quantize_w8(weight, block_size)
            names = (f"{init.name}.w8", f"{init.name}.w8_scale")
            proto.graph.initializer.extend([numpy_helper.from_array(w, names[0]),
                                            numpy_helper.from_array(scale, names[1])])
            packed[init.name] = (*names, weight.shape[1])
        w_name, s_name, n_out = packed[init.name]
        node.op_type, node.domain = "MatMulW8", DOMAIN
        node.input[:] = [node.input[0], w_name, s_name]
        node.attribute.extend([oh.make_attribute("N", n_out), oh.make_attribute("block_size", block_size),
                               *(oh.make_attribute(k, v) for k, v in PLUGIN_ATTRIBUTES.items())])
        converted += 1
    _drop_unused_initializers(proto, set(packed))
    attach_functions(proto)
    return converted


def _drop_unused_initializers(proto: onnx.ModelProto, candidates: set[str]) -> None:
    used = {i for node in proto.graph.node for i in node.input} | {o.name for o in proto.graph.output}
    keep = [i for i in proto.graph.initializer if i.name not in candidates or i.name in used]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(keep)
