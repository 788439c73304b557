"""The benchmark coordinator behind `rrwkv-trt bench` (torch-free: models and baselines run in subprocesses).

1. `python -m rrwkv_trt.bench.exports` prepares the exports (fp32, fp16, w16, int8, int4) of each checkpoint, of the
   seeded random 169M RWKV-4 and of the seeded random HGRN2 (12 x 768, expand ratio 128), and writes their manifest.
2. A machine worker measures the bounds (machine.py) with the benchmark's thread count.
3. Per model, one worker per variant (worker.py) is started and warmed up; then, repetition by repetition (each
   after a probe of the read bandwidth and the GEMM), every variant runs decode at batch 1, decode at each batched
   size (8 and 16) and a prefill, in an order rotated each repetition (A/B interleaved), so drift in machine load
   hits all variants alike.
4. A worker opens fp32 and the weight-only exports together and measures greedy agreement (accuracy.py); another
   measures every precision's bits per byte and agreement on held-out text (quality.py).
5. report.py turns the samples into medians, ratios and fractions of the bounds.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
from pathlib import Path

import click

from rrwkv_trt.core.config import config_from_dict
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.metadata import WEIGHT_ONLY_PRECISIONS
from .idle import wait_until_idle
from .plan import Settings, Variant
from .quality import measure_quality
from .report import add_runtime_fixed_memory, format_model, summarize_model
from .worker import serve


class Worker:
    """One spawned worker process; `call` sends a command and returns its reply (raises on a dead worker)."""

    def __init__(self, factory: str, kwargs: dict, env: dict | None = None) -> None:
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: its RSS and threads are its own
        self.conn, child = ctx.Pipe()
        with _environment(env or {}):
            self.proc = ctx.Process(target=serve, args=(child, factory, kwargs), daemon=True)
            self.proc.start()
        child.close()
        self.hello = self._recv()

    def call(self, op: str, **kwargs) -> dict:
        """Send a command; returns its reply once the worker's threads have stopped spinning (idle.py),
        so that they do not take a core from the next measurement."""
        self.conn.send({"op": op, **kwargs})
        reply = self._recv()
        wait_until_idle(self.proc.pid)
        return reply

    def _recv(self) -> dict:
        try:
            return self.conn.recv()
        except EOFError:
            self.proc.join(5)
            return {"ok": False, "error": f"worker exited with code {self.proc.exitcode}"}

    def close(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self.conn.send(None)
        self.proc.join(30)
        if self.proc.is_alive():
            self.proc.kill()


@contextlib.contextmanager
def _environment(env: dict):
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclasses.dataclass(frozen=True)
class RandomModels:
    """Which seeded random models bench/exports.py generates beside the checkpoints."""

    rwkv4_169m: bool = True
    hgrn2: bool = True

    def flags(self) -> list[str]:
        return ["--random-169m"] * self.rwkv4_169m + ["--random-hgrn2"] * self.hgrn2


def prepare_models(checkpoints: list[Path], random: RandomModels, work_dir: Path, precisions: tuple[str, ...],
                   fresh: bool) -> list[dict]:
    """Run the export-side preparation (needs the [export] extra) and return its manifest's models."""
    cmd = [sys.executable, "-m", "rrwkv_trt.bench.exports", str(work_dir)]
    cmd += [a for c in checkpoints for a in ("--model", str(c))]
    cmd += [a for p in precisions for a in ("--precision", p)]
    cmd += random.flags() + ["--fresh"] * fresh
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    tail: collections.deque[str] = collections.deque(maxlen=3)  # the last other lines: the error, if it fails
    for line in proc.stderr:  # progress as it happens: exporting takes minutes
        if line.startswith("bench:"):
            click.echo(line.rstrip("\n"), err=True)
        elif line.strip():
            tail.append(line.strip())
    if proc.wait() != 0:
        raise UserError(f"preparing the benchmark models failed (exit {proc.returncode}): {' | '.join(tail)}; the "
                        "benchmark exports models and needs the [export] extra: pip install 'rrwkv-trt[export,ort,dev]'")
    return json.loads((work_dir / "manifest.json").read_text())["models"]


