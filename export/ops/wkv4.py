"""rrwkv::WKV4 (docs/families/rwkv4.md §1.3, §1.8): the RWKV-4 WKV recurrence with explicit (aa, bb, pp) state.

The pure-PyTorch reference `naive_wkv4` is the oracle of the CPU and CUDA kernels in plugins/wkv4/,
and backs the torch custom op `rrwkv::wkv4` (public wrapper `wkv4`) that the exporter turns into ONE
`rrwkv::WKV4` node (translation `wkv4_onnx`). `wkv4_function` builds the model-local FunctionProto
that computes the op with standard ONNX ops.
"""
from __future__ import annotations

import torch
from onnx import FunctionProto, TensorProto, defs
from onnx import helper as oh
from torch import Tensor

from rrwkv_trt.core.ops import DOMAIN, DOMAIN_VERSION

from .onnx_schemas import ACT, FLOAT, PLUGIN_ATTRS, F, S, plugin_attributes, rrwkv_opset, state_outputs
from .registry import OpDefinition


def wkv4_step(w: Tensor, u: Tensor, k_t: Tensor, v_t: Tensor, aa: Tensor, bb: Tensor, pp: Tensor
              ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One token of the numerically stable recurrence, exactly as [PIP] att_one does it.

    Args: w, u [C] (w already -exp(time_decay)); k_t, v_t, aa, bb, pp [B, C], all in the compute dtype.
    Returns: wkv_t [B, C] and the new aa, bb, pp [B, C].
    """
    ww = u + k_t
    p = torch.maximum(pp, ww)
    e1 = torch.exp(pp - p)
    e2 = torch.exp(ww - p)
    wkv = (e1 * aa + e2 * v_t) / (e1 * bb + e2)
    ww = w + pp
    p = torch.maximum(ww, k_t)
    e1 = torch.exp(ww - p)
    e2 = torch.exp(k_t - p)
    return wkv, e1 * aa + e2 * v_t, e1 * bb + e2, p


def naive_wkv4(w: Tensor, u: Tensor, k: Tensor, v: Tensor, aa: Tensor, bb: Tensor, pp: Tensor
               ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Sequential WKV over T tokens.

    Args: w, u [C] f32; k, v [B, T, C] (f32, f16 or f64); aa, bb, pp [B, C] (f32 or f64).
    Returns: y [B, T, C] in k's dtype; aa', bb', pp' [B, C] in the state dtype.
    Arithmetic runs in the state dtype (f32 for f16 inputs, f64 when the state is f64).
    """
    dt, out_dtype = aa.dtype, k.dtype
    w, u, k, v = w.to(dt), u.to(dt), k.to(dt), v.to(dt)
    ys = []
    for t in range(k.shape[1]):
        y_t, aa, bb, pp = wkv4_step(w, u, k[:, t], v[:, t], aa, bb, pp)
        ys.append(y_t)
    y = torch.stack(ys, dim=1) if ys else k.new_zeros(k.shape)
    return y.to(out_dtype), aa, bb, pp


def _check_wkv4_args(w: Tensor, u: Tensor, k: Tensor, v: Tensor, aa: Tensor, bb: Tensor, pp: Tensor) -> None:
    if k.dim() != 3 or v.shape != k.shape:
        raise ValueError(f"wkv4: k and v must both be [B, T, C]; got k {tuple(k.shape)}, v {tuple(v.shape)}")
    B, _, C = k.shape
    for name, x in (("w", w), ("u", u)):
        if tuple(x.shape) != (C,):
            raise ValueError(f"wkv4: {name} must be [C] = [{C}]; got {tuple(x.shape)}")
    for name, x in (("aa", aa), ("bb", bb), ("pp", pp)):
        if tuple(x.shape) != (B, C):
            raise ValueError(f"wkv4: {name} must be [B, C] = [{B}, {C}]; got {tuple(x.shape)}")


def fresh_outputs(outs: tuple[Tensor, ...], inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Contiguous outputs that share no storage with the inputs (custom_op forbids aliasing, e.g. at T=0)."""
    ptrs = {x.untyped_storage().data_ptr() for x in inputs}
    return tuple(o.clone(memory_format=torch.contiguous_format) if o.untyped_storage().data_ptr() in ptrs
                 else o.contiguous() for o in outs)


@torch.library.custom_op("rrwkv::wkv4", mutates_args=())
def _wkv4_op(w: Tensor, u: Tensor, k: Tensor, v: Tensor, aa: Tensor, bb: Tensor, pp: Tensor
             ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    _check_wkv4_args(w, u, k, v, aa, bb, pp)
    return fresh_outputs(naive_wkv4(w, u, k, v, aa, bb, pp), (w, u, k, v, aa, bb, pp))


@_wkv4_op.register_fake
def _(w, u, k, v, aa, bb, pp):
    _check_wkv4_args(w, u, k, v, aa, bb, pp)
    return k.new_empty(k.shape), aa.new_empty(aa.shape), bb.new_empty(bb.shape), pp.new_empty(pp.shape)


def wkv4(w: Tensor, u: Tensor, k: Tensor, v: Tensor, aa: Tensor, bb: Tensor, pp: Tensor
         ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """torch.ops.rrwkv.wkv4: `naive_wkv4` eagerly, ONE `rrwkv::WKV4` node under torch.onnx.export(dynamo=True).

    Args: w, u [C] f32 (w = -exp(time_decay)); k, v [B, T, C] f32/f16; aa, bb, pp [B, C] f32.
    Returns: y [B, T, C] in k's dtype; aa', bb', pp' [B, C] f32 (new tensors).
    """
    return torch.ops.rrwkv.wkv4(w, u, k, v, aa, bb, pp)


def wkv4_onnx(w, u, k, v, aa, bb, pp):
    """custom_translation_table entry: torch.ops.rrwkv.wkv4 -> one rrwkv::WKV4 node with the plugin attributes."""
    return rrwkv_opset().WKV4(w, u, k, v, aa, bb, pp, **PLUGIN_ATTRS)


def wkv4_step_nodes(aa: str, bb: str, pp: str, k_t: str, v_t: str, y_t: str,
                    aa_next: str, bb_next: str, pp_next: str, w: str = "w", u: str = "u") -> list:
    """Standard-ONNX nodes of `wkv4_step` (all f32, [B, C]); names of intermediates are prefixed "s_"."""
    n = oh.make_node
    return [
        n("Add", [u, k_t], ["s_ww"]), n("Max", [pp, "s_ww"], ["s_p"]),
        n("Sub", [pp, "s_p"], ["s_d1"]), n("Exp", ["s_d1"], ["s_e1"]),
        n("Sub", ["s_ww", "s_p"], ["s_d2"]), n("Exp", ["s_d2"], ["s_e2"]),
        n("Mul", ["s_e1", aa], ["s_a1"]), n("Mul", ["s_e2", v_t], ["s_a2"]), n("Add", ["s_a1", "s_a2"], ["s_num"]),
        n("Mul", ["s_e1", bb], ["s_b1"]), n("Add", ["s_b1", "s_e2"], ["s_den"]),
        n("Div", ["s_num", "s_den"], [y_t]),
        n("Add", [w, pp], ["s_ww2"]), n("Max", ["s_ww2", k_t], [pp_next]),
        n("Sub", ["s_ww2", pp_next], ["s_d3"]), n("Exp", ["s_d3"], ["s_f1"]),
        n("Sub", [k_t, pp_next], ["s_d4"]), n("Exp", ["s_d4"], ["s_f2"]),
        n("Mul", ["s_f1", aa], ["s_a3"]), n("Mul", ["s_f2", v_t], ["s_a4"]), n("Add", ["s_a3", "s_a4"], [aa_next]),
        n("Mul", ["s_f1", bb], ["s_b3"]), n("Add", ["s_b3", "s_f2"], [bb_next]),
    ]


def wkv4_function(opset: int = 18) -> FunctionProto:
    """rrwkv::WKV4 as a model-local FunctionProto in standard ONNX ops (stock ONNX Runtime runs it).

    k, v are cast to f32, a Scan over axis 1 (T) carries (aa, bb, pp) [B, C], w and u come from the
    outer scope, and y [B, T, C] is cast back to k's dtype (CastLike). Attributes: plugin_namespace,
    plugin_version (declared, unused by the body). `opset` is the default-domain version it imports.
    """
    vi = lambda name: oh.make_tensor_value_info(name, TensorProto.FLOAT, None)  # noqa: E731
    step = oh.make_graph(
        wkv4_step_nodes("aa_in", "bb_in", "pp_in", "k_t", "v_t", "y_t", "aa_next", "bb_next", "pp_next"),
        "wkv4_step",
        [vi("aa_in"), vi("bb_in"), vi("pp_in"), vi("k_t"), vi("v_t")],  # carried state, then scan slices
        [vi("aa_next"), vi("bb_next"), vi("pp_next"), vi("y_t")])       # carried state, then scan outputs
    n = oh.make_node
    nodes = [
        n("Cast", ["k"], ["k_f"], to=TensorProto.FLOAT), n("Cast", ["v"], ["v_f"], to=TensorProto.FLOAT),
        n("Scan", ["aa", "bb", "pp", "k_f", "v_f"], ["aa_out", "bb_out", "pp_out", "y_f"], body=step,
          num_scan_inputs=2, scan_input_axes=[1, 1], scan_output_axes=[1]),
        n("CastLike", ["y_f", "k"], ["y"]),
    ]
    return oh.make_function("rrwkv", "WKV4", ["w", "u", "k", "v", "aa", "bb", "pp"],
                            ["y", "aa_out", "bb_out", "pp_out"], nodes,
                            opset_imports=[oh.make_opsetid("", opset)],
                            attributes=[*PLUGIN_ATTRS],
                            doc_string=wkv4_function.__doc__.split("\n")[0])


def wkv4_schema() -> defs.OpSchema:
    """rrwkv::WKV4 (docs/families/rwkv4.md §1.8): w, u [C]; k, v [B,T,C]; aa, bb, pp [B,C] -> y [B,T,C],
    state [B,C]."""
    return S(
        "WKV4", DOMAIN, DOMAIN_VERSION,
        "RWKV-4 WKV recurrence over T tokens with explicit fp32 (aa, bb, pp) state.",
        inputs=[F("w", FLOAT), F("u", FLOAT), F("k", "T"), F("v", "T"),
                F("aa", FLOAT), F("bb", FLOAT), F("pp", FLOAT)],
        outputs=state_outputs(),
        type_constraints=[ACT],
        attributes=plugin_attributes())


OP = OpDefinition(schema=wkv4_schema, function=wkv4_function, reference=naive_wkv4,
                  torch_op=torch.ops.rrwkv.wkv4.default, translation=wkv4_onnx)
