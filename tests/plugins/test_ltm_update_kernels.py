"""LTMUpdate's CPU kernel and its CUDA kernels compiled for the CPU (plugins/tests/cudaEmulation.h), through
librrwkv_cpu_testshim.so: against the float64 reference (fixed and sticky sampling, the three modes mixed, odd sizes
past one 32 x 32 tile, the GPT-2 size), the two backends bit-identical, each row of a mixed batch its single-mode
result with KEEP rows B_past's bits, an invalid mode kept (what the CUDA kernels do, as they cannot report it), the
header's quantile positions against the reference, the launcher's argument checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ltm_update_inputs import (ISAS, assert_b_close, header_positions, ltm_inputs, ltm_isa, poison_unread, reference,
                               row_inputs, run_ltm)

from rrwkv_trt.export.ops.ltm_update import quantile_positions

SIZES = [(1, 1, 1, 1, 1, 1), (3, 33, 7, 5, 9, 5), (2, 64, 33, 8, 40, 128), (3, 70, 65, 31, 33, 128)]  # B N e L M NB
MIXED, MIXED_MODES = (5, 35, 33, 5, 9, 5), [2, 0, 1, 0, 2]  # past one tile in N and e; update, keep, fit, keep, update
BACKENDS = ["cpu", "emu"]
# N, M and e off every vector width: rows past two slices of 16 rows and into 4-row tiles, e past two 64-column blocks
ODD_SIZE = (3, 37, 131, 19, 21, 7)


def size_id(s) -> str:
    return "B{}N{}e{}L{}M{}NB{}".format(*s)


@pytest.mark.parametrize("sticky", [0, 1])
@pytest.mark.parametrize("size", SIZES, ids=size_id)
@pytest.mark.parametrize("backend", BACKENDS)
def test_kernel_matches_reference(backend, size, sticky):
    x = ltm_inputs(*size, seed=11 + sum(size))  # modes 2, 1, 0, ...
    out = run_ltm(backend, x, sticky)
    assert_b_close("cpu_kernel_fp32", reference(x, sticky), out, f"/{backend}")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("sticky", [0, 1])
@pytest.mark.parametrize("size", [*SIZES, ODD_SIZE], ids=size_id)
def test_cpu_and_emulated_cuda_agree_to_the_bit(size, sticky, isa):
    """Every path of the CPU kernel (portable, AVX2, AVX-512) adds each element's terms in index order with the
    product rounded first, as the emulated CUDA kernels do, so all agree exactly."""
    if ltm_isa() < ISAS[isa]:
        pytest.skip(f"this CPU lacks the {isa} path of the CPU kernel")
    x = ltm_inputs(*size, seed=5 + sum(size), hist_kind="random")
    np.testing.assert_array_equal(run_ltm("cpu", x, sticky, isa=isa), run_ltm("emu", x, sticky))


def test_gpt2_size_cpu_kernel():
    x = ltm_inputs(2, 512, 48, 512, 512, 128, seed=2, mode=[2, 1])
    for sticky in (0, 1):
        assert_b_close("cpu_kernel_fp32", reference(x, sticky), run_ltm("cpu", x, sticky), "/gpt2")


@pytest.mark.parametrize("kind", ["peaked", "random", "integer"])
def test_header_quantile_positions_match_reference(kind):
    x = ltm_inputs(3, 2, 1, 1, 512, 128, seed=3, hist_kind=kind)
    ref = quantile_positions(x["hist"], 512).numpy()   # fp32, the header's order of operations
    for b in range(3):
        np.testing.assert_array_equal(header_positions(x["hist"][b].numpy(), 512), ref[b])
    np.testing.assert_array_equal(header_positions(np.zeros(8), 4), np.array([0, 2, 4, 6]) / 8)


def test_empty_histogram_is_uniform_in_the_kernels():
    x = ltm_inputs(2, 30, 5, 4, 16, 12, seed=2, mode=[2, 2])
    x["hist"] = torch.zeros_like(x["hist"])
    for backend in BACKENDS:
        assert_b_close("cpu_kernel_fp32", reference(x, 1), run_ltm(backend, x, 1), f"/{backend}/empty_hist")


@pytest.mark.parametrize("sticky", [0, 1])
@pytest.mark.parametrize("backend", BACKENDS)
def test_mixed_modes_each_row_is_its_single_mode_result(backend, sticky):
    """NaN in everything a row's mode must not read; every row is the bits of that row run alone, KEEP rows B_past's
    bits, and the batch is within tolerance of the reference."""
    x = ltm_inputs(*MIXED, seed=6, mode=MIXED_MODES)
    out = run_ltm(backend, poison_unread(x), sticky)
    assert np.isfinite(out).all()
    for b, mode in enumerate(MIXED_MODES):
        np.testing.assert_array_equal(out[b:b + 1], run_ltm(backend, row_inputs(x, b), sticky))
        if mode == 0:
            np.testing.assert_array_equal(out[b], x["B_past"][b].numpy())
    assert_b_close("cpu_kernel_fp32", reference(x, sticky), out, f"/{backend}/mixed")


@pytest.mark.parametrize("backend", BACKENDS)
def test_all_keep_copies_b_past(backend):
    x = poison_unread(ltm_inputs(*MIXED, seed=7, mode=[0] * MIXED[0]))
    for sticky in (0, 1):
        np.testing.assert_array_equal(run_ltm(backend, x, sticky), x["B_past"].numpy())


@pytest.mark.parametrize("backend", BACKENDS)
def test_invalid_mode_keeps_the_row_in_the_kernels(backend):
    """The kernels cannot report a bad mode per row (the ORT and torch ops reject it on the host): they keep it."""
    x = ltm_inputs(4, 20, 6, 5, 7, 9, seed=4, mode=[2, 3, -1, 1])
    out = run_ltm(backend, x, 1)
    np.testing.assert_array_equal(out[1:3], x["B_past"][1:3].numpy())
    for b in (0, 3):
        np.testing.assert_array_equal(out[b:b + 1], run_ltm(backend, row_inputs(x, b), 1))


@pytest.mark.parametrize("change", ["M0", "NB0", "sticky2"])
def test_launcher_rejects_invalid_arguments(change):
    x = ltm_inputs(2, 5, 3, 2, 4, 6, seed=0)
    kw = {"M0": dict(M=0), "NB0": dict(NB=0), "sticky2": {}}[change]
    run_ltm("emu", x, 2 if change == "sticky2" else 0, expect_rc=1, **kw)


def test_zero_batch_launches_nothing():
    x = ltm_inputs(1, 5, 3, 2, 4, 6, seed=0)
    x = {k: v[:0] if k in ("B_past", "X_new", "mode", "hist") else v for k, v in x.items()}
    assert run_ltm("emu", x, 0).shape == (0, 5, 3)
