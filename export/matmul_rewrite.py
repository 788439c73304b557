"""The rewrite behind the weight-only CPU precisions (export/quantize.py): every MatMul of a traced graph whose
weight is a 2-D float initializer becomes one rrwkv node that reads the weight in a packed form. torch-free.

The MatMul's activation input stays input 0; the weight initializer is replaced by the packed tensors, each packed
once however many MatMuls share it, and dropped when nothing else reads it.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper
from onnx import helper as oh

from rrwkv_trt.core.ops import DOMAIN, PLUGIN_ATTRIBUTES

from .ops.registry import attach_functions, register_schemas

# weight [K, N] and its initializer name -> the packed tensors (name suffix -> array) and the node's INT attributes
Packer = Callable[[np.ndarray, str], tuple[dict[str, np.ndarray], dict[str, int]]]


def rewrite_constant_matmuls(proto: onnx.ModelProto, op_type: str, pack: Packer) -> int:
    """Replace, in place, every MatMul of the main graph whose weight is a 2-D float initializer by one rrwkv
    `op_type` node over (activation, *packed tensors), with `pack`'s attributes and the plugin attributes; attach the
    FunctionProto and the rrwkv opset. Returns how many MatMuls were converted."""
    register_schemas()
    inits = {i.name: i for i in proto.graph.initializer}
    packed: dict[str, tuple[list[str], dict[str, int]]] = {}
    converted = 0
    for node in proto.graph.node:
        init = inits.get(node.input[1]) if node.op_type == "MatMul" else None
        if init is None or len(init.dims) != 2 or init.data_type != TensorProto.FLOAT:
            continue
        if init.name not in packed:
            tensors, attrs = pack(numpy_helper.to_array(init), init.name)
            names = [f"{init.name}.{suffix}" for suffix in tensors]
            proto.graph.initializer.extend(numpy_helper.from_array(a, name) for name, a in zip(names, tensors.values()))
            packed[init.name] = (names, attrs)
        names, attrs = packed[init.name]
        node.op_type, node.domain = op_type, DOMAIN
        node.input[:] = [node.input[0], *names]
        node.attribute.extend([*(oh.make_attribute(k, v) for k, v in attrs.items()),
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
