"""WKV4 / WKV4Medium kernels on the CPU: the CPU kernels (plugins/wkv4/wkv4Cpu.cc,
plugins/wkv4_medium/wkv4MediumCpu.cc) and the CUDA kernel sources (wkv4Kernel.cuh, wkv4MediumKernel.cuh) compiled
for the CPU under plugins/tests/cudaEmulation.h, both against the naive PyTorch references, with NaN-poisoned
outputs. Library: build/librrwkv_cpu_testshim.so (`make plugins`)."""
from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from helpers import assert_close, assert_op_outputs_close
from kernel_shim import (BACKENDS, float_to_half, half_to_float, last_launch, run_wkv4, run_wkv4_medium,
                         shim)
from ops.op_models import medium_inputs, wkv4_inputs

from rrwkv_trt.export.ops import naive_wkv4, naive_wkv4_medium

DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
# Every T in {1, 7, 63, 1000}, C in {1, 33, 500}, B in {1, 3}; the full product for T <= 63, two long prefills.
SHAPES = [(T, C, B) for T in (1, 7, 63) for C in (1, 33, 500) for B in (1, 3)] + [(1000, 33, 3), (1000, 500, 1)]
SHAPE_IDS = [f"T{T}-C{C}-B{B}" for T, C, B in SHAPES]
BIG = 3_000_000_000  # a multiple of every s used here: pos0 beyond int32 with the same window phase


def medium_case(T: int, C: int, B: int) -> tuple[int, int, list[int]]:
    """s, medium_decays and per-batch pos0 for a shape: s cycles 1/4/16 and both medium_decays occur.
    Sequence 0 closes a window on its first token; the others start at other phases, one beyond int32."""
    s = (1, 4, 16)[(T + C + B) % 3]
    medium_decays = (T // 7 + C + B) % 2
    pos0 = [s - 1 + 5 * s, 0, 2 * s + 1 + BIG][:B]
    return s, medium_decays, pos0


@functools.cache
def wkv4_case(T: int, C: int, B: int, dtype: str):
    x = wkv4_inputs(B, T, C, DTYPES[dtype], seed=T + C + B, init_state=(C == 33))
    return x, naive_wkv4(**x)


@functools.cache
def medium_case_data(T: int, C: int, B: int, dtype: str):
    s, md, pos0 = medium_case(T, C, B)
    x = medium_inputs(B, T, C, s, pos0, DTYPES[dtype], seed=T + C + B, init_state=(C == 33))
    return x, s, md, naive_wkv4_medium(**x, s=s, medium_decays=md)


def key(dtype: str) -> str:
    return f"cpu_kernel_{dtype}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T,C,B", SHAPES, ids=SHAPE_IDS)
def test_wkv4_matches_naive(T, C, B, dtype, backend):
    x, ref = wkv4_case(T, C, B, dtype)
    assert_op_outputs_close("wkv4", key(dtype), ref, run_wkv4(backend, **x))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T,C,B", SHAPES, ids=SHAPE_IDS)
def test_wkv4_medium_matches_naive(T, C, B, dtype, backend):
    x, s, md, ref = medium_case_data(T, C, B, dtype)
    assert_op_outputs_close("wkv4_medium", key(dtype), ref, run_wkv4_medium(backend, **x, s=s, medium_decays=md))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("medium_decays", [0, 1])
@pytest.mark.parametrize("s,pos0", [(1, [0, 5, 2]), (3, [0, 1, 2]), (4, [3, 10, 0]), (16, [15, 0, 33])],
                         ids=lambda v: str(v))
