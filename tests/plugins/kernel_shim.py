"""ctypes access to build/librrwkv_cpu_testshim.so: each op's CPU kernels and its CUDA kernels (<op>Kernel.cuh)
compiled for the CPU under plugins/tests/cudaEmulation.h, through the extern "C" entry points of its folder's
TEST_SHIM_SOURCES (plugins/<folder>/op.cmake, e.g. plugins/wkv4/wkv4TestShim.cc), plus the shared ones of
plugins/tests/cpuTestShim.cc.

Tests build nothing: a missing library fails with "run `make plugins`". Outputs are NaN-poisoned before every
call, so an element a kernel never writes fails the comparison.
"""
from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import numpy as np
import pytest

from rrwkv_trt.core.paths import REPO_ROOT

REPO = REPO_ROOT
SHIM = REPO / "build" / "librrwkv_cpu_testshim.so"
ORT_OPS = REPO / "build" / "librrwkv_ort_ops.so"
BACKENDS = ("cpu", "emu")  # CPU kernel, emulated CUDA kernel

_i32, _i64, _p = ctypes.c_int32, ctypes.c_int64, ctypes.c_void_p
W8_ISAS = {"portable": 0, "avx2": 1, "avx512-vnni": 2}  # plugins/common/cpuIsa.h CpuIsa; 2 needs VNNI (cpuIsaVnni)
CPU_ISAS = {"portable": 0, "avx2": 1, "avx512": 2}  # plugins/common/cpuIsa.h CpuIsa
_WKV4_ARGS = [_i32] * 3 + [_p] * 11
_MEDIUM_ARGS = [_i32] * 6 + [_p] * 14
_W8_ARGS = [_i32] * 4 + [_p] * 6
_GOS_ARGS = [_i32] * 5 + [ctypes.c_float] + [_p] * 7
XQ_POISON = -32768  # no quantised activation takes it (w8QuantizeActivation: [-32767, 32767])


def require_library(path: Path) -> Path:
    if not path.is_file():
        pytest.fail(f"{path} not found; run `make plugins` (tests do not build it)", pytrace=False)
    return path


