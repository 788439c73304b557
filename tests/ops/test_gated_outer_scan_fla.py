"""rrwkv::GatedOuterScan against fla's own plain-PyTorch oracle `fla.ops.gla.naive.naive_recurrent_gla`
(docs/families/hgrn2.md §3.9; flash-linear-attention 0.6.0, dev extra). Skips where fla is not installed.

fla 0.6.0 takes q, k, gk [B, T, H, K] and v [B, T, H, V] (it transposes to head-first inside), computes in fp32 and
hard-codes scale K^-0.5: the HG2 convention (scale 1) passes q * sqrt(K). gk is the log forget gate and
k = 1 - exp(gk), as fla's HGRN2Attention forms them; both come from the independent float64 gate of hgrn2_oracle.py.
"""
from __future__ import annotations

import warnings

import pytest
import torch
from helpers import assert_op_outputs_close
from hgrn2_oracle import log_forget_gate
from op_models import gated_outer_scan_inputs

from rrwkv_trt.export.ops.gated_outer_scan import naive_gated_outer_scan

with warnings.catch_warnings():  # fla warns on import that Triton cannot run on a CPU; its naive oracle needs none
    warnings.filterwarnings("ignore", message=".*Triton is not supported.*", category=UserWarning)
    fla_naive = pytest.importorskip("fla.ops.gla.naive", reason="flash-linear-attention (dev extra) not installed")

F64 = torch.float64
SIZES = [(1, 1, 1, 1, 1), (2, 7, 3, 5, 7), (2, 63, 2, 33, 17), (1, 40, 2, 64, 64)]  # (B, T, H, K, V)


@pytest.mark.parametrize("convention", ["fla", "hg2"])
@pytest.mark.parametrize("init_state", [True, False], ids=["init", "carry"])
@pytest.mark.parametrize("lb", ["zero", "rand"], ids=lambda s: f"lb_{s}")
@pytest.mark.parametrize("size", SIZES, ids=lambda s: "B{}T{}H{}K{}V{}".format(*s))
def test_naive_matches_fla_naive_recurrent_gla(size, lb, init_state, convention):
    B, T, H, K, V = size
    x = gated_outer_scan_inputs(*size, F64, seed=3 * T + K, lb=lb, init_state=init_state, state_dtype=F64)
    scale = K ** -0.5 if convention == "fla" else 1.0
    o, S = naive_gated_outer_scan(x["q"], x["f"], x["lb"], x["v"], x["S0"], scale)

    gk = torch.from_numpy(log_forget_gate(x["f"], x["lb"]))  # [B, T, H, K]
    q_fla = x["q"] if convention == "fla" else x["q"] * K ** 0.5  # fla multiplies by K^-0.5 itself
    o_fla, S_fla = fla_naive.naive_recurrent_gla(q_fla, 1 - torch.exp(gk), x["v"], gk, initial_state=x["S0"],
                                                 output_final_state=True)
    assert o_fla.shape == o.shape and S_fla.shape == S.shape
    assert_op_outputs_close("gated_outer_scan", "fla_naive_fp32", (o, S), (o_fla, S_fla), names=("y", "state"))