def test_medium_merges_at_window_boundaries(s, pos0, medium_decays, backend):
    """Per-batch window phases; the merges change the result (checked against plain WKV4), and every
    sequence's state after each prefix of the call matches the reference (so each merge lands on its token)."""
    B, T, C = 3, 20, 7
    x = medium_inputs(B, T, C, s, pos0, seed=s + medium_decays)
    x["k_m"] = x["k_m"] + 2.0  # mediums heavy enough to move the state visibly
    for t_end in range(1, T + 1):
        xt = dict(x, k=x["k"][:, :t_end], v=x["v"][:, :t_end])
        ref = naive_wkv4_medium(**xt, s=s, medium_decays=medium_decays)
        out = run_wkv4_medium(backend, **xt, s=s, medium_decays=medium_decays)
        assert_op_outputs_close("wkv4_medium", "cpu_kernel_fp32", ref, out)
    plain = naive_wkv4(*(x[n] for n in ("w", "u", "k", "v", "aa", "bb", "pp")))
    first_close = [(s - 1 - p) % s for p in pos0]  # the token after which each sequence first merges
    for b in range(B):
        t = first_close[b]
        assert np.allclose(out[0][b, : t + 1], plain[0][b, : t + 1].numpy(), atol=1e-6, rtol=1e-6), \
            f"sequence {b} differs from WKV4 before its first merge"
        if t + 1 < T:
            assert not np.allclose(out[0][b, t + 1], plain[0][b, t + 1].numpy(), atol=1e-4), \
                f"sequence {b}: the merge after token {t} had no effect"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rows", ["fewer", "more"])
def test_medium_rows_clamped_or_ignored(rows, backend):
    """Fewer rows than closes reuse the last row (as the reference clamps); extra rows are never read."""
    B, T, C, s = 2, 13, 5, 2
    x = medium_inputs(B, T, C, s, [1, 0], seed=3)
    M = 2 if rows == "fewer" else 12
    g = torch.Generator().manual_seed(9)
    x["k_m"], x["v_m"] = torch.randn(B, M, C, generator=g), torch.randn(B, M, C, generator=g)
    if rows == "more":
        x["k_m"][:, 7:] = float("nan")  # beyond the 7 closes of this call: must never be read
        x["v_m"][:, 7:] = float("nan")
        ref = naive_wkv4_medium(**dict(x, k_m=x["k_m"][:, :7], v_m=x["v_m"][:, :7]), s=s)
    else:
        ref = naive_wkv4_medium(**x, s=s)
    assert_op_outputs_close("wkv4_medium", "cpu_kernel_fp32", ref, run_wkv4_medium(backend, **x, s=s))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op", ["wkv4", "wkv4_medium"])
def test_state_in_place(op, backend):
    """In/out state buffers may alias (wkv4Kernel.h): the kernels read a channel's state before writing it."""
    B, T, C, s = 3, 9, 70, 4
    x = medium_inputs(B, T, C, s, [0, 1, 2], seed=4)
    state = [x[n].numpy().copy() for n in ("aa", "bb", "pp")]
    y = np.full((B, T, C), np.nan, np.float32)
    if op == "wkv4":
        args = {n: x[n] for n in ("w", "u", "k", "v", "aa", "bb", "pp")}
        ref = naive_wkv4(**args)
        out = run_wkv4(backend, **dict(args, aa=state[0], bb=state[1], pp=state[2]), out=(y, *state))
    else:
        ref = naive_wkv4_medium(**x, s=s, medium_decays=1)
        out = run_wkv4_medium(backend, **dict(x, aa=state[0], bb=state[1], pp=state[2]), s=s, medium_decays=1,
                              out=(y, *state))
    assert all(o is st for o, st in zip(out[1:], state))
    assert_op_outputs_close(op, "cpu_kernel_fp32", ref, out)


@pytest.mark.parametrize("B,C", [(1, 1), (3, 33), (1, 32), (3, 500), (2, 64)])
def test_emulated_launch_covers_any_batch_times_channels(B, C):
    """Blocks of kWKV4_THREADS_PER_BLOCK threads, rounded up: B*C need not be a multiple of the block size."""
    x = medium_inputs(B, 5, C, 2, [1] * B, seed=B * C)
    tpb = shim().rrwkv_emu_wkv4_threads_per_block()
    n = B * C
    for run in (lambda: run_wkv4("emu", **{k: x[k] for k in ("w", "u", "k", "v", "aa", "bb", "pp")}),
                lambda: run_wkv4_medium("emu", **x, s=2)):
        run()
        launch = last_launch()
        assert launch["block"] == tpb and launch["grid"] == math.ceil(n / tpb), launch
        assert launch["threads_run"] == launch["grid"] * tpb >= n
    if n % tpb:
        assert launch["threads_run"] > n  # surplus threads ran and hit the guard