def variants_for(model: dict, backends: tuple[str, ...], precisions: tuple[str, ...], threads: int) -> list[Variant]:
    exports = model["exports"]
    fp32 = exports["fp32"]
    fp32_bytes = dict(step_bytes=fp32["step_bytes"], state_bytes=fp32.get("state_bytes", 0))
    out = []
    for precision in precisions:
        if "ort-kernel" in backends and precision in exports:
            e = exports[precision]
            out.append(Variant(f"ort-kernel {precision}", "ort-kernel", precision,
                               "rrwkv_trt.bench.worker:ort_backend",
                               dict(model=e["dir"], threads=threads, use_custom_ops=True,
                                    weight_bytes=e["weight_bytes"]), e["step_bytes"], e.get("state_bytes", 0)))
    if "ort-function" in backends:
        out.append(Variant("ort-function fp32", "ort-function", "fp32", "rrwkv_trt.bench.worker:ort_backend",
                           dict(model=fp32["dir"], threads=threads, use_custom_ops=False,
                                weight_bytes=fp32["weight_bytes"]), **fp32_bytes))
    if "torch-eager" in backends:
        out.append(Variant("torch-eager fp32", "torch-eager", "fp32", "rrwkv_trt.bench.baselines:torch_eager",
                           dict(checkpoint=model["checkpoint"], threads=threads), **fp32_bytes))
    if "rwkv-package" in backends and model["rwkv_package_checkpoint"]:
        out.append(Variant("rwkv-package fp32", "rwkv-package", "fp32", "rrwkv_trt.bench.baselines:rwkv_package",
                           dict(checkpoint=model["rwkv_package_checkpoint"], threads=threads), **fp32_bytes))
    return out


def skipped_variants(model: dict, backends: tuple[str, ...]) -> dict[str, str]:
    """Backends asked for that cannot run this model, with the reason (reported beside TensorRT's)."""
    if "rwkv-package" in backends and not model["rwkv_package_checkpoint"]:
        return {"rwkv-package": f"BlinkDL's rwkv package runs BlinkDL RWKV-4 .pth checkpoints only; this model is "
                                f"{model['config']['family']} ({Path(model['checkpoint']).name})"}
    return {}


def measures(settings: Settings, vocab: int) -> dict[str, dict]:
    """The timed commands of one repetition, by measure name."""
    return {"decode_b1": dict(op="decode", batch=1, steps=settings.decode_steps),
            **{f"decode_b{b}": dict(op="decode", batch=b, steps=settings.batch_steps) for b in settings.batches},
            "prefill": dict(op="prefill", tokens=settings.prefill_tokens, vocab=vocab, seed=settings.seed)}


def start_workers(variants: list[Variant], settings: Settings, vocab: int) -> dict[str, Worker]:
    """Start and warm up a worker per variant (each measure once, untimed); failures are recorded, not raised."""
    workers = {}
    for v in variants:
        w = Worker(v.factory, v.kwargs)
        if not w.hello.get("ok"):
            v.error = w.hello.get("error", "failed to start")
            w.close()
            continue
        v.load = w.hello
        for name, cmd in measures(settings, vocab).items():
            warm = dict(cmd, steps=min(cmd.get("steps", 0), 4)) if cmd["op"] == "decode" else cmd
            reply = w.call(**warm)
            if not reply.get("ok"):
                v.samples[name] = reply  # unsupported (kept as the reason) or an error
        workers[v.name] = w
    return workers


def run_interleaved(variants: list[Variant], workers: dict[str, Worker], settings: Settings, vocab: int,
                    progress, machine: Worker, gemm_shape: tuple[int, int, int]) -> list[dict]:
    """`settings.reps` repetitions; each probes the read bandwidth and the GEMM at `gemm_shape`, then runs every
    measure of every variant, the variant order rotated. Returns the probes' samples."""
    live = [v for v in variants if v.name in workers]
    bandwidth = []
    for rep in range(settings.reps):
        reply = machine.call("bandwidth", args={"gemm_shape": gemm_shape})
        if not reply.pop("ok", False):
            raise UserError(f"measuring the read bandwidth failed: {reply.get('error')}")
        bandwidth.append(reply)
        order = live[rep % len(live):] + live[:rep % len(live)] if live else []
        for v in order:
            for name, cmd in measures(settings, vocab).items():
                if isinstance(v.samples.get(name), dict):  # unsupported or failed at warm-up
                    progress.update(1)
                    continue
                reply = workers[v.name].call(**cmd)
                if reply.get("ok"):
                    v.samples.setdefault(name, []).append(reply)
                else:
                    v.samples[name] = reply
                progress.update(1)
    for v in live:
        v.memory = workers[v.name].call("memory")
    return bandwidth


