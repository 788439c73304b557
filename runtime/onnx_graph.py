"""An exported model's graph as the runtime sees it: its rrwkv nodes and their attributes, its initializers, and the
variant TensorRT parses.

`onnx` is imported lazily, only where a function needs more than the ModelProto it is given (loading a file,
reading attribute values). OrtSession must not import it at all (slow, and memory; backends/ort.py), yet it must
check the rrwkv nodes' attributes before ONNX Runtime runs them (a WKV4Medium with s = 0 divides by zero in its
function body: SIGFPE) and the kernel-weights index against the graph's initializers before it hands ORT any
weights. `read_graph` therefore decodes just that from model.onnx with a small protobuf wire-format reader
(stdlib): the node lists of the graph and its subgraphs, and each initializer's name, type, shape and external-data
reference, skipping every tensor's bytes and the FunctionProtos without reading them. The file is hostile: every
length is bounded by the bytes that hold it, and a malformed message is a UserError.
"""
from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
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

INT, STRING = 2, 3  # AttributeProto.AttributeType
INT32_MAX = 2**31 - 1  # the kernels take their attributes as int32
W8_MAX_BLOCK = 256  # kW8MaxBlock, plugins/matmul_w8/matmulW8Math.h


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


_PLUGIN = {name: StringAttribute(value) for name, value in PLUGIN_ATTRIBUTES.items()}
ATTRIBUTES: dict[str, dict[str, IntAttribute | StringAttribute]] = {
    "WKV4": dict(_PLUGIN),
    "WKV4Medium": {"s": IntAttribute(True, 1), "medium_decays": IntAttribute(False, 0, 1), **_PLUGIN},
    "MatMulW8": {"N": IntAttribute(True, 1), "block_size": IntAttribute(False, 2, W8_MAX_BLOCK, even=True),
                 **_PLUGIN},
}


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
        want_type = INT if isinstance(rule, IntAttribute) else STRING
        if attr.type != want_type:
            raise UserError(f"{where}: attribute {name} has AttributeProto type {attr.type}, expected "
                            f"{rule.expected()}; re-export the model")
        value = attr.i if want_type == INT else attr.s
        if not rule.allows(value):
            raise UserError(f"{where}: attribute {name} is {value!r}, expected {rule.expected()}; re-export the "
                            "model")
    missing = [name for name, rule in contract.items() if rule.required and name not in present]
    if missing:
        raise UserError(f"{where} lacks the required attribute(s) {missing}; re-export the model")


# --- read_graph: the graph's nodes and initializers, decoded from model.onnx without onnx ---

MAX_GRAPH_DEPTH = 16  # subgraphs (Scan / If / Loop bodies) nested deeper than any export writes
# Field numbers of onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto) that read_graph uses.
_MODEL_GRAPH = 7
_GRAPH_NODE, _GRAPH_INITIALIZER = 1, 5
_NODE_INPUT, _NODE_NAME, _NODE_OP_TYPE, _NODE_ATTRIBUTE, _NODE_DOMAIN = 1, 3, 4, 5, 7
_ATTR_NAME, _ATTR_I, _ATTR_S, _ATTR_G, _ATTR_GRAPHS, _ATTR_TYPE = 1, 3, 4, 6, 11, 20
_TENSOR_DIMS, _TENSOR_DATA_TYPE, _TENSOR_NAME, _TENSOR_EXTERNAL, _TENSOR_LOCATION = 1, 2, 8, 13, 14
_ENTRY_KEY, _ENTRY_VALUE = 1, 2
EXTERNAL = 1  # TensorProto.DataLocation
# TensorProto.DataType -> the numpy dtype name of the kernel-weights index.
TENSOR_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
                 10: "float16", 11: "float64", 12: "uint32", 13: "uint64"}


@dataclass
class Attribute:
    """An AttributeProto's name, type and INT / STRING value (the fields check_rrwkv_attributes reads)."""

    name: str = ""
    type: int = 0
    i: int = 0
    s: bytes = b""


@dataclass
class Node:
    name: str = ""
    op_type: str = ""
    domain: str = ""
    input: list[str] = field(default_factory=list)
    attribute: list[Attribute] = field(default_factory=list)


@dataclass
class Initializer:
    name: str = ""
    data_type: int = 0
    dims: list[int] = field(default_factory=list)
    external: dict[str, str] | None = None  # external_data (location, offset, length) when stored outside


@dataclass
class Graph:
    """The main graph's initializers by name, and every node of the graph and its subgraphs."""

    nodes: list[Node]
    initializers: dict[str, Initializer]

    def reader_domains(self) -> dict[str, set[str]]:
        """Tensor name -> the domains of the nodes that read it ("" is the standard ONNX domain)."""
        domains: dict[str, set[str]] = {}
        for node in self.nodes:
            for name in node.input:
                domains.setdefault(name, set()).add(node.domain)
        return domains


class _Malformed(Exception):
    """A protobuf message that does not decode; read_graph turns it into a UserError naming the file."""


