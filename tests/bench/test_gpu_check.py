"""`make gpu-check` (bench/gpu_check.py) on the CPU: it skips here with its reason, and its steps run in order against
stand-ins (an injected step runner; the timing step is the real bench/gpu_timing.py on the fake TensorRT of
tests/runtime/fake_trt.py), so that the first GPU day does not start with a crash."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO

sys.path.insert(0, str(REPO / "tests" / "runtime"))  # the TensorRT stand-ins: fake_trt.py, test_trt_backend.py
from fake_trt import FakeCudart, FakeTensorRT  # noqa: E402

from rrwkv_trt.bench import gpu_check, gpu_timing
from rrwkv_trt.bench.gpu_check import Completed, Detection, Layout, Step, run_check
from rrwkv_trt.cli.main import main as cli
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.sidecar import sidecar_path, write_sidecar
from rrwkv_trt.runtime import engine as engine_mod
from rrwkv_trt.runtime import trt_loader
from rrwkv_trt.runtime.backends import trt as trt_backend

GPU = Detection({"compute_capability": "9.0", "gpu": "Fake H100", "tensorrt": "10.99.0"}, None)


def test_skips_here_with_its_reason(tmp_path):
    make = subprocess.run(["make", "-n", "-o", ".venv/.installed", "gpu-check"], cwd=REPO, capture_output=True,
                          text=True)
    assert make.returncode == 0 and "python -m rrwkv_trt.bench.gpu_check" in make.stdout, make.stdout + make.stderr
    done = subprocess.run([sys.executable, "-m", "rrwkv_trt.bench.gpu_check", "--results", str(tmp_path / "r")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("gpu-check: skipped: ") and "no CUDA GPU" in done.stdout
    assert not (tmp_path / "r").exists()


def test_detection_names_what_is_missing(monkeypatch):
    monkeypatch.setattr(engine_mod, "gpu_compute_capability", lambda: ("9.0", "Fake H100"))

    def no_tensorrt():
        raise UserError("TensorRT is not installed (fake)")

    monkeypatch.setattr(trt_loader, "import_tensorrt", no_tensorrt)
    assert gpu_check.detect().skip_reason == "TensorRT is not installed (fake)"
    monkeypatch.setattr(trt_loader, "import_tensorrt", lambda: FakeTensorRT)
    found = gpu_check.detect()
    if found.skip_reason is not None:  # the [trt] extra is not installed here
        assert "cuda-python is not installed" in found.skip_reason
    assert found.facts["gpu"] == "Fake H100" and found.facts["tensorrt"] == FakeTensorRT.__version__


@pytest.fixture
def fake_trt(monkeypatch):
    """tensorrt and cudart replaced by the stand-ins (as tests/runtime/test_trt_backend.py does)."""
    cudart = FakeCudart()
    trt = FakeTensorRT(cudart, max_batch=8, max_seq=64)
    monkeypatch.setattr(trt_backend, "_import_modules", lambda: (trt, cudart))
    monkeypatch.setattr(trt_backend, "gpu_compute_capability", lambda: ("8.6", "Fake GPU"))
    monkeypatch.setattr(trt_loader, "_loaded_library", {})
    monkeypatch.setattr(trt_loader, "_loggers", {})
    return trt


class StandIns:
    """The step runner of a GPU host, played on the CPU: files the real steps would write, the real CLI parsing each
    `rrwkv-trt` command line, and the real timing step on the fake TensorRT. Records every call."""

    def __init__(self, layout: Layout, models: dict[str, Path], fail: tuple[str, ...] = ()) -> None:
        self.layout, self.models, self.fail = layout, models, fail
        self.calls: list[tuple[str, float]] = []

    def __call__(self, step: Step, timeout_s: float) -> Completed:
        self.calls.append((step.name, timeout_s))
        if step.name in self.fail:
            return Completed(1, f"{step.name} broke")
        kind = step.name.split()[0]
        if step.argv[1:3] == ["-m", "rrwkv_trt.cli.main"]:  # the command and its options exist (raises on a typo)
            cli.commands[step.argv[3]].make_context(step.argv[3], step.argv[4:])
        return getattr(self, kind.replace("-", "_"))(step)

    def plugins(self, step: Step) -> Completed:
        assert step.env["CMAKE_ARGS"] == "-DCMAKE_CUDA_ARCHITECTURES=90"
        for path in (self.layout.repo / "build" / "librrwkv_trt_plugins_dyn.so",
                     self.layout.repo / "build" / "plugins" / "rrwkv_kernel_parity"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
        return Completed(0, "built")

    def kernel_parity(self, step: Step) -> Completed:
        assert step.argv[-1] == "tests/plugins/test_kernel_parity.py"
        return Completed(0, "1 passed in 0.5s")

    def exports(self, step: Step) -> Completed:
        assert "--random-169m" in step.argv and step.argv.count("--precision") == 2
        manifest = Path(step.argv[3]) / "manifest.json"
        manifest.parent.mkdir(parents=True)
        models = [{"name": name, "checkpoint": f"/ckpt/{name}", "exports": {
            p: {"dir": str(folder), "weight_bytes": size} for p in ("fp32", "fp16")}}
            for (name, folder), size in zip(self.models.items(), (5 << 20, 700 << 20))]
        manifest.write_text(json.dumps({"models": models}))
        return Completed(0, "exported")

    def engine(self, step: Step) -> Completed:
        """What `rrwkv-trt build` leaves: the engine (here the ONNX graph the fake TensorRT runs), its sidecar and
        its tokenizer."""
        from test_trt_backend import make_sidecar

        model, engine = Path(step.argv[4]), Path(step.argv[6])
        engine.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model / "model.onnx", engine)
        write_sidecar(sidecar_path(engine), make_sidecar(model, engine))
        return Completed(0, "built")

    def reference(self, step: Step) -> Completed:
        return Completed(0, "wrote reference")

    def compare(self, step: Step) -> Completed:
        steps = step.argv[step.argv.index("--steps") + 1]
        return Completed(0, f"tensorrt      logits  0  1.0e-06\nall  1.0e-06 100.0%\ncompare: PASSED ({steps} steps)")

    def timing(self, step: Step) -> Completed:
        assert gpu_timing.main(step.argv[3:] + ["--reps", "1", "--decode-steps", "3", "--prefill", "70"]) == 0
        return Completed(0, "")


@pytest.fixture
def layout(tmp_path) -> Layout:
    return Layout(repo=tmp_path / "repo", work=tmp_path / "work", results=tmp_path / "results")


def _models(make_fake_model) -> dict[str, Path]:
    return {"rrwkv-pystdlib": make_fake_model("shipped", family="rrwkv"), "rwkv4-169m-random": make_fake_model("big")}


def test_every_step_in_order_against_the_stand_ins(fake_trt, layout, make_fake_model):
    runner = StandIns(layout, _models(make_fake_model))
    report = run_check(GPU, runner, layout, echo=lambda line: None)
    per_export = [f"{kind} {m} {p}" for m in ("rrwkv-pystdlib", "rwkv4-169m-random") for p in ("fp32", "fp16")
                  for kind in ("engine", "reference", "compare", "timing")]
    assert [name for name, _ in runner.calls] == ["plugins", "kernel-parity", "exports", *per_export]
    assert report["passed"] and all(s["status"] == "passed" for s in report["steps"])
    steps = {s["name"]: s for s in report["steps"]}
    assert steps["compare rrwkv-pystdlib fp32"]["figures"]["verdict"] == "compare: PASSED (1000 steps)"
    assert steps["compare rwkv4-169m-random fp16"]["figures"]["verdict"] == "compare: PASSED (200 steps)"
    timing = steps["timing rrwkv-pystdlib fp16"]["figures"]
    assert {"tensorrt", "tensorrt-graph"} < set(timing["backends"]) and len(timing["backends"]) == 3
    assert timing["backends"]["tensorrt"]["decode_b1"]["median"] > 0 and timing["prefill_max_abs_logit_diff"] < 1e-5
    assert steps["engine rrwkv-pystdlib fp32"]["figures"]["engine_bytes"] > 0
    assert steps["exports"]["figures"]["models"]["rwkv4-169m-random"]["fp16"]
    assert all(timeout <= gpu_check.BUDGET_S for _, timeout in runner.calls)
    assert (layout.work / "logs" / "engine_rrwkv-pystdlib_fp32.log").read_text() == "built"


def test_a_failed_step_skips_what_needs_it(fake_trt, layout, make_fake_model):
    runner = StandIns(layout, _models(make_fake_model), fail=("plugins",))
    report = run_check(GPU, runner, layout, echo=lambda line: None)
    status = {s["name"]: s["status"] for s in report["steps"]}
    assert status["plugins"] == "failed" and status["exports"] == "passed" and not report["passed"]
    assert status["kernel-parity"] == status["engine rrwkv-pystdlib fp32"] == "skipped"
    assert status["reference rrwkv-pystdlib fp32"] == "passed"  # needs only the exports
    assert status["compare rrwkv-pystdlib fp32"] == status["timing rwkv4-169m-random fp16"] == "skipped"
    steps = {s["name"]: s for s in report["steps"]}
    assert steps["plugins"]["reason"] == "exit code 1" and steps["plugins"]["output_tail"] == "plugins broke"
    assert steps["compare rrwkv-pystdlib fp32"]["reason"] == "needs engine rrwkv-pystdlib fp32, which did not pass"
    assert [n for n, _ in runner.calls] == ["plugins", "exports", "reference rrwkv-pystdlib fp32",
                                            "reference rrwkv-pystdlib fp16", "reference rwkv4-169m-random fp32",
                                            "reference rwkv4-169m-random fp16"]


def test_checks_after_exit_0(fake_trt, layout, make_fake_model):
    """A plugin build that exits 0 without the TensorRT library (no nvcc), and a parity test that skips, fail."""
    runner = StandIns(layout, _models(make_fake_model))
    runner.plugins = lambda step: Completed(0, "built the CPU libraries only")
    (layout.repo / "build").mkdir(parents=True)
    (layout.repo / "build" / "plugins.configure.log").write_text("-- rrwkv: TensorRT plugin libraries skipped: no "
                                                                 "CUDA compiler (nvcc) found\n")
    report = run_check(GPU, runner, layout, echo=lambda line: None)
    plugins = report["steps"][0]
    assert plugins["status"] == "failed" and "librrwkv_trt_plugins_dyn.so" in plugins["reason"]
    assert "no CUDA compiler (nvcc) found" in plugins["reason"]
    skipped = gpu_check._parity_skipped("SKIPPED [1] tests/plugins/test_kernel_parity.py:25: no CUDA GPU\n1 skipped")
    assert skipped == "the parity test skipped: SKIPPED [1] tests/plugins/test_kernel_parity.py:25: no CUDA GPU"
    assert gpu_check._parity_skipped("1 passed in 3.2s") is None


def test_the_budget_cuts_timeouts_and_skips_the_rest(fake_trt, layout, make_fake_model):
    now = [0.0]
    runner = StandIns(layout, _models(make_fake_model))
    inner = runner.__call__

    def slow(step: Step, timeout_s: float) -> Completed:
        now[0] += 100  # every step takes 100 s of the fake clock
        return inner(step, timeout_s)

    report = run_check(GPU, slow, layout, budget_s=250, clock=lambda: now[0], echo=lambda line: None)
    assert [t for _, t in runner.calls] == [240, 120, 50]  # their own timeouts, then what is left of 250 s
    reasons = {s["name"]: s["reason"] for s in report["steps"] if s["status"] == "skipped"}
    assert len(reasons) == 16 and report["seconds"] == 300 and not report["passed"]
    assert {r for n, r in reasons.items() if n.split()[0] in ("engine", "reference")} == {"the 250 s budget is spent"}
    assert reasons["timing rrwkv-pystdlib fp32"] == "needs engine rrwkv-pystdlib fp32, which did not pass"


def test_subprocess_runner_and_timeout(tmp_path):
    run = gpu_check.subprocess_runner(tmp_path)
    done = run(Step("echo", [sys.executable, "-c", "import os; print(os.environ['X'], os.getcwd())"], 10,
                    env={"X": "y"}), 10)
    assert done.returncode == 0 and done.output.split() == ["y", str(tmp_path)]
    start = time.monotonic()
    late = run(Step("sleep", ["bash", "-c", "echo started; sleep 30 & sleep 30"], 1), 1)
    assert late.returncode is None and "started" in late.output and time.monotonic() - start < 10  # group killed


def test_main_writes_one_json(fake_trt, layout, make_fake_model, capsys):
    runner = StandIns(layout, _models(make_fake_model), fail=("compare rrwkv-pystdlib fp16",))
    code = gpu_check.main(["--work", str(layout.work), "--results", str(layout.results)], detect_fn=lambda: GPU,
                          runner=runner, repo=layout.repo)
    assert code == 1
    [path] = layout.results.glob("*-gpu-check.json")
    report = json.loads(path.read_text())
    assert report["machine"]["gpu"] == "Fake H100" and len(report["steps"]) == 19 and not report["passed"]
    out = capsys.readouterr().out
    [line] = [ln for ln in out.splitlines() if "compare rrwkv-pystdlib fp16" in ln]
    assert line.startswith("failed") and line.endswith("compare rrwkv-pystdlib fp16: exit code 1")
    assert out.rstrip().endswith(f"wrote {path}") and "gpu-check: FAILED" in out
