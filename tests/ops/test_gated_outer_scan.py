"""rrwkv::GatedOuterScan (HGRN2, docs/families/hgrn2.md §3.4-§3.9): the per-token reference vs an independent
float64 numpy recurrence, the chunked prefill form vs the reference, split calls, the FunctionProto in stock ORT,
the dynamo export, argument checks and the gate's edge cases. The fla oracle: test_gated_outer_scan_fla.py."""
from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F_
from helpers import assert_close, assert_op_outputs_close, tolerance
from hgrn2_oracle import forget_gate, hgrn2_recurrence, log_forget_gate
from op_models import GOS_INPUTS, gated_outer_scan_inputs, run_gated_outer_scan_function

from rrwkv_trt.export.ops import PLUGIN_ATTRS, attach_functions, custom_translation_table, register_schemas
from rrwkv_trt.export.ops.gated_outer_scan import (DEFAULT_CHUNK_SIZE, chunked_gated_outer_scan, gated_outer_scan,
                                                   hgrn2_log_gate, naive_gated_outer_scan)

OP = "gated_outer_scan"
NAMES = ("y", "state")
F64 = torch.float64
SIZES = [(1, 1, 1, 1, 1), (2, 7, 3, 5, 7), (2, 63, 2, 33, 17)]  # (B, T, H, K, V)


def size_id(s) -> str:
    return "B{}T{}H{}K{}V{}".format(*s)


def args(x: dict) -> tuple:
    """The op's positional tensors (q, f, lb, v, state) from an input dict."""
    return tuple(x[n] for n in GOS_INPUTS)


def scale_of(convention: str, K: int) -> float:
    """fla weights use K^-0.5, the official HGRN2 code 1.0 (§3.3)."""
    return K ** -0.5 if convention == "fla" else 1.0


@pytest.mark.parametrize("convention", ["fla", "hg2"])
@pytest.mark.parametrize("init_state", [True, False], ids=["init", "carry"])
@pytest.mark.parametrize("lb", ["zero", "rand"], ids=lambda s: f"lb_{s}")
@pytest.mark.parametrize("size", SIZES, ids=size_id)
def test_naive_matches_numpy_oracle(size, lb, init_state, convention):
    B, T, H, K, V = size
    x = gated_outer_scan_inputs(*size, F64, seed=T + K + V, lb=lb, init_state=init_state, state_dtype=F64)
    scale = scale_of(convention, K)
    assert_op_outputs_close(OP, "oracle_fp64", hgrn2_recurrence(*args(x), scale),
                            naive_gated_outer_scan(*args(x), scale), names=NAMES)


@pytest.mark.parametrize("f_scale", [8.0, 40.0], ids=lambda s: f"f{s:g}")
def test_naive_matches_numpy_oracle_saturated_gates(f_scale):
    """Forget logits far into both tails: gates at ~0 (state wiped) and ~1 (state kept, k tiny)."""
    x = gated_outer_scan_inputs(2, 31, 2, 6, 5, F64, seed=int(f_scale), lb="mixed", state_dtype=F64,
                                f_scale=f_scale)
    assert_op_outputs_close(OP, "oracle_fp64", hgrn2_recurrence(*args(x), 0.5),
                            naive_gated_outer_scan(*args(x), 0.5), names=NAMES)


@pytest.mark.parametrize("init_state", [True, False], ids=["init", "carry"])
@pytest.mark.parametrize("T", [1, 23, 64, 130], ids=lambda t: f"T{t}")
@pytest.mark.parametrize("chunk_size", [1, 5, 64], ids=lambda c: f"chunk{c}")
def test_chunked_matches_naive_fp64(chunk_size, T, init_state):
    x = gated_outer_scan_inputs(2, T, 3, 5, 4, F64, seed=T + chunk_size, lb="mixed", init_state=init_state,
                                state_dtype=F64)
    assert_op_outputs_close(OP, "chunked_fp64", naive_gated_outer_scan(*args(x), 0.7),
                            chunked_gated_outer_scan(*args(x), 0.7, chunk_size=chunk_size), names=NAMES)


