"""rrwkv::ContinuousGaussianAttention (∞-former, docs/families/inftyformer.md §4.1, §4.8.1-§4.10): the closed-form r
against numerical quadrature and against [INF]'s ContinuousSoftmax rebuilt from its formulas, the reference against an
independent float64 numpy implementation, the FunctionProto in stock ORT (fp32, fp16, odd sizes, saturated rows),
the dynamo export (one node), the custom op and its argument checks."""
from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from cga_oracle import (CGA_INPUTS, GPT2_SIGMAS, SORTING_SIGMAS, cga_inputs, cga_numpy, continuous_softmax_r,
                        quadrature_overlap, run_cga_function)
from helpers import assert_close, tolerance

from rrwkv_trt.export.ops import PLUGIN_ATTRS, attach_functions, custom_translation_table, register_schemas
from rrwkv_trt.export.ops.continuous_gaussian_attention import (continuous_gaussian_attention, gaussian_overlap,
                                                                naive_continuous_gaussian_attention)

OP = "continuous_gaussian_attention"
NAMES = ("ctx", "mu", "sigma2")
F64 = torch.float64
SETUPS = {"sorting": (SORTING_SIGMAS, 1e-6), "gpt2": (GPT2_SIGMAS, 1e-4)}  # basis widths, sigma2_min (§4.1)
SIZES = [(1, 1, 1, 1, 1), (2, 3, 7, 33, 5), (2, 2, 63, 512, 50), (1, 2, 5, 500, 64)]  # (B, H, T, N, d)


def size_id(s) -> str:
    return "B{}H{}T{}N{}d{}".format(*s)


def args(x: dict) -> tuple:
    return tuple(x[n] for n in CGA_INPUTS)


def assert_outputs_close(key: str, ref, out) -> None:
    assert len(ref) == len(out) == 3
    for name, r, o in zip(NAMES, ref, out):
        assert_close(f"{OP}/{key}/{name}", r, o, *tolerance(OP, key, name))


def reference64(x: dict, sigma2_min: float, scale: float):
    """The reference in float64 from x's own values (ctx cast to q's dtype)."""
    p = {n: x[n].double() for n in ("w_mu", "w_sigma", "basis_mu", "basis_sigma")}
    return naive_continuous_gaussian_attention(x["q"], x["K"], x["V"], p["w_mu"], p["w_sigma"], p["basis_mu"],
                                               p["basis_sigma"], sigma2_min, scale)


@pytest.mark.parametrize("setup", SETUPS)
def test_closed_form_matches_quadrature(setup):
    """r_j = N(mu; mu_j, sigma_j² + sigma²) equals ∫ N(t; mu, sigma²) psi_j(t) dt (identity 2 of docs/onnx.md §0.4),
    float64, for mu across [0, 1] and beyond the basis, sigma² from the floor to 1, every basis function."""
    sigmas, floor = SETUPS[setup]
    x = cga_inputs(1, 1, 1, 24, 1, F64, sigmas=sigmas, param_dtype=F64)
    bm, bs = x["basis_mu"], x["basis_sigma"]
    atol, rtol = tolerance(OP, "quadrature_fp64", "r")
    for mu in (0.0, 0.013, 0.37, 0.5, 0.999, 1.2):
        for sigma2 in (floor, 3e-4, 0.01, 0.2, 1.0):
            r = gaussian_overlap(torch.tensor(mu, dtype=F64), torch.tensor(sigma2, dtype=F64), bm, bs).numpy()
            quad = [quadrature_overlap(mu, sigma2, float(m), float(s)) for m, s in zip(bm, bs)]
            significant = r > 1e-250  # far tails: both sides are ~0 (the quadrature returns exactly 0)
            assert_close(f"{OP}/quadrature/mu{mu}/s2{sigma2}", np.array(quad)[significant], r[significant], atol, rtol)


