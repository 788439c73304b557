"""What this machine can do at best: sustained read bandwidth, GEMV and GEMM throughput (numpy's BLAS).

These are the bounds the benchmark divides by. Decode of a recurrent model reads every projection weight once per
step, so its bound is bandwidth / weight bytes per step; prefill is matrix-matrix work, so its bound is FLOPs /
GEMM throughput. Each probe runs in the benchmark's machine worker, whose BLAS was started with the benchmark's
thread count (OPENBLAS_NUM_THREADS is set before numpy is imported there).

* Read bandwidth: fp32 GEMV y = A x over a 1 GiB A. A GEMV reads A exactly once, as decoding reads its weights,
  and 1 GiB is far beyond every cache level, so the figure is DRAM's; it is also the GEMV throughput.
* GEMV at the model's shapes: the same, over the model's own projection shapes, one weight after another (the
  access pattern of one decode step); below the 1 GiB figure by the per-call cost of small products.
* GEMM: [T, K] @ [K, N] at the model's prefill shapes; the best shape's GFLOP/s is the prefill bound.
"""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np

GIB = 1 << 30


def best_seconds(fn, reps: int) -> float:
    """Fastest of `reps` timed calls after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def read_bandwidth(nbytes: int = GIB, reps: int = 5) -> dict:
    """Sustained read GB/s of an fp32 GEMV over an `nbytes` matrix (DRAM-resident at 1 GiB)."""
    cols = 4096
    a = np.ones((nbytes // 4 // cols, cols), dtype=np.float32)  # written once, so every page is resident
    x = np.ones(cols, dtype=np.float32)
    seconds = best_seconds(lambda: a @ x, reps)
    return {"read_gb_s": round(a.nbytes / seconds / 1e9, 2), "gemv_gflop_s": round(2 * a.size / seconds / 1e9, 2),
            "bytes": a.nbytes, "method": f"fp32 GEMV over a {a.nbytes / GIB:.0f} GiB matrix, best of {reps}"}


def gemv_model_shapes(shapes: list[tuple[int, int]], reps: int = 5) -> dict:
    """GB/s of one decode step's GEMVs: y = W x for each [N, K] weight in `shapes`, each weight its own array."""
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(s, dtype=np.float32) for s in shapes]
    inputs = {k: np.ones(k, dtype=np.float32) for k in {s[1] for s in shapes}}
    total = sum(w.nbytes for w in weights)
    seconds = best_seconds(lambda: [w @ inputs[w.shape[1]] for w in weights], reps)
    return {"read_gb_s": round(total / seconds / 1e9, 2), "bytes": total, "matrices": len(shapes)}


def gemm_throughput(shapes: list[tuple[int, int, int]], reps: int = 3) -> dict:
    """GFLOP/s of [M, K] @ [K, N] for each (M, K, N); the best is the prefill bound."""
    rng = np.random.default_rng(0)
    rows = []
    for m, k, n in shapes:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        seconds = best_seconds(lambda: a @ b, reps)
        rows.append({"m": m, "k": k, "n": n, "gflop_s": round(2 * m * k * n / seconds / 1e9, 1)})
    return {"best_gflop_s": max(r["gflop_s"] for r in rows), "shapes": rows}


def blas_info() -> str:
    """numpy's BLAS library and version as numpy reports them."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '?')}"
    except (KeyError, TypeError, ValueError):
        return "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_facts() -> dict:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "blas": blas_info(), "platform": platform.platform()}
