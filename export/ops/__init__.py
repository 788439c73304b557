"""rrwkv custom ops: torch custom ops, ONNX schemas, dynamo translations and FunctionProtos.

Export recipe (TOOLCHAIN.md §2-§3):
    register_schemas()
    program = torch.onnx.export(model, args, dynamo=True, custom_translation_table=CUSTOM_TRANSLATION_TABLE, ...)
    model_proto = attach_functions(program.model_proto)      # stock ONNX Runtime runs it
    trt_model = strip_functions(model_proto)                   # TensorRT: plugins only
"""
from __future__ import annotations

import onnx
import torch
from onnx import helper as oh

from rrwkv_trt.core.graph import graph_nodes, strip_functions

from .onnx_schemas import DOMAIN, PLUGIN_ATTRS, VERSION, register_schemas
from .wkv4 import naive_wkv4, wkv4, wkv4_function, wkv4_onnx, wkv4_step
from .wkv4_medium import medium_merge, naive_wkv4_medium, wkv4_medium, wkv4_medium_function, wkv4_medium_onnx

__all__ = [
    "CUSTOM_TRANSLATION_TABLE", "DOMAIN", "PLUGIN_ATTRS", "VERSION", "attach_functions", "medium_merge",
    "naive_wkv4", "naive_wkv4_medium", "register_schemas", "rrwkv_functions", "strip_functions", "wkv4",
    "wkv4_function", "wkv4_medium", "wkv4_medium_function", "wkv4_step",
]

register_schemas()

# torch op overload -> onnxscript function, for torch.onnx.export(custom_translation_table=...)
CUSTOM_TRANSLATION_TABLE = {
    torch.ops.rrwkv.wkv4.default: wkv4_onnx,
    torch.ops.rrwkv.wkv4_medium.default: wkv4_medium_onnx,
}


def rrwkv_functions(opset: int = 18) -> list[onnx.FunctionProto]:
    """FunctionProtos of every rrwkv op, importing default-domain opset `opset` (>= 16; match the model's,
    which onnx.checker requires)."""
    if opset < 16:
        raise ValueError(f"rrwkv functions need default-domain opset >= 16 (Scan-16, Where-16); got {opset}")
    return [wkv4_function(opset), wkv4_medium_function(opset)]


def attach_functions(model: onnx.ModelProto, functions: list[onnx.FunctionProto] | None = None
                     ) -> onnx.ModelProto:
    """Add the rrwkv FunctionProtos used by `model` (in place) and the ("rrwkv", 1) opset import.

    Args: model, e.g. `torch.onnx.export(...).model_proto`; functions: None means `rrwkv_functions()`
      built for the model's default-domain opset (onnx.checker wants function and model opsets to agree).
    Returns: the same model. Functions already present (same domain and name) are kept, not replaced.
    Validate afterwards with `onnx.checker.check_model(model, full_check=True)`.
    """
    if functions is None:
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 18)
        functions = rrwkv_functions(opset)
    nodes = [*graph_nodes(model.graph), *(n for f in model.functions for n in f.node)]
    used = {(n.domain, n.op_type) for n in nodes}
    have = {(f.domain, f.name) for f in model.functions}
    model.functions.extend(f for f in functions if (f.domain, f.name) in used - have)
    if not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(oh.make_opsetid(DOMAIN, VERSION))
    return model

