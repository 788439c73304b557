"""rrwkv::LTMUpdate (∞-former, docs/families/inftyformer.md §4.1, §4.3, §4.4, §4.8.2): ltm_constants against an
independent float64 numpy fit, the ridge fit recovering a smooth signal, the sticky quantiles against a numpy
inverse CDF, the reference against the numpy update, the three modes mixed in one batch (keep, first fit, update), the
FunctionProto in stock ORT (its If skipping the update when every row keeps), the dynamo export (one node), the custom
op and its argument checks (invalid mode values included)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from helpers import assert_close, tolerance
from ltm_oracle import (LTM_INPUTS, SETUPS, ltm_inputs, np_constants, np_ltm_update, np_quantile_positions,
                        poison_unread, row_inputs, run_ltm_function)

from rrwkv_trt.export.ops import PLUGIN_ATTRS, attach_functions, custom_translation_table, register_schemas
from rrwkv_trt.export.ops.ltm_update import (ltm_constants, ltm_update, ltm_update_function, naive_ltm_update, psi,
                                             quantile_positions)

OP = "ltm_update"
F64 = torch.float64
SIZES = [(1, 1, 1, 1, 1, 1), (3, 33, 7, 5, 9, 5), (2, 64, 24, 8, 16, 128), (3, 200, 40, 31, 64, 128)]  # B N e L M NB
MIXED, MIXED_MODES = (5, 33, 7, 5, 9, 5), [2, 0, 1, 0, 2]  # odd sizes; update, keep, first fit, keep, update


def size_id(s) -> str:
    return "B{}N{}e{}L{}M{}NB{}".format(*s)


def args(x: dict) -> tuple:
    return tuple(x[n] for n in LTM_INPUTS)


def reference64(x: dict, sticky: int) -> torch.Tensor:
    return naive_ltm_update(*(v if v.dtype == torch.int64 else v.double() for v in args(x)), sticky)


@pytest.mark.parametrize("setup", SETUPS)
@pytest.mark.parametrize("quirks", [True, False], ids=["code_quirks", "midpoints"])
@pytest.mark.parametrize("NLM", [(16, 6, 5), (64, 8, 16), (512, 512, 512), (50, 7, 12)],
                         ids=lambda s: "N{}L{}M{}".format(*s))
def test_constants_match_numpy_oracle(setup, quirks, NLM):
    sigmas, ridge, tau = SETUPS[setup]
    ours = ltm_constants(*NLM, tau, ridge, sigmas, code_quirks=quirks)
    oracle = np_constants(*NLM, tau, ridge, sigmas, quirks)
    atol, rtol = tolerance(OP, "constants_fp64", "G")
    for k in ("G", "G_inf", "S_samp", "basis_mu", "basis_sigma"):
        assert ours[k].shape == oracle[k].shape, k
        assert_close(f"{OP}/constants/{k}", oracle[k], ours[k], atol, rtol)
    N, L, M = NLM
    assert ours["G"].shape == (L, N) and ours["G_inf"].shape == (M + L, N) and ours["S_samp"].shape == (M, N)


def test_even_quirk_shifts_the_grid_odd_has_none():
    """§4.3: for an even M + L the code's shift 1/(2L + M) differs from the midpoint 1/(2(M + L)); odd: identical."""
    sigmas, ridge, tau = SETUPS["gpt2"]
    a = ltm_constants(64, 8, 16, tau, ridge, sigmas, code_quirks=True)["G_inf"]
    b = ltm_constants(64, 8, 16, tau, ridge, sigmas, code_quirks=False)["G_inf"]
    assert np.abs(a - b).max() > 1e-6
    a = ltm_constants(64, 8, 15, tau, ridge, sigmas, code_quirks=True)["G_inf"]
    b = ltm_constants(64, 8, 15, tau, ridge, sigmas, code_quirks=False)["G_inf"]
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("setup", SETUPS)
def test_ridge_fit_recovers_a_smooth_signal(setup):
    """Least-squares sanity: a smooth signal sampled at the L midpoints (l + 0.5)/L, fitted with G, read back through ψ
    at those positions, is close to the samples (ridge shrinks a little); the same through G_inf over M + L points."""
    sigmas, ridge, tau = SETUPS[setup]
    N, L, M = 256, 64, 64
    c = ltm_constants(N, L, M, tau, ridge, sigmas, code_quirks=False)
    f = lambda t: np.stack([np.sin(2 * np.pi * t), np.cos(3 * t), t ** 2], axis=-1)  # noqa: E731  [P, 3]
    for G, P in ((c["G"], L), (c["G_inf"], M + L)):
        t = (np.arange(P) + 0.5) / P
        X = f(t)
        Bc = G.T @ X                                           # [N, 3]
        back = psi(t, c["basis_mu"], c["basis_sigma"]) @ Bc    # [P, 3]
        err = np.abs(back - X)[P // 8:-P // 8].max()           # away from the edges
        assert err < 0.05, (setup, P, err)


@pytest.mark.parametrize("kind", ["peaked", "random", "integer"])
@pytest.mark.parametrize("M,NB", [(1, 1), (7, 5), (512, 128), (100, 128)])
def test_quantile_positions_match_numpy_inverse_cdf(kind, M, NB):
    x = ltm_inputs(4, 3, 2, 1, M, NB, seed=M + NB, dtype=F64, hist_kind=kind)
    ours = quantile_positions(x["hist"], M).numpy()
    np.testing.assert_array_equal(ours, np_quantile_positions(x["hist"].numpy(), M))
    ours32 = quantile_positions(x["hist"].float(), M).numpy()
    if kind == "integer":   # an odd integer total: no quantile on a bin boundary, fp32 agrees exactly
        np.testing.assert_array_equal(np.rint(ours32 * NB), np.rint(np_quantile_positions(x["hist"].numpy(), M) * NB))
    assert (np.diff(ours, axis=-1) >= 0).all() and (ours >= 0).all() and (ours < 1).all()


def test_quantile_positions_edge_cases():
    """A single full bin takes every quantile; empty bins are never chosen; an empty histogram is uniform."""
    h = torch.zeros(3, 8, dtype=F64)
    h[0, 5] = 2.0
    h[1, [1, 6]] = 1.0
    pos = quantile_positions(h, 4)
    assert pos[0].tolist() == [5 / 8] * 4
    assert pos[1].tolist() == [1 / 8, 1 / 8, 6 / 8, 6 / 8]
    assert pos[2].tolist() == [0.0, 2 / 8, 4 / 8, 6 / 8]


@pytest.mark.parametrize("sticky", [0, 1])
@pytest.mark.parametrize("size", SIZES, ids=size_id)
@pytest.mark.parametrize("setup", SETUPS)
def test_naive_matches_numpy_oracle(size, setup, sticky):
    x = ltm_inputs(*size, setup=setup, seed=sum(size), dtype=F64)
    ref = naive_ltm_update(*args(x), sticky)
    oracle = np_ltm_update({k: v.numpy() for k, v in x.items()}, sticky)
    assert_close(f"{OP}/oracle", oracle, ref, *tolerance(OP, "oracle_fp64", "B_new"))


@pytest.mark.parametrize("sticky", [0, 1])
def test_mixed_modes_each_row_is_its_single_mode_result(sticky):
    """Every row of a batch mixing the three modes (the custom op in float64, NaN in everything a row's mode must not
    read) equals the numpy oracle on that row alone; KEEP rows are B_past's bits."""
    x = ltm_inputs(*MIXED, seed=3, mode=MIXED_MODES, dtype=F64)
    out = ltm_update(*args(poison_unread(x)), sticky)
    assert torch.isfinite(out).all()
    for b, mode in enumerate(MIXED_MODES):
        alone = np_ltm_update({k: v.numpy() for k, v in row_inputs(x, b).items()}, sticky)
        assert_close(f"{OP}/mixed/row{b}", alone, out[b:b + 1], *tolerance(OP, "oracle_fp64", "B_new"))
        if mode == 0:
            assert torch.equal(out[b], x["B_past"][b])


def test_all_keep_is_a_copy_of_b_past():
    x = poison_unread(ltm_inputs(*MIXED, seed=4, mode=[0] * MIXED[0]))
    for sticky in (0, 1):
        out = ltm_update(*args(x), sticky)
        assert torch.equal(out, x["B_past"]) and out.data_ptr() != x["B_past"].data_ptr()


@pytest.mark.parametrize("sticky", [0, 1, None], ids=["fixed", "sticky", "default"])
@pytest.mark.parametrize("size", SIZES, ids=size_id)
def test_function_body_matches_naive(size, sticky):
    x = ltm_inputs(*size, seed=7 + sum(size))
    out = run_ltm_function(x, sticky)
    assert_close(f"{OP}/function_body", reference64(x, sticky or 0), out,
                 *tolerance(OP, "function_body_fp32", "B_new"))


def test_function_body_gpt2_size():
    x = ltm_inputs(2, 512, 64, 512, 512, 128, seed=1, mode=[2, 1])
    for sticky in (0, 1):
        assert_close(f"{OP}/function_body_gpt2", reference64(x, sticky), run_ltm_function(x, sticky),
                     *tolerance(OP, "function_body_fp32", "B_new"))


def test_function_body_empty_histogram_is_uniform():
    x = ltm_inputs(2, 30, 5, 4, 16, 12, seed=2, mode=[2, 2])
    x["hist"] = torch.zeros_like(x["hist"])
    assert_close(f"{OP}/function_body_empty_hist", reference64(x, 1), run_ltm_function(x, 1),
                 *tolerance(OP, "function_body_fp32", "B_new"))


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("sticky", [0, 1])
def test_function_body_mixed_modes(sticky, opset):
    """The If's then-branch: KEEP rows are B_past's bits, the others the reference's, NaN in unread rows harmless."""
    x = ltm_inputs(*MIXED, seed=8, mode=MIXED_MODES)
    out = run_ltm_function(poison_unread(x), sticky, opset)
    assert np.isfinite(out).all()
    keep = x["mode"] == 0
    np.testing.assert_array_equal(out[keep.numpy()], x["B_past"][keep].numpy())
    assert_close(f"{OP}/function_body_mixed", reference64(x, sticky), out,
                 *tolerance(OP, "function_body_fp32", "B_new"))


@pytest.mark.parametrize("opset", [13, 18])
def test_function_body_all_keep_takes_the_else_branch(opset):
    """Every row keeps: B_past through the If's else-branch. X_new is one vector longer than G and G_inf expect, so the
    then-branch's MatMul would fail: the run succeeding shows the update was not computed at all."""
    x = poison_unread(ltm_inputs(*MIXED, seed=9, mode=[0] * MIXED[0]))
    x["X_new"] = torch.cat([x["X_new"], x["X_new"][:, :1]], dim=1)
    for sticky in (0, 1):
        np.testing.assert_array_equal(run_ltm_function(x, sticky, opset), x["B_past"].numpy())


def test_function_body_pays_for_the_update_only_inside_the_if():
    fn = ltm_update_function(18)
    assert not {"MatMul", "CumSum", "Exp", "Concat"} & {n.op_type for n in fn.node}
    (cond,) = [n for n in fn.node if n.op_type == "If"]
    branches = {a.name: a.g for a in cond.attribute}
    assert [n.op_type for n in branches["else_branch"].node] == ["Identity"]
    assert {"MatMul", "CumSum", "Where"} <= {n.op_type for n in branches["then_branch"].node}


def test_custom_op_is_the_reference():
    x = ltm_inputs(3, 17, 5, 4, 6, 7, seed=1)
    for sticky in (0, 1):
        out = ltm_update(*args(x), sticky)
        torch.testing.assert_close(out, naive_ltm_update(*args(x), sticky), rtol=0, atol=0)
        assert out.untyped_storage().data_ptr() != x["B_past"].untyped_storage().data_ptr()


class _Memory(torch.nn.Module):
    """x [B, L, e] -> Linear -> LTMUpdate(B_past, ...) with the constants as buffers -> B_new."""

    def __init__(self, N: int, e: int, L: int, M: int, sticky: int):
        super().__init__()
        self.proj = torch.nn.Linear(e, e, bias=False)
        self.sticky = sticky
        x = ltm_inputs(1, N, e, L, M, 16, seed=4)
        for n in ("G", "G_inf", "S_samp", "basis_mu", "basis_sigma"):
            self.register_buffer(n, x[n])

    def forward(self, x, B_past, mode, hist):
        return ltm_update(B_past, self.proj(x), mode, self.G, self.G_inf, self.S_samp, hist, self.basis_mu,
                          self.basis_sigma, self.sticky)


@pytest.mark.parametrize("sticky", [0, 1])
def test_dynamo_export_one_node_then_function_runs_in_ort(sticky):
    N, e, L, M = 20, 6, 5, 7
    module = _Memory(N, e, L, M, sticky).eval()
    g = torch.Generator().manual_seed(3)
    inputs = (torch.randn(2, L, e, generator=g), torch.randn(2, N, e, generator=g), torch.tensor([2, 1]),
              torch.rand(2, 16, generator=g))
    register_schemas()
    batch = torch.export.Dim("batch")
    program = torch.onnx.export(module, inputs, dynamo=True, opset_version=18,
                                input_names=["x", "B_past", "mode", "hist"], output_names=["B_new"],
                                dynamic_shapes={"x": {0: batch}, "B_past": {0: batch}, "mode": {0: batch},
                                                "hist": {0: batch}},
                                custom_translation_table=custom_translation_table())
    model = program.model_proto
    custom = [n for n in model.graph.node if n.domain == "rrwkv"]
    assert [n.op_type for n in custom] == ["LTMUpdate"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in custom[0].attribute}
    assert attrs == {"sticky": sticky, **{k: v.encode() for k, v in PLUGIN_ATTRS.items()}}
    attach_functions(model)
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for mode in ([2, 0, 1], [0, 0, 0]):  # another B than traced; then every row keeps (the If's else-branch)
        x = (torch.randn(3, L, e, generator=g), torch.randn(3, N, e, generator=g), torch.tensor(mode),
             torch.rand(3, 16, generator=g))
        out = sess.run(None, {n: v.numpy() for n, v in zip(["x", "B_past", "mode", "hist"], x)})[0]
        with torch.no_grad():
            ref = module(*x)
        assert_close(f"{OP}/export", ref, out, *tolerance(OP, "export_fp32", "B_new"))
        keep = mode.index(0)
        np.testing.assert_array_equal(out[keep], x[1][keep].numpy())  # a KEEP row: B_past's bits


BAD_ARGS = {  # id: (change to the inputs, words the message must contain)
    "B_past_rank2": (lambda x: x | {"B_past": x["B_past"][0]}, "B_past must be"),
    "X_new_e": (lambda x: x | {"X_new": x["X_new"][..., :-1]}, "X_new must be"),
    "G_inf_rows": (lambda x: x | {"G_inf": x["G_inf"][:-1]}, "G_inf must be"),
    "G_N": (lambda x: x | {"G": x["G"][:, :-1]}, "G must be"),
    "S_samp_N": (lambda x: x | {"S_samp": x["S_samp"][:, :-1]}, "S_samp must be"),
    "mode_int32": (lambda x: x | {"mode": x["mode"].int()}, r"mode must be int64 \(0 \(keep\)"),
    "mode_B": (lambda x: x | {"mode": x["mode"][:-1]}, "mode must be"),
    "hist_B": (lambda x: x | {"hist": x["hist"][:-1]}, "hist must be"),
    "X_new_half": (lambda x: x | {"X_new": x["X_new"].half()}, "must all be float32"),
}


@pytest.mark.parametrize("case", BAD_ARGS)
def test_bad_inputs_raise_value_error_naming_the_input(case):
    change, words = BAD_ARGS[case]
    x = change(ltm_inputs(2, 7, 4, 3, 5, 6, seed=0))
    with pytest.raises(ValueError, match=words):
        ltm_update(*args(x), 0)


@pytest.mark.parametrize("sticky", [-1, 2])
def test_bad_sticky_raises(sticky):
    x = ltm_inputs(2, 7, 4, 3, 5, 6, seed=0)
    with pytest.raises(ValueError, match="sticky must be 0 or 1"):
        ltm_update(*args(x), sticky)


@pytest.mark.parametrize("value", [-1, 3, 2 ** 40])
def test_invalid_mode_raises_naming_the_input_and_the_values(value):
    x = ltm_inputs(3, 7, 4, 3, 5, 6, seed=0, mode=[2, value, 0])
    words = rf"mode must be 0 \(keep\), 1 \(first fit\) or 2 \(update\) in every row; row 1 holds {value}"
    for sticky in (0, 1):
        with pytest.raises(ValueError, match=words):
            ltm_update(*args(x), sticky)
        with pytest.raises(ValueError, match=words):
            naive_ltm_update(*args(x), sticky)
