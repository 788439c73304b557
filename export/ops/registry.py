"""The export side of the op registry: each op's definition, looked up through core/ops.py's OPS.

core/ops.py lists every rrwkv op once (name, plugin folder, module); each op's module (export/ops/<op>.py) defines
`OP`, an OpDefinition of its parts. Everything that used to be a hand-kept list — the OpSchemas to register, the
dynamo translation table, the FunctionProtos to attach — is derived here from that one list.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import onnx
from onnx import defs
from onnx import helper as oh

from rrwkv_trt.core.graph import graph_nodes
from rrwkv_trt.core.ops import DOMAIN, DOMAIN_VERSION, OPS


@dataclass(frozen=True)
class OpDefinition:
    """One op's export-side parts.

    Attributes:
        schema: builds the onnx OpSchema (onnxscript needs it to emit the node; onnx.checker validates against it).
        function: opset -> the model-local FunctionProto in standard ONNX ops (stock ONNX Runtime runs it).
        reference: the plain PyTorch reference `naive_<op>` the CPU and CUDA kernels are tested against.
        torch_op: the torch.library custom op overload the models call, or None for an op that a graph rewrite
            inserts after tracing (MatMulW8).
        translation: the onnxscript function that turns `torch_op` into ONE rrwkv node.
    """

    schema: Callable[[], defs.OpSchema]
    function: Callable[[int], onnx.FunctionProto]
    reference: Callable
    torch_op: object | None = None
    translation: Callable | None = None


def op_definitions() -> dict[str, OpDefinition]:
    """op_type -> definition, in registry order."""
    return {op.name: importlib.import_module(op.module).OP for op in OPS}


def register_schemas() -> None:
    """Register every rrwkv OpSchema with onnx once; later calls are no-ops."""
    for name, op in op_definitions().items():
        try:
            defs.get_schema(name, DOMAIN_VERSION, DOMAIN)
        except defs.SchemaError:
            defs.register_schema(op.schema())


def custom_translation_table() -> dict:
    """torch op overload -> onnxscript function, for torch.onnx.export(custom_translation_table=...)."""
    return {op.torch_op: op.translation for op in op_definitions().values() if op.torch_op is not None}


def rrwkv_functions(opset: int = 18, names: set[str] | None = None) -> list[onnx.FunctionProto]:
    """FunctionProtos of the rrwkv ops `names` (None: all), importing default-domain opset `opset` (match the
    model's, which onnx.checker requires; each builder refuses an opset its body cannot use)."""
    return [op.function(opset) for name, op in op_definitions().items() if names is None or name in names]


def attach_functions(model: onnx.ModelProto, functions: list[onnx.FunctionProto] | None = None
                     ) -> onnx.ModelProto:
    """Add the rrwkv FunctionProtos used by `model` (in place) and the ("rrwkv", 1) opset import.

    Args: model, e.g. `torch.onnx.export(...).model_proto`; functions: None means `rrwkv_functions()` of the
      ops the model uses, built for its default-domain opset (onnx.checker wants function and model opsets to agree).
    Returns: the same model. Functions already present (same domain and name) are kept, not replaced.
    Validate afterwards with `onnx.checker.check_model(model, full_check=True)`.
    """
    nodes = [*graph_nodes(model.graph), *(n for f in model.functions for n in f.node)]
    used = {(n.domain, n.op_type) for n in nodes}
    if functions is None:
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 18)
        functions = rrwkv_functions(opset, {op for domain, op in used if domain == DOMAIN})
    have = {(f.domain, f.name) for f in model.functions}
    model.functions.extend(f for f in functions if (f.domain, f.name) in used - have)
    if not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(oh.make_opsetid(DOMAIN, DOMAIN_VERSION))
    return model
