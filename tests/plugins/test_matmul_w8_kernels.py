"""MatMulW8 kernels on the CPU: the CPU kernels (plugins/matmul_w8/matmulW8Cpu.cc, scalar and AVX-512 VNNI) and the
CUDA kernel source (plugins/matmul_w8/matmulW8Kernel.cuh) compiled for the CPU under plugins/tests/cudaEmulation.h.
The integer part is exact (matmulW8Math.h), so all three agree bit for bit, in y and in the quantised rows (xq,
x_scale); the CPU kernel matches the PyTorch reference naive_matmul_w8 within cpu_kernel_fp32 of
plugins/matmul_w8/spec.yaml. Outputs are poisoned before every call. Library: build/librrwkv_cpu_testshim.so
(`make plugins`)."""
from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from helpers import assert_close, tolerance
from kernel_shim import W8_ISAS, emu_matmul_w8_status, last_launch, matmul_w8_isa, matmul_w8_threads, run_matmul_w8
from weight_only_matmul_cases import (assert_same_outputs, check_empty_rows_and_columns, check_leading_dims_are_rows,
                                      check_zero_and_non_finite_rows, kernel_case, per_row)
from weight_only_matmul_cases import require_isa as require_cpu_isa

from rrwkv_trt.export.ops.matmul_w8 import naive_matmul_w8, quantize_rows
from rrwkv_trt.export.w8_pack import quantize_w8

# Odd sizes: every M x K x N x block_size below (K = 5 and 130 leave a partial last block for most block sizes,
# N = 1, 63, 65, 200 a partial last column group), then the 169M RWKV-4 projections at decode (M = 1).
SHAPES = ([(M, K, N, bs) for M in (1, 3, 7, 70) for K in (5, 130, 768) for N in (1, 63, 65, 200)
           for bs in (2, 32, 128, 256)]
          + [(1, 768, 768, 128), (1, 768, 3072, 128), (1, 3072, 768, 128)])
SHAPE_IDS = [f"M{M}-K{K}-N{N}-bs{bs}" for M, K, N, bs in SHAPES]
ISA_SKIP = {"avx2": "this CPU has no AVX2 + FMA + F16C: the CPU kernels run the portable path only",
            "avx512-vnni": "this CPU has no AVX-512 VNNI (AVX512F/BW/DQ/VL + VNNI): the CPU kernels cannot take that path"}


def require_isa(isa: str) -> None:
    require_cpu_isa(isa, matmul_w8_isa(), W8_ISAS, ISA_SKIP)


def make_inputs(M: int, K: int, N: int, block_size: int, seed: int):
    """kernel_case's x and the (w, scale) of its weight (quantize_w8)."""
    x, weight = kernel_case(M, K, N, seed)
    w, scale = quantize_w8(weight, block_size)
    return x, w, scale


@functools.cache
def case(M: int, K: int, N: int, block_size: int):
    """Inputs and the CPU scalar kernel's outputs (y, xq, x_scale)."""
    x, w, scale = make_inputs(M, K, N, block_size, seed=M * 7 + K * 3 + N + block_size)
    return (x, w, scale), run_matmul_w8("cpu", x, w, scale, N, block_size, isa=W8_ISAS["portable"])


@pytest.mark.parametrize("M,K,N,bs", SHAPES, ids=SHAPE_IDS)
def test_cpu_scalar_matches_naive(M, K, N, bs):
    (x, w, scale), (y, xq, x_scale) = case(M, K, N, bs)
    ref_xq, ref_scale = quantize_rows(torch.from_numpy(x))
    kpad = xq.shape[1]
    assert np.array_equal(xq[:, :K], ref_xq.numpy()), "quantised rows differ from quantize_rows"
    assert (xq[:, K:] == 0).all(), f"padding columns {K}..{kpad - 1} of xq are not 0"
    assert np.array_equal(x_scale.view(np.uint32), ref_scale.numpy().view(np.uint32)), "x_scale differs"
    ref = naive_matmul_w8(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(scale), N, bs).numpy()
    assert_close("matmul_w8/cpu_kernel_fp32/y per row", per_row(ref, x), per_row(y, x),
                 *tolerance("matmul_w8", "cpu_kernel_fp32", "y"))


