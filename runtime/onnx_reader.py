"""A stdlib reader of the parts of model.onnx the runtime checks before ONNX Runtime sees the file.

OrtSession must not import onnx (slow, and memory; backends/ort.py), yet it checks the rrwkv nodes' attributes
(runtime/onnx_graph.py) and the kernel-weights index against the graph's initializers before it hands ORT any
weights. `read_graph` therefore decodes just that from model.onnx with a small protobuf wire-format reader: the
node lists of the graph and its subgraphs, and each initializer's name, type, shape and external-data reference,
skipping every tensor's bytes and the FunctionProtos without reading them. The file is hostile: every length is
bounded by the bytes that hold it, and a malformed message is a UserError.
"""
from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rrwkv_trt.core.errors import UserError

MAX_GRAPH_DEPTH = 16  # subgraphs (Scan / If / Loop bodies) nested deeper than any export writes
# Field numbers of onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto) that read_graph uses.
_MODEL_GRAPH = 7
_GRAPH_NODE, _GRAPH_INITIALIZER = 1, 5
_NODE_INPUT, _NODE_NAME, _NODE_OP_TYPE, _NODE_ATTRIBUTE, _NODE_DOMAIN = 1, 3, 4, 5, 7
_ATTR_NAME, _ATTR_F, _ATTR_I, _ATTR_S, _ATTR_G, _ATTR_GRAPHS, _ATTR_TYPE = 1, 2, 3, 4, 6, 11, 20
_TENSOR_DIMS, _TENSOR_DATA_TYPE, _TENSOR_NAME, _TENSOR_EXTERNAL, _TENSOR_LOCATION = 1, 2, 8, 13, 14
_ENTRY_KEY, _ENTRY_VALUE = 1, 2
EXTERNAL = 1  # TensorProto.DataLocation
# TensorProto.DataType -> the numpy dtype name of the kernel-weights index.
TENSOR_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 9: "bool",
                 10: "float16", 11: "float64", 12: "uint32", 13: "uint64"}


@dataclass
class Attribute:
    """An AttributeProto's name, type and FLOAT / INT / STRING value (the fields check_rrwkv_attributes reads)."""

    name: str = ""
    type: int = 0
    f: float = 0.0
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
        elif number == _ATTR_F:
            attr.f = _float32(_int(value))
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


def _float32(value: int) -> float:
    """A fixed32 field's bits as the float32 they encode (AttributeProto.f)."""
    return struct.unpack("<f", (value & 0xFFFFFFFF).to_bytes(4, "little"))[0]


def _signed(value: int) -> int:
    """A varint as the int64 it encodes (two's complement)."""
    return value - 2**64 if value >= 2**63 else value
