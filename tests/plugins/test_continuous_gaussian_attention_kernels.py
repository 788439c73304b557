"""ContinuousGaussianAttention kernels on the CPU: the CPU kernel (plugins/continuous_gaussian_attention/
continuousGaussianAttentionCpu.cc) and the CUDA kernel source (continuousGaussianAttentionKernel.cuh, one warp per row)
compiled for the CPU under plugins/tests/cudaEmulation.h, both against naive_continuous_gaussian_attention in float64
from the same inputs (ctx cast to q's dtype), with NaN-poisoned outputs. Library: build/librrwkv_cpu_testshim.so
(`make plugins`)."""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from continuous_gaussian_attention_inputs import (DTYPES, ISAS, assert_outputs_close, cga_config, cga_inputs,
                                                  cga_isa, reference, run_cga)
from kernel_shim import BACKENDS, last_launch

SHAPES = [(1, 1, 1, 1, 1), (2, 3, 7, 33, 5), (1, 2, 63, 512, 64), (3, 4, 1, 512, 50), (1, 1, 5, 700, 200),
          (2, 1, 3, 257, 129)]  # (B, H, T, N, d): N past one 256-entry r chunk, d past one 128-column pass
SHAPE_IDS = ["B{}H{}T{}N{}d{}".format(*s) for s in SHAPES]
# N and d off every vector width, T past the SIMD paths' row groups (AVX2 2, AVX-512 4), N past a slice's 32 keys, d
# past a slice's 64 ctx columns and a score's 16 partial sums
ODD_SHAPES = [(1, 1, 1, 1, 1), (2, 3, 9, 300, 70), (1, 2, 7, 47, 17), (2, 1, 3, 257, 129), (1, 1, 6, 33, 300)]


def require_isa(isa: str) -> None:
    if cga_isa() < ISAS[isa]:
        pytest.skip(f"this CPU lacks the {isa} path of the CPU kernel")


@functools.cache
def case(B: int, H: int, T: int, N: int, d: int, dtype: str, setup: str):
    x = cga_inputs(B, H, T, N, d, DTYPES[dtype], seed=T + N + d, setup=setup)
    return x, reference(x)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("setup", ["sorting", "gpt2"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,H,T,N,d", SHAPES, ids=SHAPE_IDS)
def test_matches_naive(B, H, T, N, d, dtype, setup, backend):
    x, ref = case(B, H, T, N, d, dtype, setup)
    out = run_cga(backend, x)
    assert [o.dtype for o in out] == [x["q"].numpy().dtype, np.float32, np.float32]
    assert_outputs_close(f"cpu_kernel_{dtype}", ref, out)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("w_scale", [10.0, 30.0, 100.0], ids=lambda w: f"w{w:g}")
def test_saturated_rows(w_scale, backend):
    """mu at 0/1, sigma2 at its floor or large, r a narrow peak: finite, within the saturated tolerance (10x: the
    standard one)."""
    x = cga_inputs(2, 2, 31, 512, 64, seed=int(w_scale), w_scale=w_scale)
    out = run_cga(backend, x)
    assert all(np.isfinite(o).all() for o in out)
    assert_outputs_close("cpu_kernel_fp32" if w_scale <= 10 else "saturated_fp32", reference(x), out)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,H,T,N,d", ODD_SHAPES, ids=["B{}H{}T{}N{}d{}".format(*s) for s in ODD_SHAPES])
def test_kernels_agree_to_the_bit(B, H, T, N, d, dtype, isa):
    """Every path of the CPU kernel (portable, AVX2, AVX-512) adds the same terms in the same order as the emulated
    CUDA kernel (each score's 16 partial sums over k and their halving tree, 32 strided partial sums over j in lane
    order, ctx over j in order), with no FMA and the same expf (cgaExp); the host compiler builds both, so they agree
    exactly."""
    require_isa(isa)
    x = cga_inputs(B, H, T, N, d, DTYPES[dtype], seed=4, w_scale=5.0)
    for a, b in zip(run_cga("cpu", x, isa=isa), run_cga("emu", x)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rows_are_independent(backend):
    """Each query row depends on its own q only: one call over T tokens == T calls of one token (the same bits)."""
    x = cga_inputs(2, 3, 11, 64, 16, seed=7)
    full = run_cga(backend, x)
    for t in range(11):
        step = run_cga(backend, dict(x, q=x["q"][:, :, t:t + 1]))
        for a, b in zip(step, full):
            np.testing.assert_array_equal(a[:, :, 0], b[:, :, t])


@pytest.mark.parametrize("rows,warps,blocks", [(1, 1, 1), (3, 3, 1), (4, 4, 1), (5, 4, 2), (4097, 4, 1025)])
def test_launch_one_warp_per_row(rows, warps, blocks):
    cfg = cga_config(rows)
    assert (cfg["warps"], cfg["threads"], cfg["blocks"]) == (warps, 32 * warps, blocks), cfg


def test_emulated_launch_is_the_configured_grid():
    x = cga_inputs(3, 2, 5, 40, 9, seed=1)  # 30 rows: 8 blocks of 4 warps, the last with two idle warps
    run_cga("emu", x)
    launch = last_launch()
    assert (launch["grid"], launch["block"], launch["threads_run"]) == (8, 128, 8 * 128), launch


def test_zero_rows_launch_nothing():
    before = last_launch()["launches"]
    for backend in BACKENDS:
        for x in (cga_inputs(0, 2, 3, 5, 4), cga_inputs(2, 2, 0, 5, 4)):
            ctx, mu, sigma2 = run_cga(backend, x)
            assert ctx.shape == x["q"].shape and mu.shape == x["q"].shape[:3]
    assert last_launch()["launches"] == before


@pytest.mark.parametrize("attr,value", [("scale", 0.0), ("scale", -1.0), ("scale", float("nan")),
                                        ("sigma2_min", 0.0), ("sigma2_min", float("inf"))])
def test_emulated_launcher_rejects_bad_attributes(attr, value):
    x = cga_inputs(1, 1, 2, 3, 3)
    before = last_launch()["launches"]
    run_cga("emu", x, expect_rc=1, **{attr: value})  # cudaErrorInvalidValue
    assert last_launch()["launches"] == before


def test_fp16_ctx_is_rounded_like_torch():
    """fp16 ctx is the fp32 result rounded to nearest even: within one fp16 ulp of the float64 result rounded by
    torch, almost always identical; mu and sigma2 stay fp32."""
    x = cga_inputs(2, 2, 40, 128, 33, torch.float16, seed=5)
    ref = reference(x)
    for backend in BACKENDS:
        ctx, mu, sigma2 = run_cga(backend, x)
        assert ctx.dtype == np.float16 and mu.dtype == sigma2.dtype == np.float32
        diff = np.abs(ctx.astype(np.float32) - ref[0].float().numpy())
        ulp = np.spacing(np.abs(ref[0].numpy())).astype(np.float32)
        assert (diff <= ulp).all() and (diff == 0).mean() > 0.98
