"""MatMulWF16 kernels on the CPU: the CPU kernels (plugins/matmul_wf16/matmulWF16Cpu.cc: portable, AVX2 + F16C + FMA,
AVX-512) and the CUDA kernel source (matmulWF16Kernel.cuh) compiled for the CPU under plugins/tests/cudaEmulation.h.
Every path takes one fmaf per k in order per output (matmulWF16Math.h), so all agree bit for bit; the portable path
matches the PyTorch reference naive_matmul_wf16 within cpu_kernel_fp32 of plugins/matmul_wf16/spec.yaml. Outputs are
poisoned before every call. Library: build/librrwkv_cpu_testshim.so (`make plugins`)."""
from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from helpers import assert_close, tolerance
from kernel_shim import (CPU_ISAS, last_launch, matmul_wf16_isa, matmul_wf16_threads, run_matmul_wf16,
                         wf16_cpu_slice, wf16_size_error, wf16_status, wf16_to_float)
from weight_only_matmul_cases import assert_same_bits, kernel_case, per_row, require_isa as require_cpu_isa

from rrwkv_trt.export.ops.matmul_wf16 import naive_matmul_wf16
from rrwkv_trt.export.wf16_pack import pack_wf16

# Odd sizes: K and N not multiples of any vector width (8, 16) or of the 64-column group, M across the 4-row tiles;
# then the 169M RWKV-4 projections and head at decode (M = 1).
SHAPES = ([(M, K, N) for M in (1, 3, 17) for K in (1, 5, 130, 257) for N in (1, 7, 65, 200)]
          + [(1, 768, 768), (1, 768, 3072), (1, 3072, 768), (5, 768, 50277)])
SHAPE_IDS = [f"M{M}-K{K}-N{N}" for M, K, N in SHAPES]
ISA_SKIP = {"avx2": "this CPU has no AVX2 + F16C + FMA: the CPU kernels run the portable path only",
            "avx512": "this CPU has no AVX512F/BW/VL: the CPU kernels cannot take that path"}
MAX_N = 0x7FFFFFC0  # kWF16MaxN
MAX_K = 1 << 30     # kWF16MaxK


def require_isa(isa: str) -> None:
    require_cpu_isa(isa, matmul_wf16_isa(), CPU_ISAS, ISA_SKIP)


