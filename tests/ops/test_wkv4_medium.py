"""rrwkv::WKV4Medium: identity with WKV4, merge positions vs a linear-space oracle, split calls,
FunctionProto in stock ORT (several s, per-batch pos0), dynamo export."""
from __future__ import annotations

import math

import onnx
import onnxruntime as ort
import pytest
import torch
from helpers import assert_op_outputs_close
from op_models import MEDIUM_INPUTS, medium_inputs, run_function_body

from rrwkv_trt.export.ops import (custom_translation_table, PLUGIN_ATTRS, attach_functions, naive_wkv4,
                                  naive_wkv4_medium, wkv4_medium)

F64 = torch.float64


def closes_before(pos0: torch.Tensor, s: int) -> torch.Tensor:
    """Number of windows closed before global position pos0 (= index of the next medium), [B]."""
    return pos0 // s


def call_rows(table: torch.Tensor, pos0: torch.Tensor, T: int, s: int) -> torch.Tensor:
    """k_m/v_m rows for a call of T tokens from pos0: row r = global medium closes_before(pos0) + r.

    table [B, J, C] holds global medium j (window j) per sequence. Returns [B, ceil(T/s), C]; rows past
    the table end repeat its last row (they are never read).
    """
    B, J, _ = table.shape
    idx = closes_before(pos0, s)[:, None] + torch.arange(max(1, math.ceil(T / s)))[None]  # [B, Mmax]
    return table[torch.arange(B)[:, None], idx.clamp(max=J - 1)]


def linear_space_medium(w, u, k, v, table_k, table_v, aa, bb, pp, pos0, s, medium_decays):
    """Oracle without the max trick: state as (num, den) = (aa, bb) * e^pp, mediums from a global table."""
    B, T, C = k.shape
    num, den = aa * torch.exp(pp), bb * torch.exp(pp)
    ys = []
    for t in range(T):
        cur = torch.exp(u + k[:, t])
        ys.append((num + cur * v[:, t]) / (den + cur))
        num = torch.exp(w) * num + torch.exp(k[:, t]) * v[:, t]
        den = torch.exp(w) * den + torch.exp(k[:, t])
        for b in range(B):
            pos = int(pos0[b]) + t
            if (pos + 1) % s == 0:
                j = pos // s  # window j closes at pos = j*s + s - 1
                dec = torch.exp(w) if medium_decays else torch.ones_like(w)
                num[b] = dec * num[b] + torch.exp(table_k[b, j]) * table_v[b, j]
                den[b] = dec * den[b] + torch.exp(table_k[b, j])
    return torch.stack(ys, 1), num, den


