"""rrwkv::WKV4Medium (docs/families/rrwkv.md §2.3-§2.6): WKV4 plus a medium merged into the state
after every token whose global position closes a window ((pos0 + t + 1) % s == 0).

k_m, v_m [B, Mmax, C] hold the mediums closing in this call in close order: row r is sequence b's
r-th close. Rows past a sequence's last close are ignored.

Beside the reference `naive_wkv4_medium`: the torch custom op `rrwkv::wkv4_medium` (public wrapper
`wkv4_medium`), its onnxscript translation `wkv4_medium_onnx` (ONE `rrwkv::WKV4Medium` node) and the
FunctionProto builder `wkv4_medium_function`.
"""
from __future__ import annotations

import torch
from onnx import FunctionProto, TensorProto, defs
from onnx import helper as oh
from torch import Tensor

from rrwkv_trt.core.ops import DOMAIN, DOMAIN_VERSION

from .onnx_schemas import ACT, FLOAT, PLUGIN_ATTRS, F, S, plugin_attributes, rrwkv_opset, state_outputs
from .registry import OpDefinition
from .wkv4 import _check_wkv4_args, fresh_outputs, wkv4_step, wkv4_step_nodes


def medium_merge(w: Tensor, aa: Tensor, bb: Tensor, pp: Tensor, k_m: Tensor, v_m: Tensor,
                 medium_decays: int) -> tuple[Tensor, Tensor, Tensor]:
    """Insert one medium (k_m, v_m [B, C]) into the state.

    medium_decays=0 inserts without consuming a time slot (no extra decay, §2.3), so at
    k_m = -1e30 the state is unchanged bit for bit once pp is finite. medium_decays=1 (§2.8.1)
    lets the medium occupy a time slot: the state decays by w once, like a token update.
    """
    base = pp + w if medium_decays else pp
    p = torch.maximum(base, k_m)
    e1 = torch.exp(base - p)
    e2 = torch.exp(k_m - p)
    return e1 * aa + e2 * v_m, e1 * bb + e2, p


