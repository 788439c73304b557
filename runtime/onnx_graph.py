"""An exported model's graph as the runtime sees it: its rrwkv nodes and their attributes, and the variant TensorRT
parses.

`onnx` is imported lazily, only where a function needs more than the ModelProto it is given (loading a file,
reading attribute values). OrtSession must not import it at all (slow, and memory; backends/ort.py), yet it must
check the rrwkv nodes' attributes before ONNX Runtime runs them (a WKV4Medium with s = 0 divides by zero in its
function body: SIGFPE): `check_rrwkv_attributes` takes the nodes of runtime/onnx_reader.py's `read_graph` as well
as onnx's NodeProtos.
"""
from __future__ import annotations

import math
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
    """The rrwkv nodes of `model`'s graph, checked against the plugins this project provides and their attribute
    contracts (check_rrwkv_attributes)."""
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
        if bad:  # TensorRT keys its plugin lookup on them: here they are required, not defaulted
            raise UserError(f"{source}: node {node.name!r} ({node.op_type}) has {bad}, expected plugin_namespace="
                            f"{PLUGIN_NAMESPACE!r} and plugin_version={PLUGIN_VERSION!r}; re-export the model")
        check_rrwkv_attributes(node, source)
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


# --- The rrwkv ops' attribute contracts (plugins/<op>/spec.yaml "attributes"; tests check these against them) ---

FLOAT, INT, STRING = 1, 2, 3  # AttributeProto.AttributeType
INT32_MAX = 2**31 - 1  # the kernels take their attributes as int32
W8_MAX_BLOCK = 256  # kW8MaxBlock, plugins/matmul_w8/matmulW8Math.h (and kW4MaxBlock, matmulW4Math.h)


@dataclass(frozen=True)
class IntAttribute:
    """An INT attribute allowed in [low, high] (even values only with `even`)."""

    required: bool
    low: int
    high: int = INT32_MAX
    even: bool = False

    def allows(self, value: int) -> bool:
        return self.low <= value <= self.high and not (self.even and value % 2)

    def expected(self) -> str:
        return f"{'an even' if self.even else 'an'} INT in [{self.low}, {self.high}]"


@dataclass(frozen=True)
class StringAttribute:
    """A STRING attribute that, when present, must be `value`."""

    value: str
    required: bool = False

    def allows(self, value: bytes) -> bool:
        return value == self.value.encode()

    def expected(self) -> str:
        return f"the STRING {self.value!r}"


@dataclass(frozen=True)
class FloatAttribute:
    """A FLOAT attribute that must be finite and above `above`."""

    required: bool
    above: float

    def allows(self, value: float) -> bool:
        return math.isfinite(value) and value > self.above

    def expected(self) -> str:
        return f"a finite FLOAT > {self.above:g}"


_PLUGIN = {name: StringAttribute(value) for name, value in PLUGIN_ATTRIBUTES.items()}
Rule = FloatAttribute | IntAttribute | StringAttribute
ATTRIBUTES: dict[str, dict[str, Rule]] = {
    "WKV4": dict(_PLUGIN),
    "WKV4Medium": {"s": IntAttribute(True, 1), "medium_decays": IntAttribute(False, 0, 1), **_PLUGIN},
    "MatMulW8": {"N": IntAttribute(True, 1), "block_size": IntAttribute(False, 2, W8_MAX_BLOCK, even=True),
                 **_PLUGIN},
    "MatMulW4": {"N": IntAttribute(True, 1), "block_size": IntAttribute(False, 2, W8_MAX_BLOCK, even=True),
                 **_PLUGIN},
    "MatMulWF16": {"N": IntAttribute(True, 1), **_PLUGIN},
    "GatedOuterScan": {"scale": FloatAttribute(True, 0.0), "chunk_size": IntAttribute(False, 1), **_PLUGIN},
    "ContinuousGaussianAttention": {"sigma2_min": FloatAttribute(True, 0.0), "scale": FloatAttribute(True, 0.0),
                                    **_PLUGIN},
    "LTMUpdate": {"sticky": IntAttribute(False, 0, 1), **_PLUGIN},
}


_ATTRIBUTE_TYPES = {FloatAttribute: FLOAT, IntAttribute: INT, StringAttribute: STRING}


def check_rrwkv_attributes(node, source: str) -> None:
    """Refuse an rrwkv `node` (a NodeProto, or read_graph's Node) whose op is unknown or whose attributes break its
    contract: an unknown or missing attribute, the wrong type, a value out of range. ONNX Runtime would otherwise
    run it: a WKV4Medium with s = 0 divides by zero in its function body (SIGFPE)."""
    where = f"{source}: node {node.name!r} (rrwkv::{node.op_type})"
    contract = ATTRIBUTES.get(node.op_type)
    if contract is None:
        raise UserError(f"{source}: node {node.name!r} is rrwkv::{node.op_type}, which this rrwkv-trt does not "
                        f"provide; the rrwkv ops are {list(ATTRIBUTES)}")
    present = {a.name: a for a in node.attribute}
    for name, attr in present.items():
        rule = contract.get(name)
        if rule is None:
            raise UserError(f"{where} has attribute {name!r}, which the op does not take; its attributes are "
                            f"{list(contract)}; re-export the model")
        want_type = _ATTRIBUTE_TYPES[type(rule)]
        if attr.type != want_type:
            raise UserError(f"{where}: attribute {name} has AttributeProto type {attr.type}, expected "
                            f"{rule.expected()}; re-export the model")
        value = {FLOAT: attr.f, INT: attr.i, STRING: attr.s}[want_type]
        if not rule.allows(value):
            raise UserError(f"{where}: attribute {name} is {value!r}, expected {rule.expected()}; re-export the "
                            "model")
    missing = [name for name, rule in contract.items() if rule.required and name not in present]
    if missing:
        raise UserError(f"{where} lacks the required attribute(s) {missing}; re-export the model")


# --- read_graph: the graph's nodes and initializers, decoded from model.onnx without onnx ---