def make_inputs(M: int, K: int, N: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """kernel_case's x and its weight packed (pack_wf16)."""
    x, weight = kernel_case(M, K, N, seed)
    return x, pack_wf16(weight)


@functools.cache
def case(M: int, K: int, N: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs and the portable CPU kernel's y."""
    x, w = make_inputs(M, K, N, seed=M * 7 + K * 3 + N)
    return x, w, run_matmul_wf16("cpu", x, w, N, isa=CPU_ISAS["portable"])


@pytest.mark.parametrize("M,K,N", SHAPES, ids=SHAPE_IDS)
def test_cpu_portable_matches_naive(M, K, N):
    x, w, y = case(M, K, N)
    ref = naive_matmul_wf16(torch.from_numpy(x), torch.from_numpy(w), N).numpy()
    assert_close("matmul_wf16/cpu_kernel_fp32/y per row", per_row(ref, x), per_row(y, x),
                 *tolerance("matmul_wf16", "cpu_kernel_fp32", "y"))


@pytest.mark.parametrize("M,K,N", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_cpu_simd_matches_portable(M, K, N, isa):
    require_isa(isa)
    x, w, y = case(M, K, N)
    assert_same_bits(f"{isa} vs portable", y, run_matmul_wf16("cpu", x, w, N, isa=CPU_ISAS[isa]))


@pytest.mark.parametrize("M,K,N", SHAPES, ids=SHAPE_IDS)
def test_emulated_cuda_matches_portable(M, K, N):
    x, w, y = case(M, K, N)
    assert_same_bits("emulated CUDA vs portable", y, run_matmul_wf16("emu", x, w, N))


BACKENDS = [("cpu", "portable"), ("cpu", "avx2"), ("cpu", "avx512"), ("emu", "avx512")]
BACKEND_IDS = ["cpu-portable", "cpu-avx2", "cpu-avx512", "emu"]


def run(backend: tuple[str, str], x, w, N: int) -> np.ndarray:
    name, isa = backend
    if name == "cpu":
        require_isa(isa)
    return run_matmul_wf16(name, x, w, N, isa=CPU_ISAS[isa])


def test_weight_conversion_is_exact_for_every_half():
    """wf16ToFloat, the kernels' fp16 -> fp32, equals numpy's for all 65536 bit patterns (subnormals, +-0, +-inf;
    NaNs stay NaN)."""
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    ref, out = bits.view(np.float16).astype(np.float32), wf16_to_float(bits)
    nan = np.isnan(ref)
    assert np.array_equal(np.isnan(out), nan)
    assert np.array_equal(out[~nan].view(np.uint32), ref[~nan].view(np.uint32))


@pytest.mark.parametrize("backend", BACKENDS, ids=BACKEND_IDS)
def test_extreme_weights_same_bits(backend):
    """fp16 subnormals, +-0, the largest finite half and ordinary weights mixed: every path gives the portable bits."""
    M, K, N = 5, 37, 70
    rng = np.random.default_rng(3)
    specials = np.array([2.0 ** -24, -(2.0 ** -24), 2.0 ** -15, 6.1e-5, 0.0, -0.0, 65504.0, -65504.0], np.float32)
    weight = (rng.standard_normal((K, N)) * 1e-2).astype(np.float32)
    weight.reshape(-1)[rng.integers(0, K * N, 200)] = rng.choice(specials, 200)
    x = rng.standard_normal((M, K)).astype(np.float32)
    w = pack_wf16(weight)
    portable = run_matmul_wf16("cpu", x, w, N, isa=CPU_ISAS["portable"])
    assert_same_bits(f"{backend} vs portable", portable, run(backend, x, w, N))
    ref = naive_matmul_wf16(torch.from_numpy(x), torch.from_numpy(w), N).numpy()
    assert_close("matmul_wf16/extreme weights", ref / 65504, portable / 65504,
                 *tolerance("matmul_wf16", "cpu_kernel_fp32", "y"))


@pytest.mark.parametrize("backend", BACKENDS, ids=BACKEND_IDS)
def test_zero_and_non_finite_rows(backend):
    """An all-zero row gives y = +0; a row with a NaN, or an infinity, gives a non-finite row, and only that row:
    every other row is bit-identical to the same rows computed without the bad ones."""
    M, K, N = 9, 130, 65
    x, w = make_inputs(M, K, N, seed=11)
    x[1] = 0.0
    x[2, 7] = np.nan
    x[4, 0] = np.inf
    x[6] = np.nan
    y = run(backend, x, w, N)
    assert (y[1].view(np.uint32) == 0).all(), y[1]
    bad = [2, 4, 6]
    assert not np.isfinite(y[bad]).any(), "a non-finite row must give a non-finite row"
    good = [r for r in range(M) if r not in bad]
    assert_same_bits("rows without the bad ones", run(backend, np.ascontiguousarray(x[good]), w, N), y[good])


@pytest.mark.parametrize("backend", BACKENDS, ids=BACKEND_IDS)
def test_leading_dims_are_rows(backend):
    """x [2, 5, K] is M = 10 rows: y [2, 5, N] equals the flat [10, K] product bit for bit."""
    K, N = 130, 200
    x, w = make_inputs(10, K, N, seed=5)
    y3 = run(backend, x.reshape(2, 5, K), w, N)
    assert y3.shape == (2, 5, N)
    assert_same_bits("[2, 5, K] vs [10, K]", run(backend, x, w, N), y3.reshape(10, N))


@pytest.mark.parametrize("backend", BACKENDS, ids=BACKEND_IDS)
def test_empty_rows_and_columns(backend):
    """M = 0 writes nothing (and launches nothing); K = 0 (no weight rows) gives y = 0."""
    N = 65
    before = last_launch()["launches"]
    y = run(backend, np.zeros((0, 7), np.float32), pack_wf16(np.ones((7, N), np.float32)), N)
    assert y.shape == (0, N) and last_launch()["launches"] == before
    y = run(backend, np.zeros((3, 0), np.float32), np.zeros((2, 0, 64), np.float16), N)
    assert (y.view(np.uint32) == 0).all(), y


@pytest.mark.parametrize("M,N", [(1, 1), (1, 768), (3, 65), (17, 200), (2, 64)])
def test_emulated_launch_covers_any_rows_times_columns(M, N):
    """One launch of blocks over M * N outputs, rounded up: the surplus threads return at the guard."""
    x, w = make_inputs(M, 40, N, seed=M + N)
    threads = matmul_wf16_threads()
    before = last_launch()["launches"]
    run_matmul_wf16("emu", x, w, N)
    launch = last_launch()
    assert launch["launches"] == before + 1
    assert launch["block"] == threads and launch["grid"] == math.ceil(M * N / threads), launch
    assert launch["threads_run"] == launch["grid"] * threads


@pytest.mark.parametrize("M,K,N", [(2, 8, 0), (2, 8, MAX_N + 1), (-1, 8, 3), (2, -1, 3), (2, MAX_K + 1, 3),
                                   (2**31 - 1, 1, 2**30)],
                         ids=["N0", "N-huge", "M-neg", "K-neg", "K-huge", "grid-too-large"])
def test_launchers_reject_bad_sizes(M, K, N):
    """Invalid sizes are refused before any buffer is touched: the CPU entry with 1, the emulated launcher with
    cudaErrorInvalidValue (1) and no launch. (M * N past 2^31 blocks is the CUDA grid's own limit.)"""
    before = last_launch()["launches"]
    assert wf16_status("emu", M, K, N) == 1
    assert last_launch()["launches"] == before
    if wf16_size_error(M, K, N):
        assert wf16_status("cpu", M, K, N) == 1


def test_size_error_messages():
    assert wf16_size_error(2**31 - 1, MAX_K, MAX_N) == ""  # every limit at once, all taken
    assert wf16_size_error(0, 0, 1) == ""
    assert "K = 2147483647 (input features) is outside [0, 1073741824]" in wf16_size_error(0, 2**31 - 1, 64)
    assert "N = 2147483585 (output features) is outside [1, 2147483584]" in wf16_size_error(1, 4, MAX_N + 1)
    assert "N = 0" in wf16_size_error(1, 4, 0)
    assert "M = 2147483648 (rows of x)" in wf16_size_error(2**31, 4, 64)


@pytest.mark.parametrize("M", [2**31 - 1, 2**31 - 64, 130])
@pytest.mark.parametrize("N", [1, 130, MAX_N])
def test_cpu_slices_reach_the_last_row(M, N):
    """The last row block of M near 2^31 (r0 + 64 would overflow int32) ends at M and covers every column group."""
    groups = -(-N // 64)
    count = wf16_cpu_slice(0, M, N)[0]
    assert count == -(-M // 64) * groups
    for s in (count - 1, count - groups):
        _, g, r0, r1 = wf16_cpu_slice(s, M, N)
        assert g == s % groups and r0 == s // groups * 64 and r1 == min(M, r0 + 64)
    assert wf16_cpu_slice(count - 1, M, N)[2:] == ((M - 1) // 64 * 64, M)
