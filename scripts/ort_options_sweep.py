"""Measure ONNX Runtime session options for decode and prefill, A/B interleaved (README "Speed on the edge CPU").

    python scripts/ort_options_sweep.py [MODEL_DIR] [--reps 5] [--threads 2] [--out FILE]

MODEL_DIR defaults to the fp32 export of the random 169M RWKV-4 that `make bench` prepares. Each option set runs
in its own worker (bench/worker.py) with the fused kernels; every repetition runs every set once (decode
of 32 steps at batch 1, a 512-token prefill) in a rotated order. Writes bench/results/<date>-ort-options.json
(or --out).
"defaults" are OrtSession's (ORT's, with memory patterns off: backends/ort.py DEFAULT_SESSION_OPTIONS); the sweep
found no other option worth changing (its session_options argument).
"""
from __future__ import annotations

import argparse
import datetime
import json
import statistics
from pathlib import Path

from rrwkv_trt.bench.suite import Worker
from rrwkv_trt.core.paths import BUILD_DIR, REPO_ROOT

DEFAULT_MODEL = BUILD_DIR / "bench" / "rwkv4-169m-random" / "fp32"
OPTION_SETS = {  # name -> (threads offset from --threads, session options)
    "defaults": (0, {}),
    "1 thread": (-1, {}),
    "no spinning": (0, {"session.intra_op.allow_spinning": "0"}),
    "memory pattern": (0, {"enable_mem_pattern": True}),
    "basic graph opt": (0, {"graph_optimization_level": "ORT_ENABLE_BASIC"}),
    "extended graph opt": (0, {"graph_optimization_level": "ORT_ENABLE_EXTENDED"}),
    "no prepacking": (0, {"session.disable_prepacking": "1"}),
    "denormals as zero": (0, {"session.set_denormal_as_zero": "1"}),
}
MEASURES = {"decode_b1": dict(op="decode", batch=1, steps=32), "prefill_512": dict(op="prefill", tokens=512, seed=0)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", default=str(DEFAULT_MODEL))
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None, help="[default: bench/results/<date>-ort-options.json]")
    args = p.parse_args()
    vocab = json.loads((Path(args.model) / "config.json").read_text())["vocab_size"]
    workers = {}
    for name, (dt, options) in OPTION_SETS.items():
        w = Worker("rrwkv_trt.bench.worker:ort_backend",
                   dict(model=args.model, threads=max(1, args.threads + dt), use_custom_ops=True, weight_bytes=0,
                        session_options=options))
        if not w.hello.get("ok"):
            raise SystemExit(f"{name}: {w.hello.get('error')}")
        for cmd in MEASURES.values():
            w.call(**cmd, vocab=vocab)  # warm-up
        workers[name] = w
    samples = {name: {m: [] for m in MEASURES} for name in workers}
    names = list(workers)
    for rep in range(args.reps):
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            for m, cmd in MEASURES.items():
                reply = workers[name].call(**cmd, vocab=vocab)
                tokens = cmd.get("steps", cmd.get("tokens"))
                samples[name][m].append(tokens / reply["seconds"])
    for w in workers.values():
        w.close()
    rows = {name: {m: {"median": round(statistics.median(v), 1), "min": round(min(v), 1), "max": round(max(v), 1)}
                   for m, v in s.items()} | {"options": OPTION_SETS[name][1]} for name, s in samples.items()}
    print(f"{'options':<20} {'decode b1 tok/s':>24} {'prefill 512 tok/s':>24}")
    for name, r in rows.items():
        cells = [f"{r[m]['median']:.1f} [{r[m]['min']:.1f}, {r[m]['max']:.1f}]" for m in MEASURES]
        print(f"{name:<20} {cells[0]:>24} {cells[1]:>24}")
    out = args.out or REPO_ROOT / "bench" / "results" / f"{datetime.date.today().isoformat()}-ort-options.json"
    out.write_text(json.dumps({"model": args.model, "threads": args.threads, "reps": args.reps, "results": rows},
                              indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
