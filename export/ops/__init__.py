"""rrwkv custom ops: one module per op (torch reference, torch custom op, OpSchema, dynamo translation,
FunctionProto builder, its `OP` definition); export/ops/registry.py derives the lists from core/ops.py.

Export recipe (docs/toolchain.md §2-§3):
    register_schemas()
    program = torch.onnx.export(model, args, dynamo=True, custom_translation_table=custom_translation_table(), ...)
    model_proto = attach_functions(program.model_proto)      # stock ONNX Runtime runs it
    trt_model = strip_functions(model_proto)                   # TensorRT: plugins only
"""
from __future__ import annotations

from rrwkv_trt.core.graph import strip_functions

from .onnx_schemas import PLUGIN_ATTRS
from .registry import attach_functions, custom_translation_table, op_definitions, register_schemas, rrwkv_functions
from .wkv4 import naive_wkv4, wkv4, wkv4_function, wkv4_step
from .wkv4_medium import medium_merge, naive_wkv4_medium, wkv4_medium, wkv4_medium_function

__all__ = [
    "PLUGIN_ATTRS", "attach_functions", "custom_translation_table", "medium_merge", "naive_wkv4",
    "naive_wkv4_medium", "op_definitions", "register_schemas", "rrwkv_functions", "strip_functions", "wkv4",
    "wkv4_function", "wkv4_medium", "wkv4_medium_function", "wkv4_step",
]

register_schemas()
