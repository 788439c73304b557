"""Side-by-side ONNX Runtime benchmark: fused rrwkv CPU kernels vs the models' function bodies.

    python -m rrwkv_trt.runtime.bench OUT_DIR [--prefill 512] [--decode 128] [--reps 5] [--threads 2]

Both sessions are open at once and measured A/B interleaved, repetition by repetition, so drift in
machine load hits both alike; medians with min/max are reported. Results go to
bench/results/<date>-kernel-vs-function.json and a table is printed.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from .backends.ort import OrtSession

VARIANTS = {"function-body": dict(use_custom_ops=False), "fused-kernel": dict(use_custom_ops=True)}


def time_prefill(sess: OrtSession, ids: np.ndarray) -> float:
    """Seconds for one prefill call of ids [1, T] from the initial state."""
    state = sess.initial_state(1)
    start = time.perf_counter()
    sess.run(ids, state)
    return time.perf_counter() - start


def time_decode(sess: OrtSession, steps: int) -> float:
    """Seconds for `steps` decode steps (greedy feedback, preallocated buffers)."""
    sess.start_decode(sess.initial_state(1))
    token = np.array([ord("d")], dtype=np.int64)
    start = time.perf_counter()
    for _ in range(steps):
        logits = sess.step(token)
        token[0] = int(np.asarray(logits).reshape(-1).argmax())
    return time.perf_counter() - start


def summarize(samples: list[float], tokens: int) -> dict:
    rates = [tokens / s for s in samples]
    return {"tokens_per_s_median": round(statistics.median(rates), 1), "tokens_per_s_min": round(min(rates), 1),
            "tokens_per_s_max": round(max(rates), 1), "reps": len(rates)}


def run_bench(out_dir: str, prefill: int, decode: int, reps: int, threads: int) -> dict:
    sessions = {name: OrtSession(out_dir, threads=threads, **kw) for name, kw in VARIANTS.items()}
    if sessions["fused-kernel"].custom_ops_library is None:
        raise SystemExit("fused kernels unavailable: build/librrwkv_ort_ops.so not found; run `make plugins`")
    ids = np.random.default_rng(0).integers(0, sessions["fused-kernel"].vocab_size, (1, prefill))
    times = {name: {"prefill": [], "decode": []} for name in sessions}
    for sess in sessions.values():  # warm-up: first-run allocations and graph initialisation
        time_prefill(sess, ids[:, :8])
        time_decode(sess, 4)
    for _ in range(reps):
        for name, sess in sessions.items():
            times[name]["prefill"].append(time_prefill(sess, ids))
            times[name]["decode"].append(time_decode(sess, decode))
    results = {name: {"prefill": summarize(t["prefill"], prefill), "decode": summarize(t["decode"], decode)}
               for name, t in times.items()}
    fn, kern = results["function-body"], results["fused-kernel"]
    return {
        "date": datetime.date.today().isoformat(), "model": str(out_dir), "threads": threads,
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
        "prefill_tokens": prefill, "decode_steps": decode, "results": results,
        "ratio_kernel_over_function": {
            k: round(kern[k]["tokens_per_s_median"] / fn[k]["tokens_per_s_median"], 2) for k in ("prefill", "decode")},
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def print_table(report: dict) -> None:
    print(f"{'variant':<15} {'prefill tok/s (median [min, max])':>36} {'decode tok/s (median [min, max])':>36}")
    for name, r in report["results"].items():
        cells = [f"{r[k]['tokens_per_s_median']:.1f} [{r[k]['tokens_per_s_min']:.1f}, {r[k]['tokens_per_s_max']:.1f}]"
                 for k in ("prefill", "decode")]
        print(f"{name:<15} {cells[0]:>36} {cells[1]:>36}")
    ratio = report["ratio_kernel_over_function"]
    print(f"fused-kernel / function-body: prefill x{ratio['prefill']}, decode x{ratio['decode']}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir")
    p.add_argument("--prefill", type=int, default=512)
    p.add_argument("--decode", type=int, default=128)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--results", default="bench/results")
    args = p.parse_args(argv)
    report = run_bench(args.out_dir, args.prefill, args.decode, args.reps, args.threads)
    print_table(report)
    path = Path(args.results) / f"{report['date']}-kernel-vs-function.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
