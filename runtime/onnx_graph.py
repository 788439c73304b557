"""An exported model's graph as the runtime sees it: its rrwkv nodes, and the variant TensorRT parses.

`onnx` is imported lazily, only where a function needs more than the ModelProto it is given (loading a file,
reading attribute values).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.graph import graph_nodes, strip_functions
from rrwkv_trt.core.metadata import ModelInfo, from_metadata
from rrwkv_trt.core.names import LOGITS_FROM
from rrwkv_trt.core.ops import DOMAIN, OP_NAMES, PLUGIN_ATTRIBUTES, PLUGIN_NAMESPACE, PLUGIN_VERSION
from rrwkv_trt.core.paths import resolve_model_path


@dataclass(frozen=True)
class PluginNode:
    """An rrwkv node of the ONNX graph: it must become a PLUGIN_V3 layer named `name`."""

    name: str
    op_type: str


def _import_onnx():
    try:
        import onnx
    except ImportError as err:
        raise UserError(f"building an engine needs the onnx package ({err}); pip install 'rrwkv-trt[trt]'") from None
    return onnx


def rrwkv_nodes(model, source: str = "model") -> list[PluginNode]:
    """The rrwkv nodes of `model`'s graph, checked against the plugins this project provides."""
    onnx = _import_onnx()
    nodes = []
    for node in graph_nodes(model.graph):
        if node.domain != DOMAIN:
            continue
        if node.op_type not in OP_NAMES:
            raise UserError(f"{source}: node {node.name!r} is rrwkv::{node.op_type}, which has no TensorRT plugin; "
                            f"plugins exist for {list(OP_NAMES)}")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        want = {name: value.encode() for name, value in PLUGIN_ATTRIBUTES.items()}
        bad = {k: attrs.get(k) for k, v in want.items() if attrs.get(k) != v}
        if bad:
            raise UserError(f"{source}: node {node.name!r} ({node.op_type}) has {bad}, expected plugin_namespace="
                            f"{PLUGIN_NAMESPACE!r} and plugin_version={PLUGIN_VERSION!r}; re-export the model")
        nodes.append(PluginNode(node.name, node.op_type))
    if not nodes:
        raise UserError(f"{source} has no rrwkv nodes (domain {DOMAIN!r}, ops {list(OP_NAMES)}): nothing for the "
                        "TensorRT plugins to run; build an engine from a model exported by `rrwkv-trt export`")
    return nodes


def freeze_logits_from(model):
    """A copy of ModelProto `model` whose LOGITS_FROM input is the constant 0 (every position's logits): TensorRT
    would need a shape-tensor profile for it, and TrtSession selects the positions on the host instead."""
    frozen = type(model)()
    frozen.CopyFrom(model)
    return _freeze_logits_from_(frozen)


def tensorrt_graph(model):
    """The ModelProto `rrwkv-trt build` hands TensorRT's parser: rrwkv functions stripped, logits_from frozen
    (one copy of the model, not two: the weights of a large model are hundreds of MB)."""
    return _freeze_logits_from_(strip_functions(model))


def _freeze_logits_from_(model):
    inputs = [i for i in model.graph.input if i.name != LOGITS_FROM]
    if len(inputs) < len(model.graph.input):
        del model.graph.input[:]
        model.graph.input.extend(inputs)
        zero = model.graph.initializer.add()
        zero.name, zero.data_type, zero.raw_data = LOGITS_FROM, 7, (0).to_bytes(8, "little")  # 7: TensorProto.INT64
        zero.dims.append(1)
    return model


def load_model(model: str | os.PathLike) -> tuple[object, ModelInfo, Path, list[PluginNode]]:
    """(ModelProto, ModelInfo, path, rrwkv nodes) of an exported model; UserError for anything unusable."""
    onnx = _import_onnx()
    path = resolve_model_path(model)
    try:
        proto = onnx.load(str(path))
    except Exception as err:  # onnx raises DecodeError and others; the message names the file
        raise UserError(f"cannot read ONNX model {path}: {err}") from None
    info = from_metadata({p.key: p.value for p in proto.metadata_props}, source=str(path))
    return proto, info, path, rrwkv_nodes(proto, source=str(path))
