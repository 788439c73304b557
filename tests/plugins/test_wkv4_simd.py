"""WKV4's CPU kernel paths (plugins/wkv4/wkv4Cpu.cc: portable, AVX2 + FMA, AVX-512) and its exponential wkv4Exp
(plugins/wkv4/wkv4Math.h). Every SIMD path, and the CUDA kernel compiled for the CPU under
plugins/tests/cudaEmulation.h, returns the portable path's bits, on odd sizes and hostile inputs; wkv4Exp is checked
against float64 exp. Library: build/librrwkv_cpu_testshim.so (`make plugins`)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from kernel_shim import CPU_ISAS, run_wkv4, run_wkv4_isa, run_wkv4_medium, wkv4_cpu_isa, wkv4_exp
from ops.op_models import medium_inputs, wkv4_inputs

DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
PATHS = ("avx2", "avx512", "emu")  # compared with the portable path; "emu": the emulated CUDA kernel
SIMD = ("avx2", "avx512")
# C off every vector width (1, 7, 15, 17, 33) and past a 64-channel slice (100, 769); T past one token
SHAPES = [(T, C, B) for T in (1, 3, 17) for C in (1, 7, 15, 17, 33, 100, 769) for B in (1, 3)]
SHAPE_IDS = [f"T{T}-C{C}-B{B}" for T, C, B in SHAPES]
OUTPUTS = ("y", "aa_out", "bb_out", "pp_out")
EXP_MAX_ULP = 1.5  # wkv4Math.h: within 1.2 ulp for every float in [LO, 88.72] (exhaustive check, 2026-12-07)
EXP_LO = float.fromhex("-0x1.5d589ep+6")  # kWKV4_EXP_LO: e^x is flushed to +0 below it (just above ln FLT_MIN)


def require_isa(path: str) -> None:
    if path in CPU_ISAS and wkv4_cpu_isa() < CPU_ISAS[path]:
        pytest.skip(f"this CPU lacks the {path} path of the WKV4 CPU kernel")


def run_path(path: str, x: dict) -> tuple[np.ndarray, ...]:
    return run_wkv4("emu", **x) if path == "emu" else run_wkv4_isa(CPU_ISAS[path], **x)


def bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint16 if a.dtype == np.float16 else np.uint32)


def assert_same_bits(what: str, ref: tuple[np.ndarray, ...], out: tuple[np.ndarray, ...]) -> None:
    """Every output element has the same bits (signed zeros too), or both are NaN: which of two NaN operands an
    add or a multiply returns is the hardware's choice (IEEE 754 leaves it open), and compilers commute them."""
    for name, r, o in zip(OUTPUTS, ref, out):
        assert o.dtype == r.dtype and o.shape == r.shape, f"{what}/{name}: {o.dtype}{o.shape} != {r.dtype}{r.shape}"
        bad = np.flatnonzero((bits(r) != bits(o)) & ~(np.isnan(r) & np.isnan(o)))
        if bad.size:
            i = bad[0]
            raise AssertionError(f"{what}/{name}: {bad.size}/{r.size} elements differ, first at "
                                 f"{np.unravel_index(i, r.shape)}: {r.flat[i]!r} (reference) vs {o.flat[i]!r}")


def numpy_inputs(T: int, C: int, B: int, dtype: str, seed: int) -> dict[str, np.ndarray]:
    return {n: t.numpy().copy() for n, t in wkv4_inputs(B, T, C, DTYPES[dtype], seed=seed).items()}


