"""LTMUpdate inputs (tests/ops/ltm_oracle.py), the float64 reference and the ctypes entry points of
librrwkv_cpu_testshim.so (plugins/ltm_update/ltmUpdateTestShim.cc), for the plugin tests (test_ltm_update_kernels.py,
test_ltm_update_ort.py)."""
from __future__ import annotations

import ctypes
import functools
import sys
from pathlib import Path

import numpy as np
import torch
from helpers import assert_close, tolerance
from kernel_shim import CPU_ISAS as ISAS, poisoned, shim

from rrwkv_trt.export.ops.ltm_update import INPUT_NAMES, naive_ltm_update

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ops"))
from ltm_oracle import ltm_inputs, poison_unread, row_inputs  # noqa: E402,F401  (re-exported for the plugin tests)

OP = "ltm_update"
_i32, _p = ctypes.c_int32, ctypes.c_void_p
_ARGS = {"emu": [_i32] * 7 + [_p] * 11}
_ARGS["cpu"] = _ARGS["emu"] + [_i32]  # + the highest path the CPU kernel may take


def reference(x: dict, sticky: int) -> torch.Tensor:
    """naive_ltm_update in float64 from x's own values."""
    return naive_ltm_update(*(x[n] if n == "mode" else x[n].double() for n in INPUT_NAMES), sticky)


def assert_b_close(key: str, ref, out, what: str = "") -> None:
    assert_close(f"{OP}/{key}/B_new{what}", ref, out, *tolerance(OP, key, "B_new"))


@functools.cache
def _shim() -> ctypes.CDLL:
    lib = shim()
    for backend in ("cpu", "emu"):
        fn = getattr(lib, f"rrwkv_{backend}_ltm_update")
        fn.argtypes, fn.restype = _ARGS[backend], ctypes.c_int
    lib.rrwkv_cpu_ltm_update_isa.restype = _i32
    lib.rrwkv_ltm_quantile_positions.argtypes = [_p, _i32, _i32, _p]
    lib.rrwkv_ltm_quantile_positions.restype = None
    return lib


def ltm_isa() -> int:
    """The best CPU kernel path of this machine (a value of ISAS)."""
    return _shim().rrwkv_cpu_ltm_update_isa()


def run_ltm(backend: str, x: dict, sticky: int, expect_rc: int = 0, M: int | None = None, NB: int | None = None,
            isa: str = "avx512") -> np.ndarray:
    """LTMUpdate through `backend` ("cpu" or "emu") into a fresh NaN-poisoned B_new (and NaN X_old scratch); the CPU
    kernel on the best path up to `isa` (a key of ISAS)."""
    a = {n: np.ascontiguousarray(x[n].numpy()) for n in INPUT_NAMES}
    B, N, e = a["B_past"].shape
    L = a["X_new"].shape[1]
    M = a["S_samp"].shape[0] if M is None else M
    NB = a["hist"].shape[1] if NB is None else NB
    x_old = poisoned((max(B * M * e, 1),), np.float32)
    out = poisoned((B, N, e), np.float32)
    fn = getattr(_shim(), f"rrwkv_{backend}_ltm_update")
    rc = fn(B, N, e, L, M, NB, sticky, *(arr.ctypes.data for arr in (*a.values(), x_old, out)),
            *([ISAS[isa]] if backend == "cpu" else []))
    assert rc == expect_rc, f"{fn.__name__} returned {rc}, expected {expect_rc}"
    return out


def header_positions(hist: np.ndarray, M: int) -> np.ndarray:
    """ltmQuantilePosition of the math header for one histogram [NB]: pos [M]."""
    h = np.ascontiguousarray(hist, dtype=np.float32)
    pos = poisoned((M,), np.float32)
    _shim().rrwkv_ltm_quantile_positions(h.ctypes.data, h.shape[0], M, pos.ctypes.data)
    return pos