def start_machine(model: dict, settings: Settings) -> tuple[Worker, dict]:
    """A machine worker whose BLAS runs `settings.threads` threads, and its GEMM / GEMV bounds at the model's
    shapes; the read bandwidth and the best shape's GEMM are probed again once per repetition (run_interleaved),
    since they drift with the load of a shared machine. The GEMM bound is measured at the prefill's T rows; the
    same weights at the largest batched decode's rows are measured beside it for the record (report.py says why
    the bound is not taken there)."""
    gemv = config_from_dict(model["config"]).step_matmul_shapes()  # [N, K], the head last
    T = settings.prefill_tokens
    env = {k: str(settings.threads) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    worker = Worker("rrwkv_trt.bench.worker:machine_probe", {}, env)
    gemm = [(T, k, n) for n, k in dict.fromkeys(gemv)]  # [M, K, N] of each distinct weight shape
    batch_gemm = [(max((1, *settings.batches)), k, n) for _, k, n in gemm]
    reply = worker.call("bounds", args={"gemv_shapes": list(gemv), "gemm_shapes": gemm,
                                        "batch_gemm_shapes": batch_gemm})
    if not reply.pop("ok", False):
        worker.close()
        raise UserError(f"measuring the machine's bounds failed: {reply.get('error')}")
    return worker, reply


def gemm_summary(gemm: dict, samples: list[dict]) -> dict:
    """The bound's GEMM throughput: the best of the first probe and the per-repetition ones. A compute bound is the
    most the machine did, and a probe that shared the cores with other work measured less (2026-12-06, load 4-5:
    56.5 GFLOP/s against 199 in a quiet hour)."""
    rates = [s["gemm_gflop_s"] for s in samples]
    return gemm | {"best_gflop_s": max([gemm["best_gflop_s"], *rates]), "repetition_gflop_s": rates}


def bandwidth_summary(samples: list[dict]) -> dict:
    """The bound's read bandwidth: the median of the per-repetition probes, with their spread."""
    rates = [s["read_gb_s"] for s in samples]
    return {"read_gb_s": round(statistics.median(rates), 2), "min_gb_s": min(rates), "max_gb_s": max(rates),
            "samples": len(rates), "method": samples[0]["method"] + ", once per repetition; median"}


def measure_agreement(model: dict, precisions: tuple[str, ...], settings: Settings) -> dict:
    exports = model["exports"]
    candidates = {p: exports[p]["dir"] for p in precisions if p in WEIGHT_ONLY_PRECISIONS and p in exports}
    if not candidates or settings.agreement_steps < 1:
        return {}
    worker = Worker("rrwkv_trt.bench.accuracy:agreement_probe",
                    dict(reference=exports["fp32"]["dir"], candidates=candidates, threads=settings.threads))
    try:
        if not worker.hello.get("ok"):
            return {"error": worker.hello.get("error")}
        reply = worker.call("agreement", args=dict(steps=settings.agreement_steps,
                                                   prompt_tokens=settings.agreement_prompt, seed=settings.seed))
    finally:
        worker.close()
    reply.pop("ok", None)
    return reply


def bench_model(model: dict, backends: tuple[str, ...], precisions: tuple[str, ...], settings: Settings) -> dict:
    """Every variant of one prepared model, the machine's bounds for its shapes, and weight-only accuracy."""
    vocab = model["config"]["vocab_size"]
    settings.log(f"{model['name']}: measuring GEMM and GEMV throughput")
    machine, bounds = start_machine(model, settings)
    variants = variants_for(model, backends, precisions, settings.threads)
    settings.log(f"{model['name']}: starting {len(variants)} backends")
    workers = start_workers(variants, settings, vocab)
    total = settings.reps * len(workers) * len(measures(settings, vocab))
    try:
        with click.progressbar(length=total, label=f"bench: {model['name']}", file=sys.stderr) as bar:
            best = max(bounds["gemm"]["shapes"], key=lambda r: r["gflop_s"])
            samples = run_interleaved(variants, workers, settings, vocab, bar, machine,
                                      (best["m"], best["k"], best["n"]))
            bounds["bandwidth"], bounds["gemm"] = bandwidth_summary(samples), gemm_summary(bounds["gemm"], samples)
    finally:
        for w in (*workers.values(), machine):
            w.close()
    settings.log(f"{model['name']}: greedy agreement over {settings.agreement_steps} steps")
    agreement = measure_agreement(model, precisions, settings)
    quality = measure_quality(model, precisions, settings, Worker)
    return summarize_model(model, variants, bounds, agreement, settings, skipped_variants(model, backends)) | {
        "quality": quality}


def run_bench(checkpoints: list[Path], random: RandomModels, work_dir: Path, results_dir: Path,
              backends: tuple[str, ...], precisions: tuple[str, ...], settings: Settings, fresh: bool) -> Path:
    """Prepare, measure every model, write `results_dir/<date>-edge-cpu.json` and print the tables."""
    if "fp32" not in precisions:
        raise UserError("--precision must include fp32: it is the reference of the weight-only accuracy check")
    models = prepare_models(checkpoints, random, work_dir, precisions, fresh)
    settings.log("models ready")
    results = [bench_model(m, backends, precisions, settings) for m in models]
    add_runtime_fixed_memory(results)
    report = {"date": datetime.date.today().isoformat(), "machine": results[0]["bounds"]["facts"] if results else {},
              "settings": {k: v for k, v in dataclasses.asdict(settings).items() if k != "started"},
              "backends": list(backends), "precisions": list(precisions), "models": results}
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{report['date']}-edge-cpu.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.rename(path)
    facts = report["machine"]
    click.echo(f"machine: {facts.get('cpu')}, {facts.get('cores')} cores; numpy BLAS {facts.get('blas')}")
    for result in results:
        click.echo("")
        for line in format_model(result, settings):
            click.echo(line)
    click.echo(f"\nwrote {path}")
    settings.log("done")
    return path
