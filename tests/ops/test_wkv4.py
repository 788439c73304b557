"""rrwkv::WKV4: naive reference vs the O(T^2) formula, FunctionProto in stock ORT, dynamo export."""
from __future__ import annotations

import onnx
import onnxruntime as ort
import pytest
import torch
from helpers import assert_op_outputs_close
from op_models import WKV4_INPUTS, run_function_body, wkv4_inputs

from rrwkv_trt.export.ops import (custom_translation_table, PLUGIN_ATTRS, attach_functions, naive_wkv4,
                                  strip_functions, wkv4)


def quadratic_wkv4(w, u, k, v, aa, bb, pp):
    """§1.3 paper formula, with the incoming state as a decayed prefix: O(T^2), float64, moderate inputs."""
    B, T, C = k.shape
    num0, den0 = aa * torch.exp(pp), bb * torch.exp(pp)  # [B, C]
    ys = []
    for t in range(T + 1):  # t == T gives the state after the last token
        i = torch.arange(t, dtype=k.dtype)
        decay = torch.exp((t - 1 - i)[:, None] * w + k[:, :t])  # [B, t, C]
        num = num0 * torch.exp(t * w) + (decay * v[:, :t]).sum(1)
        den = den0 * torch.exp(t * w) + decay.sum(1)
        if t < T:
            cur = torch.exp(u + k[:, t])
            ys.append((num + cur * v[:, t]) / (den + cur))
    return torch.stack(ys, 1), num, den


@pytest.mark.parametrize("init_state", [True, False], ids=["init", "carry"])
@pytest.mark.parametrize("B,T,C", [(1, 1, 1), (3, 7, 33), (2, 63, 5)], ids=lambda x: str(x))
def test_naive_matches_quadratic_formula(B, T, C, init_state):
    x = wkv4_inputs(B, T, C, torch.float64, seed=T + C, init_state=init_state, state_dtype=torch.float64)
    y, aa, bb, pp = naive_wkv4(**x)
    y_ref, num, den = quadratic_wkv4(**x)
    assert_op_outputs_close("wkv4", "naive_vs_formula_fp64", (y_ref, num, den),
                            (y, aa * torch.exp(pp), bb * torch.exp(pp)), names=("y", "num", "den"))


def test_custom_op_is_the_reference():
    x = wkv4_inputs(2, 5, 7, seed=1)
    out, ref = wkv4(**x), naive_wkv4(**x)
    assert all(torch.equal(o, r) for o, r in zip(out, ref))
    assert all(o.is_contiguous() for o in out)
    torch.library.opcheck(torch.ops.rrwkv.wkv4.default, tuple(x[n] for n in WKV4_INPUTS))
    empty = wkv4(**(x | {"k": x["k"][:, :0], "v": x["v"][:, :0]}))  # T = 0: state passes through, copied
    assert empty[0].shape == (2, 0, 7) and torch.equal(empty[1], x["aa"]) and empty[1] is not x["aa"]
    with pytest.raises(ValueError, match="aa must be"):
        wkv4(**(x | {"aa": x["aa"][:1]}))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("init_state", [True, False], ids=["init", "carry"])
@pytest.mark.parametrize("B", [1, 3], ids=lambda b: f"B{b}")
@pytest.mark.parametrize("C", [1, 33, 500], ids=lambda c: f"C{c}")
@pytest.mark.parametrize("T", [1, 7, 63], ids=lambda t: f"T{t}")
def test_function_body_matches_naive(T, C, B, init_state, dtype):
    x = wkv4_inputs(B, T, C, dtype, seed=7 * T + C + B, init_state=init_state)
    out = run_function_body("WKV4", x)
    assert out[0].dtype == x["k"].numpy().dtype
    key = "function_body_fp16" if dtype == torch.float16 else "function_body_fp32"
    assert_op_outputs_close("wkv4", key, naive_wkv4(**x), out)


class _Block(torch.nn.Module):
    """x -> key/value Linear -> WKV4: the op inside a graph, as the models use it."""

    def __init__(self, C: int):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.key = torch.nn.Linear(C, C, bias=False)
        self.value = torch.nn.Linear(C, C, bias=False)
        self.w = torch.nn.Parameter(-torch.exp(torch.rand(C, generator=g) * 4 - 3))
        self.u = torch.nn.Parameter(torch.randn(C, generator=g))

    def forward(self, x, aa, bb, pp):
        return wkv4(self.w, self.u, self.key(x), self.value(x), aa, bb, pp)


def test_dynamo_export_one_node_then_function_runs_in_ort():
    C = 16
    block = _Block(C).eval()
    x = wkv4_inputs(2, 5, C, seed=3, init_state=True)
    args = (torch.randn(2, 5, C), x["aa"], x["bb"], x["pp"])
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    program = torch.onnx.export(
        block, args, dynamo=True, input_names=["x", "aa", "bb", "pp"], output_names=list(
            ("y", "aa_out", "bb_out", "pp_out")),
        dynamic_shapes={"x": {0: batch, 1: seq}, "aa": {0: batch}, "bb": {0: batch}, "pp": {0: batch}},
        custom_translation_table=custom_translation_table())
    model = program.model_proto
    custom = [n for n in model.graph.node if n.domain == "rrwkv"]
    assert [n.op_type for n in custom] == ["WKV4"]
    assert {a.name: a.s.decode() for a in custom[0].attribute} == PLUGIN_ATTRS

    attach_functions(model)
    onnx.checker.check_model(model, full_check=True)
    assert [(f.domain, f.name) for f in model.functions] == [("rrwkv", "WKV4")]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = wkv4_inputs(3, 9, C, seed=4)  # other batch and length than traced
    inputs = (torch.randn(3, 9, C), feeds["aa"], feeds["bb"], feeds["pp"])
    out = sess.run(None, dict(zip(("x", "aa", "bb", "pp"), (t.numpy() for t in inputs))))
    with torch.no_grad():
        ref = block(*inputs)
    assert_op_outputs_close("wkv4", "export_fp32", ref, out)

    assert not strip_functions(model).functions and model.functions  # the copy is stripped, not the model