def long_sequence_inputs(dtype) -> dict[str, torch.Tensor]:
    """T = 2000 with channels that decay to ~0 per token (f = -30: any cumulative product underflows within a
    chunk), channels with gates at ~1 (f = +30, and lb = 0.999), and ordinary ones."""
    x = gated_outer_scan_inputs(1, 2000, 2, 4, 3, F64, seed=2000, lb="mixed", state_dtype=F64)
    x["f"][..., 0, 0], x["f"][..., 0, 1], x["f"][..., 1, 0] = -30.0, 30.0, -12.0
    x["lb"][1, 3] = 0.999
    return {n: t.to(dtype) for n, t in x.items()}


@pytest.mark.parametrize("chunk_size", [64, 500], ids=lambda c: f"chunk{c}")
@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["fp32", "fp64"])
def test_long_sequence_chunked_stays_finite(dtype, chunk_size):
    """§3.8: the chunked form only exponentiates G_i - G_j <= 0, so nothing under- or overflows over a long T."""
    x = long_sequence_inputs(dtype)
    o, S = chunked_gated_outer_scan(*args(x), 0.5, chunk_size=chunk_size)
    assert torch.isfinite(o).all() and torch.isfinite(S).all()
    if dtype == F64:
        assert_op_outputs_close(OP, "chunked_fp64", naive_gated_outer_scan(*args(x), 0.5), (o, S), names=NAMES)


@pytest.mark.parametrize("form", ["naive", "chunked"])
@pytest.mark.parametrize("splits", [(1,), (5,), (7, 16), (3, 4, 20, 22)], ids=lambda s: "split" + "_".join(map(str, s)))
def test_split_call_equals_one_call(splits, form):
    """Prefill split at arbitrary points (chunk size 5: also inside chunks), the state carried between calls."""
    run = naive_gated_outer_scan if form == "naive" else (lambda *a: chunked_gated_outer_scan(*a, chunk_size=5))
    x = gated_outer_scan_inputs(2, 23, 3, 5, 4, F64, seed=sum(splits), lb="rand", state_dtype=F64)
    full = run(*args(x), 0.6)
    ys, state = [], x["S0"]
    for t0, t1 in zip((0, *splits), (*splits, 23)):
        part = {n: x[n][:, t0:t1] for n in ("q", "f", "v")}
        y, state = run(part["q"], part["f"], x["lb"], part["v"], state, 0.6)
        ys.append(y)
    assert_op_outputs_close(OP, "split_call_fp64", full, (torch.cat(ys, 1), state), names=NAMES)