def hostile(case: str, x: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Inputs at the edges of the recurrence and of wkv4Exp's range; x (from numpy_inputs) is changed in place."""
    rng = np.random.default_rng(seed)
    k, pp = x["k"], x["pp"]
    pick = lambda a, frac: rng.random(a.shape) < frac  # noqa: E731
    if case == "fresh":  # the initial state of a sequence, more negative than runtime's -1e30
        x["aa"][:], x["bb"][:], pp[:] = 0.0, 0.0, -1e38
    elif case == "large_k":  # u + k and k - pp far outside exp's range in both directions
        k[:] = (k.astype(np.float32) * 200.0).astype(k.dtype)
        pp[pick(pp, 0.3)] = 150.0
        x["w"][::3] = -1e4  # decay factor exp(-1e4) = 0
    elif case == "huge":  # |k| near the fp16 maximum, |pp| up to 1e30, tiny and huge |w|
        k[:] = rng.choice([-6e4, -3e4, -80.0, 0.5, 80.0, 3e4, 6e4], k.shape).astype(k.dtype)
        pp[:] = rng.choice([-1e30, -1e4, 0.0, 1e4, 1e30], pp.shape)
        x["w"][:] = rng.choice([-1e-30, -1e-3, -1.0, -1e30], x["w"].shape)
    elif case == "signed_zeros":  # ties in both maxima, between +0 and -0
        k[pick(k, 0.5)] = -0.0
        k[pick(k, 0.5)] = 0.0
        x["u"][::2] = -0.0
        x["w"][1::2] = -0.0  # w + pp = +-0 too
        pp[pick(pp, 0.5)] = -0.0
        x["aa"][pick(pp, 0.5)] = -0.0
    elif case == "nonfinite":  # NaN and +-inf in every input
        for name in ("k", "v", "aa", "bb", "pp"):
            a = x[name]
            a[pick(a, 0.05)] = np.nan
            a[pick(a, 0.03)] = np.inf
            a[pick(a, 0.03)] = -np.inf
        x["w"][1::7], x["u"][2::7] = np.nan, -np.inf
    else:
        raise ValueError(case)
    return x


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T,C,B", SHAPES, ids=SHAPE_IDS)
def test_paths_match_portable_to_the_bit(T, C, B, dtype, path):
    """Each SIMD path does wkv4Step's and wkv4Exp's operations in the same order with the same rounding (masked or
    portable tails included), and the emulated CUDA kernel is wkv4Step itself: all return the portable path's
    bits."""
    require_isa(path)
    x = numpy_inputs(T, C, B, dtype, seed=T * 1000 + C + B)
    assert_same_bits(path, run_wkv4_isa(CPU_ISAS["portable"], **x), run_path(path, x))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["fresh", "large_k", "huge", "signed_zeros", "nonfinite"])
@pytest.mark.parametrize("T,C,B", [(17, 100, 3), (3, 769, 1)], ids=["T17-C100-B3", "T3-C769-B1"])
def test_paths_match_portable_on_hostile_inputs(T, C, B, case, dtype, path):
    require_isa(path)
    x = hostile(case, numpy_inputs(T, C, B, dtype, seed=C + B), seed=T + C)
    ref = run_wkv4_isa(CPU_ISAS["portable"], **x)
    if case != "nonfinite":
        assert not any(np.isnan(r).any() for r in ref), f"{case}: NaN from non-NaN inputs"
    assert_same_bits(f"{case}/{path}", ref, run_path(path, x))


@pytest.mark.parametrize("path", ("portable", *PATHS))
def test_nan_in_k_poisons_its_channel_only(path):
    """A NaN k at (b, t, c) makes y NaN from token t on and aa_out, bb_out NaN in that channel (pp_out may be
    finite again after the next token: the maxima drop a NaN state, like x86's MAXPS); every other element keeps
    its bits."""
    require_isa(path)
    B, T, C, (b, t, c) = 3, 9, 40, (1, 4, 17)
    x = numpy_inputs(T, C, B, "fp32", seed=11)
    clean = run_path(path, x)
    x["k"][b, t, c] = np.nan
    out = run_path(path, x)
    assert np.isnan(out[0][b, t:, c]).all() and np.isnan(out[1][b, c]) and np.isnan(out[2][b, c])
    keep = [np.ones(o.shape, bool) for o in out]
    keep[0][b, t:, c] = False
    for m in keep[1:]:
        m[b, c] = False
    for name, o, cl, m in zip(OUTPUTS, out, clean, keep):
        assert np.array_equal(bits(o[m]), bits(cl[m])), f"{name}: the NaN leaked into other elements"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,T,C,s", [(3, 20, 100, 4), (2, 9, 769, 1), (1, 17, 33, 16)])