@pytest.mark.parametrize("M,K,N,bs", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("isa", ["avx2", "avx512-vnni"])
def test_cpu_simd_matches_scalar(M, K, N, bs, isa):
    require_isa(isa)
    (x, w, scale), scalar = case(M, K, N, bs)
    assert_same_outputs(f"{isa} vs portable", scalar, run_matmul_w8("cpu", x, w, scale, N, bs, isa=W8_ISAS[isa]))


@pytest.mark.parametrize("M,K,N,bs", SHAPES, ids=SHAPE_IDS)
def test_emulated_cuda_matches_cpu(M, K, N, bs):
    (x, w, scale), scalar = case(M, K, N, bs)
    assert_same_outputs("emulated CUDA vs CPU scalar", scalar, run_matmul_w8("emu", x, w, scale, N, bs))


BACKENDS = [("cpu", "portable"), ("cpu", "avx2"), ("cpu", "avx512-vnni"), ("emu", "avx512-vnni")]
BACKEND_IDS = ["cpu-portable", "cpu-avx2", "cpu-avx512", "emu"]


def run(backend: tuple[str, str], x, w, scale, N: int, bs: int):
    name, isa = backend
    if name == "cpu":
        require_isa(isa)
    return run_matmul_w8(name, x, w, scale, N, bs, isa=W8_ISAS[isa])


@pytest.mark.parametrize("backend", BACKENDS, ids=BACKEND_IDS)
def test_zero_and_non_finite_rows(backend):
    """An all-zero row gives y = 0; a row with a NaN or an infinity gives a NaN row, and only that row."""
    check_zero_and_non_finite_rows(functools.partial(run, backend), make_inputs)


@pytest.mark.parametrize("backend", BACKENDS, ids=BACKEND_IDS)
def test_leading_dims_are_rows(backend):
    """x [2, 5, K] is M = 10 rows: y [2, 5, N] equals the flat [10, K] product bit for bit."""
    check_leading_dims_are_rows(functools.partial(run, backend), make_inputs)


@pytest.mark.parametrize("backend", BACKENDS, ids=BACKEND_IDS)
def test_empty_rows_and_columns(backend):
    """M = 0 writes nothing (and launches nothing); K = 0 (no weight rows, Kpad = 0) gives y = 0."""
    check_empty_rows_and_columns(functools.partial(run, backend), quantize_w8, np.zeros((2, 0, 64, 2), np.int8),
                                 lambda: last_launch()["launches"])


@pytest.mark.parametrize("M,N", [(1, 1), (1, 768), (3, 65), (70, 200), (2, 64)])
def test_emulated_launch_covers_any_rows_times_columns(M, N):
    """Two launches: one block per row for the quantisation, then blocks of the GEMM's threads over M * N, rounded
    up: M * N need not be a multiple of the block size (the surplus threads return at the guard)."""
    x, w, scale = make_inputs(M, 40, N, 32, seed=M + N)
    _, gemm_threads = matmul_w8_threads()
    before = last_launch()["launches"]
    run_matmul_w8("emu", x, w, scale, N, 32)
    launch = last_launch()
    assert launch["launches"] == before + 2
    assert launch["block"] == gemm_threads and launch["grid"] == math.ceil(M * N / gemm_threads), launch
    assert launch["threads_run"] == launch["grid"] * gemm_threads


@pytest.mark.parametrize("M,K,N,bs", [(2, 8, 3, 3), (2, 8, 3, 0), (2, 8, 3, 258), (2, 8, 0, 2), (-1, 8, 3, 2),
                                      (2, -1, 3, 2), (2, 2 ** 30 + 1, 3, 2)],
                         ids=["bs-odd", "bs0", "bs258", "N0", "M-neg", "K-neg", "K-huge"])
def test_emulated_launcher_rejects_bad_arguments(M, K, N, bs):
    """Invalid sizes give cudaErrorInvalidValue (1) before anything is launched or read."""
    before = last_launch()["launches"]
    assert emu_matmul_w8_status(M, K, N, bs) == 1
    assert last_launch()["launches"] == before