def test_emulated_launcher_rejects_bad_arguments():
    x = medium_inputs(2, 4, 3, 2, [0, 1], seed=1)
    for s, md, M in ((0, 0, 2), (2, 2, 2), (2, -1, 2), (2, 0, 0)):
        xm = dict(x, k_m=x["k_m"][:, :M], v_m=x["v_m"][:, :M])
        before = last_launch()["launches"]
        run_wkv4_medium("emu", **xm, s=s, medium_decays=md, expect_rc=1)  # cudaErrorInvalidValue
        assert last_launch()["launches"] == before


def test_empty_batch_launches_nothing():
    x = wkv4_inputs(1, 3, 4, seed=0)
    empty = {n: (t[:0] if t.dim() > 1 else t) for n, t in x.items()}
    before = last_launch()["launches"]
    for backend in BACKENDS:
        y, aa, bb, pp = run_wkv4(backend, **empty)
        assert y.shape == (0, 3, 4) and aa.shape == (0, 4)
    assert last_launch()["launches"] == before


def test_zero_tokens_copies_state():
    x = wkv4_inputs(2, 0, 5, seed=0)
    for backend in BACKENDS:
        _, aa, bb, pp = run_wkv4(backend, **x)
        for name, out in (("aa", aa), ("bb", bb), ("pp", pp)):
            assert np.array_equal(out, x[name].numpy()), name


def test_host_half_conversions_match_numpy():
    """The host fp16 type (CPU kernel, emulated __half) converts like numpy / CUDA: round to nearest even."""
    bits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    ref = bits.view(np.float16).astype(np.float32)
    out = half_to_float(bits)
    nan = np.isnan(ref)
    assert np.array_equal(np.isnan(out), nan)
    assert np.array_equal(out[~nan].view(np.uint32), ref[~nan].view(np.uint32))  # signed zeros too

    rng = np.random.default_rng(0)
    edges = np.array([0.0, -0.0, 65504.0, 65519.996, 65520.0, -65520.0, 2.0 ** -24, 2.0 ** -25, 1.5 * 2.0 ** -25,
                      2.0 ** -14, 2.0 ** -14 - 2.0 ** -25, 3 * 2.0 ** -25, 1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11,
                      np.inf, -np.inf, np.nan, 1e-30, 1e30], dtype=np.float32)
    # random bit patterns (every exponent) and values near half ties
    x = np.concatenate([edges, rng.integers(0, 2 ** 32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32),
                        (rng.integers(-2 ** 15, 2 ** 15, 100_000) + 0.5).astype(np.float32) * 2.0 ** -10])
    with np.errstate(over="ignore"):
        ref_h = x.astype(np.float16)
    out_h = float_to_half(x)
    nan = np.isnan(x)
    assert np.array_equal(np.isnan(out_h.view(np.float16)), nan)
    bad = np.flatnonzero(out_h[~nan] != ref_h[~nan].view(np.uint16))
    assert bad.size == 0, f"{bad.size} conversions differ, e.g. {x[~nan][bad[:5]]}"


def test_fp16_outputs_are_rounded_like_torch():
    """fp16 y is the fp32 result rounded to nearest even (the reference casts with torch's .to(float16))."""
    x = wkv4_inputs(2, 40, 33, torch.float16, seed=5)
    ref = naive_wkv4(**x)
    for backend in BACKENDS:
        y = run_wkv4(backend, **x)[0]
        assert y.dtype == np.float16
        # at most one fp16 ulp apart, almost always identical
        diff = np.abs(y.astype(np.float32) - ref[0].float().numpy())
        ulp = np.spacing(np.abs(ref[0].numpy())).astype(np.float32)
        assert (diff <= ulp).all() and (diff == 0).mean() > 0.99
    assert_close("fp16 state", ref[1], run_wkv4("cpu", **x)[1], 1e-6, 1e-6)
