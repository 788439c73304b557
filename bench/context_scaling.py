"""Decode cost against the context length: the ∞-former (docs/families/inftyformer.md §4.11.6) beside the plain
Transformer of the same width and depth (the same model with the LTM off and a window as long as the context).

For each context length c the decode state is set to position c (random contents: the cost of a step does not
depend on the values) and the ONNX Runtime session (fused CPU kernels where built) decodes from there, one token
at a time. The ∞-former is timed over one whole segment of L steps, so its mean includes exactly one memory update;
the plain model over a fixed number of steps. Reported per model and context: state bytes per sequence and the
per-step time (median, mean, min, max). The plain model is exported once per context (its window is the
context); all exports are cached in build/bench/context/.

    python -m rrwkv_trt.bench.context_scaling [--contexts 1024 4096 16384 65536] [--threads 2] [--out FILE]
"""
from __future__ import annotations

import argparse
import datetime
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from rrwkv_trt.core.families.inftyformer import InftyformerConfig
from rrwkv_trt.core.paths import REPO_ROOT
from rrwkv_trt.runtime.backends.ort import OrtSession

from .machine import machine_facts

CONTEXTS = (1024, 4096, 16384, 65536)
SIZES = dict(vocab_size=256, n_layer=4, d_model=256, n_head=4, d_ff=1024)
# The reference code's sizes (§4.1, §4.3: L = N = M = 512) and a window of one segment.
LTM = dict(window=512, segment_len=512, num_basis=512, num_samples=512)
PLAIN_STEPS, WARMUP = 48, 6
CACHE = REPO_ROOT / "build" / "bench" / "context"
RESULTS = REPO_ROOT / "bench" / "results"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def export_model(cfg: InftyformerConfig, name: str) -> Path:
    """The fp32 export of a random checkpoint of `cfg` under CACHE/name, reused while its config matches."""
    from rrwkv_trt.export.checkpoint import load_checkpoint
    from rrwkv_trt.export.families.inftyformer import write_random_checkpoint
    from rrwkv_trt.export.onnx_export import export_checkpoint

    ckpt, out = CACHE / name / "ckpt", CACHE / name / "onnx"
    written = ckpt / "config.json"
    if (out / "model.onnx").is_file() and written.is_file() and json.loads(written.read_text()) == cfg.to_dict():
        return out
    log(f"exporting {name} (window {cfg.window}, LTM {'on' if cfg.use_ltm else 'off'})")
    shutil.rmtree(CACHE / name, ignore_errors=True)
    return export_checkpoint(load_checkpoint(write_random_checkpoint(ckpt, cfg, seed=0)), out)


def state_at(session: OrtSession, position: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A batch-1 state at `position` with random float slots (N(0, 0.5²)) and the histogram non-negative."""
    state = session.initial_state(1)
    for name, value in state.items():
        if name.endswith(".pos"):
            value[...] = position
        elif value.dtype != np.int64:
            value[...] = np.abs(rng.normal(0, 0.5, value.shape)) if name.endswith(".hist") \
                else rng.normal(0, 0.5, value.shape)
    return state


def time_decode(session: OrtSession, state: dict, steps: int, rng: np.random.Generator) -> list[float]:
    """Seconds per decode step for `steps` steps after WARMUP untimed ones."""
    session.start_decode(state)
    tokens = rng.integers(0, session.vocab_size, WARMUP + steps)
    times = []
    for i, token in enumerate(tokens):
        start = time.perf_counter()
        session.step(np.array([token]))
        if i >= WARMUP:
            times.append(time.perf_counter() - start)
    return times


def measure(name: str, cfg: InftyformerConfig, context: int, threads: int) -> dict:
    model = export_model(cfg, name)
    rng = np.random.default_rng(context)
    with OrtSession(model, threads=threads) as session:
        state = state_at(session, context, rng)
        steps = cfg.segment_len if cfg.use_ltm else PLAIN_STEPS
        times = time_decode(session, state, steps, rng)
        kernels = session.custom_ops_library is not None
    ms = [t * 1e3 for t in times]
    row = {"model": name, "context": context, "window": cfg.window, "ltm": bool(cfg.use_ltm), "steps": steps,
           "state_bytes": int(sum(v.nbytes for v in state.values())), "fused_kernels": kernels,
           "step_ms": {"median": round(statistics.median(ms), 3), "mean": round(statistics.fmean(ms), 3),
                       "min": round(min(ms), 3), "max": round(max(ms), 3)}}
    log(f"{name:>22} context {context:>6}: state {row['state_bytes'] / 2**20:8.2f} MiB, step median "
        f"{row['step_ms']['median']:8.2f} ms, mean {row['step_ms']['mean']:8.2f} ms")
    return row


def run(contexts: tuple[int, ...], threads: int) -> dict:
    infty = InftyformerConfig(**SIZES, **LTM)
    rows = [measure("inftyformer", infty, c, threads) for c in contexts]
    for c in contexts:  # the plain model's window is the whole context: its KV cache holds every position
        rows.append(measure(f"plain-window-{c}", InftyformerConfig(**SIZES, window=c, use_ltm=0), c, threads))
    return {"about": __doc__.split("\n\n")[0], "date": datetime.date.today().isoformat(), "threads": threads,
            "machine": machine_facts(), "inftyformer_config": infty.to_dict(),
            "plain_config": {**SIZES, "use_ltm": 0, "window": "= context"}, "rows": rows,
            "growth_last_over_first": growth(rows, contexts)}


def growth(rows: list[dict], contexts: tuple[int, ...]) -> dict:
    """Per model kind, the ratio of the longest context's figures to the shortest's (1.0 = flat)."""
    out = {}
    for kind, pick in (("inftyformer", lambda r: r["ltm"]), ("plain", lambda r: not r["ltm"])):
        first = next(r for r in rows if pick(r) and r["context"] == contexts[0])
        last = next(r for r in rows if pick(r) and r["context"] == contexts[-1])
        out[kind] = {"context_ratio": contexts[-1] / contexts[0],
                     "state_bytes_ratio": round(last["state_bytes"] / first["state_bytes"], 3),
                     "step_ms_median_ratio": round(last["step_ms"]["median"] / first["step_ms"]["median"], 3),
                     "step_ms_mean_ratio": round(last["step_ms"]["mean"] / first["step_ms"]["mean"], 3)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contexts", type=int, nargs="+", default=list(CONTEXTS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="JSON file [default: bench/results/DATE-context-"
                                                               "scaling.json]")
    args = parser.parse_args(argv)
    contexts = tuple(sorted(set(args.contexts)))
    if not contexts or contexts[0] < 1:
        parser.error("--contexts: positive token counts")
    result = run(contexts, args.threads)
    out = args.out or RESULTS / f"{result['date']}-context-scaling.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(out)
    print(json.dumps(result["growth_last_over_first"], indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