@functools.cache
def shim() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(require_library(SHIM)))
    for backend in BACKENDS:
        for dt in ("f32", "f16"):
            for name, args in ((f"rrwkv_{backend}_wkv4_{dt}", _WKV4_ARGS),
                               (f"rrwkv_{backend}_wkv4_medium_{dt}", _MEDIUM_ARGS)):
                fn = getattr(lib, name)
                fn.argtypes, fn.restype = args, ctypes.c_int
            fn = getattr(lib, f"rrwkv_{backend}_gated_outer_scan_{dt}")
            fn.argtypes, fn.restype = _GOS_ARGS, ctypes.c_int
    lib.rrwkv_emu_gated_outer_scan_config.argtypes = [_i32] * 4 + [ctypes.POINTER(_i32)] * 4 + [
        ctypes.POINTER(ctypes.c_uint32)]
    lib.rrwkv_emu_gated_outer_scan_config.restype = _i64
    lib.rrwkv_cpu_matmul_w8.argtypes, lib.rrwkv_cpu_matmul_w8.restype = _W8_ARGS + [_i32], ctypes.c_int
    lib.rrwkv_emu_matmul_w8.argtypes, lib.rrwkv_emu_matmul_w8.restype = _W8_ARGS, ctypes.c_int
    lib.rrwkv_cpu_matmul_w8_isa.restype = _i32
    lib.rrwkv_cpu_matmul_w4.argtypes, lib.rrwkv_cpu_matmul_w4.restype = _W8_ARGS + [_i32], ctypes.c_int
    lib.rrwkv_emu_matmul_w4.argtypes, lib.rrwkv_emu_matmul_w4.restype = _W8_ARGS, ctypes.c_int
    lib.rrwkv_emu_matmul_w4_threads.argtypes = [ctypes.POINTER(_i32)] * 2
    lib.rrwkv_emu_matmul_w4_threads.restype = None
    lib.rrwkv_cpu_matmul_wf16.argtypes, lib.rrwkv_cpu_matmul_wf16.restype = [_i32] * 3 + [_p] * 3 + [_i32], ctypes.c_int
    lib.rrwkv_emu_matmul_wf16.argtypes, lib.rrwkv_emu_matmul_wf16.restype = [_i32] * 3 + [_p] * 3, ctypes.c_int
    lib.rrwkv_cpu_matmul_wf16_isa.restype = _i32
    lib.rrwkv_emu_matmul_wf16_threads.restype = _i32
    lib.rrwkv_wf16_size_error.argtypes = [_i64] * 3 + [ctypes.c_char_p, _i32]
    lib.rrwkv_wf16_size_error.restype = _i32
    lib.rrwkv_wf16_cpu_slice.argtypes = [_i64, _i32, _i32] + [ctypes.POINTER(_i32)] * 3
    lib.rrwkv_wf16_cpu_slice.restype = _i64
    lib.rrwkv_wf16_to_float.argtypes = [_p, _p, _i64]
    lib.rrwkv_w8_block_count.argtypes, lib.rrwkv_w8_block_count.restype = [_i32, _i32], _i32
    lib.rrwkv_w8_group_count.argtypes, lib.rrwkv_w8_group_count.restype = [_i32], _i32
    lib.rrwkv_w8_padded_k.argtypes, lib.rrwkv_w8_padded_k.restype = [_i32, _i32], _i64
    lib.rrwkv_w8_size_error.argtypes = [_i64] * 4 + [ctypes.c_char_p, _i32]
    lib.rrwkv_w8_size_error.restype = _i32
    lib.rrwkv_w8_cpu_slice.argtypes = [_i64, _i32, _i32] + [ctypes.POINTER(_i32)] * 3
    lib.rrwkv_w8_cpu_slice.restype = _i64
    lib.rrwkv_wkv4_cpu_slice.argtypes = [_i64, _i32, _i32, ctypes.POINTER(_i64)] + [ctypes.POINTER(_i32)] * 2
    lib.rrwkv_wkv4_cpu_slice.restype = _i64
    for dt in ("f32", "f16"):
        fn = getattr(lib, f"rrwkv_cpu_wkv4_isa_{dt}")
        fn.argtypes, fn.restype = _WKV4_ARGS + [_i32], ctypes.c_int
    lib.rrwkv_cpu_wkv4_isa.restype = _i32
    lib.rrwkv_cpu_wkv4_exp.argtypes, lib.rrwkv_cpu_wkv4_exp.restype = [_p, _p, _i64, _i32], None
    lib.rrwkv_emu_matmul_w8_threads.argtypes = [ctypes.POINTER(_i32)] * 2
    lib.rrwkv_emu_matmul_w8_threads.restype = None
    lib.rrwkv_emu_last_launch.argtypes = [ctypes.POINTER(ctypes.c_uint32)] * 2 + [
        ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_int32)]
    lib.rrwkv_emu_last_launch.restype = None
    lib.rrwkv_emu_wkv4_threads_per_block.restype = ctypes.c_int32
    lib.rrwkv_half_to_float.argtypes = [_p, _p, _i64]
    lib.rrwkv_float_to_half.argtypes = [_p, _p, _i64]
    return lib


def _ptr(a: np.ndarray) -> int:
    assert a.flags.c_contiguous
    return a.ctypes.data


def _as_np(x, dtype=None) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(x if dtype is None else np.asarray(x, dtype=dtype))


def _io_suffix(k: np.ndarray) -> str:
    if k.dtype == np.float32:
        return "f32"
    if k.dtype == np.float16:
        return "f16"
    raise TypeError(f"k must be float32 or float16, got {k.dtype}")


def poisoned(shape, dtype) -> np.ndarray:
    return np.full(shape, np.nan, dtype=dtype)