@pytest.mark.parametrize("setup", SETUPS)
def test_closed_form_matches_rebuilt_continuous_softmax(setup):
    """[INF]'s route through theta = (mu / sigma², -1 / (2 sigma²)) and back gives the same r in float64 (§4.9: the op
    itself never forms theta)."""
    sigmas, floor = SETUPS[setup]
    x = cga_inputs(2, 3, 40, 64, 8, F64, seed=3, sigmas=sigmas, param_dtype=F64, w_scale=10.0)
    _, mu, sigma2 = reference64(x, floor, 8 ** -0.5)
    mu, sigma2 = mu.reshape(-1), sigma2.reshape(-1)
    ours = gaussian_overlap(mu, sigma2, x["basis_mu"], x["basis_sigma"])
    theirs = continuous_softmax_r(mu.numpy(), sigma2.numpy(), x["basis_mu"].numpy(), x["basis_sigma"].numpy())
    assert_close(f"{OP}/continuous_softmax", theirs, ours, *tolerance(OP, "continuous_softmax_fp64", "r"))


@pytest.mark.parametrize("w_scale", [1.0, 30.0], ids=lambda w: f"w{w:g}")
@pytest.mark.parametrize("setup", SETUPS)
@pytest.mark.parametrize("size", SIZES, ids=size_id)
def test_naive_matches_numpy_oracle(size, setup, w_scale):
    sigmas, floor = SETUPS[setup]
    B, H, T, N, d = size
    x = cga_inputs(*size, F64, seed=T + N + d, sigmas=sigmas, param_dtype=F64, w_scale=w_scale)
    assert_outputs_close("oracle_fp64", cga_numpy(x, floor, d ** -0.5),
                         naive_continuous_gaussian_attention(*args(x), floor, d ** -0.5))


