"""An exported model as the runtime sees it: its file, its I/O names and its rrwkv nodes.

`onnx` is imported lazily, only where a function needs more than the ModelProto it is given (loading a file,
reading attribute values), so `export.ops` reuses `graph_nodes` and `strip_functions` from here.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .metadata import ModelInfo, from_metadata

MODEL_FILE = "model.onnx"  # what `rrwkv-trt export` writes into OUT_DIR
INPUT_IDS = "input_ids"
LOGITS = "logits"
# int64 [1]: logits are computed for positions logits_from .. seq-1 only (0: all; seq-1: the last, what a prefill
# needs). Exports since 2026-12 have it; the runtime feeds it when the graph has it (older exports do not).
LOGITS_FROM = "logits_from"
DOMAIN = "rrwkv"
PLUGIN_NAMESPACE = "rrwkv"
PLUGIN_VERSION = "1"
PLUGIN_OPS = ("WKV4", "WKV4Medium", "MatMulW8")  # rrwkv op_type == TensorRT plugin name (plugins/README.md)


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


def resolve_model_path(model: str | os.PathLike) -> Path:
    """An export OUT_DIR (-> OUT_DIR/model.onnx) or a .onnx file; UserError if it is not there."""
    path = Path(model)
    if path.is_dir():
        path = path / MODEL_FILE
        if not path.is_file():
            raise UserError(f"{path.parent} has no {MODEL_FILE}; export a model into it with `rrwkv-trt export`")
    elif not path.is_file():
        raise UserError(f"model {path} not found; pass an export OUT_DIR or a .onnx file")
    return path


def graph_nodes(graph) -> Iterator:
    """Every NodeProto of `graph`, including those of subgraphs (Scan / If / Loop bodies), depth first."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for g in ([attr.g] if attr.type == attr.GRAPH else list(attr.graphs)):
                yield from graph_nodes(g)


def rrwkv_nodes(model, source: str = "model") -> list[PluginNode]:
    """The rrwkv nodes of `model`'s graph, checked against the plugins this project provides."""
    onnx = _import_onnx()
    nodes = []
    for node in graph_nodes(model.graph):
        if node.domain != DOMAIN:
            continue
        if node.op_type not in PLUGIN_OPS:
            raise UserError(f"{source}: node {node.name!r} is rrwkv::{node.op_type}, which has no TensorRT plugin; "
                            f"plugins exist for {list(PLUGIN_OPS)}")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        want = {"plugin_namespace": PLUGIN_NAMESPACE.encode(), "plugin_version": PLUGIN_VERSION.encode()}
        bad = {k: attrs.get(k) for k, v in want.items() if attrs.get(k) != v}
        if bad:
            raise UserError(f"{source}: node {node.name!r} ({node.op_type}) has {bad}, expected plugin_namespace="
                            f"{PLUGIN_NAMESPACE!r} and plugin_version={PLUGIN_VERSION!r}; re-export the model")
        nodes.append(PluginNode(node.name, node.op_type))
    if not nodes:
        raise UserError(f"{source} has no rrwkv nodes (domain {DOMAIN!r}, ops {list(PLUGIN_OPS)}): nothing for the "
                        "TensorRT plugins to run; build an engine from a model exported by `rrwkv-trt export`")
    return nodes


def strip_functions(model, domain: str = DOMAIN):
    """A copy of ModelProto `model` without the FunctionProtos of `domain`: the TensorRT variant, where the parser
    must use the plugin (or fail loudly) instead of silently inlining the function."""
    stripped = type(model)()  # a new ModelProto without importing onnx
    stripped.CopyFrom(model)
    keep = [f for f in stripped.functions if f.domain != domain]
    del stripped.functions[:]
    stripped.functions.extend(keep)
    return stripped


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
