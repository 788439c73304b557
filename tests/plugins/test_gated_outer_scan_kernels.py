"""GatedOuterScan kernels on the CPU: the CPU kernel (plugins/gated_outer_scan/gatedOuterScanCpu.cc) and the CUDA
kernel source (gatedOuterScanKernel.cuh: the register kernel and the large-K kernel) compiled for the CPU under
plugins/tests/cudaEmulation.h, both against naive_gated_outer_scan computed in float64 from the same inputs (o cast
to q's dtype), with NaN-poisoned outputs. Library: build/librrwkv_cpu_testshim.so (`make plugins`)."""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from gated_outer_scan_inputs import DTYPES, NAMES, OP, gos_inputs, reference
from helpers import assert_close, assert_op_outputs_close, tolerance
from kernel_shim import BACKENDS, gated_outer_scan_config, last_launch, run_gated_outer_scan

HKV = [(1, 1, 1), (3, 5, 7), (2, 33, 17), (1, 128, 128)]
SHAPES = [(T, H, K, V, B) for T in (1, 7, 63, 200) for H, K, V in HKV for B in (1, 3)]
SHAPE_IDS = [f"T{T}-H{H}-K{K}-V{V}-B{B}" for T, H, K, V, B in SHAPES]


@functools.cache
def case(T: int, H: int, K: int, V: int, B: int, dtype: str):
    lb = ("zero", "mixed", "high")[(T + K + B) % 3]
    x = gos_inputs(B, T, H, K, V, DTYPES[dtype], seed=T + K + B, lb=lb, zero_state=(T == 7 and B == 1))
    return x, reference(x)


def key(dtype: str) -> str:
    return f"cpu_kernel_{dtype}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T,H,K,V,B", SHAPES, ids=SHAPE_IDS)
def test_matches_naive(T, H, K, V, B, dtype, backend):
    x, ref = case(T, H, K, V, B, dtype)
    out = run_gated_outer_scan(backend, **x)
    assert out[0].dtype == x["q"].numpy().dtype
    assert_op_outputs_close(OP, key(dtype), ref, out, NAMES)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("K,V", [(1025, 3), (1500, 9), (2100, 1)])
def test_large_k_kernel_matches_naive(K, V, backend):
    """Past the register kernel's 1024 keys: the emulated large-K kernel (gates in chunks of 1024 keys, the state in
    S_out), one chunk and a partial one, and three."""
    x = gos_inputs(2, 5, 2, K, V, seed=K)
    assert_op_outputs_close(OP, "cpu_kernel_fp32", reference(x), run_gated_outer_scan(backend, **x), NAMES)
    assert gated_outer_scan_config(2, 2, K, V)["registers"] == 0


@pytest.mark.parametrize("K,V", [(40, 300), (1024, 130), (600, 40)])
def test_wide_heads_split_into_column_tiles(K, V):
    """V > 128 columns (or a block full of row groups) takes several blocks per head, each a tile of columns."""
    x = gos_inputs(2, 9, 2, K, V, seed=V)
    cfg = gated_outer_scan_config(2, 2, K, V)
    assert cfg["tiles"] > 1 and cfg["registers"] == 1, cfg
    assert_op_outputs_close(OP, "cpu_kernel_fp32", reference(x), run_gated_outer_scan("emu", **x), NAMES)
    launch = last_launch()
    assert (launch["grid"], launch["block"]) == (cfg["blocks"], cfg["threads"]), (launch, cfg)


