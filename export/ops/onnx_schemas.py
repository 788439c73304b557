"""ONNX OpSchemas of the rrwkv ops (domain "rrwkv", version 1) and the onnxscript opset that builds their nodes.

The schemas live in onnx's process-global registry. onnxscript needs them to build a custom node at
export time (otherwise "Attribute WKV4 not found"), and onnx.checker validates rrwkv nodes against them
(the plugin attributes must therefore be declared). `register_schemas()` is idempotent.
"""
from __future__ import annotations

import functools

from onnx import defs
from onnx import helper as oh

DOMAIN = "rrwkv"
VERSION = 1
# Every rrwkv node carries these (ARCHITECTURES.md §0.3); TensorRT 10.15+ keys plugin lookup on them.
PLUGIN_ATTRS = {"plugin_namespace": "rrwkv", "plugin_version": "1"}

_S = defs.OpSchema
_F = defs.OpSchema.FormalParameter
_FLOAT = "tensor(float)"
_ACT = ("T", ["tensor(float)", "tensor(float16)"], "activation dtype of k, v and y; arithmetic is fp32")


def _plugin_attributes() -> list:
    return [_S.Attribute(name, oh.make_attribute(name, value), f"TensorRT plugin {name.split('_')[1]}")
            for name, value in PLUGIN_ATTRS.items()]


def _state_outputs() -> list:
    return [_F("y", "T"), _F("aa_out", _FLOAT), _F("bb_out", _FLOAT), _F("pp_out", _FLOAT)]


def wkv4_schema() -> defs.OpSchema:
    """rrwkv::WKV4 (ARCHITECTURES.md §1.8): w, u [C]; k, v [B,T,C]; aa, bb, pp [B,C] -> y [B,T,C], state [B,C]."""
    return _S(
        "WKV4", DOMAIN, VERSION,
        "RWKV-4 WKV recurrence over T tokens with explicit fp32 (aa, bb, pp) state.",
        inputs=[_F("w", _FLOAT), _F("u", _FLOAT), _F("k", "T"), _F("v", "T"),
                _F("aa", _FLOAT), _F("bb", _FLOAT), _F("pp", _FLOAT)],
        outputs=_state_outputs(),
        type_constraints=[_ACT],
        attributes=_plugin_attributes())


def wkv4_medium_schema() -> defs.OpSchema:
    """rrwkv::WKV4Medium (ARCHITECTURES.md §2.6): WKV4 inputs plus k_m, v_m [B,Mmax,C] f32 and pos0 [B] int64;
    attributes s (required), medium_decays (default 0) and the plugin attributes."""
    return _S(
        "WKV4Medium", DOMAIN, VERSION,
        "WKV4 with a medium merged into the state after every token whose position closes a window "
        "((pos0[b] + t + 1) % s == 0); row r of k_m, v_m is sequence b's r-th close in this call.",
        inputs=[_F("w", _FLOAT), _F("u", _FLOAT), _F("k", "T"), _F("v", "T"),
                _F("k_m", _FLOAT), _F("v_m", _FLOAT),
                _F("aa", _FLOAT), _F("bb", _FLOAT), _F("pp", _FLOAT), _F("pos0", "tensor(int64)")],
        outputs=_state_outputs(),
        type_constraints=[_ACT],
        attributes=[_S.Attribute("s", _S.AttrType.INT, "medium interval (>= 1)", required=True),
                    _S.Attribute("medium_decays", oh.make_attribute("medium_decays", 0),
                                 "1: the merge decays the state by w once (ARCHITECTURES.md §2.8.1)"),
                    *_plugin_attributes()])


SCHEMAS = {"WKV4": wkv4_schema, "WKV4Medium": wkv4_medium_schema}


def register_schemas() -> None:
    """Register every rrwkv OpSchema with onnx once; later calls are no-ops."""
    for name, make in SCHEMAS.items():
        try:
            defs.get_schema(name, VERSION, DOMAIN)
        except defs.SchemaError:
            defs.register_schema(make())


@functools.cache
def rrwkv_opset():
    """The onnxscript Opset("rrwkv", 1), with the schemas registered (lazy: onnxscript is a heavy import)."""
    import onnxscript

    register_schemas()
    return onnxscript.values.Opset(DOMAIN, VERSION)