def run_wkv4(backend: str, w, u, k, v, aa, bb, pp, out=None) -> tuple[np.ndarray, ...]:
    """WKV4 through `backend` ("cpu" or "emu"). Inputs: torch tensors or arrays; k, v f32 or f16.

    out: optional (y, aa_out, bb_out, pp_out) arrays to write into (e.g. aliasing the state inputs);
    by default fresh NaN-poisoned arrays. Returns the four outputs.
    """
    w, u, aa, bb, pp = (_as_np(x, np.float32) for x in (w, u, aa, bb, pp))
    k, v = _as_np(k), _as_np(v)
    B, T, C = k.shape
    if out is None:
        out = (poisoned(k.shape, k.dtype), poisoned((B, C), np.float32), poisoned((B, C), np.float32),
               poisoned((B, C), np.float32))
    fn = getattr(shim(), f"rrwkv_{backend}_wkv4_{_io_suffix(k)}")
    rc = fn(B, T, C, *map(_ptr, (w, u, k, v, aa, bb, pp, *out)))
    assert rc == 0, f"{fn.__name__} returned {rc}"
    return out


def run_wkv4_isa(isa: int, w, u, k, v, aa, bb, pp) -> tuple[np.ndarray, ...]:
    """WKV4's CPU kernel on the best path up to `isa` (CPU_ISAS); like run_wkv4, into fresh NaN-poisoned arrays."""
    w, u, aa, bb, pp = (_as_np(x, np.float32) for x in (w, u, aa, bb, pp))
    k, v = _as_np(k), _as_np(v)
    B, T, C = k.shape
    out = (poisoned(k.shape, k.dtype), poisoned((B, C), np.float32), poisoned((B, C), np.float32),
           poisoned((B, C), np.float32))
    fn = getattr(shim(), f"rrwkv_cpu_wkv4_isa_{_io_suffix(k)}")
    rc = fn(B, T, C, *map(_ptr, (w, u, k, v, aa, bb, pp, *out)), isa)
    assert rc == 0, f"{fn.__name__} returned {rc}"
    return out


def wkv4_cpu_isa() -> int:
    """The best path the WKV4 CPU kernels take on this machine (a CPU_ISAS value)."""
    return int(shim().rrwkv_cpu_wkv4_isa())


def wkv4_exp(x, isa: int = CPU_ISAS["portable"]) -> np.ndarray:
    """wkv4Exp (plugins/wkv4/wkv4Math.h) of float32 `x` on the best path up to `isa` (CPU_ISAS)."""
    x = _as_np(x, np.float32)
    y = poisoned(x.shape, np.float32)
    shim().rrwkv_cpu_wkv4_exp(_ptr(x), _ptr(y), x.size, isa)
    return y


def run_wkv4_medium(backend: str, w, u, k, v, k_m, v_m, aa, bb, pp, pos0, s: int, medium_decays: int = 0,
                    out=None, expect_rc: int = 0) -> tuple[np.ndarray, ...]:
    """WKV4Medium through `backend`; like run_wkv4 plus k_m, v_m [B, M, C] f32, pos0 [B] int64."""
    w, u, k_m, v_m, aa, bb, pp = (_as_np(x, np.float32) for x in (w, u, k_m, v_m, aa, bb, pp))
    k, v, pos0 = _as_np(k), _as_np(v), _as_np(pos0, np.int64)
    B, T, C = k.shape
    if out is None:
        out = (poisoned(k.shape, k.dtype), poisoned((B, C), np.float32), poisoned((B, C), np.float32),
               poisoned((B, C), np.float32))
    fn = getattr(shim(), f"rrwkv_{backend}_wkv4_medium_{_io_suffix(k)}")
    rc = fn(B, T, C, k_m.shape[1], s, medium_decays, *map(_ptr, (w, u, k, v, k_m, v_m, aa, bb, pp, pos0, *out)))
    assert rc == expect_rc, f"{fn.__name__} returned {rc}, expected {expect_rc}"
    return out


