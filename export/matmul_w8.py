"""rrwkv::MatMulW8 in ONNX (plugins/matmul_w8/README.md): its OpSchema, its model-local FunctionProto and the graph
rewrite `MatMul(x, W) -> MatMulW8(x, w, scale)` of `rrwkv-trt export --precision int8`. torch-free.

The FunctionProto lets stock ONNX Runtime run the same file: it unpacks q * scale into W [K, N] with standard ops
(constant-foldable, since w and scale are initializers) and quantises x exactly as the kernels do (row max |x|,
x * (32767 / max), round half to even), so its result differs from the kernels' only by fp32 summation order.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, defs, numpy_helper
from onnx import helper as oh

from rrwkv_trt.core.ops import DOMAIN, PLUGIN_NAMESPACE, PLUGIN_VERSION

from .w8_pack import MAX_BLOCK, quantize_w8

OP_TYPE = "MatMulW8"
VERSION = 1  # the rrwkv opset (export.ops.onnx_schemas.VERSION)
DEFAULT_BLOCK = 128
ACT_MAX = 32767.0
_PLUGIN_ATTRS = {"plugin_namespace": PLUGIN_NAMESPACE, "plugin_version": PLUGIN_VERSION}


def matmul_w8_schema() -> defs.OpSchema:
    """rrwkv::MatMulW8: x [..., K] f32, w int8 [G, P, 64, 2], scale f32 [G, NB, 64] -> y [..., N] f32."""
    S, F = defs.OpSchema, defs.OpSchema.FormalParameter
    return S(
        OP_TYPE, DOMAIN, VERSION,
        "y = x @ W with W stored as symmetric int8, one fp32 scale per (block of block_size rows, column); "
        "each row of x is quantised to int16 with one scale.",
        inputs=[F("x", "tensor(float)"), F("w", "tensor(int8)"), F("scale", "tensor(float)")],
        outputs=[F("y", "tensor(float)")],
        attributes=[S.Attribute("N", S.AttrType.INT, "output features (columns of W)", required=True),
                    S.Attribute("block_size", oh.make_attribute("block_size", DEFAULT_BLOCK),
                                f"rows per scale; even, 2..{MAX_BLOCK}"),
                    *(S.Attribute(k, oh.make_attribute(k, v), f"TensorRT plugin {k.split('_')[1]}")
                      for k, v in _PLUGIN_ATTRS.items())])


def register_matmul_w8_schema() -> None:
    """Register the schema with onnx once (idempotent)."""
    try:
        defs.get_schema(OP_TYPE, VERSION, DOMAIN)
    except defs.SchemaError:
        defs.register_schema(matmul_w8_schema())


def matmul_w8_function(opset: int = 18) -> onnx.FunctionProto:
    """rrwkv::MatMulW8 in standard ONNX (default-domain `opset` >= 18: ReduceMax takes axes as an input)."""
    if opset < 18:
        raise ValueError(f"the MatMulW8 function needs default-domain opset >= 18; got {opset}")
    n, c = oh.make_node, _constant
    n_attr = onnx.AttributeProto(name="value_int", ref_attr_name="N", type=onnx.AttributeProto.INT)
    n_const = n("Constant", [], ["n_scalar"])
    n_const.attribute.append(n_attr)
    nodes = [
        # W [K, N] = unpacked q * scale
        n("Cast", ["w"], ["w_f"], to=TensorProto.FLOAT),
        n("Transpose", ["w_f"], ["w_t"], perm=[1, 3, 0, 2]),              # [P, 2, G, 64]
        n("Transpose", ["scale"], ["s_t"], perm=[1, 0, 2]),                # [NB, G, 64]
        n("Shape", ["s_t"], ["s_shape"]),
        c("i0", [0]), c("i1", [1]), c("i3", [3]), c("i_m1", [-1]), c("axes01", [0, 1]), c("zeros2", [0, 0]),
        n("Slice", ["s_shape", "i0", "i1"], ["nb"]),
        n("Slice", ["s_shape", "i1", "i3"], ["g64"]),
        n("Concat", ["nb", "i_m1", "g64"], ["shape4"], axis=0),
        n("Reshape", ["w_t", "shape4"], ["w_blocks"]),                     # [NB, block_size, G, 64]
        n("Unsqueeze", ["s_t", "i1"], ["s_blocks"]),                       # [NB, 1, G, 64]
        n("Mul", ["w_blocks", "s_blocks"], ["w_deq"]),
        n("ReduceProd", ["g64"], ["n_pad"], keepdims=1),
        n("Concat", ["i_m1", "n_pad"], ["shape2"], axis=0),
        n("Reshape", ["w_deq", "shape2"], ["w_pad"]),                      # [Kpad, 64 G]
        n("Shape", ["x"], ["x_shape"]),
        c("i_big", [2 ** 62]),
        n("Slice", ["x_shape", "i_m1", "i_big"], ["k_dim"]),
        n_const,
        n("Unsqueeze", ["n_scalar", "i0"], ["n_dim"]),
        n("Concat", ["k_dim", "n_dim"], ["ends"], axis=0),
        n("Slice", ["w_pad", "zeros2", "ends", "axes01"], ["w_kn"]),       # [K, N]
        # x ~= round(x * 32767 / max|x|) * max|x| / 32767, per row
        n("Abs", ["x"], ["x_abs"]),
        n("ReduceMax", ["x_abs", "i_m1"], ["x_max"], keepdims=1),
        c("f0", 0.0, TensorProto.FLOAT), c("f1", 1.0, TensorProto.FLOAT), c("f_act", ACT_MAX, TensorProto.FLOAT),
        n("Equal", ["x_max", "f0"], ["is_zero"]),
        n("Where", ["is_zero", "f1", "x_max"], ["x_max_safe"]),
        n("Div", ["f_act", "x_max_safe"], ["inv"]),
        n("Mul", ["x", "inv"], ["x_scaled"]),
        n("Round", ["x_scaled"], ["x_q"]),
        n("MatMul", ["x_q", "w_kn"], ["y_q"]),
        n("Div", ["x_max", "f_act"], ["x_scale"]),
        n("Mul", ["y_q", "x_scale"], ["y"]),
    ]
    return oh.make_function(DOMAIN, OP_TYPE, ["x", "w", "scale"], ["y"], nodes,
                            opset_imports=[oh.make_opsetid("", opset)],
                            attributes=["N", "block_size", *_PLUGIN_ATTRS],
                            doc_string="rrwkv::MatMulW8 in standard ONNX ops")


def _constant(name: str, value, dtype: int = TensorProto.INT64) -> onnx.NodeProto:
    array = np.asarray(value, dtype=onnx.helper.tensor_dtype_to_np_dtype(dtype))
    return oh.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name))


def quantize_matmuls_w8(proto: onnx.ModelProto, block_size: int = DEFAULT_BLOCK) -> int:
    """Replace, in place, every MatMul of the main graph whose weight is a 2-D float initializer by one MatMulW8
    node (the weight initializer is replaced by its packed int8 and scale), attach the FunctionProto and the rrwkv
    opset. Returns how many MatMuls were converted."""
    register_matmul_w8_schema()
    inits = {i.name: i for i in proto.graph.initializer}
    packed: dict[str, tuple[str, str, int]] = {}
    converted = 0
    for node in proto.graph.node:
        init = inits.get(node.input[1]) if node.op_type == "MatMul" else None
        if init is None or len(init.dims) != 2 or init.data_type != TensorProto.FLOAT:
            continue
        if init.name not in packed:
            weight = numpy_helper.to_array(init)
            w, scale = quantize_w8(weight, block_size)
            names = (f"{init.name}.w8", f"{init.name}.w8_scale")
            proto.graph.initializer.extend([numpy_helper.from_array(w, names[0]),
                                            numpy_helper.from_array(scale, names[1])])
            packed[init.name] = (*names, weight.shape[1])
        w_name, s_name, n_out = packed[init.name]
        node.op_type, node.domain = OP_TYPE, DOMAIN
        node.input[:] = [node.input[0], w_name, s_name]
        node.attribute.extend([oh.make_attribute("N", n_out), oh.make_attribute("block_size", block_size),
                               *(oh.make_attribute(k, v) for k, v in _PLUGIN_ATTRS.items())])
        converted += 1
    _drop_unused_initializers(proto, set(packed))
    _attach_function(proto)
    return converted


def _drop_unused_initializers(proto: onnx.ModelProto, candidates: set[str]) -> None:
    used = {i for node in proto.graph.node for i in node.input} | {o.name for o in proto.graph.output}
    keep = [i for i in proto.graph.initializer if i.name not in candidates or i.name in used]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(keep)


def _attach_function(proto: onnx.ModelProto) -> None:
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 18)
    if not any(f.domain == DOMAIN and f.name == OP_TYPE for f in proto.functions):
        proto.functions.append(matmul_w8_function(opset))
    if not any(o.domain == DOMAIN for o in proto.opset_import):
        proto.opset_import.append(oh.make_opsetid(DOMAIN, VERSION))