def read_graph(model_path: Path) -> Graph:
    """The nodes and initializers of ONNX file `model_path`, read without the onnx package (module docstring)."""
    try:
        with open(model_path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            graph = _decode(mm)
    except ValueError as err:  # an empty file cannot be mapped
        graph = str(err)
    except OSError as err:
        raise UserError(f"cannot read ONNX model {model_path} ({err.strerror or err})") from None
    if isinstance(graph, str):
        raise UserError(f"{model_path} is not a valid ONNX model ({graph}); re-export the model")
    return graph


def _decode(mm: mmap.mmap) -> Graph | str:
    """The graph, or what is malformed; by the time it returns no view into `mm` is left, so the map can close."""
    try:
        return _model(memoryview(mm))
    except (_Malformed, UnicodeDecodeError) as err:
        return str(err)


def _model(buf: memoryview) -> Graph:
    nodes: list[Node] = []
    initializers: dict[str, Initializer] = {}
    for number, value in _fields(buf):
        if number == _MODEL_GRAPH:
            _graph(_message(value), nodes, initializers, depth=0)
    return Graph(nodes, initializers)


def _graph(buf: memoryview, nodes: list[Node], initializers: dict[str, Initializer] | None, depth: int) -> None:
    """Append the nodes of GraphProto `buf` and its subgraphs to `nodes`; its initializers go to `initializers`
    (None for a subgraph: only the main graph's initializers can come from the kernel-weights index)."""
    if depth > MAX_GRAPH_DEPTH:
        raise _Malformed(f"subgraphs nested deeper than {MAX_GRAPH_DEPTH}")
    for number, value in _fields(buf):
        if number == _GRAPH_NODE:
            nodes.append(_node(_message(value), nodes, depth))
        elif number == _GRAPH_INITIALIZER and initializers is not None:
            init = _initializer(_message(value))
            initializers[init.name] = init


def _node(buf: memoryview, nodes: list[Node], depth: int) -> Node:
    node = Node()
    for number, value in _fields(buf):
        if number == _NODE_INPUT:
            node.input.append(_text(value))
        elif number == _NODE_NAME:
            node.name = _text(value)
        elif number == _NODE_OP_TYPE:
            node.op_type = _text(value)
        elif number == _NODE_DOMAIN:
            node.domain = _text(value)
        elif number == _NODE_ATTRIBUTE:
            node.attribute.append(_attribute(_message(value), nodes, depth))
    return node


def _attribute(buf: memoryview, nodes: list[Node], depth: int) -> Attribute:
    attr = Attribute()
    for number, value in _fields(buf):
        if number == _ATTR_NAME:
            attr.name = _text(value)
        elif number == _ATTR_TYPE:
            attr.type = _int(value)
        elif number == _ATTR_I:
            attr.i = _signed(_int(value))
        elif number == _ATTR_S:
            attr.s = bytes(_message(value))
        elif number in (_ATTR_G, _ATTR_GRAPHS):
            _graph(_message(value), nodes, None, depth + 1)
    return attr


def _initializer(buf: memoryview) -> Initializer:
    init = Initializer()
    external, location = {}, 0
    for number, value in _fields(buf):
        if number == _TENSOR_NAME:
            init.name = _text(value)
        elif number == _TENSOR_DATA_TYPE:
            init.data_type = _int(value)
        elif number == _TENSOR_DIMS:  # repeated int64, packed or not
            init.dims += [_signed(v) for v in _varints(value)] if isinstance(value, memoryview) else [_signed(value)]
        elif number == _TENSOR_EXTERNAL:
            entry = dict(_fields(_message(value)))
            external[_text(entry.get(_ENTRY_KEY, b""))] = _text(entry.get(_ENTRY_VALUE, b""))
        elif number == _TENSOR_LOCATION:
            location = _int(value)
    init.external = external if location == EXTERNAL else None
    return init


def _fields(buf: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, value) of each field of message `buf`: an int (varint, fixed32/64) or the bytes of a
    length-delimited field (a view, not a copy: tensor bytes are skipped without being read)."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if pos + width > end:
                raise _Malformed(f"field {number} runs past the end of its message")
            value, pos = int.from_bytes(buf[pos:pos + width], "little"), pos + width
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if length > end - pos:
                raise _Malformed(f"field {number} claims {length} bytes, its message has {end - pos} left")
            value, pos = buf[pos:pos + length], pos + length
        else:  # 3, 4: groups, which onnx.proto does not use; 6, 7: invalid
            raise _Malformed(f"field {number} has wire type {wire}")
        yield number, value


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 70, 7):
        if pos >= len(buf):
            raise _Malformed("a varint runs past the end of its message")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value & (2**64 - 1), pos
    raise _Malformed("a varint is longer than 10 bytes")


def _varints(buf: memoryview) -> Iterator[int]:
    pos = 0
    while pos < len(buf):
        value, pos = _varint(buf, pos)
        yield value


def _message(value: int | memoryview) -> memoryview:
    if not isinstance(value, memoryview):
        raise _Malformed("a number where a message or string was expected")
    return value


def _text(value: int | memoryview) -> str:
    return bytes(_message(value)).decode("utf-8")


def _int(value: int | memoryview) -> int:
    if isinstance(value, memoryview):
        raise _Malformed("a message or string where a number was expected")
    return value


def _signed(value: int) -> int:
    """A varint as the int64 it encodes (two's complement)."""
    return value - 2**64 if value >= 2**63 else value
