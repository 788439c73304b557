"""`make gpu-check`: everything a GPU host must show, in one command, within a time budget (8 minutes).

    python -m rrwkv_trt.bench.gpu_check [--budget 480] [--work build/gpu-check] [--results bench/results]

Without a CUDA GPU, TensorRT or cuda-python it prints the reason it skips and exits 0. Otherwise, in order:
  1. plugins         `bash plugins/build.sh` for this GPU's architecture only (CMAKE_CUDA_ARCHITECTURES, which the
                     build/plugins cache then keeps); the TensorRT plugin library and the parity binary must exist;
  2. kernel-parity   tests/plugins/test_kernel_parity.py: every CUDA kernel against the CPU kernel (a skip fails);
  3. exports         bench/exports.py: the shipped model and the seeded random 169M RWKV-4, fp32 and fp16;
  4. per model and precision:
     engine          `rrwkv-trt build`;
     reference       the PyTorch reference folder (reference/writer.py) that `compare` reads;
     compare         `rrwkv-trt compare MODEL --engine ENGINE`: per call and drift, against runtime/tolerances.json;
     timing          bench/gpu_timing.py: TensorRT (stream, CUDA graph) beside ONNX Runtime, decode and prefill.
Every step runs as a subprocess with its own timeout, cut to what is left of the budget; a step whose inputs failed,
or that no longer fits the budget, is skipped with the reason. One JSON under bench/results/ records each step's
status, seconds, command and figures (full logs: WORK/logs/); the exit code is 0 when every step passed.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.paths import REPO_ROOT, SHIPPED_MODEL

BUDGET_S = 480
MIN_STEP_S = 10  # a step is not started with less of the budget left
PRECISIONS = ("fp32", "fp16")
SMALL_MODEL_BYTES = 64 << 20  # compare's drift runs 1000 steps on models below this, 200 on the 169M (budget)
PY = sys.executable


@dataclass(frozen=True)
class Layout:
    repo: Path = REPO_ROOT
    work: Path = REPO_ROOT / "build" / "gpu-check"
    results: Path = REPO_ROOT / "bench" / "results"


@dataclass
class Step:
    name: str
    argv: list[str]
    timeout_s: float
    needs: tuple[str, ...] = ()  # steps that must have passed
    env: dict[str, str] = field(default_factory=dict)
    check: Callable[[str], str | None] | None = None  # after exit 0: why it failed all the same (from its output)
    figures: Callable[[str], dict] | None = None  # what it measured, once it passed


@dataclass
class Completed:
    returncode: int | None  # None: killed at the timeout
    output: str  # stdout and stderr together


Runner = Callable[[Step, float], Completed]


@dataclass
class Detection:
    facts: dict
    skip_reason: str | None


def detect() -> Detection:
    """A CUDA GPU (driver API), full TensorRT and cuda-python, with the facts the JSON records; the first one missing
    is the reason to skip."""
    from rrwkv_trt.runtime.engine import gpu_compute_capability
    from rrwkv_trt.runtime.trt_loader import import_tensorrt

    facts = {"cpu_cores": os.cpu_count(), "python": platform.python_version(), "nvcc": shutil.which("nvcc")}
    gpu = gpu_compute_capability()
    if gpu is None:
        return Detection(facts, "no CUDA GPU: libcuda.so.1 cannot be loaded or lists no device")
    facts["compute_capability"], facts["gpu"] = gpu
    try:
        facts["tensorrt"] = import_tensorrt().__version__
    except UserError as err:
        return Detection(facts, str(err))
    if importlib.util.find_spec("cuda") is None:
        return Detection(facts, "cuda-python is not installed (TrtSession needs it): pip install 'rrwkv-trt[trt]'")
    return Detection(facts, None)


def first_steps(compute_capability: str, layout: Layout) -> list[Step]:
    """Plugins, kernel parity and the exports: what every engine step needs."""
    build = layout.repo / "build"
    built = [build / "librrwkv_trt_plugins_dyn.so", build / "plugins" / "rrwkv_kernel_parity"]

    def plugins_check(output: str) -> str | None:
        missing = [str(p) for p in built if not p.is_file()]
        if not missing:
            return None
        log = build / "plugins.configure.log"
        why = [ln for ln in log.read_text().splitlines() if ln.startswith("-- rrwkv:")] if log.is_file() else []
        return f"not built: {', '.join(missing)} ({'; '.join(why) or 'see the output'})"

    manifest = layout.work / "models" / "manifest.json"
    return [
        Step("plugins", ["bash", "plugins/build.sh"], 240,
             env={"CMAKE_ARGS": f"-DCMAKE_CUDA_ARCHITECTURES={compute_capability.replace('.', '')}",
                  "JOBS": str(os.cpu_count() or 2)}, check=plugins_check),
        Step("kernel-parity", [PY, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                               "tests/plugins/test_kernel_parity.py"], 120, needs=("plugins",),
             check=_parity_skipped),
        Step("exports", [PY, "-m", "rrwkv_trt.bench.exports", str(layout.work / "models"), "--model",
                         str(SHIPPED_MODEL), "--random-169m", *[a for p in PRECISIONS for a in ("--precision", p)]],
             300, figures=lambda out: {"manifest": str(manifest), "models": _export_dirs(manifest)}),
    ]


def _parity_skipped(output: str) -> str | None:
    """pytest exits 0 when the parity test skips (no GPU seen, say); here that is a failure."""
    if not re.search(r"\bskipped\b", output, re.IGNORECASE):
        return None
    lines = output.strip().splitlines()
    return "the parity test skipped: " + next((ln for ln in lines if ln.startswith("SKIPPED")), lines[-1])


def _export_dirs(manifest: Path) -> dict:
    return {m["name"]: {p: e["dir"] for p, e in m["exports"].items()} for m in _manifest_models(manifest)}


def _manifest_models(manifest: Path) -> list[dict]:
    return json.loads(manifest.read_text())["models"]


def model_steps(model: dict, precision: str, layout: Layout, threads: int) -> list[Step]:
    """Engine, reference, compare and timing of one export from bench/exports.py's manifest."""
    name, export = f"{model['name']} {precision}", model["exports"][precision]
    folder = export["dir"]
    engine = layout.work / "engines" / f"{model['name']}-{precision}.plan"
    timing = layout.work / "timing" / f"{model['name']}-{precision}.json"
    steps = 1000 if model["exports"]["fp32"]["weight_bytes"] < SMALL_MODEL_BYTES else 200
    cli = [PY, "-m", "rrwkv_trt.cli.main"]
    return [
        Step(f"engine {name}", [*cli, "build", folder, "-o", str(engine)], 240, needs=("plugins", "exports"),
             figures=lambda out: {"engine": str(engine), "engine_bytes": engine.stat().st_size}),
        Step(f"reference {name}", [PY, "-m", "rrwkv_trt.reference.writer", model["checkpoint"], folder], 120,
             needs=("exports",)),
        Step(f"compare {name}", [*cli, "compare", folder, "--engine", str(engine), "--steps", str(steps), "--threads",
                                 str(threads)], 180, needs=(f"engine {name}", f"reference {name}"),
             figures=_compare_figures),
        Step(f"timing {name}", [PY, "-m", "rrwkv_trt.bench.gpu_timing", str(engine), folder, "--out", str(timing),
                                "--threads", str(threads)], 120, needs=(f"engine {name}",),
             figures=lambda out: json.loads(timing.read_text())),
    ]