def run_gated_outer_scan(backend: str, q, f, lb, v, state, scale: float, out=None,
                         expect_rc: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """GatedOuterScan through `backend` ("cpu" or "emu"). q, f [B, T, H, K] and v [B, T, H, V] f32 or f16 (one
    dtype); lb [H, K] and state [B, H, K, V] f32. out: optional (o, S_out) arrays to write into (e.g. S_out aliasing
    the state input); by default fresh NaN-poisoned arrays. Returns (o, S_out)."""
    lb, state = _as_np(lb, np.float32), _as_np(state, np.float32)
    q, f, v = _as_np(q), _as_np(f), _as_np(v)
    B, T, H, K = q.shape
    V = v.shape[3]
    if out is None:
        out = (poisoned(v.shape, v.dtype), poisoned((B, H, K, V), np.float32))
    fn = getattr(shim(), f"rrwkv_{backend}_gated_outer_scan_{_io_suffix(q)}")
    rc = fn(B, T, H, K, V, scale, *map(_ptr, (q, f, lb, v, state, *out)))
    assert rc == expect_rc, f"{fn.__name__} returned {rc}, expected {expect_rc}"
    return out


def gated_outer_scan_config(B: int, H: int, K: int, V: int) -> dict[str, int]:
    """gosLaunchConfig of gatedOuterScanKernel.cuh: kernel (1 registers, 0 large K), columns, groups, tiles per head,
    threads per block and blocks."""
    reg, cols, groups, tiles, threads = _i32(), _i32(), _i32(), _i32(), ctypes.c_uint32()
    blocks = shim().rrwkv_emu_gated_outer_scan_config(B, H, K, V, *map(ctypes.byref, (reg, cols, groups, tiles,
                                                                                      threads)))
    return {"registers": reg.value, "columns": cols.value, "groups": groups.value, "tiles": tiles.value,
            "threads": threads.value, "blocks": blocks}


def run_matmul_w8(backend: str, x, w, scale, N: int, block_size: int,
                  isa: int = W8_ISAS["avx512-vnni"]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MatMulW8 through `backend` ("cpu", or "emu" for the CUDA kernels); the CPU kernels take the best path up
    to `isa` (W8_ISAS: 0 portable, 1 AVX2, 2 AVX-512 VNNI).

    x [..., K] f32; w int8 [G, P, 64, 2], scale f32 [G, NB, 64] (export.w8_pack.quantize_w8). Returns
    (y [..., N], xq int16 [M, Kpad], x_scale [M]), each poisoned before the call (NaN; xq XQ_POISON).
    """
    return _run_block_quantized("matmul_w8", backend, x, w, scale, N, block_size, isa)


def run_matmul_w4(backend: str, x, w, scale, N: int, block_size: int,
                  isa: int = W8_ISAS["avx512-vnni"]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MatMulW4 through `backend` ("cpu", or "emu" for the CUDA kernels); the CPU kernels take the best path up
    to `isa` (W8_ISAS: MatMulW4 shares MatMulW8's paths).

    x [..., K] f32; w int8 [G, P, 64], scale f32 [G, NB, 64] (export.w4_pack.quantize_w4). Returns
    (y [..., N], xq int16 [M, Kpad], x_scale [M]), each poisoned before the call (NaN; xq XQ_POISON).
    """
    return _run_block_quantized("matmul_w4", backend, x, w, scale, N, block_size, isa)


def _run_block_quantized(op: str, backend: str, x, w, scale, N: int, block_size: int,
                         isa: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """run_matmul_w8 / run_matmul_w4 (`op`): the same arguments and outputs; w's dim 1 is Kpad / 2 in both formats."""
    x, w, scale = _as_np(x, np.float32), _as_np(w, np.int8), _as_np(scale, np.float32)
    K = x.shape[-1]
    M = int(np.prod(x.shape[:-1], dtype=np.int64))
    kpad = 2 * w.shape[1]
    y = poisoned((*x.shape[:-1], N), np.float32)
    xq = np.full((M, kpad), XQ_POISON, np.int16)
    x_scale = poisoned((M,), np.float32)
    args = (M, K, N, block_size, *map(_ptr, (x, w, scale, xq, x_scale, y)))
    if backend == "cpu":
        rc = getattr(shim(), f"rrwkv_cpu_{op}")(*args, isa)
    elif backend == "emu":
        rc = getattr(shim(), f"rrwkv_emu_{op}")(*args)
    else:
        raise ValueError(f"backend must be 'cpu' or 'emu', got {backend!r}")
    assert rc == 0, f"{op} on {backend} returned {rc}"
    return y, xq, x_scale


def emu_matmul_w4_status(M: int, K: int, N: int, block_size: int) -> int:
    """The emulated MatMulW4 launcher's return code (cudaError_t) for these sizes, on dummy buffers."""
    dummy = np.zeros(16, np.float32)
    return shim().rrwkv_emu_matmul_w4(M, K, N, block_size, *(_ptr(dummy),) * 6)


def cpu_matmul_w4_status(M: int, K: int, N: int, block_size: int) -> int:
    """The MatMulW4 CPU entry point's return code for these sizes on dummy buffers (1: refused before touching them)."""
    dummy = np.zeros(16, np.float32)
    return shim().rrwkv_cpu_matmul_w4(M, K, N, block_size, *(_ptr(dummy),) * 6, W8_ISAS["avx512-vnni"])


def matmul_w4_threads() -> tuple[int, int]:
    """Threads per block of the emulated MatMulW4 kernels: (row quantisation, GEMM)."""
    q, g = _i32(), _i32()
    shim().rrwkv_emu_matmul_w4_threads(ctypes.byref(q), ctypes.byref(g))
    return q.value, g.value


def emu_matmul_w8_status(M: int, K: int, N: int, block_size: int) -> int:
    """The emulated launcher's return code (cudaError_t) for these sizes, on dummy buffers: for argument checks
    that must fail before any buffer is touched."""
    dummy = np.zeros(16, np.float32)
    return shim().rrwkv_emu_matmul_w8(M, K, N, block_size, *(_ptr(dummy),) * 6)


def cpu_matmul_w8_status(M: int, K: int, N: int, block_size: int) -> int:
    """The CPU entry point's return code for these sizes on dummy buffers (1: refused before touching them)."""
    dummy = np.zeros(16, np.float32)
    return shim().rrwkv_cpu_matmul_w8(M, K, N, block_size, *(_ptr(dummy),) * 6, W8_ISAS["avx512-vnni"])


def w8_sizes(K: int, N: int, block_size: int) -> tuple[int, int, int]:
    """(w8BlockCount(K, block_size), w8GroupCount(N), w8PaddedK(K, block_size)) of matmulW8Math.h."""
    lib = shim()
    return lib.rrwkv_w8_block_count(K, block_size), lib.rrwkv_w8_group_count(N), lib.rrwkv_w8_padded_k(K, block_size)


def w8_size_error(M: int, K: int, N: int, block_size: int) -> str:
    """matmulW8SizeError (matmulW8Cpu.h): why the CPU kernels refuse these sizes, "" when they take them."""
    buf = ctypes.create_string_buffer(512)
    shim().rrwkv_w8_size_error(M, K, N, block_size, buf, len(buf))
    return buf.value.decode()


def w8_cpu_slice(s: int, M: int, N: int) -> tuple[int, int, int, int]:
    """(slice count, g, r0, r1) of pass-2 slice s of the MatMulW8 CPU kernel (matmulW8CpuSlice)."""
    g, r0, r1 = _i32(), _i32(), _i32()
    count = shim().rrwkv_w8_cpu_slice(s, M, N, ctypes.byref(g), ctypes.byref(r0), ctypes.byref(r1))
    return count, g.value, r0.value, r1.value


def run_matmul_wf16(backend: str, x, w, N: int, isa: int = CPU_ISAS["avx512"], expect_rc: int = 0) -> np.ndarray:
    """MatMulWF16 through `backend` ("cpu", or "emu" for the CUDA kernel); the CPU kernels take the best path up to
    `isa` (CPU_ISAS). x [..., K] f32; w f16 [G, K, 64] (export.wf16_pack.pack_wf16). Returns y [..., N], poisoned
    (NaN) before the call."""
    x, w = _as_np(x, np.float32), _as_np(w, np.float16)
    M = int(np.prod(x.shape[:-1], dtype=np.int64))
    y = poisoned((*x.shape[:-1], N), np.float32)
    args = (M, x.shape[-1], N, _ptr(x), _ptr(w), _ptr(y))
    if backend == "cpu":
        rc = shim().rrwkv_cpu_matmul_wf16(*args, isa)
    elif backend == "emu":
        rc = shim().rrwkv_emu_matmul_wf16(*args)
    else:
        raise ValueError(f"backend must be 'cpu' or 'emu', got {backend!r}")
    assert rc == expect_rc, f"matmul_wf16 on {backend} returned {rc}, expected {expect_rc}"
    return y


def wf16_status(backend: str, M: int, K: int, N: int) -> int:
    """The return code of the CPU entry point (1: refused) or the emulated launcher (cudaError_t) for these sizes,
    on dummy buffers: for argument checks that must fail before any buffer is touched."""
    dummy = np.zeros(16, np.float32)
    if backend == "cpu":
        return shim().rrwkv_cpu_matmul_wf16(M, K, N, *(_ptr(dummy),) * 3, CPU_ISAS["avx512"])
    return shim().rrwkv_emu_matmul_wf16(M, K, N, *(_ptr(dummy),) * 3)


def wf16_size_error(M: int, K: int, N: int) -> str:
    """matmulWF16SizeError (matmulWF16Cpu.h): why the CPU kernels refuse these sizes, "" when they take them."""
    buf = ctypes.create_string_buffer(512)
    shim().rrwkv_wf16_size_error(M, K, N, buf, len(buf))
    return buf.value.decode()


def wf16_cpu_slice(s: int, M: int, N: int) -> tuple[int, int, int, int]:
    """(slice count, g, r0, r1) of slice s of the MatMulWF16 CPU kernels (matmulWF16CpuSlice)."""
    g, r0, r1 = _i32(), _i32(), _i32()
    count = shim().rrwkv_wf16_cpu_slice(s, M, N, ctypes.byref(g), ctypes.byref(r0), ctypes.byref(r1))
    return count, g.value, r0.value, r1.value


def matmul_wf16_isa() -> int:
    """The best path the MatMulWF16 CPU kernels take on this machine (a CPU_ISAS value)."""
    return int(shim().rrwkv_cpu_matmul_wf16_isa())


def matmul_wf16_threads() -> int:
    """Threads per block of the emulated MatMulWF16 kernel."""
    return int(shim().rrwkv_emu_matmul_wf16_threads())


def wf16_to_float(bits: np.ndarray) -> np.ndarray:
    """wf16ToFloat (matmulWF16Math.h) of fp16 bit patterns."""
    bits = np.ascontiguousarray(bits, dtype=np.uint16)
    out = np.empty(bits.shape, np.float32)
    shim().rrwkv_wf16_to_float(_ptr(bits), _ptr(out), bits.size)
    return out


def wkv4_cpu_slice(index: int, B: int, C: int) -> tuple[int, int, int, int]:
    """(slice count, b, c0, c1) of slice `index` of the WKV4 CPU kernels (wkv4CpuSlice)."""
    b, c0, c1 = _i64(), _i32(), _i32()
    count = shim().rrwkv_wkv4_cpu_slice(index, B, C, ctypes.byref(b), ctypes.byref(c0), ctypes.byref(c1))
    return count, b.value, c0.value, c1.value


def matmul_w8_isa() -> int:
    """The best path the CPU kernels take on this machine (a W8_ISAS value)."""
    return int(shim().rrwkv_cpu_matmul_w8_isa())


def matmul_w8_threads() -> tuple[int, int]:
    """Threads per block of the emulated MatMulW8 kernels: (row quantisation, GEMM)."""
    q, g = _i32(), _i32()
    shim().rrwkv_emu_matmul_w8_threads(ctypes.byref(q), ctypes.byref(g))
    return q.value, g.value


def last_launch() -> dict[str, int]:
    """grid, block, threads run and launch count of the last emulated launch (this thread)."""
    g, b, n, c = ctypes.c_uint32(), ctypes.c_uint32(), ctypes.c_int64(), ctypes.c_int32()
    shim().rrwkv_emu_last_launch(ctypes.byref(g), ctypes.byref(b), ctypes.byref(n), ctypes.byref(c))
    return {"grid": g.value, "block": b.value, "threads_run": n.value, "launches": c.value}


def half_to_float(bits: np.ndarray) -> np.ndarray:
    bits = np.ascontiguousarray(bits, dtype=np.uint16)
    out = np.empty(bits.shape, np.float32)
    shim().rrwkv_half_to_float(_ptr(bits), _ptr(out), bits.size)
    return out


def float_to_half(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty(x.shape, np.uint16)
    shim().rrwkv_float_to_half(_ptr(x), _ptr(out), x.size)
    return out
