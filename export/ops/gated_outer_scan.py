"""rrwkv::GatedOuterScan (docs/families/hgrn2.md §3.4-§3.7): HGRN2's gated outer-product recurrence, with the
forget gate's log-space transform inside the op and an explicit fp32 state S [B, H, K, V].

`naive_gated_outer_scan` is the per-token reference, the oracle of the CPU and CUDA kernels in
plugins/gated_outer_scan/. The torch custom op `rrwkv::gated_outer_scan` (public wrapper `gated_outer_scan`) runs
the chunked prefill form `chunked_gated_outer_scan` eagerly and becomes ONE `rrwkv::GatedOuterScan` node at export
(translation `gated_outer_scan_onnx`); `gated_outer_scan_function` builds the model-local FunctionProto.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F_
from onnx import FunctionProto, TensorProto, defs
from onnx import helper as oh
from torch import Tensor

from rrwkv_trt.core.ops import DOMAIN, DOMAIN_VERSION

from .onnx_schemas import ACT, FLOAT, PLUGIN_ATTRS, F, S, plugin_attributes, rrwkv_opset
from .registry import OpDefinition
from .wkv4 import fresh_outputs

DEFAULT_CHUNK_SIZE = 64  # §3.5: fla's chunk length
STATE_DTYPES = (torch.float32, torch.float64)


def hgrn2_log_gate(f: Tensor, lb: Tensor) -> Tensor:
    """g = log(lb + (1 - lb) sigmoid(f)), never positive (§3.2, §3.8); exactly logsigmoid(f) where lb == 0.

    Where lb > 0 the key k = 1 - e^g = (1 - lb) sigmoid(-f) is formed directly: while k < 1/2, g = log1p(-k) keeps
    the tiny k of a saturated gate to full relative precision, where logaddexp(log lb, log1p(-lb) + logsigmoid(f))
    cancels to about 0 with an error of either sign (eps * |log lb|: g > 0, a decay above 1, in fp32). Past 1/2, g
    is at most log(1/2) and the logaddexp form has nothing to cancel.
    Args: f [..., H, K] forget logits; lb [H, K] lower bound in [0, 1). Returns g [..., H, K] in f's dtype.
    """
    ls = F_.logsigmoid(f)
    k = (1 - lb) * torch.sigmoid(-f)
    log_lb = torch.log(torch.where(lb > 0, lb, 1.0))  # lb == 0 is masked below; log(0)'s -inf would give NaN grads
    bounded = torch.where(k < 0.5, torch.log1p(-k), torch.logaddexp(log_lb, torch.log1p(-lb) + ls))
    return torch.where(lb > 0, bounded, ls)


def gated_outer_step(q_t: Tensor, g_t: Tensor, v_t: Tensor, state: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """One token (§3.4): S <- exp(g) S + (1 - exp(g))^T v, then o = scale q S with the updated S.

    Args: q_t, g_t [B, H, K]; v_t [B, H, V]; state [B, H, K, V]; all in one dtype.
    Returns: o_t [B, H, V] and the new state.
    """
    state = torch.exp(g_t)[..., None] * state + (-torch.expm1(g_t))[..., None] * v_t[..., None, :]
    return scale * torch.einsum("bhk,bhkv->bhv", q_t, state), state


def naive_gated_outer_scan(q: Tensor, f: Tensor, lb: Tensor, v: Tensor, state: Tensor, scale: float
                           ) -> tuple[Tensor, Tensor]:
    """Sequential GatedOuterScan over T tokens.

    Args: q, f [B, T, H, K] (f32, f16 or f64); lb [H, K]; v [B, T, H, V]; state [B, H, K, V] (f32 or f64).
    Returns: o [B, T, H, V] in q's dtype; state' [B, H, K, V] in the state dtype. Arithmetic runs in the state
    dtype (f32 for f16 inputs, f64 when the state is f64).
    """
    dt, out_dtype = state.dtype, q.dtype
    q, f, lb, v = q.to(dt), f.to(dt), lb.to(dt), v.to(dt)
    g = hgrn2_log_gate(f, lb)
    outs = []
    for t in range(q.shape[1]):
        o_t, state = gated_outer_step(q[:, t], g[:, t], v[:, t], state, scale)
        outs.append(o_t)
    o = torch.stack(outs, dim=1) if outs else v.new_zeros(v.shape)
    return o.to(out_dtype), state


def chunked_gated_outer_scan(q: Tensor, f: Tensor, lb: Tensor, v: Tensor, state: Tensor, scale: float,
                             chunk_size: int = DEFAULT_CHUNK_SIZE) -> tuple[Tensor, Tensor]:
    """The chunked prefill form (§3.5), equal to `naive_gated_outer_scan` up to rounding.

    Within a chunk G is the cumulative log-decay from the chunk's start; only differences G_i - G_j with j <= i
    (never positive) are exponentiated, so no cumulative product can underflow or overflow over a long T.
    Args and returns as `naive_gated_outer_scan`; chunk_size >= 1 tokens per chunk.
    """
    dt, out_dtype = state.dtype, q.dtype
    q, f, lb, v = q.to(dt), f.to(dt), lb.to(dt), v.to(dt)
    g = hgrn2_log_gate(f, lb)
    outs = []
    for c0 in range(0, q.shape[1], chunk_size):
        o_c, state = _chunk(q[:, c0:c0 + chunk_size], g[:, c0:c0 + chunk_size], v[:, c0:c0 + chunk_size],
                            state, scale)
        outs.append(o_c)
    o = torch.cat(outs, dim=1) if outs else v.new_zeros(v.shape)
    return o.to(out_dtype), state


def _chunk(q: Tensor, g: Tensor, v: Tensor, state: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """One chunk of §3.5. q, g [B, C, H, K]; v [B, C, H, V]; state [B, H, K, V]."""
    G = torch.cumsum(g, dim=1)                                          # [B, C, H, K]
    k = -torch.expm1(g)
    C = q.shape[1]
    causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()  # [i, j]: j <= i
    diff = G[:, :, None] - G[:, None, :]                                # [B, i, j, H, K] = G_i - G_j
    decay = torch.exp(diff.masked_fill(~causal[None, :, :, None, None], float("-inf")))
    scores = torch.einsum("bihk,bjhk,bijhk->bijh", q, k, decay)          # Σ_d q_id k_jd e^{G_id - G_jd}
    o = torch.einsum("bihk,bhkv->bihv", q * torch.exp(G), state) + torch.einsum("bijh,bjhv->bihv", scores, v)
    G_last = G[:, -1]                                                    # [B, H, K]
    k_to_end = k * torch.exp(G_last[:, None] - G)                        # k_j e^{G_last - G_j}
    state = torch.exp(G_last)[..., None] * state + torch.einsum("bjhk,bjhv->bhkv", k_to_end, v)
    return scale * o, state


def _check_args(q: Tensor, f: Tensor, lb: Tensor, v: Tensor, state: Tensor, scale: float, chunk_size: int) -> None:
    if q.dim() != 4 or f.shape != q.shape:
        raise ValueError(f"gated_outer_scan: q and f must both be [B, T, H, K]; got q {tuple(q.shape)}, "
                         f"f {tuple(f.shape)}")
    B, T, H, K = q.shape
    if v.dim() != 4 or tuple(v.shape[:3]) != (B, T, H):
        raise ValueError(f"gated_outer_scan: v must be [B, T, H, V] = [{B}, {T}, {H}, V]; got {tuple(v.shape)}")
    if tuple(lb.shape) != (H, K):
        raise ValueError(f"gated_outer_scan: lb must be [H, K] = [{H}, {K}]; got {tuple(lb.shape)}")
    if tuple(state.shape) != (B, H, K, v.shape[3]):
        raise ValueError(f"gated_outer_scan: state must be [B, H, K, V] = [{B}, {H}, {K}, {v.shape[3]}]; "
                         f"got {tuple(state.shape)}")
    if not (scale > 0 and scale != float("inf")) or chunk_size < 1:
        raise ValueError(f"gated_outer_scan: need a finite scale > 0 and chunk_size >= 1; got scale={scale}, "
                         f"chunk_size={chunk_size}")
    if f.dtype != q.dtype or v.dtype != q.dtype or lb.dtype != state.dtype or state.dtype not in STATE_DTYPES:
        raise ValueError(f"gated_outer_scan: q, f and v must share one dtype and lb the state's, which must be "
                         f"float32 (float64 in tests); got q {q.dtype}, f {f.dtype}, v {v.dtype}, lb {lb.dtype}, "
                         f"state {state.dtype}")


@torch.library.custom_op("rrwkv::gated_outer_scan", mutates_args=())
def _gated_outer_scan_op(q: Tensor, f: Tensor, lb: Tensor, v: Tensor, state: Tensor, scale: float,
                         chunk_size: int = DEFAULT_CHUNK_SIZE) -> tuple[Tensor, Tensor]:
    _check_args(q, f, lb, v, state, scale, chunk_size)
    return fresh_outputs(chunked_gated_outer_scan(q, f, lb, v, state, scale, chunk_size), (q, f, lb, v, state))


@_gated_outer_scan_op.register_fake
def _(q, f, lb, v, state, scale, chunk_size=DEFAULT_CHUNK_SIZE):
    _check_args(q, f, lb, v, state, scale, chunk_size)
    return v.new_empty(v.shape), state.new_empty(state.shape)


def _save_inputs(ctx, inputs: tuple, output: tuple) -> None:
    ctx.save_for_backward(*inputs[:5])
    ctx.scale, ctx.chunk_size = inputs[5], inputs[6]


def _backward(ctx, grad_o: Tensor, grad_state: Tensor) -> tuple:
    """Gradients by differentiating the chunked form again (recomputed, so the forward keeps no graph): the op is a
    torch custom op, which autograd cannot see through, and the model is meant to be fine-tuned as well as exported."""
    with torch.enable_grad():
        inputs = [x.detach().requires_grad_(x.is_floating_point()) for x in ctx.saved_tensors]
        outputs = chunked_gated_outer_scan(*inputs, ctx.scale, ctx.chunk_size)
        wanted = [x for x in inputs if x.requires_grad]
        grads = iter(torch.autograd.grad(outputs, wanted, (grad_o, grad_state), allow_unused=True))
    return (*(next(grads) if x.requires_grad else None for x in inputs), None, None)


_gated_outer_scan_op.register_autograd(_backward, setup_context=_save_inputs)


def gated_outer_scan(q: Tensor, f: Tensor, lb: Tensor, v: Tensor, state: Tensor, scale: float,
                     chunk_size: int = DEFAULT_CHUNK_SIZE) -> tuple[Tensor, Tensor]:
    """torch.ops.rrwkv.gated_outer_scan: the chunked form eagerly, ONE `rrwkv::GatedOuterScan` node at export.

    Args: q [B, T, H, K] (swish applied), f [B, T, H, K] (raw forget logits), v [B, T, H, V], all f32/f16;
      lb [H, K] f32; state [B, H, K, V] f32; scale and chunk_size become node attributes.
    Returns: o [B, T, H, V] in q's dtype; state' [B, H, K, V] f32 (new tensors).
    """
    return torch.ops.rrwkv.gated_outer_scan(q, f, lb, v, state, float(scale), int(chunk_size))


def gated_outer_scan_onnx(q, f, lb, v, state, scale: float, chunk_size: int = DEFAULT_CHUNK_SIZE):
    """custom_translation_table entry: torch.ops.rrwkv.gated_outer_scan -> one rrwkv::GatedOuterScan node."""
    return rrwkv_opset().GatedOuterScan(q, f, lb, v, state, scale=float(scale), chunk_size=int(chunk_size),
                                        **PLUGIN_ATTRS)


def _step_graph():
    """Scan body, one token (all f32). Carried: S [B, H, K, V]. Scanned: q_t, f_t [B, H, K], v_t [B, H, V].
    Outer scope: lb_pos, log_lb, one_m_lb, log1m_lb [H, K], scale_f, one, half, zero_f, ax_last, ax2."""
    n = oh.make_node
    nodes = [
        # logsigmoid(f) = min(f, 0) - log(1 + exp(-|f|)); ONNX has no log1p (absolute error <= 1 fp32 ulp of 1)
        n("Min", ["f_t", "zero_f"], ["f_neg"]), n("Abs", ["f_t"], ["f_abs"]), n("Neg", ["f_abs"], ["f_nabs"]),
        n("Exp", ["f_nabs"], ["f_e"]), n("Add", ["one", "f_e"], ["f_1e"]), n("Log", ["f_1e"], ["f_sp"]),
        n("Sub", ["f_neg", "f_sp"], ["ls"]),
        # where lb > 0: k = (1 - lb) sigmoid(-f); g = log(1 - k) while k < 1/2 (never positive), else
        # logaddexp(log lb, log(1 - lb) + ls) (hgrn2_log_gate says why); where lb == 0: ls
        n("Neg", ["f_t"], ["f_m"]), n("Sigmoid", ["f_m"], ["sig_m"]), n("Mul", ["one_m_lb", "sig_m"], ["k_lb"]),
        n("Sub", ["one", "k_lb"], ["lam_lb"]), n("Log", ["lam_lb"], ["g_small"]),
        n("Less", ["k_lb", "half"], ["k_small"]),
        n("Add", ["log1m_lb", "ls"], ["y_lb"]), n("Max", ["log_lb", "y_lb"], ["m_lb"]),
        n("Sub", ["log_lb", "y_lb"], ["d_lb"]), n("Abs", ["d_lb"], ["d_abs"]), n("Neg", ["d_abs"], ["d_nabs"]),
        n("Exp", ["d_nabs"], ["d_e"]), n("Add", ["one", "d_e"], ["d_1e"]), n("Log", ["d_1e"], ["d_sp"]),
        n("Add", ["m_lb", "d_sp"], ["g_big"]), n("Where", ["k_small", "g_small", "g_big"], ["g_lb"]),
        n("Where", ["lb_pos", "g_lb", "ls"], ["g"]),
        # S <- a S + k^T v with a = exp(g), k = 1 - a; o = scale q S
        n("Exp", ["g"], ["a"]), n("Sub", ["one", "a"], ["k"]),
        n("Unsqueeze", ["a", "ax_last"], ["a_c"]), n("Mul", ["a_c", "S_in"], ["S_dec"]),
        n("Unsqueeze", ["k", "ax_last"], ["k_c"]), n("Unsqueeze", ["v_t", "ax2"], ["v_r"]),
        n("Mul", ["k_c", "v_r"], ["kv"]), n("Add", ["S_dec", "kv"], ["S_next"]),
        n("Unsqueeze", ["q_t", "ax2"], ["q_r"]), n("MatMul", ["q_r", "S_next"], ["qS"]),
        n("Squeeze", ["qS", "ax2"], ["qS_v"]), n("Mul", ["qS_v", "scale_f"], ["o_t"]),
    ]
    f32 = lambda name: oh.make_tensor_value_info(name, TensorProto.FLOAT, None)  # noqa: E731
    return oh.make_graph(nodes, "gated_outer_step", [f32("S_in"), f32("q_t"), f32("f_t"), f32("v_t")],
                         [f32("S_next"), f32("o_t")])


def gated_outer_scan_function(opset: int = 18) -> FunctionProto:
    """rrwkv::GatedOuterScan as a model-local FunctionProto in standard ONNX ops (stock ONNX Runtime runs it).

    q, f, v are cast to f32; the gate's lower-bound terms are computed once from lb; a Scan over axis 1 (T) carries
    S [B, H, K, V] and runs the per-token recurrence (§3.4; chunk_size is declared and unused: it does not change
    the result); o is cast back to q's dtype. `scale` reaches the body through an attribute reference.
    """
    if opset < 13:
        raise ValueError(f"GatedOuterScan's function body needs default-domain opset >= 13 (Unsqueeze with axes "
                         f"as an input); the model imports {opset}")
    n = oh.make_node
    const = lambda name, dtype, dims, vals: n("Constant", [], [name], value=oh.make_tensor(name, dtype, dims, vals))  # noqa: E731,E501
    scale = n("Constant", [], ["scale_f"])
    scale.attribute.append(oh.make_attribute_ref("value_float", oh.AttributeProto.FLOAT, ref_attr_name="scale"))
    nodes = [
        scale, const("one", TensorProto.FLOAT, [], [1.0]), const("zero_f", TensorProto.FLOAT, [], [0.0]),
        const("half", TensorProto.FLOAT, [], [0.5]),
        const("ax_last", TensorProto.INT64, [1], [-1]), const("ax2", TensorProto.INT64, [1], [2]),
        n("Greater", ["lb", "zero_f"], ["lb_pos"]), n("Log", ["lb"], ["log_lb"]),
        n("Sub", ["one", "lb"], ["one_m_lb"]), n("Log", ["one_m_lb"], ["log1m_lb"]),
        n("Cast", ["q"], ["q_f"], to=TensorProto.FLOAT), n("Cast", ["f"], ["f_f"], to=TensorProto.FLOAT),
        n("Cast", ["v"], ["v_f"], to=TensorProto.FLOAT),
        n("Scan", ["S0", "q_f", "f_f", "v_f"], ["S_out", "o_f"], body=_step_graph(),
          num_scan_inputs=3, scan_input_axes=[1, 1, 1], scan_output_axes=[1]),
        n("CastLike", ["o_f", "q"], ["o"]),
    ]
    return oh.make_function(DOMAIN, "GatedOuterScan", ["q", "f", "lb", "v", "S0"], ["o", "S_out"], nodes,
                            opset_imports=[oh.make_opsetid("", opset)],
                            attributes=["scale", *PLUGIN_ATTRS],
                            attribute_protos=[oh.make_attribute("chunk_size", DEFAULT_CHUNK_SIZE)],
                            doc_string=gated_outer_scan_function.__doc__.split("\n")[0])


def gated_outer_scan_schema() -> defs.OpSchema:
    """rrwkv::GatedOuterScan (docs/families/hgrn2.md §3.7): q, f [B,T,H,K], lb [H,K] f32, v [B,T,H,V],
    S0 [B,H,K,V] f32 -> o [B,T,H,V], S_out [B,H,K,V] f32; attributes scale (required), chunk_size (default 64)."""
    return S(
        "GatedOuterScan", DOMAIN, DOMAIN_VERSION,
        "HGRN2's gated outer-product recurrence over T tokens with an explicit fp32 state [B, H, K, V]; the forget "
        "gate's log-space transform (logsigmoid, lower bound) is inside the op.",
        inputs=[F("q", "T"), F("f", "T"), F("lb", FLOAT), F("v", "T"), F("S0", FLOAT)],
        outputs=[F("o", "T"), F("S_out", FLOAT)],
        type_constraints=[ACT],
        attributes=[S.Attribute("scale", S.AttrType.FLOAT, "query scale (> 0): K^-0.5 for fla weights, 1.0 for "
                                "the official HGRN2 code", required=True),
                    S.Attribute("chunk_size", oh.make_attribute("chunk_size", DEFAULT_CHUNK_SIZE),
                                "chunk length of the chunked prefill form (>= 1); does not change the result"),
                    *plugin_attributes()])


OP = OpDefinition(schema=gated_outer_scan_schema, function=gated_outer_scan_function,
                  reference=naive_gated_outer_scan, torch_op=torch.ops.rrwkv.gated_outer_scan.default,
                  translation=gated_outer_scan_onnx)
