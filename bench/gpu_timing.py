"""`make gpu-check`'s timing step: a TensorRT engine beside ONNX Runtime on the export it was built from, same host.

    python -m rrwkv_trt.bench.gpu_timing ENGINE MODEL --out FILE.json [--reps 3] [--decode-steps 64] [--prefill 512]
                                         [--threads N]

Backends: `tensorrt` (TrtSession, stream), `tensorrt-graph` (TrtSession replaying each decode step as a CUDA graph)
and `ort-kernel` (OrtSession with the fused CPU kernels; the function bodies where librrwkv_ort_ops.so is missing,
and then named so). Each repetition runs, on every backend in turn (A/B interleaved), greedy decode of
`decode_steps` tokens at batch 1 and a prefill of `prefill` seeded random ids with its first greedy token
(bench/worker.py's timers). FILE gets medians with [min, max], TensorRT's ratios to ONNX Runtime, and the largest
|logit| difference between TensorRT's and ONNX Runtime's prefill of the same prompt.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

from rrwkv_trt.runtime.backends.ort import OrtSession
from rrwkv_trt.runtime.backends.trt import TrtSession

from .worker import SessionBackend, time_decode, time_prefill


def open_backends(engine: str, model: str, threads: int | None) -> dict[str, SessionBackend]:
    ort = OrtSession(model, threads=threads)
    ort_name = "ort-kernel" if ort.custom_ops_library is not None else "ort-function"
    return {"tensorrt": SessionBackend(TrtSession(engine), 0),
            "tensorrt-graph": SessionBackend(TrtSession(engine, cuda_graph=True), 0),
            ort_name: SessionBackend(ort, 0)}


def measure(backends: dict[str, SessionBackend], reps: int, decode_steps: int, prefill: int) -> dict:
    """Medians of `reps` interleaved repetitions per backend, and TensorRT's ratios to ONNX Runtime."""
    vocab = next(iter(backends.values())).session.vocab_size
    ids = np.random.default_rng(0).integers(0, vocab, (1, prefill), dtype=np.int64)
    samples: dict[str, dict[str, list[float]]] = {n: {"decode_b1": [], "prefill": [], "ttft_ms": []} for n in backends}
    for b in backends.values():  # warm-up: first calls allocate, build graphs, load kernels
        time_decode(b, 1, 2)
        time_prefill(b, ids)
    for _ in range(reps):
        for name, b in backends.items():
            samples[name]["decode_b1"].append(decode_steps / time_decode(b, 1, decode_steps))
            seconds, ttft = time_prefill(b, ids)
            samples[name]["prefill"].append(prefill / seconds)
            samples[name]["ttft_ms"].append(1e3 * ttft)
    out = {name: {k: _spread(v) for k, v in s.items()} for name, s in samples.items()}
    ort = next(n for n in backends if n.startswith("ort-"))
    ratios = {f"{trt} / {ort}": {m: round(out[trt][m]["median"] / out[ort][m]["median"], 2)
                                 for m in ("decode_b1", "prefill")} for trt in ("tensorrt", "tensorrt-graph")}
    return {"backends": out, "ratios": ratios, "prefill_max_abs_logit_diff": _logit_diff(backends, ort, ids)}


def _logit_diff(backends: dict[str, SessionBackend], ort: str, ids: np.ndarray) -> float:
    trt = np.asarray(backends["tensorrt"].prefill(ids), dtype=np.float64)
    return float(np.abs(trt - np.asarray(backends[ort].prefill(ids), dtype=np.float64)).max())


def _spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2),
            "max": round(max(values), 2), "n": len(values)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="TensorRT beside ONNX Runtime: decode and prefill speed, same host")
    p.add_argument("engine")
    p.add_argument("model", help="the export folder the engine was built from")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--decode-steps", type=int, default=64)
    p.add_argument("--prefill", type=int, default=512)
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads [default: ORT's]")
    args = p.parse_args(argv)
    backends = open_backends(args.engine, args.model, args.threads)
    try:
        result = measure(backends, args.reps, args.decode_steps, args.prefill)
    finally:
        for b in backends.values():
            b.session.close()
    settings = {k: getattr(args, k) for k in ("reps", "decode_steps", "prefill", "threads")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"engine": args.engine, "model": args.model, **settings, **result},
                                         indent=2) + "\n")
    print(json.dumps(result["ratios"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
