"""Backends vs the PyTorch reference, per call (Polygraphy) and over a long decode (drift); torch-free.

MODEL/reference/ (its files: core/reference_format.py) is written by `python -m rrwkv_trt.reference.writer
CHECKPOINT MODEL`, the only torch step. Every backend runs as the product runs it (OrtSession, TrtSession), wrapped
as a Polygraphy runner. Polygraphy's comparator treats every iteration on its own, so each feed carries its state
(docs/conventions.md §3.13). Drift over many steps is measured by runtime/drift.py, where every backend carries its own
state. Polygraphy is a [dev] dependency, imported inside the functions that need it. Tolerances:
runtime/tolerances.json (tolerances.py).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.names import INPUT_IDS, LOGITS, LOGITS_FROM, MODEL_FILE
from rrwkv_trt.core.paths import resolve_model_path
from rrwkv_trt.core.reference_format import (
    LOADER_FILE, OUTPUTS_FILE, REFERENCE_DIR, REFERENCE_RUNNER, Reference, load_reference, reference_feeds,
    reference_hint,
)

from .drift import drift, drift_passed, format_drift
from .reference_files import read_outputs
from .tolerances import CallTolerance, Policy


def polygraphy_command(model_dir: str, tol: CallTolerance) -> str:
    """The stock-ONNX-Runtime check on Polygraphy's CLI (function bodies vs PyTorch), with `tol`."""
    ref = f"{model_dir}/{REFERENCE_DIR}"
    return (f"polygraphy run {model_dir}/{MODEL_FILE} --onnxrt --data-loader-script {ref}/{LOADER_FILE}:load_data "
            f"--load-outputs {ref}/{OUTPUTS_FILE} --atol {LOGITS}:{tol.logits.atol:g} {tol.state.atol:g} "
            f"--rtol {LOGITS}:{tol.logits.rtol:g} {tol.state.rtol:g}")


@dataclass
class OutputStat:
    """One output of one backend over every iteration: the worst iteration's errors and Polygraphy's verdict."""

    name: str
    max_abs: float = 0.0
    rel_rms: float = 0.0  # ||out - ref|| / ||ref|| of the iteration with the largest max_abs
    iteration: int = 0
    atol: float = 0.0
    rtol: float = 0.0
    passed: bool = True


@dataclass
class CallReport:
    backend: str
    outputs: list[OutputStat] = field(default_factory=list)
    skipped: str | None = None  # why the backend did not run

    @property
    def passed(self) -> bool:
        return self.skipped is not None or all(o.passed for o in self.outputs)


def compare_calls(ref: Reference, runners: list, policy: Policy) -> list[CallReport]:
    """Run `runners` (Polygraphy runners named after policy backends) on the reference feeds and compare each with
    PyTorch's outputs, iteration by iteration, through Polygraphy's Comparator with the policy's tolerances."""
    pg = _polygraphy()
    outputs = read_outputs(ref)
    feeds = reference_feeds(ref, outputs)
    with pg.G_LOGGER.verbosity(pg.G_LOGGER.ERROR), _no_output_stats(pg):  # format_calls replaces Polygraphy's log
        results = pg.Comparator.run(runners, data_loader=feeds)
        reference = pg.RunResults()  # from the arrays read_outputs checked, not a second, unchecked read
        reference.append((REFERENCE_RUNNER, [pg.IterationResult(outputs=o, runner_name=REFERENCE_RUNNER)
                                             for o in outputs]))
        reports = []
        for runner_name, iterations in results.items():
            tol = policy.call(runner_name)
            pair = pg.RunResults()
            pair.append((runner_name, iterations))
            pair.append(reference[0])
            func = pg.SimpleCompareFunc(atol={LOGITS: tol.logits.atol, "": tol.state.atol},
                                         rtol={LOGITS: tol.logits.rtol, "": tol.state.rtol})
            accuracy = pg.Comparator.compare_accuracy(pair, compare_func=func, comparisons=[(0, 1)])
            verdicts = next(iter(accuracy[0].values()))  # one runner pair: a list of {output: result} per iteration
            reports.append(_call_report(runner_name, iterations, outputs, verdicts, tol))
    return reports