@pytest.mark.parametrize("H,K,V", [(1, 1, 1), (3, 5, 7), (16, 128, 128), (4, 64, 64), (2, 33, 17), (2, 1024, 16)])
def test_launch_one_block_per_head(H, K, V):
    """V <= 128: one block per (b, h); each thread one column and its rows in registers (K <= 1024), blocks of at
    most 512 threads; the emulated launch ran exactly that grid."""
    B = 3
    cfg = gated_outer_scan_config(B, H, K, V)
    groups = -(-K // 32)
    assert (cfg["registers"], cfg["tiles"], cfg["blocks"], cfg["groups"]) == (1, 1, B * H, groups), cfg
    assert cfg["threads"] == cfg["columns"] * groups <= 512 and cfg["columns"] >= V, cfg
    run_gated_outer_scan("emu", **gos_inputs(B, 2, H, K, V, seed=1))
    launch = last_launch()
    assert (launch["grid"], launch["block"], launch["threads_run"]) == (B * H, cfg["threads"], B * H * cfg["threads"])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("K", [5, 1100])
def test_state_in_place(K, backend):
    """S0 and S_out may alias (gatedOuterScanKernel.h): each element is read before it is written."""
    x = gos_inputs(3, 6, 2, K, 7, seed=K)
    ref = reference(x)
    state = x["state"].numpy().copy()
    o = np.full((3, 6, 2, 7), np.nan, np.float32)
    out = run_gated_outer_scan(backend, **dict(x, state=state), out=(o, state))
    assert out[1] is state
    assert_op_outputs_close(OP, "cpu_kernel_fp32", ref, out, NAMES)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_prefill_equals_decode_steps(dtype, backend):
    """One call over T tokens and T calls of one token, the state carried: the same bits (same operations)."""
    x = gos_inputs(2, 11, 3, 40, 24, DTYPES[dtype], seed=7)
    o, state = run_gated_outer_scan(backend, **x)
    s = x["state"].numpy()
    for t in range(11):
        step = dict(x, q=x["q"][:, t:t + 1], f=x["f"][:, t:t + 1], v=x["v"][:, t:t + 1], state=s)
        o_t, s = run_gated_outer_scan(backend, **step)
        np.testing.assert_array_equal(o_t[:, 0], o[:, t], err_msg=f"o at token {t}")
    np.testing.assert_array_equal(s, state)


@pytest.mark.parametrize("backend", BACKENDS)
def test_saturated_gates_stay_finite(backend):
    """Logits of +-100 (exp underflows: decay 0 or keys 0 exactly) and bounds up to 1 - 1e-6 against the float64
    reference; everything finite."""
    x = gos_inputs(2, 20, 2, 33, 9, seed=3, lb="high")
    x["f"] = 100 * torch.sign(x["f"])
    out = run_gated_outer_scan(backend, **x)
    assert all(np.isfinite(a).all() for a in out)
    assert_op_outputs_close(OP, "cpu_kernel_fp32", reference(x), out, NAMES)


def test_kernels_agree_on_every_backend():
    """CPU kernel and emulated CUDA kernel: the same sums in another order, so within the fp32 tolerance of each
    other (not bit-identical: the register kernel adds 32-row partial sums)."""
    x = gos_inputs(2, 63, 2, 128, 33, seed=11)
    cpu, emu = run_gated_outer_scan("cpu", **x), run_gated_outer_scan("emu", **x)
    assert_op_outputs_close(OP, "cpu_kernel_fp32", cpu, emu, NAMES)


def test_zero_tokens_copies_state():
    x = gos_inputs(2, 0, 2, 5, 3, seed=0)
    for backend in BACKENDS:
        o, state = run_gated_outer_scan(backend, **x)
        assert o.shape == (2, 0, 2, 3)
        np.testing.assert_array_equal(state, x["state"].numpy())
    big = gos_inputs(1, 0, 1, 1030, 2, seed=0)  # the large-K kernel copies too
    np.testing.assert_array_equal(run_gated_outer_scan("emu", **big)[1], big["state"].numpy())


def test_empty_batch_launches_nothing():
    x = gos_inputs(0, 3, 2, 5, 4, seed=0)
    before = last_launch()["launches"]
    for backend in BACKENDS:
        o, state = run_gated_outer_scan(backend, **x)
        assert o.shape == (0, 3, 2, 4) and state.shape == (0, 2, 5, 4)
    assert last_launch()["launches"] == before


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf")])
def test_emulated_launcher_rejects_bad_scale(scale):
    x = gos_inputs(1, 2, 1, 3, 3, seed=0)
    before = last_launch()["launches"]
    run_gated_outer_scan("emu", **dict(x, scale=scale), expect_rc=1)  # cudaErrorInvalidValue
    assert last_launch()["launches"] == before


def test_fp16_outputs_are_rounded_like_torch():
    """fp16 o is the fp32 result rounded to nearest even: at most one fp16 ulp from the float64 result rounded by
    torch, almost always identical; the state stays fp32."""
    x = gos_inputs(2, 40, 2, 33, 17, torch.float16, seed=5)
    ref = reference(x)
    for backend in BACKENDS:
        o, state = run_gated_outer_scan(backend, **x)
        assert o.dtype == np.float16 and state.dtype == np.float32
        diff = np.abs(o.astype(np.float32) - ref[0].float().numpy())
        ulp = np.spacing(np.abs(ref[0].numpy())).astype(np.float32)
        assert (diff <= ulp).all() and (diff == 0).mean() > 0.99
        assert_close(f"{backend} fp16 state", ref[1], state, *tolerance(OP, "cpu_kernel_fp16", "state"))