def medium_table(B: int, J: int, C: int, seed: int, dtype=F64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return ((torch.randn(B, J, C, generator=g, dtype=F64) - 1).to(dtype),
            torch.randn(B, J, C, generator=g, dtype=F64).to(dtype))


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("init_state", [True, False], ids=["init", "carry"])
@pytest.mark.parametrize("s", [1, 3, 16])
def test_identity_with_wkv4_bit_for_bit(s, init_state, dtype):
    """k_m = -1e30 (beta = -1e30) and medium_decays = 0: the merge is a no-op (pp is finite after a token)."""
    x = medium_inputs(3, 21, 9, s, [0, 2, 37], seed=s, init_state=init_state, state_dtype=dtype)
    x["k_m"] = torch.full_like(x["k_m"], -1e30)
    out = naive_wkv4_medium(**x, s=s)
    ref = naive_wkv4(*(x[n] for n in ("w", "u", "k", "v", "aa", "bb", "pp")))
    for name, o, r in zip(("y", "aa", "bb", "pp"), out, ref):
        assert torch.equal(o, r), f"{name} differs from WKV4: max abs {(o - r).abs().max():.3e}"


@pytest.mark.parametrize("medium_decays", [0, 1])
@pytest.mark.parametrize("s,pos0", [(1, [0, 5, 2]), (3, [0, 1, 2]), (4, [3, 10, 0]), (16, [15, 0, 33])],
                         ids=lambda x: str(x))
def test_merges_at_window_boundaries(s, pos0, medium_decays):
    """Per-batch pos0: each sequence merges its own mediums after its own closing tokens."""
    B, T, C = 3, 20, 5
    x = medium_inputs(B, T, C, s, pos0, F64, seed=11, state_dtype=F64)
    pos0_t = x["pos0"]
    J = int((pos0_t + T).max()) // s + 1
    tk, tv = medium_table(B, J, C, seed=12)
    x["k_m"], x["v_m"] = call_rows(tk, pos0_t, T, s), call_rows(tv, pos0_t, T, s)
    y, aa, bb, pp = naive_wkv4_medium(**x, s=s, medium_decays=medium_decays)
    args = {n: x[n] for n in MEDIUM_INPUTS if n not in ("k_m", "v_m")}
    y_ref, num, den = linear_space_medium(**args, table_k=tk, table_v=tv, s=s, medium_decays=medium_decays)
    assert_op_outputs_close("wkv4_medium", "linear_oracle_fp64", (y_ref, num, den),
                            (y, aa * torch.exp(pp), bb * torch.exp(pp)), names=("y", "num", "den"))


@pytest.mark.parametrize("medium_decays", [0, 1])
@pytest.mark.parametrize("split", [1, 5, 8, 13, 23])
def test_split_call_equals_unsplit(split, medium_decays):
    """Prefill split at any point (also not a multiple of s), state and position carried."""
    B, T, C, s = 3, 24, 7, 4
    x = medium_inputs(B, T, C, s, [0, 3, 6], F64, seed=split, init_state=True, state_dtype=F64)
    pos0 = x["pos0"]
    tk, tv = medium_table(B, int((pos0 + T).max()) // s + 1, C, seed=21)
    x["k_m"], x["v_m"] = call_rows(tk, pos0, T, s), call_rows(tv, pos0, T, s)
    full = naive_wkv4_medium(**x, s=s, medium_decays=medium_decays)

    first = dict(x, k=x["k"][:, :split], v=x["v"][:, :split],
                 k_m=call_rows(tk, pos0, split, s), v_m=call_rows(tv, pos0, split, s))
    y1, aa, bb, pp = naive_wkv4_medium(**first, s=s, medium_decays=medium_decays)
    pos1, rest = pos0 + split, T - split
    second = dict(x, k=x["k"][:, split:], v=x["v"][:, split:], aa=aa, bb=bb, pp=pp, pos0=pos1,
                  k_m=call_rows(tk, pos1, rest, s), v_m=call_rows(tv, pos1, rest, s))
    y2, aa, bb, pp = naive_wkv4_medium(**second, s=s, medium_decays=medium_decays)
    assert_op_outputs_close("wkv4_medium", "split_call_fp64", full, (torch.cat([y1, y2], 1), aa, bb, pp))


def test_custom_op_is_the_reference():
    x = medium_inputs(3, 9, 5, 4, [0, 1, 7], seed=2)
    for md in (0, 1):
        out, ref = wkv4_medium(**x, s=4, medium_decays=md), naive_wkv4_medium(**x, s=4, medium_decays=md)
        assert all(torch.equal(o, r) for o, r in zip(out, ref))
    assert all(torch.equal(o, r) for o, r in zip(wkv4_medium(**x, s=4), naive_wkv4_medium(**x, s=4)))
    torch.library.opcheck(torch.ops.rrwkv.wkv4_medium.default, tuple(x[n] for n in MEDIUM_INPUTS) + (4, 1))
    with pytest.raises(ValueError, match="s >= 1"):
        wkv4_medium(**x, s=0)
    with pytest.raises(ValueError, match="pos0 must be int64"):
        wkv4_medium(**(x | {"pos0": x["pos0"].int()}), s=4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("s", [1, 4, 16], ids=lambda s: f"s{s}")
@pytest.mark.parametrize("B", [1, 3], ids=lambda b: f"B{b}")
@pytest.mark.parametrize("C", [1, 33, 500], ids=lambda c: f"C{c}")
@pytest.mark.parametrize("T", [1, 7, 63], ids=lambda t: f"T{t}")
def test_function_body_matches_naive(T, C, B, s, dtype):
    pos0 = [s - 1, 0, 2 * s + 1][:B]  # B=1 closes on its first token; B=3 three different phases
    md = (T + C + s) % 2  # both medium_decays values across the matrix
    x = medium_inputs(B, T, C, s, pos0, dtype, seed=T + C + B + s, init_state=(C == 33))
    out = run_function_body("WKV4Medium", x, s=s, medium_decays=md)
    key = "function_body_fp16" if dtype == torch.float16 else "function_body_fp32"
    assert_op_outputs_close("wkv4_medium", key, naive_wkv4_medium(**x, s=s, medium_decays=md), out)


def test_function_body_attribute_defaults_and_refs():
    """s and medium_decays reach the body through attribute references; medium_decays defaults to 0."""
    x = medium_inputs(3, 12, 6, 3, [0, 1, 5], seed=5)
    for attrs in ({"s": 3}, {"s": 3, "medium_decays": 0}, {"s": 3, **PLUGIN_ATTRS}):
        assert_op_outputs_close("wkv4_medium", "function_body_fp32", naive_wkv4_medium(**x, s=3),
                                run_function_body("WKV4Medium", x, **attrs))
    for s, md in ((2, 1), (5, 0), (5, 1)):
        assert_op_outputs_close("wkv4_medium", "function_body_fp32",
                                naive_wkv4_medium(**x, s=s, medium_decays=md),
                                run_function_body("WKV4Medium", x, s=s, medium_decays=md))


class _Block(torch.nn.Module):
    def __init__(self, C: int, s: int, medium_decays: int):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.s, self.medium_decays = s, medium_decays
        self.key = torch.nn.Linear(C, C, bias=False)
        self.value = torch.nn.Linear(C, C, bias=False)
        self.w = torch.nn.Parameter(-torch.exp(torch.rand(C, generator=g) * 4 - 3))
        self.u = torch.nn.Parameter(torch.randn(C, generator=g))

    def forward(self, x, k_m, v_m, aa, bb, pp, pos0):
        return wkv4_medium(self.w, self.u, self.key(x), self.value(x), k_m, v_m, aa, bb, pp, pos0,
                           self.s, self.medium_decays)


def test_dynamo_export_one_node_then_function_runs_in_ort():
    C, s, md = 16, 4, 1
    block = _Block(C, s, md).eval()
    names = ("x", "k_m", "v_m", "aa", "bb", "pp", "pos0")

    def args(B, T, pos0, seed):
        f = medium_inputs(B, T, C, s, pos0, seed=seed, init_state=True)
        return (torch.randn(B, T, C), f["k_m"], f["v_m"], f["aa"], f["bb"], f["pp"], f["pos0"])

    batch, seq, mmax = torch.export.Dim("batch"), torch.export.Dim("seq"), torch.export.Dim("mmax")
    dyn = {"x": {0: batch, 1: seq}, "k_m": {0: batch, 1: mmax}, "v_m": {0: batch, 1: mmax},
           "aa": {0: batch}, "bb": {0: batch}, "pp": {0: batch}, "pos0": {0: batch}}
    program = torch.onnx.export(block, args(2, 6, [0, 3], 1), dynamo=True, input_names=list(names),
                                output_names=["y", "aa_out", "bb_out", "pp_out"], dynamic_shapes=dyn,
                                custom_translation_table=custom_translation_table())
    model = program.model_proto
    custom = [n for n in model.graph.node if n.domain == "rrwkv"]
    assert [n.op_type for n in custom] == ["WKV4Medium"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in custom[0].attribute}
    assert attrs == {"s": s, "medium_decays": md, **{k: v.encode() for k, v in PLUGIN_ATTRS.items()}}

    attach_functions(model)
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    inputs = args(3, 11, [0, 5, 14], 2)  # other batch, length and phases than traced
    out = sess.run(None, {n: t.numpy() for n, t in zip(names, inputs)})
    with torch.no_grad():
        ref = block(*inputs)
    assert_op_outputs_close("wkv4_medium", "export_fp32", ref, out)