def _call_report(name: str, iterations, ref_outputs, verdicts, tol: CallTolerance) -> CallReport:
    stats: dict[str, OutputStat] = {}
    for k, (it, ref, verdict) in enumerate(zip(iterations, ref_outputs, verdicts)):
        for out_name, expected in ref.items():
            t = tol.logits if out_name == LOGITS else tol.state
            stat = stats.setdefault(out_name, OutputStat(out_name, atol=t.atol, rtol=t.rtol))
            got = np.asarray(it[out_name]).astype(np.float64)
            diff = np.abs(got - expected.astype(np.float64))
            worst = float(np.max(diff)) if np.isfinite(diff).all() else float("inf")
            if k == 0 or worst > stat.max_abs:
                norm = float(np.linalg.norm(expected.astype(np.float64)))
                stat.max_abs, stat.iteration = worst, k
                stat.rel_rms = float(np.linalg.norm(diff)) / norm if norm > 0 else (0.0 if worst == 0 else np.inf)
            stat.passed &= out_name in verdict and bool(verdict[out_name])
    return CallReport(name, list(stats.values()))


@contextmanager
def _no_output_stats(pg):
    """Polygraphy 0.53.6 formats every compared output (its statistics, quantiles included, and the array itself)
    even when its log is silenced, most of `compare`'s time on the shipped model (measured: README "Comparing
    backends with PyTorch").
    Those two helpers only log, so they are skipped, and arrays print summarised, while the log is silenced."""
    util = pg.comparator_util
    saved = util.log_output_stats, util.log_compared_output_stats
    util.log_output_stats = util.log_compared_output_stats = lambda *args, **kwargs: None
    try:
        with np.printoptions(threshold=1, edgeitems=1):
            yield
    finally:
        util.log_output_stats, util.log_compared_output_stats = saved


def _polygraphy():
    """The Polygraphy names this module uses, or a UserError saying how to install it."""
    try:
        from polygraphy.comparator import Comparator, IterationResult, RunResults, SimpleCompareFunc
        from polygraphy.logger import G_LOGGER
    except ImportError as err:
        raise UserError(f"compare needs polygraphy ({err}); pip install 'rrwkv-trt[dev]' "
                        "(polygraphy==0.53.6)") from None

    from polygraphy.comparator import util as comparator_util

    return SimpleNamespace(Comparator=Comparator, SimpleCompareFunc=SimpleCompareFunc, RunResults=RunResults,
                           IterationResult=IterationResult, G_LOGGER=G_LOGGER, comparator_util=comparator_util)


def session_runner(session, name: str, logits_from: bool = False):
    """A Polygraphy runner over a runtime session (`run(input_ids, state) -> (logits, state)`): OrtSession or
    TrtSession, so that the per-call check runs each backend as the product does (its session options, threads,
    custom-op library and prefill path). The session is opened and closed by the caller.
    `logits_from`: the feeds carry that input (always 0: every position), which the session feeds itself."""
    from polygraphy.backend.base import BaseRunner
    from polygraphy.common import TensorMetadata

    class SessionRunner(BaseRunner):
        def activate_impl(self) -> None:
            pass

        def deactivate_impl(self) -> None:
            pass

        def get_input_metadata_impl(self):
            meta = TensorMetadata().add(INPUT_IDS, np.int64, ("batch", "seq"))
            if logits_from:
                meta.add(LOGITS_FROM, np.int64, (1,))
            for t in session.spec.tensors():
                meta.add(t.input_name, np.dtype(t.slot.dtype), t.slot.shape)
            return meta

        def infer_impl(self, feed_dict):
            state = {t.input_name: feed_dict[t.input_name] for t in session.spec.tensors()}
            start = time.perf_counter()
            logits, new = session.run(feed_dict[INPUT_IDS], state)
            self.inference_time = time.perf_counter() - start  # BaseRunner's contract
            return {LOGITS: logits, **{t.output_name: new[t.input_name] for t in session.spec.tensors()}}

    return SessionRunner(name=name)


def format_calls(reports: list[CallReport], ref: Reference, all_outputs: bool = False) -> list[str]:
    """The per-call table: per backend, logits and (unless `all_outputs`) each state slot's worst layer."""
    lines = [f"per call vs {REFERENCE_RUNNER} ({ref.describe()}); worst iteration shown, 0 = prefill",
             f"{'backend':<13} {'output':<22} {'iter':>4} {'max abs err':>11} {'rel RMS err':>11} "
             f"{'atol':>7} {'rtol':>7}  result"]
    for rep in reports:
        if rep.skipped is not None:
            lines.append(f"{rep.backend:<13} skipped: {rep.skipped}")
            continue
        rows = rep.outputs if all_outputs else _worst_per_slot(rep.outputs)
        for o in rows:
            lines.append(f"{rep.backend:<13} {o.name:<22} {o.iteration:>4} {o.max_abs:>11.2e} {o.rel_rms:>11.2e} "
                         f"{o.atol:>7.0e} {o.rtol:>7.0e}  {'ok' if o.passed else 'FAIL'}")
    return lines