def test_sigma2_floor_and_stable_softplus():
    """sigma2 = max(softplus(x), sigma2_min): the floor holds where softplus underflows, softplus(x) = x for huge x
    (no overflow), and mu saturates to exactly 0 / 1 without NaN; in float64 and float32."""
    x = cga_inputs(1, 1, 4, 3, 1, F64, param_dtype=F64)
    x["q"][:] = 1.0
    x["K"][..., 0] = torch.tensor([1.0, 0.0, 0.0])  # s = (scale, 0, 0): x_mu = w_mu[0] s0, x_sigma = w_sigma[0] s0
    for dt in (F64, torch.float32):
        for w, want_sigma2 in ((-1e4, 1e-6), (-30.0, 1e-6), (0.0, math.log(2)), (30.0, 30.0), (1e4, 1e4)):
            p = {n: x[n].to(dt) for n in ("w_mu", "w_sigma", "basis_mu", "basis_sigma")}
            p["w_mu"][0], p["w_sigma"][0] = w, w
            _, mu, sigma2 = naive_continuous_gaussian_attention(x["q"].to(dt), x["K"].to(dt), x["V"].to(dt),
                                                                 *p.values(), 1e-6, 1.0)
            assert torch.isfinite(mu).all() and torch.isfinite(sigma2).all()
            np.testing.assert_allclose(sigma2.double().numpy(), want_sigma2, rtol=1e-6)
            np.testing.assert_allclose(mu.double().numpy(), 1 / (1 + math.exp(-max(min(w, 700), -700))), atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("setup", SETUPS)
@pytest.mark.parametrize("size", [(1, 1, 1, 1, 1), (2, 3, 7, 33, 5), (2, 2, 63, 512, 50), (3, 1, 1, 500, 64)],
                         ids=size_id)
def test_function_body_matches_naive(size, setup, dtype):
    sigmas, floor = SETUPS[setup]
    B, H, T, N, d = size
    x = cga_inputs(*size, dtype, seed=7 * T + N + d, sigmas=sigmas)
    out = run_cga_function(x, sigma2_min=floor, scale=d ** -0.5)
    assert [o.dtype for o in out] == [x["q"].numpy().dtype, np.float32, np.float32]
    assert [o.shape for o in out] == [(B, H, T, d), (B, H, T), (B, H, T)]
    key = "function_body_fp16" if dtype == torch.float16 else "function_body_fp32"
    assert_outputs_close(key, reference64(x, floor, d ** -0.5), out)


@pytest.mark.parametrize("w_scale", [30.0, 100.0], ids=lambda w: f"w{w:g}")
def test_function_body_saturated_rows(w_scale):
    """Large w_mu, w_sigma: mu at 0 or 1, sigma2 at its floor or large (softplus past 20: max(x, 0) + log1p(...)),
    the r vector a narrow peak; the body stays finite and within tolerance."""
    x = cga_inputs(2, 2, 31, 512, 64, seed=int(w_scale), sigmas=GPT2_SIGMAS, w_scale=w_scale)
    out = run_cga_function(x, sigma2_min=1e-4, scale=0.125)
    assert all(np.isfinite(o).all() for o in out)
    assert_outputs_close("saturated_fp32", reference64(x, 1e-4, 0.125), out)


def test_function_body_softplus_small_values_keep_relative_precision():
    """Where softplus(x) < 1e-4 (x < -9.2) log(1 + e) in fp32 would lose ~1e-3 relative; the body's log1p form keeps
    sigma2 to fp32 precision above a tiny floor."""
    x = cga_inputs(1, 1, 6, 2, 1, seed=0)
    x["q"][:] = 1.0
    x["K"][..., 0] = torch.tensor([1.0, 0.0])
    x["w_sigma"][:] = 0.0
    out = []
    for w in (-9.5, -12.0, -14.0, -17.0, -25.0, -40.0):
        x["w_sigma"][0] = w
        out.append(run_cga_function(x, sigma2_min=1e-30, scale=1.0)[2][0, 0, 0])
        want = math.log1p(math.exp(w))
        assert abs(out[-1] - want) <= 2e-7 * want, (w, out[-1], want)


def test_function_body_attributes():
    """sigma2_min and scale reach the body through attribute references; the plugin attributes are accepted."""
    x = cga_inputs(2, 2, 9, 40, 6, seed=5, w_scale=10.0)
    for sigma2_min in (1e-6, 1e-4, 0.5):
        for scale in (1.0, 6 ** -0.5):
            ref = reference64(x, sigma2_min, scale)
            for attrs in ({}, PLUGIN_ATTRS):
                assert_outputs_close("function_body_fp32", ref,
                                     run_cga_function(x, sigma2_min=sigma2_min, scale=scale, **attrs))
    assert (run_cga_function(x, sigma2_min=0.5, scale=1.0)[2] >= 0.5).all()


def test_function_body_zero_queries():
    x = cga_inputs(2, 3, 0, 10, 4, seed=0)
    out = run_cga_function(x, sigma2_min=1e-6, scale=0.5)
    assert [o.shape for o in out] == [(2, 3, 0, 4), (2, 3, 0), (2, 3, 0)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_custom_op_is_the_reference(dtype):
    x = cga_inputs(2, 3, 5, 17, 4, dtype, seed=1)
    out = continuous_gaussian_attention(*args(x), 1e-4, 0.5)
    ref = naive_continuous_gaussian_attention(*args(x), 1e-4, 0.5)
    assert all(torch.equal(o, r) for o, r in zip(out, ref))
    assert [o.dtype for o in out] == [dtype, torch.float32, torch.float32]
    torch.library.opcheck(torch.ops.rrwkv.continuous_gaussian_attention.default, (*args(x), 1e-4, 0.5))
    empty = continuous_gaussian_attention(*args(x | {"q": x["q"][:, :, :0]}), 1e-4, 0.5)
    assert [tuple(o.shape) for o in empty] == [(2, 3, 0, 4), (2, 3, 0), (2, 3, 0)]


class _LongTermRead(torch.nn.Module):
    """q [B, T, e] -> heads -> ContinuousGaussianAttention against fixed K, V -> concat heads -> W^O: the LTM read of
    §4.1 with the op inside a graph."""

    def __init__(self, e: int, H: int, N: int):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.H, self.d = H, e // H
        self.w_q = torch.nn.Linear(e, e, bias=False)
        self.attn_out = torch.nn.Linear(e, e, bias=False)
        x = cga_inputs(1, H, 1, N, self.d, seed=1)
        self.register_buffer("K", torch.randn(1, H, N, self.d, generator=g))
        self.register_buffer("V", torch.randn(1, H, N, self.d, generator=g))
        for n in ("w_mu", "w_sigma", "basis_mu", "basis_sigma"):
            self.register_buffer(n, x[n])

    def forward(self, x):
        B, T, _ = x.shape
        q = self.w_q(x).unflatten(-1, (self.H, self.d)).transpose(1, 2)  # [B, H, T, d]
        K, V = self.K.expand(B, -1, -1, -1), self.V.expand(B, -1, -1, -1)
        ctx, mu, sigma2 = continuous_gaussian_attention(q, K, V, self.w_mu, self.w_sigma, self.basis_mu,
                                                        self.basis_sigma, 1e-4, self.d ** -0.5)
        return self.attn_out(ctx.transpose(1, 2).flatten(-2)), mu, sigma2


def test_dynamo_export_one_node_then_function_runs_in_ort():
    e, H, N = 12, 2, 20
    module = _LongTermRead(e, H, N).eval()
    g = torch.Generator().manual_seed(3)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    register_schemas()
    program = torch.onnx.export(module, (torch.randn(2, 6, e, generator=g),), dynamo=True, opset_version=18,
                                input_names=["x"], output_names=["out", "mu", "sigma2"],
                                dynamic_shapes={"x": {0: batch, 1: seq}},
                                custom_translation_table=custom_translation_table())
    model = program.model_proto
    custom = [n for n in model.graph.node if n.domain == "rrwkv"]
    assert [n.op_type for n in custom] == ["ContinuousGaussianAttention"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in custom[0].attribute}
    assert attrs == {"sigma2_min": float(np.float32(1e-4)), "scale": float(np.float32(6 ** -0.5)),
                     **{k: v.encode() for k, v in PLUGIN_ATTRS.items()}}
    attach_functions(model)
    onnx.checker.check_model(model, full_check=True)
    assert [(f.domain, f.name) for f in model.functions] == [("rrwkv", "ContinuousGaussianAttention")]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 11, e, generator=g)  # other B, T than traced
    out = sess.run(None, {"x": x.numpy()})
    with torch.no_grad():
        ref = module(x)
    assert_outputs_close("export_fp32", ref, out)


BAD_ARGS = {  # id: (change to the inputs, words the message must contain)
    "q_rank3": (lambda x: x | {"q": x["q"][0]}, "q must be"),
    "K_d": (lambda x: x | {"K": x["K"][..., :-1]}, "K and V"),
    "V_N": (lambda x: x | {"V": x["V"][:, :, :-1]}, "K and V"),
    "K_heads": (lambda x: x | {"K": x["K"][:, :1]}, "K and V"),
    "w_mu_N": (lambda x: x | {"w_mu": x["w_mu"][:-1]}, "w_mu must be"),
    "basis_sigma_N": (lambda x: x | {"basis_sigma": x["basis_sigma"][None]}, "basis_sigma must be"),
    "V_dtype": (lambda x: x | {"V": x["V"].half()}, "share one dtype"),
    "w_sigma_half": (lambda x: x | {"w_sigma": x["w_sigma"].half()}, "share one dtype"),
}


@pytest.mark.parametrize("case", BAD_ARGS)
def test_bad_inputs_raise_value_error_naming_the_input(case):
    change, words = BAD_ARGS[case]
    x = change(cga_inputs(2, 3, 5, 7, 4, seed=0))
    with pytest.raises(ValueError, match=words):
        continuous_gaussian_attention(*args(x), 1e-4, 0.5)


@pytest.mark.parametrize("sigma2_min,scale,words", [(0.0, 0.5, "sigma2_min"), (-1e-4, 0.5, "sigma2_min"),
                                                    (math.nan, 0.5, "sigma2_min"), (1e-4, 0.0, "scale"),
                                                    (1e-4, math.inf, "scale"), (1e-4, -1.0, "scale")])
def test_bad_attributes_raise_value_error(sigma2_min, scale, words):
    x = cga_inputs(2, 3, 5, 7, 4, seed=0)
    with pytest.raises(ValueError, match=f"{words} must be finite and > 0"):
        continuous_gaussian_attention(*args(x), sigma2_min, scale)