def test_prefill_equals_repeated_steps():
    """The custom op (chunked) over T tokens == the custom op called once per token (decode, T = 1)."""
    x = gated_outer_scan_inputs(2, 17, 2, 5, 3, F64, seed=17, lb="rand", state_dtype=F64)
    full = gated_outer_scan(*args(x), 0.4, chunk_size=8)
    ys, state = [], x["S0"]
    for t in range(17):
        y, state = gated_outer_scan(x["q"][:, t:t + 1], x["f"][:, t:t + 1], x["lb"], x["v"][:, t:t + 1], state, 0.4)
        ys.append(y)
    assert_op_outputs_close(OP, "split_call_fp64", full, (torch.cat(ys, 1), state), names=NAMES)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_custom_op_is_the_chunked_form(dtype):
    x = gated_outer_scan_inputs(2, 9, 3, 4, 5, dtype, seed=1)
    out, ref = gated_outer_scan(*args(x), 0.5, chunk_size=4), chunked_gated_outer_scan(*args(x), 0.5, 4)
    assert all(torch.equal(o, r) for o, r in zip(out, ref))
    assert (out[0].dtype, out[1].dtype) == (dtype, torch.float32)
    assert all(o.is_contiguous() for o in out)
    torch.library.opcheck(torch.ops.rrwkv.gated_outer_scan.default, (*args(x), 0.5, 4))
    assert gated_outer_scan(*args(x), 0.5)[0].shape == (2, 9, 3, 5)  # default chunk_size
    empty = gated_outer_scan(*args(x | {n: x[n][:, :0] for n in ("q", "f", "v")}), 0.5)  # T = 0: state copied
    assert empty[0].shape == (2, 0, 3, 5) and torch.equal(empty[1], x["S0"]) and empty[1] is not x["S0"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("init_state", [True, False], ids=["init", "carry"])
@pytest.mark.parametrize("lb", ["zero", "rand"], ids=lambda s: f"lb_{s}")
@pytest.mark.parametrize("size", [(1, 1, 1, 1), (3, 3, 5, 7), (2, 2, 33, 17)], ids=lambda s: "B{}H{}K{}V{}".format(*s))
@pytest.mark.parametrize("T", [1, 7, 63], ids=lambda t: f"T{t}")
def test_function_body_matches_naive(T, size, lb, init_state, dtype):
    B, H, K, V = size
    x = gated_outer_scan_inputs(B, T, H, K, V, dtype, seed=7 * T + K + B, lb=lb, init_state=init_state)
    scale = K ** -0.5
    out = run_gated_outer_scan_function(x, scale=scale)
    assert (out[0].dtype, out[1].dtype) == (x["q"].numpy().dtype, np.float32)
    key = "function_body_fp16" if dtype == torch.float16 else "function_body_fp32"
    assert_op_outputs_close(OP, key, naive_gated_outer_scan(*args(x), scale), out, names=NAMES)


def test_function_body_attributes():
    """scale reaches the body through its attribute reference; chunk_size (default 64) does not change the result;
    the plugin attributes are accepted."""
    x = gated_outer_scan_inputs(2, 13, 2, 6, 5, seed=5, lb="mixed")
    for scale in (1.0, 0.25, 6 ** -0.5):
        ref = naive_gated_outer_scan(*args(x), scale)
        for attrs in ({}, {"chunk_size": 1}, {"chunk_size": 5}, {"chunk_size": DEFAULT_CHUNK_SIZE}, PLUGIN_ATTRS):
            assert_op_outputs_close(OP, "function_body_fp32", ref,
                                    run_gated_outer_scan_function(x, scale=scale, **attrs), names=NAMES)


@pytest.mark.parametrize("lb", ["zero", "mixed"], ids=lambda s: f"lb_{s}")
def test_function_body_saturated_gates(lb):
    """Forget logits up to |f| ~ 100: ONNX's logsigmoid (no log1p) and k = 1 - exp(g) stay finite and close."""
    x = gated_outer_scan_inputs(2, 29, 2, 8, 3, seed=29, lb=lb, f_scale=40.0)
    assert_op_outputs_close(OP, "function_body_fp32", naive_gated_outer_scan(*args(x), 0.5),
                            run_gated_outer_scan_function(x, scale=0.5), names=NAMES)


class _Layer(torch.nn.Module):
    """x -> q (swish), f, v projections -> GatedOuterScan: the op inside a graph, as an HGRN2 layer uses it."""

    def __init__(self, D: int, H: int, K: int, V: int, chunk_size: int):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.H, self.K, self.V, self.scale, self.chunk_size = H, K, V, K ** -0.5, chunk_size
        self.q_proj = torch.nn.Linear(D, H * K, bias=False)
        self.f_proj = torch.nn.Linear(D, H * K, bias=False)
        self.i_proj = torch.nn.Linear(D, H * V, bias=False)
        lb = torch.rand(H, K, generator=g) * 0.9
        lb[0, 0] = 0.0
        self.register_buffer("lb", lb)

    def forward(self, x, state):
        q = F_.silu(self.q_proj(x)).unflatten(-1, (self.H, self.K))  # [B, T, H, K]
        f = self.f_proj(x).unflatten(-1, (self.H, self.K))
        v = self.i_proj(x).unflatten(-1, (self.H, self.V))  # [B, T, H, V]
        o, state = gated_outer_scan(q, f, self.lb, v, state, self.scale, self.chunk_size)
        return o.flatten(-2), state


def test_dynamo_export_one_node_then_function_runs_in_ort():
    D, H, K, V, chunk = 12, 2, 5, 3, 4
    layer = _Layer(D, H, K, V, chunk).eval()
    g = torch.Generator().manual_seed(3)
    trace = (torch.randn(2, 6, D, generator=g), torch.randn(2, H, K, V, generator=g))
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    register_schemas()
    program = torch.onnx.export(layer, trace, dynamo=True, opset_version=18, input_names=["x", "state_in"],
                                output_names=["o", "state_out"],
                                dynamic_shapes={"x": {0: batch, 1: seq}, "state": {0: batch}},
                                custom_translation_table=custom_translation_table())
    model = program.model_proto
    custom = [n for n in model.graph.node if n.domain == "rrwkv"]
    assert [n.op_type for n in custom] == ["GatedOuterScan"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in custom[0].attribute}
    assert attrs == {"scale": float(np.float32(K ** -0.5)), "chunk_size": chunk,
                     **{k: v.encode() for k, v in PLUGIN_ATTRS.items()}}

    attach_functions(model)
    onnx.checker.check_model(model, full_check=True)
    assert [(f.domain, f.name) for f in model.functions] == [("rrwkv", "GatedOuterScan")]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    inputs = (torch.randn(3, 11, D, generator=g), torch.randn(3, H, K, V, generator=g))  # other B, T than traced
    out = sess.run(None, {"x": inputs[0].numpy(), "state_in": inputs[1].numpy()})
    with torch.no_grad():
        ref = layer(*inputs)
    assert_op_outputs_close(OP, "export_fp32", ref, out, names=NAMES)


def _bad(x: dict, **changes) -> dict:
    return x | changes


BAD_ARGS = {  # id: (change to the inputs or the attributes, words the message must contain)
    "q_rank3": (lambda x: _bad(x, q=x["q"][0]), "q and f"),
    "f_shape": (lambda x: _bad(x, f=x["f"][:, :-1]), "q and f"),
    "v_length": (lambda x: _bad(x, v=x["v"][:, :-1]), "v must be"),
    "v_rank3": (lambda x: _bad(x, v=x["v"][..., 0]), "v must be"),
    "lb_shape": (lambda x: _bad(x, lb=x["lb"][:, :-1]), "lb must be"),
    "state_batch": (lambda x: _bad(x, S0=x["S0"][:1]), "state must be"),
    "state_V": (lambda x: _bad(x, S0=x["S0"][..., :-1]), "state must be"),
}
BAD_ATTRS = {"scale0": (0.0, 64), "scale_neg": (-1.0, 64), "scale_inf": (math.inf, 64), "scale_nan": (math.nan, 64),
             "chunk0": (0.5, 0)}


@pytest.mark.parametrize("case", BAD_ARGS)
def test_bad_inputs_raise_value_error_naming_the_input(case):
    change, words = BAD_ARGS[case]
    x = change(gated_outer_scan_inputs(2, 5, 3, 4, 6, seed=0))
    with pytest.raises(ValueError, match=words):
        gated_outer_scan(*args(x), 0.5)


@pytest.mark.parametrize("case", BAD_ATTRS)
def test_bad_attributes_raise_value_error(case):
    scale, chunk_size = BAD_ATTRS[case]
    x = gated_outer_scan_inputs(2, 5, 3, 4, 6, seed=0)
    with pytest.raises(ValueError, match="scale > 0 and chunk_size >= 1"):
        gated_outer_scan(*args(x), scale, chunk_size=chunk_size)


EXTREME_F = [-1e4, -100.0, -30.0, -5.0, -1e-3, 0.0, 1e-3, 5.0, 30.0, 100.0, 1e4]


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["fp32", "fp64"])
def test_zero_lower_bound_is_exactly_logsigmoid(dtype):
    g = torch.Generator().manual_seed(4)
    f = torch.cat([torch.tensor(EXTREME_F, dtype=F64), 3 * torch.randn(53, generator=g, dtype=F64)])
    f = f.reshape(2, 4, 2, 4).to(dtype)  # [B, T, H, K]
    assert torch.equal(hgrn2_log_gate(f, torch.zeros(2, 4, dtype=dtype)), F_.logsigmoid(f))
    lb = torch.tensor([[0.0, 0.3, 0.0, 0.9], [0.5, 0.0, 1e-6, 0.0]], dtype=dtype)
    gate = hgrn2_log_gate(f, lb)
    zero = (lb == 0).expand_as(f)
    assert torch.equal(gate[zero], F_.logsigmoid(f)[zero])
    assert torch.isfinite(gate).all() and (gate <= 0).all()
    if dtype == F64:  # the oracle's linear-space gate underflows to log(0) at f = -1e4 (lb = 0, checked above)
        with np.errstate(divide="ignore"):
            ref = log_forget_gate(f, lb)
        representable = np.isfinite(ref)
        assert (~representable).sum() == (f == -1e4).logical_and(zero).sum()
        assert_close("gated_outer_scan/oracle_fp64/g", ref[representable], gate.numpy()[representable],
                     *tolerance(OP, "oracle_fp64", "y"))


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["fp32", "fp64"])
def test_lower_bound_near_one_freezes_state(dtype):
    """lb -> 1 (top layers, §3.8): k = 1 - lam <= 1 - lb ~ 0, the state barely moves and nothing is NaN.

    Each step moves S by (1 - lam) (v - S) and keeps |S| <= M = max(|S0|, |v|), so over T tokens
    |S_T - S0| <= T (1 - lb) 2M; rounding (~T eps M) stays far below that for the eps chosen here."""
    T, eps = 200, (1e-5 if dtype == torch.float32 else 1e-9)
    x = gated_outer_scan_inputs(2, T, 2, 4, 3, dtype, seed=11, state_dtype=dtype, f_scale=10.0)
    x["lb"] = torch.full_like(x["lb"], 1 - eps)
    k = -torch.expm1(hgrn2_log_gate(x["f"], x["lb"]))
    assert torch.isfinite(k).all()  # k may be -1 ulp of log(lb) where (1 - lb) sigmoid(-f) is below rounding
    M = max(x["S0"].abs().max(), x["v"].abs().max())
    runs = {"naive": naive_gated_outer_scan(*args(x), 0.5),
            "chunked": chunked_gated_outer_scan(*args(x), 0.5, chunk_size=64)}
    if dtype == torch.float32:
        runs["function_body"] = tuple(torch.from_numpy(a) for a in run_gated_outer_scan_function(x, scale=0.5))
    for name, (o, S) in runs.items():
        assert torch.isfinite(o).all() and torch.isfinite(S).all(), name
        moved = (S.double() - x["S0"].double()).abs().max()
        assert 0 < moved <= T * (1 - x["lb"].double().min()) * 2 * M, f"{name}: state moved {moved:.3e}"
    if dtype == F64:
        _, one_m_lam = forget_gate(x["f"], x["lb"])
        assert_close("gated_outer_scan/oracle_fp64/k", one_m_lam, k, *tolerance(OP, "oracle_fp64", "y"))
        assert_op_outputs_close(OP, "oracle_fp64", hgrn2_recurrence(*args(x), 0.5), runs["naive"], names=NAMES)