def _worst_per_slot(outputs: list[OutputStat]) -> list[OutputStat]:
    """logits, then per state slot the layer with the largest error (a failing one first)."""
    by_slot: dict[str, OutputStat] = {}
    for o in outputs:
        slot = o.name.rsplit(".", 1)[-1]
        best = by_slot.get(slot)
        if best is None or (o.passed, -o.max_abs) < (best.passed, -best.max_abs):
            by_slot[slot] = o
    return list(by_slot.values())


def run_compare(model: str | os.PathLike, *, engine: str | os.PathLike | None = None, steps: int = 1000,
                window: int = 100, pytorch=None, custom_ops_library: str | os.PathLike | None = None,
                plugin_library: str | os.PathLike | None = None, threads: int | None = None,
                all_outputs: bool = False, echo: Callable[[str], None] = print) -> bool:
    """`rrwkv-trt compare`: per-call check of every backend against the reference, then the drift check.

    Backends: ort-function (OrtSession on the function bodies), ort-kernel (OrtSession with librrwkv_ort_ops.so; None
    looks in the checkout's build/), tensorrt (`engine`, GPU hosts).
    Args:
        model: an export folder holding reference/, or its model.onnx.
        pytorch: a session of the checkpoint's PyTorch model at the model's precision (rrwkv_trt.reference's
            TorchSession; opened and closed by the caller): the drift check's reference. None: ort-function is.
    Returns:
        True when every backend that ran is within the policy of runtime/tolerances.json.
    """
    from contextlib import ExitStack

    from .backends.ort import CUSTOM_OPS_LIBRARY, OrtSession, custom_ops_search_path, find_custom_ops_library
    from .tolerances import load_policy

    model = resolve_model_path(model)
    ref = load_reference(model.parent)
    logits_from = bool(ref.manifest.get("logits_from"))
    with ExitStack() as stack:
        sessions = {"ort-function": stack.enter_context(OrtSession(model, threads=threads, use_custom_ops=False))}
        info = sessions["ort-function"].info
        if info.state != ref.spec:
            raise UserError(f"{ref.folder} was written for another state spec than {model}; "
                            f"{reference_hint(model.parent)}")
        policy = load_policy(info.precision)
        skipped = []
        library = Path(custom_ops_library) if custom_ops_library is not None else find_custom_ops_library()
        if library is None:
            skipped.append(CallReport("ort-kernel", skipped=f"{CUSTOM_OPS_LIBRARY} not found in "
                                      f"{[str(p) for p in custom_ops_search_path()]}; run `make plugins`"))
        else:
            sessions["ort-kernel"] = stack.enter_context(OrtSession(model, threads=threads,
                                                                    custom_ops_library=library))
        if engine is None:
            skipped.append(CallReport("tensorrt", skipped="no --engine given (GPU hosts: `rrwkv-trt build MODEL "
                                      "-o engine.plan`)"))
        else:
            from .backends.trt import TrtSession

            sessions["tensorrt"] = stack.enter_context(TrtSession(engine, plugin_library=plugin_library))
        runners = [session_runner(session, name, logits_from) for name, session in sessions.items()]
        reports = compare_calls(ref, runners, policy) + skipped
        for line in format_calls(reports, ref, all_outputs):
            echo(line)
        failed = [f"{r.backend} per call" for r in reports if not r.passed]

        if steps > 0:
            reference, note = "ort-function", "stock ONNX Runtime, function bodies; PyTorch only with --checkpoint"
            if pytorch is not None:
                if pytorch.config != info.config or pytorch.spec != info.state:
                    raise UserError(f"the PyTorch reference is another model ({pytorch.config}) than {model} "
                                    f"({info.config})")
                sessions = {"pytorch": pytorch, **sessions}
                reference, note = "pytorch", f"PyTorch step form of {os.fspath(pytorch.source)}"
            echo("")
            report = drift(sessions, reference, ref.prompt_ids, steps, window)
            tolerances = {n: policy.drift_for(n) for n in report.prefill_max_abs}
            for line in format_drift(report, tolerances, note):
                echo(line)
            failed += [f"{n} drift" for n, ok in drift_passed(report, tolerances).items() if not ok]
    echo("")
    echo(f"compare: FAILED ({', '.join(failed)}; tolerances: runtime/tolerances.json, {policy.precision})" if failed
         else f"compare: PASSED (tolerances: runtime/tolerances.json, {policy.precision})")
    echo("the ort-function check alone, on Polygraphy's CLI:")
    echo(f"  {polygraphy_command(os.fspath(model.parent), policy.call('ort-function'))}")
    return not failed
