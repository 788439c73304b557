"""Seeded ContinuousGaussianAttention inputs, the float64 reference and the ctypes entry points of
librrwkv_cpu_testshim.so (plugins/continuous_gaussian_attention/continuousGaussianAttentionTestShim.cc), for the plugin
tests (test_continuous_gaussian_attention_kernels.py, test_continuous_gaussian_attention_ort.py)."""
from __future__ import annotations

import ctypes
import functools
import math

import numpy as np
import torch
from helpers import assert_close, tolerance
from kernel_shim import BACKENDS, CPU_ISAS as ISAS, poisoned, shim

from rrwkv_trt.export.ops.continuous_gaussian_attention import INPUT_NAMES, naive_continuous_gaussian_attention

OP = "continuous_gaussian_attention"
NAMES = ("ctx", "mu", "sigma2")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
SETUPS = {"sorting": ((0.01, 0.05), 1e-6), "gpt2": ((0.005, 0.01), 1e-4)}  # basis widths, sigma2_min
_i32, _p, _f = ctypes.c_int32, ctypes.c_void_p, ctypes.c_float
_ARGS = {"emu": [_i32] * 5 + [_f, _f] + [_p] * 10}
_ARGS["cpu"] = _ARGS["emu"] + [_i32]  # + the highest path the CPU kernel may take


def cga_inputs(B: int, H: int, T: int, N: int, d: int, dtype=torch.float32, seed: int = 0, setup: str = "gpt2",
               w_scale: float = 1.0) -> dict:
    """q [B, H, T, d], K, V [B, H, N, d] randn in `dtype`; w_mu, w_sigma ~ w_scale U(-N^-0.5, N^-0.5) f32; the
    ∞-former basis (centres linspace(0, 1, N/2) x the setup's two widths) f32; sigma2_min of the setup, scale d^-0.5."""
    g = torch.Generator().manual_seed(seed)
    sigmas, floor = SETUPS[setup]
    half = (N + 1) // 2
    centres = torch.linspace(0, 1, half) if half > 1 else torch.tensor([0.5])
    u = lambda: w_scale * (2 * torch.rand(N, generator=g) - 1) / math.sqrt(N)  # noqa: E731
    x = {"q": torch.randn(B, H, T, d, generator=g).to(dtype), "K": torch.randn(B, H, N, d, generator=g).to(dtype),
         "V": torch.randn(B, H, N, d, generator=g).to(dtype), "w_mu": u(), "w_sigma": u(),
         "basis_mu": torch.cat([centres] * 2)[:N],
         "basis_sigma": torch.cat([torch.full((half,), s) for s in sigmas])[:N]}
    return dict(x, sigma2_min=floor, scale=d ** -0.5)


def reference(x: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """naive_continuous_gaussian_attention in float64 (the parameters' dtype) from x's own values; ctx in q's dtype."""
    p = {n: x[n].double() for n in INPUT_NAMES[3:]}
    return naive_continuous_gaussian_attention(x["q"], x["K"], x["V"], *p.values(), x["sigma2_min"], x["scale"])


def assert_outputs_close(key: str, ref, out, what: str = "") -> None:
    for name, r, o in zip(NAMES, ref, out):
        assert_close(f"{OP}/{key}/{name}{what}", r, o, *tolerance(OP, key, name))


@functools.cache
def _shim() -> ctypes.CDLL:
    lib = shim()
    for backend in BACKENDS:
        for dt in ("f32", "f16"):
            fn = getattr(lib, f"rrwkv_{backend}_continuous_gaussian_attention_{dt}")
            fn.argtypes, fn.restype = _ARGS[backend], ctypes.c_int
    lib.rrwkv_cpu_continuous_gaussian_attention_isa.restype = _i32
    cfg = lib.rrwkv_emu_continuous_gaussian_attention_config
    cfg.argtypes, cfg.restype = [ctypes.c_int64, ctypes.POINTER(_i32), ctypes.POINTER(ctypes.c_uint32)], ctypes.c_int64
    return lib


def _np(t) -> np.ndarray:
    a = t.numpy() if hasattr(t, "numpy") else np.asarray(t)
    return np.ascontiguousarray(a)


def cga_isa() -> int:
    """The best CPU kernel path of this machine (a value of ISAS)."""
    return _shim().rrwkv_cpu_continuous_gaussian_attention_isa()


def run_cga(backend: str, x: dict, expect_rc: int = 0, isa: str = "avx512", **override
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ContinuousGaussianAttention through `backend` ("cpu" or "emu") on fresh NaN-poisoned outputs (ctx, mu,
    sigma2); the CPU kernel on the best path up to `isa` (a key of ISAS). override: sigma2_min / scale instead of
    x's."""
    a = {n: _np(x[n]) for n in INPUT_NAMES}
    q, K = a["q"], a["K"]
    B, H, T, d = q.shape
    N = K.shape[2]
    suffix = "f16" if q.dtype == np.float16 else "f32"
    out = (poisoned(q.shape, q.dtype), poisoned((B, H, T), np.float32), poisoned((B, H, T), np.float32))
    fn = getattr(_shim(), f"rrwkv_{backend}_continuous_gaussian_attention_{suffix}")
    attrs = {"sigma2_min": x["sigma2_min"], "scale": x["scale"]} | override
    rc = fn(B, H, T, N, d, attrs["sigma2_min"], attrs["scale"], *(arr.ctypes.data for arr in (*a.values(), *out)),
            *([ISAS[isa]] if backend == "cpu" else []))
    assert rc == expect_rc, f"{fn.__name__} returned {rc}, expected {expect_rc}"
    return out


def cga_config(rows: int) -> dict[str, int]:
    """cgaLaunchConfig of continuousGaussianAttentionKernel.cuh: rows (warps) per block, threads, blocks."""
    warps, threads = _i32(), ctypes.c_uint32()
    blocks = _shim().rrwkv_emu_continuous_gaussian_attention_config(rows, ctypes.byref(warps), ctypes.byref(threads))
    return {"warps": warps.value, "threads": threads.value, "blocks": blocks}