def test_fp32_gate_is_never_positive():
    """Where lb > 0 and sigmoid(f) ~ 1, logaddexp(log lb, log1p(-lb) + logsigmoid(f)) cancels to ~0 with an error of
    either sign (f = 30, lb = 0.257 gave g = +2.98e-8), a decay above 1 that the chunked form's cumsum integrates;
    hgrn2_log_gate forms k = (1 - lb) sigmoid(-f) and g = log1p(-k) there instead."""
    lb = torch.linspace(0.01, 0.99, 99)  # [K]; about a fifth of these give g > 0 at f = 30
    assert (hgrn2_log_gate(torch.full((1, 99), 30.0), lb) <= 0).all()


def test_the_custom_op_has_gradients():
    """The model is fine-tuned as well as exported: the op differentiates through its chunked form. gradcheck needs
    lb > 0 everywhere (lb == 0 switches the gate's branch, a kink); equal to autograd through the per-token form."""
    g = torch.Generator().manual_seed(3)
    B, T, H, K, V = 2, 9, 2, 3, 4
    q, f = (torch.randn(B, T, H, K, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2))
    v = torch.randn(B, T, H, V, generator=g, dtype=torch.float64, requires_grad=True)
    state = torch.randn(B, H, K, V, generator=g, dtype=torch.float64, requires_grad=True)
    lb = (0.05 + 0.9 * torch.rand(H, K, generator=g, dtype=torch.float64)).requires_grad_()
    inputs = (q, f, lb, v, state)
    assert torch.autograd.gradcheck(lambda *x: gated_outer_scan(*x, 0.5, 4), inputs)
    grads = [torch.autograd.grad(sum(o.square().sum() for o in fn(*inputs)), inputs)
             for fn in (lambda *x: gated_outer_scan(*x, 0.5, 4), lambda *x: naive_gated_outer_scan(*x, 0.5))]
    for name, a, b in zip(GOS_INPUTS, *grads):
        assert_close(f"d/d{name}", b, a, *tolerance("gated_outer_scan", "chunked_fp64", "y"))