def _compare_figures(output: str) -> dict:
    """compare's verdict and its TensorRT rows (per call and the drift summary)."""
    lines = output.splitlines()
    verdict = next((ln for ln in reversed(lines) if ln.startswith("compare:")), None)
    return {"verdict": verdict, "tensorrt": [ln for ln in lines if ln.startswith("tensorrt")],
            "drift_all": next((ln for ln in lines if ln.startswith("all ")), None)}


class GpuCheck:
    """Runs steps in order under one budget and records their outcomes."""

    def __init__(self, runner: Runner, layout: Layout, budget_s: float, clock: Callable[[], float] = time.monotonic,
                 echo: Callable[[str], None] = print) -> None:
        self.runner, self.layout, self.budget_s, self.clock, self.echo = runner, layout, budget_s, clock, echo
        self.started = clock()
        self.outcomes: dict[str, dict] = {}

    def run(self, step: Step) -> dict:
        failed = [n for n in step.needs if self.outcomes.get(n, {}).get("status") != "passed"]
        left = self.budget_s - (self.clock() - self.started)
        if failed:
            return self._record(step, "skipped", 0.0, f"needs {', '.join(failed)}, which did not pass")
        if left < MIN_STEP_S:
            return self._record(step, "skipped", 0.0, f"the {self.budget_s:.0f} s budget is spent")
        start = self.clock()
        done = self.runner(step, min(step.timeout_s, left))
        seconds = self.clock() - start
        self._log(step, done)
        if done.returncode is None:
            return self._record(step, "timeout", seconds, f"killed after {min(step.timeout_s, left):.0f} s",
                                done.output)
        why = f"exit code {done.returncode}" if done.returncode else (step.check(done.output) if step.check else None)
        figures = _figures(step, done.output)
        return self._record(step, "failed" if why else "passed", seconds, why, done.output, figures)

    def _record(self, step: Step, status: str, seconds: float, why: str | None, output: str = "",
                figures: dict | None = None) -> dict:
        outcome = {"name": step.name, "status": status, "seconds": round(seconds, 1), "command": step.argv,
                   "env": step.env, "figures": figures or {}}
        if why:
            outcome["reason"] = why
        if status in ("failed", "timeout"):
            outcome["output_tail"] = output[-2000:]
        self.outcomes[step.name] = outcome
        self.echo(f"gpu-check: {step.name}: {status} ({seconds:.0f} s){f': {why}' if why else ''}")
        return outcome

    def _log(self, step: Step, done: Completed) -> None:
        logs = self.layout.work / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        (logs / (re.sub(r"[^A-Za-z0-9.-]+", "_", step.name) + ".log")).write_text(done.output)