def test_medium_cpu_kernel_matches_emulated_to_the_bit(B, T, C, s, dtype):
    """WKV4Medium's CPU kernel runs WKV4's rows on this CPU's best path through wkv4SliceCpu, with its scalar merge
    in the afterToken hook, and still returns its emulated CUDA kernel's bits."""
    x = medium_inputs(B, T, C, s, [0, 1, 2][:B], DTYPES[dtype], seed=3)
    cpu = run_wkv4_medium("cpu", **x, s=s, medium_decays=1)
    assert_same_bits("wkv4_medium", run_wkv4_medium("emu", **x, s=s, medium_decays=1), cpu)


def exp_sweep() -> np.ndarray:
    """A dense sweep of [-100, 0] (WKV4 only takes exp of x - max <= 0), positives up to overflow, the flush
    threshold and tiny |x|."""
    return np.concatenate([np.linspace(-100.0, 0.0, 4_000_001, dtype=np.float32),
                           np.linspace(0.0, 88.72, 400_001, dtype=np.float32),
                           np.linspace(-87.4, -87.3, 100_001, dtype=np.float32),
                           -np.logspace(-12, 0, 100_001, dtype=np.float32)])


def test_exp_accuracy():
    """wkv4Exp within EXP_MAX_ULP of the float64 exp (in ulps of the fp32 result) from EXP_LO up, +0 below it, and
    never above 1 for x <= 0 (so e1, e2 <= 1)."""
    x = exp_sweep()
    y = wkv4_exp(x)
    flushed = x < np.float32(EXP_LO)
    assert (bits(y[flushed]) == 0).all(), "not +0 below EXP_LO"
    x, y = x[~flushed], y[~flushed]
    ref = np.exp(x.astype(np.float64))
    err = np.abs(y - ref) / np.spacing(ref.astype(np.float32)).astype(np.float64)
    worst = int(np.argmax(err))
    assert err[worst] <= EXP_MAX_ULP, f"{err[worst]:.3f} ulp at x = {x[worst]!r}: {y[worst]!r} vs {ref[worst]!r}"
    assert (y[x <= 0] <= 1.0).all()


def test_exp_special_values():
    lo = np.float32(EXP_LO)
    below = np.nextafter(lo, np.float32(-np.inf))
    x = np.array([0.0, -0.0, -np.inf, -1e30, -3.4e38, -104.0, below, lo, np.inf, 1e30, 89.0, 88.7229, 88.72, np.nan,
                  -np.nan], np.float32)
    y = wkv4_exp(x)
    assert bits(y[:2]).tolist() == bits(np.float32([1.0, 1.0])).tolist()  # exactly 1
    assert bits(y[2:7]).tolist() == [0] * 5  # +0
    assert y[7] >= np.finfo(np.float32).tiny  # the first value kept is a normal float
    assert np.isposinf(y[8:12]).all()
    assert np.isfinite(y[12]) and abs(y[12] - np.exp(np.float64(x[12]))) <= np.spacing(y[12])
    assert np.isnan(y[13:]).all()


@pytest.mark.parametrize("isa", SIMD)
def test_exp_paths_match_portable(isa):
    """Each SIMD exp returns the scalar wkv4Exp's bits, on the sweep and on random bit patterns (every exponent,
    infinities, NaNs with payloads)."""
    require_isa(isa)
    rng = np.random.default_rng(0)
    x = np.concatenate([exp_sweep(), rng.integers(0, 2 ** 32, 2_000_000, dtype=np.uint64).astype(np.uint32)
                        .view(np.float32), np.float32([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan])])
    x = x[:x.size // 16 * 16 - 3]  # a masked (AVX-512) and a scalar (AVX2) tail
    ref, out = wkv4_exp(x), wkv4_exp(x, CPU_ISAS[isa])
    bad = np.flatnonzero(bits(ref) != bits(out))
    assert bad.size == 0, f"{bad.size} differ, e.g. x = {x[bad[:3]]!r}: {ref[bad[:3]]!r} vs {out[bad[:3]]!r}"
