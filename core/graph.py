"""ModelProto helpers that need no import: export and runtime both walk and trim graphs with them."""
from __future__ import annotations

from collections.abc import Iterator

from .ops import DOMAIN


def graph_nodes(graph) -> Iterator:
    """Every NodeProto of `graph`, including those of subgraphs (Scan / If / Loop bodies), depth first."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for g in ([attr.g] if attr.type == attr.GRAPH else list(attr.graphs)):
                yield from graph_nodes(g)


def strip_functions(model, domain: str = DOMAIN):
    """A copy of ModelProto `model` without the FunctionProtos of `domain`: the TensorRT variant, where the parser
    must use the plugin (or fail loudly) instead of silently inlining the function."""
    stripped = type(model)()  # a new ModelProto without importing onnx
    stripped.CopyFrom(model)
    keep = [f for f in stripped.functions if f.domain != domain]
    del stripped.functions[:]
    stripped.functions.extend(keep)
    return stripped
