"""What every rrwkv OpSchema shares, and the onnxscript opset that builds rrwkv nodes.

Each op's schema is in its own module (export/ops/<op>.py). The schemas live in onnx's process-global registry:
onnxscript needs them to build a custom node at export time (otherwise "Attribute WKV4 not found"), and
onnx.checker validates rrwkv nodes against them, so the plugin attributes must be declared.
"""
from __future__ import annotations

import functools

from onnx import defs
from onnx import helper as oh

from rrwkv_trt.core.ops import DOMAIN, DOMAIN_VERSION
from rrwkv_trt.core.ops import PLUGIN_ATTRIBUTES as PLUGIN_ATTRS

S = defs.OpSchema
F = defs.OpSchema.FormalParameter
FLOAT = "tensor(float)"
ACT = ("T", ["tensor(float)", "tensor(float16)"], "activation dtype of k, v and y; arithmetic is fp32")


def plugin_attributes() -> list:
    return [S.Attribute(name, oh.make_attribute(name, value), f"TensorRT plugin {name.split('_')[1]}")
            for name, value in PLUGIN_ATTRS.items()]


def state_outputs() -> list:
    return [F("y", "T"), F("aa_out", FLOAT), F("bb_out", FLOAT), F("pp_out", FLOAT)]


@functools.cache
def rrwkv_opset():
    """The onnxscript Opset("rrwkv", 1) (lazy: onnxscript is a heavy import). Its nodes need the schemas
    registered first (export.ops.registry.register_schemas)."""
    import onnxscript

    return onnxscript.values.Opset(DOMAIN, DOMAIN_VERSION)