def naive_wkv4_medium(w: Tensor, u: Tensor, k: Tensor, v: Tensor, k_m: Tensor, v_m: Tensor,
                      aa: Tensor, bb: Tensor, pp: Tensor, pos0: Tensor, s: int, medium_decays: int = 0
                      ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Sequential WKV4Medium over T tokens.

    Args: w, u [C]; k, v [B, T, C]; k_m, v_m [B, Mmax, C]; aa, bb, pp [B, C]; pos0 [B] int64;
      s the medium interval; medium_decays 0 or 1.
    Returns: y [B, T, C] in k's dtype; aa', bb', pp' [B, C].
    """
    dt, out_dtype = aa.dtype, k.dtype
    w, u, k, v, k_m, v_m = (x.to(dt) for x in (w, u, k, v, k_m, v_m))
    B, T, _ = k.shape
    row = torch.zeros(B, dtype=torch.long, device=k.device)  # next medium row per sequence
    batch_idx = torch.arange(B, device=k.device)
    ys = []
    for t in range(T):
        y_t, aa, bb, pp = wkv4_step(w, u, k[:, t], v[:, t], aa, bb, pp)
        ys.append(y_t)
        closes = (pos0 + t + 1) % s == 0  # [B]
        if bool(closes.any()):
            r = row.clamp(max=k_m.shape[1] - 1)
            naa, nbb, npp = medium_merge(w, aa, bb, pp, k_m[batch_idx, r], v_m[batch_idx, r], medium_decays)
            c = closes[:, None]
            aa, bb, pp = torch.where(c, naa, aa), torch.where(c, nbb, bb), torch.where(c, npp, pp)
            row = row + closes.long()
    y = torch.stack(ys, dim=1) if ys else k.new_zeros(k.shape)
    return y.to(out_dtype), aa, bb, pp


def _check_medium_args(w: Tensor, u: Tensor, k: Tensor, v: Tensor, k_m: Tensor, v_m: Tensor,
                       aa: Tensor, bb: Tensor, pp: Tensor, pos0: Tensor, s: int, medium_decays: int) -> None:
    _check_wkv4_args(w, u, k, v, aa, bb, pp)
    B, _, C = k.shape
    if k_m.dim() != 3 or v_m.shape != k_m.shape or k_m.shape[0] != B or k_m.shape[2] != C:
        raise ValueError(f"wkv4_medium: k_m and v_m must both be [B, Mmax, C] with B={B}, C={C}; "
                         f"got k_m {tuple(k_m.shape)}, v_m {tuple(v_m.shape)}")
    if tuple(pos0.shape) != (B,) or pos0.dtype != torch.int64:
        raise ValueError(f"wkv4_medium: pos0 must be int64 [B] = [{B}]; got {pos0.dtype} {tuple(pos0.shape)}")
    if s < 1 or medium_decays not in (0, 1):
        raise ValueError(f"wkv4_medium: need s >= 1 and medium_decays in (0, 1); got s={s}, "
                         f"medium_decays={medium_decays}")


@torch.library.custom_op("rrwkv::wkv4_medium", mutates_args=())
def _wkv4_medium_op(w: Tensor, u: Tensor, k: Tensor, v: Tensor, k_m: Tensor, v_m: Tensor,
                    aa: Tensor, bb: Tensor, pp: Tensor, pos0: Tensor, s: int, medium_decays: int = 0
                    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    args = (w, u, k, v, k_m, v_m, aa, bb, pp, pos0)
    _check_medium_args(*args, s, medium_decays)
    return fresh_outputs(naive_wkv4_medium(*args, s, medium_decays), args)


@_wkv4_medium_op.register_fake
def _(w, u, k, v, k_m, v_m, aa, bb, pp, pos0, s, medium_decays=0):
    _check_medium_args(w, u, k, v, k_m, v_m, aa, bb, pp, pos0, s, medium_decays)
    return k.new_empty(k.shape), aa.new_empty(aa.shape), bb.new_empty(bb.shape), pp.new_empty(pp.shape)


def wkv4_medium(w: Tensor, u: Tensor, k: Tensor, v: Tensor, k_m: Tensor, v_m: Tensor,
                aa: Tensor, bb: Tensor, pp: Tensor, pos0: Tensor, s: int, medium_decays: int = 0
                ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """torch.ops.rrwkv.wkv4_medium: `naive_wkv4_medium` eagerly, ONE `rrwkv::WKV4Medium` node at export.

    Args: w, u [C] f32; k, v [B, T, C] f32/f16; k_m, v_m [B, Mmax, C] f32 (Mmax >= 1; ceil(T/s) suffices);
      aa, bb, pp [B, C] f32; pos0 [B] int64 (global position of token 0, per sequence);
      s the medium interval (>= 1); medium_decays 0 or 1. s and medium_decays become node attributes.
    Returns: y [B, T, C] in k's dtype; aa', bb', pp' [B, C] f32 (new tensors).
    """
    return torch.ops.rrwkv.wkv4_medium(w, u, k, v, k_m, v_m, aa, bb, pp, pos0, s, medium_decays)


def wkv4_medium_onnx(w, u, k, v, k_m, v_m, aa, bb, pp, pos0, s: int, medium_decays: int = 0):
    """custom_translation_table entry: torch.ops.rrwkv.wkv4_medium -> one rrwkv::WKV4Medium node."""
    return rrwkv_opset().WKV4Medium(w, u, k, v, k_m, v_m, aa, bb, pp, pos0,
                                    s=int(s), medium_decays=int(medium_decays), **PLUGIN_ATTRS)


def _medium_step_graph():
    """Scan body: the WKV4 step, then the merge where (pos + 1) % s == 0, per sequence.

    Carried: aa, bb, pp [B, C] f32; pos [B] int64 (position of the current token); row [B] int64 (next
    k_m row). Scanned: k_t, v_t [B, C] f32. Outer scope: w, u, k_m_f, v_m_f, s_i, md, one, row_max.
    """
    n = oh.make_node
    nodes = wkv4_step_nodes("aa_in", "bb_in", "pp_in", "k_t", "v_t", "y_t", "aa_1", "bb_1", "pp_1")
    nodes += [
        n("Add", ["pos_in", "one"], ["pos_next"]),
        n("Mod", ["pos_next", "s_i"], ["slot_next"]),
        n("Equal", ["slot_next", "zero"], ["closes"]),                     # [B] bool
        n("Unsqueeze", ["closes", "axis1"], ["closes_c"]),                 # [B, 1]
        n("Min", ["row_in", "row_max"], ["r"]),
        n("Unsqueeze", ["r", "axis1"], ["r_idx"]),                         # [B, 1]
        n("GatherND", ["k_m_f", "r_idx"], ["km_t"], batch_dims=1),         # [B, C]
        n("GatherND", ["v_m_f", "r_idx"], ["vm_t"], batch_dims=1),
        # medium_merge: no extra decay unless medium_decays (selected exactly, never pp + 0*w)
        n("Add", ["pp_1", "w"], ["m_decayed"]),
        n("Where", ["md", "m_decayed", "pp_1"], ["m_base"]),
        n("Max", ["m_base", "km_t"], ["m_p"]),
        n("Sub", ["m_base", "m_p"], ["m_d1"]), n("Exp", ["m_d1"], ["m_e1"]),
        n("Sub", ["km_t", "m_p"], ["m_d2"]), n("Exp", ["m_d2"], ["m_e2"]),
        n("Mul", ["m_e1", "aa_1"], ["m_a1"]), n("Mul", ["m_e2", "vm_t"], ["m_a2"]),
        n("Add", ["m_a1", "m_a2"], ["m_aa"]),
        n("Mul", ["m_e1", "bb_1"], ["m_b1"]), n("Add", ["m_b1", "m_e2"], ["m_bb"]),
        n("Where", ["closes_c", "m_aa", "aa_1"], ["aa_next"]),
        n("Where", ["closes_c", "m_bb", "bb_1"], ["bb_next"]),
        n("Where", ["closes_c", "m_p", "pp_1"], ["pp_next"]),
        n("Cast", ["closes"], ["closes_i"], to=TensorProto.INT64),
        n("Add", ["row_in", "closes_i"], ["row_next"]),
    ]
    f32 = lambda name: oh.make_tensor_value_info(name, TensorProto.FLOAT, None)  # noqa: E731
    i64 = lambda name: oh.make_tensor_value_info(name, TensorProto.INT64, None)  # noqa: E731
    return oh.make_graph(
        nodes, "wkv4_medium_step",
        [f32("aa_in"), f32("bb_in"), f32("pp_in"), i64("pos_in"), i64("row_in"), f32("k_t"), f32("v_t")],
        [f32("aa_next"), f32("bb_next"), f32("pp_next"), i64("pos_next"), i64("row_next"), f32("y_t")])


def _attribute_constant(output: str, attribute: str):
    """Constant(value_int=@attribute): the calling node's INT attribute as an int64 scalar tensor."""
    node = oh.make_node("Constant", [], [output])
    node.attribute.append(oh.make_attribute_ref("value_int", oh.AttributeProto.INT, ref_attr_name=attribute))
    return node


def _int64_constant(output: str, value: int):
    return oh.make_node("Constant", [], [output], value=oh.make_tensor(output, TensorProto.INT64, [], [value]))


def wkv4_medium_function(opset: int = 18) -> FunctionProto:
    """rrwkv::WKV4Medium as a model-local FunctionProto in standard ONNX ops.

    k, v, k_m, v_m are cast to f32; a Scan over axis 1 (T) carries (aa, bb, pp) [B, C], the position
    pos0 + t and the next k_m row per sequence [B]; y [B, T, C] is cast back to k's dtype.
    Attributes: s (required) and medium_decays (default 0) reach the body through attribute references
    (Constant value_int=@s / @medium_decays), so each node's own attributes drive it; plugin_namespace,
    plugin_version are declared and unused. `opset` is the default-domain version it imports.
    """
    n = oh.make_node
    nodes = [
        _attribute_constant("s_i", "s"), _attribute_constant("md_i", "medium_decays"),  # int64 scalars
        n("Cast", ["md_i"], ["md"], to=TensorProto.BOOL),
        _int64_constant("one", 1), _int64_constant("zero", 0),
        n("Constant", [], ["axis1"], value=oh.make_tensor("axis1", TensorProto.INT64, [1], [1])),
        n("Cast", ["k"], ["k_f"], to=TensorProto.FLOAT), n("Cast", ["v"], ["v_f"], to=TensorProto.FLOAT),
        n("Cast", ["k_m"], ["k_m_f"], to=TensorProto.FLOAT), n("Cast", ["v_m"], ["v_m_f"], to=TensorProto.FLOAT),
        n("Shape", ["k_m"], ["m_rows"], start=1, end=2),                   # [1] = Mmax
        n("Sub", ["m_rows", "one"], ["row_max"]),                          # rows past the last are clamped
        n("Mul", ["pos0", "zero"], ["row0"]),                              # [B] zeros
        n("Scan", ["aa", "bb", "pp", "pos0", "row0", "k_f", "v_f"],
          ["aa_out", "bb_out", "pp_out", "pos_end", "row_end", "y_f"], body=_medium_step_graph(),
          num_scan_inputs=2, scan_input_axes=[1, 1], scan_output_axes=[1]),
        n("CastLike", ["y_f", "k"], ["y"]),
    ]
    return oh.make_function("rrwkv", "WKV4Medium",
                            ["w", "u", "k", "v", "k_m", "v_m", "aa", "bb", "pp", "pos0"],
                            ["y", "aa_out", "bb_out", "pp_out"], nodes,
                            opset_imports=[oh.make_opsetid("", opset)],
                            attributes=["s", *PLUGIN_ATTRS],
                            attribute_protos=[oh.make_attribute("medium_decays", 0)],
                            doc_string=wkv4_medium_function.__doc__.split("\n")[0])


def wkv4_medium_schema() -> defs.OpSchema:
    """rrwkv::WKV4Medium (docs/families/rrwkv.md §2.6): WKV4 inputs plus k_m, v_m [B,Mmax,C] f32 and pos0 [B] int64;
    attributes s (required), medium_decays (default 0) and the plugin attributes."""
    return S(
        "WKV4Medium", DOMAIN, DOMAIN_VERSION,
        "WKV4 with a medium merged into the state after every token whose position closes a window "
        "((pos0[b] + t + 1) % s == 0); row r of k_m, v_m is sequence b's r-th close in this call.",
        inputs=[F("w", FLOAT), F("u", FLOAT), F("k", "T"), F("v", "T"),
                F("k_m", FLOAT), F("v_m", FLOAT),
                F("aa", FLOAT), F("bb", FLOAT), F("pp", FLOAT), F("pos0", "tensor(int64)")],
        outputs=state_outputs(),
        type_constraints=[ACT],
        attributes=[S.Attribute("s", S.AttrType.INT, "medium interval (>= 1)", required=True),
                    S.Attribute("medium_decays", oh.make_attribute("medium_decays", 0),
                                 "1: the merge decays the state by w once (docs/families/rrwkv.md §2.8.1)"),
                    *plugin_attributes()])


OP = OpDefinition(schema=wkv4_medium_schema, function=wkv4_medium_function, reference=naive_wkv4_medium,
                  torch_op=torch.ops.rrwkv.wkv4_medium.default, translation=wkv4_medium_onnx)