def _figures(step: Step, output: str) -> dict:
    """A step's figures; a parser that fails is recorded, not raised (compare may exit 1 with its table)."""
    if step.figures is None:
        return {}
    try:
        return step.figures(output)
    except (OSError, ValueError, KeyError) as err:
        return {"error": f"{type(err).__name__}: {err}"}


def run_check(detection: Detection, runner: Runner, layout: Layout, budget_s: float = BUDGET_S,
              clock: Callable[[], float] = time.monotonic, echo: Callable[[str], None] = print) -> dict:
    """Every step in order; returns the report (the JSON's content)."""
    check = GpuCheck(runner, layout, budget_s, clock, echo)
    threads = min(os.cpu_count() or 1, 8)
    for step in first_steps(detection.facts["compute_capability"], layout):
        check.run(step)
    models = []
    if check.outcomes["exports"]["status"] == "passed":
        models = _manifest_models(layout.work / "models" / "manifest.json")
    for model in models:
        for precision in PRECISIONS:
            for step in model_steps(model, precision, layout, threads):
                check.run(step)
    steps = list(check.outcomes.values())
    return {"date": datetime.date.today().isoformat(), "machine": detection.facts, "budget_s": budget_s,
            "seconds": round(clock() - check.started, 1), "passed": all(s["status"] == "passed" for s in steps),
            "steps": steps}


def subprocess_runner(repo: Path) -> Runner:
    """Run a step in `repo` in its own process group, so that a timeout kills the compilers or workers it started
    too."""
    def run(step: Step, timeout_s: float) -> Completed:
        with subprocess.Popen(step.argv, cwd=repo, env=os.environ | step.env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True) as proc:
            try:
                output = proc.communicate(timeout=timeout_s)[0]
                return Completed(proc.returncode, output)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                return Completed(None, proc.communicate()[0])
    return run


def write_report(report: dict, results: Path) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{report['date']}-gpu-check.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.rename(path)
    return path


def main(argv: list[str] | None = None, detect_fn: Callable[[], Detection] = detect, runner: Runner | None = None,
         repo: Path = REPO_ROOT) -> int:
    """The command; tests pass stand-ins for the detection, the step runner and the checkout."""
    p = argparse.ArgumentParser(description="The GPU host check: plugins, kernel parity, engines, compare, timing")
    p.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for all steps [default: %(default)s]")
    p.add_argument("--work", type=Path, default=Layout.work, help="exports, engines, logs [default: %(default)s]")
    p.add_argument("--results", type=Path, default=Layout.results, help="folder of the JSON [default: %(default)s]")
    args = p.parse_args(argv)
    detection = detect_fn()
    if detection.skip_reason:
        print(f"gpu-check: skipped: {detection.skip_reason}")
        return 0
    layout = Layout(repo, args.work.resolve(), args.results)
    report = run_check(detection, runner or subprocess_runner(layout.repo), layout, args.budget,
                       echo=lambda line: print(line, file=sys.stderr, flush=True))
    path = write_report(report, layout.results)
    for s in report["steps"]:
        print(f"{s['status']:<8} {s['seconds']:>6.1f} s  {s['name']}{': ' + s['reason'] if 'reason' in s else ''}")
    print(f"gpu-check: {'PASSED' if report['passed'] else 'FAILED'} in {report['seconds']:.0f} s; wrote {path}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
