"""Backends vs the PyTorch reference, per call (Polygraphy) and over a long decode (drift); torch-free.

OUT_DIR/reference/ is written by `python -m rrwkv_trt.export.reference CHECKPOINT OUT_DIR` (the only torch step):
  reference.json  manifest: prompt and decode ids, state spec, precision, sha256 of the model.onnx it belongs to
  inputs.json     the feed of every iteration (polygraphy.json.save_json): iteration 0 prefills the prompt from the
                  spec's initial state; iteration k >= 1 feeds decode token k with PyTorch's state after iteration k-1
  outputs.json    PyTorch's outputs of every iteration as Polygraphy RunResults (runner "pytorch")
  data_loader.py  `load_data()` for `polygraphy run --data-loader-script`, bound to its own folder

Polygraphy's comparator treats every iteration on its own, so each feed carries its state (CONVENTIONS.md §3.13).
Drift over many steps is measured by runtime/drift.py, where every backend carries its own state. Polygraphy is a
[dev] dependency, imported inside the functions that need it. Tolerances: runtime/tolerances.json (tolerances.py).
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from rrwkv_trt.core.state import StateSpec
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.metadata import model_sha256
from rrwkv_trt.core.names import LOGITS_FROM
from .state import State, allocate_state, validate_state
from .drift import drift, drift_passed, format_drift
from .tolerances import CallTolerance, Policy

REFERENCE_FORMAT_VERSION = 1
REFERENCE_DIR = "reference"
MANIFEST_FILE = "reference.json"
INPUTS_FILE = "inputs.json"
OUTPUTS_FILE = "outputs.json"
LOADER_FILE = "data_loader.py"
REFERENCE_RUNNER = "pytorch"
INPUT_IDS = "input_ids"
LOGITS = "logits"
MODEL_FILE = "model.onnx"
LOADER_SOURCE = '''"""The feeds of this PyTorch reference, for `polygraphy run --data-loader-script data_loader.py`.

Written by rrwkv_trt.export.reference; it finds the reference through its own path.
"""
from pathlib import Path

from rrwkv_trt.runtime.compare import load_data as _load_data


def load_data():
    return _load_data(Path(__file__).resolve().parent)
'''


def reference_hint(out_dir: str | os.PathLike) -> str:
    return (f"write it with `python -m rrwkv_trt.export.reference CHECKPOINT {os.fspath(out_dir)}` (CHECKPOINT: what "
            "the model was exported from; needs torch and polygraphy: pip install 'rrwkv-trt[export,dev]'), or "
            "run `make compare` for the shipped model")


@dataclass(frozen=True)
class Reference:
    """A reference folder's manifest. Iteration 0 is the prefill of `prompt_ids`, iteration k the k-th decode id."""

    folder: Path
    manifest: dict
    spec: StateSpec
    prompt_ids: list[int]
    decode_ids: list[int]

    @property
    def iterations(self) -> int:
        return 1 + len(self.decode_ids)

    def describe(self) -> str:
        return (f"{self.iterations} iterations: a prefill of {len(self.prompt_ids)} tokens, then "
                f"{len(self.decode_ids)} decode steps, each fed PyTorch's state")


def read_reference(folder: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> Reference:
    """The manifest of a reference folder; UserError saying how to write one if it is missing or stale."""
    folder = Path(folder)
    out_dir = folder.parent if out_dir is None else out_dir
    path = folder / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"no PyTorch reference: {path} not found; {reference_hint(out_dir)}") from None
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"cannot read {path} ({err}); {reference_hint(out_dir)}") from None
    if manifest.get("format_version") != REFERENCE_FORMAT_VERSION:
        raise UserError(f"{path} has format_version {manifest.get('format_version')!r}, this rrwkv-trt reads "
                        f"{REFERENCE_FORMAT_VERSION}; {reference_hint(out_dir)}")
    for name in (INPUTS_FILE, OUTPUTS_FILE):
        if not (folder / name).is_file():
            raise UserError(f"{folder} lacks {name}; {reference_hint(out_dir)}")
    try:
        spec = StateSpec.from_dict(manifest["state_spec"])
        return Reference(folder, manifest, spec, [int(i) for i in manifest["prompt_ids"]],
                         [int(i) for i in manifest["decode_ids"]])
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{path} is not a reference manifest ({type(err).__name__}: {err}); "
                        f"{reference_hint(out_dir)}") from None


def load_reference(out_dir: str | os.PathLike) -> Reference:
    """OUT_DIR/reference, checked to belong to OUT_DIR/model.onnx as it is now."""
    out_dir = Path(out_dir)
    ref = read_reference(out_dir / REFERENCE_DIR, out_dir)
    model = out_dir / MODEL_FILE
    if model.is_file() and model_sha256(model) != ref.manifest.get("model_sha256"):
        raise UserError(f"{ref.folder} was written for another {MODEL_FILE} (sha256 differs; re-exported since?); "
                        f"{reference_hint(out_dir)}")
    return ref


def read_outputs(ref: Reference) -> list[dict[str, np.ndarray]]:
    """PyTorch's outputs, one {output name: array} per iteration."""
    pg = _polygraphy()
    with pg.G_LOGGER.verbosity(pg.G_LOGGER.WARNING):
        results = pg.RunResults.load(str(ref.folder / OUTPUTS_FILE))
    if len(results) != 1 or len(results[0][1]) != ref.iterations:
        raise UserError(f"{ref.folder / OUTPUTS_FILE} does not hold one runner with {ref.iterations} iterations; "
                        f"{reference_hint(ref.folder.parent)}")
    return [{name: np.asarray(value) for name, value in it.items()} for it in results[0][1]]


def reference_feeds(ref: Reference, outputs: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """The feed of every iteration, built from the state spec: iteration 0 starts from the spec's initial values,
    iteration k >= 1 takes the state_out.* of PyTorch's iteration k-1 as its state_in.* (matched by spec name)."""
    feeds = []
    extra = extra_feeds(ref.manifest.get("logits_from"))
    state: State = allocate_state(ref.spec, 1)
    for k, ids in enumerate([ref.prompt_ids, *([t] for t in ref.decode_ids)]):
        if k:
            prev = outputs[k - 1]
            missing = [t.output_name for t in ref.spec.tensors() if t.output_name not in prev]
            if missing:
                raise UserError(f"{ref.folder / OUTPUTS_FILE} iteration {k - 1} lacks {missing[:4]}; "
                                f"{reference_hint(ref.folder.parent)}")
            state = {t.input_name: prev[t.output_name] for t in ref.spec.tensors()}
            validate_state(ref.spec, state, 1, source=f"{ref.folder / OUTPUTS_FILE} iteration {k - 1}")
        feeds.append({INPUT_IDS: np.asarray([ids], dtype=np.int64), **extra, **state})
    return feeds


def extra_feeds(logits_from: bool) -> dict[str, np.ndarray]:
    """The inputs besides ids and state: logits_from = 0 (every position) for graphs that have it."""
    return {LOGITS_FROM: np.zeros(1, dtype=np.int64)} if logits_from else {}


def load_data(reference_dir: str | os.PathLike | None = None) -> list[dict[str, np.ndarray]]:
    """The feeds of a reference folder, for `polygraphy run --data-loader-script` (see `reference_feeds`).

    Polygraphy calls the function with no argument: use OUT_DIR/reference/data_loader.py:load_data, which passes
    its own folder here.
    """
    if reference_dir is None:
        raise UserError("load_data() needs the reference folder; pass --data-loader-script "
                        f"OUT_DIR/{REFERENCE_DIR}/{LOADER_FILE}:load_data (written with the reference)")
    ref = read_reference(reference_dir)
    return reference_feeds(ref, read_outputs(ref))


def polygraphy_command(out_dir: str, tol: CallTolerance) -> str:
    """The stock-ONNX-Runtime check on Polygraphy's CLI (function bodies vs PyTorch), with `tol`."""
    ref = f"{out_dir}/{REFERENCE_DIR}"
    return (f"polygraphy run {out_dir}/{MODEL_FILE} --onnxrt --data-loader-script {ref}/{LOADER_FILE}:load_data "
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
        reference = pg.RunResults.load(str(ref.folder / OUTPUTS_FILE))
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
    even when its log is silenced: about 2 ms per output and iteration, 3/4 of `compare` on the shipped model.
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
        from polygraphy.comparator import Comparator, RunResults, SimpleCompareFunc
        from polygraphy.logger import G_LOGGER
    except ImportError as err:
        raise UserError(f"compare needs polygraphy ({err}); pip install 'rrwkv-trt[dev]' "
                        "(polygraphy==0.53.6)") from None

    from polygraphy.comparator import util as comparator_util

    return SimpleNamespace(Comparator=Comparator, SimpleCompareFunc=SimpleCompareFunc, RunResults=RunResults,
                           G_LOGGER=G_LOGGER, comparator_util=comparator_util)


def session_runner(session, name: str, logits_from: bool = False):
    """A Polygraphy runner over a runtime session (`run(input_ids, state) -> (logits, state)`): TrtSession,
    or the PyTorch session of rrwkv_trt.export.reference. The session is opened and closed by the caller.
    `logits_from`: the feeds carry that input (always 0: every position), which the session does not need."""
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


def ort_runner(model: Path, name: str, custom_ops_library: Path | None, threads: int | None = None):
    """Polygraphy's OnnxrtRunner over an ORT session factory; the library (librrwkv_ort_ops.so) is registered when
    given, so the fused kernels run instead of the function bodies (Polygraphy's CLI cannot do this)."""
    from polygraphy.backend.onnxrt import OnnxrtRunner

    def make_session():
        import onnxruntime as ort

        from .backends.ort import register_custom_ops

        so = ort.SessionOptions()
        if threads is not None:
            so.intra_op_num_threads = threads
        if custom_ops_library is not None:
            register_custom_ops(so, custom_ops_library)
        return ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])

    return OnnxrtRunner(make_session, name=name)


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


def run_compare(out_dir: str | os.PathLike, *, engine: str | os.PathLike | None = None, steps: int = 1000,
                window: int = 100, checkpoint: str | os.PathLike | None = None,
                custom_ops_library: str | os.PathLike | None = None, plugin_library: str | os.PathLike | None = None,
                threads: int | None = None, all_outputs: bool = False, echo: Callable[[str], None] = print) -> bool:
    """`rrwkv-trt compare`: per-call check of every backend against the reference, then the drift check.

    Backends: ort-function (stock ONNX Runtime, function bodies), ort-kernel (librrwkv_ort_ops.so; None looks in the
    checkout's build/), tensorrt (`engine`, GPU hosts), and in the drift check PyTorch when `checkpoint` is given.
    Returns:
        True when every backend that ran is within the policy of runtime/tolerances.json.
    """
    from contextlib import ExitStack

    from .backends.ort import CUSTOM_OPS_LIBRARY, OrtSession, custom_ops_search_path, find_custom_ops_library
    from .tolerances import load_policy

    model = Path(out_dir) / MODEL_FILE if Path(out_dir).is_dir() else Path(out_dir)
    if not model.is_file():
        raise UserError(f"{model} not found; pass an export OUT_DIR (`rrwkv-trt export CHECKPOINT -o OUT_DIR`)")
    ref = load_reference(model.parent)
    with ExitStack() as stack:
        sessions = {"ort-function": stack.enter_context(OrtSession(model, threads=threads, use_custom_ops=False))}
        info = sessions["ort-function"].info
        if info.state != ref.spec:
            raise UserError(f"{ref.folder} was written for another state spec than {model}; {reference_hint(out_dir)}")
        policy = load_policy(info.precision)
        runners = [ort_runner(model, "ort-function", None, threads)]
        skipped = []
        library = Path(custom_ops_library) if custom_ops_library is not None else find_custom_ops_library()
        if library is None:
            skipped.append(CallReport("ort-kernel", skipped=f"{CUSTOM_OPS_LIBRARY} not found in "
                                      f"{[str(p) for p in custom_ops_search_path()]}; run `make plugins`"))
        else:
            sessions["ort-kernel"] = stack.enter_context(OrtSession(model, threads=threads,
                                                                    custom_ops_library=library))
            runners.append(ort_runner(model, "ort-kernel", library, threads))
        if engine is None:
            skipped.append(CallReport("tensorrt", skipped="no --engine given (GPU hosts: `rrwkv-trt build OUT_DIR "
                                      "-o engine.plan`)"))
        else:
            from .backends.trt import TrtSession

            sessions["tensorrt"] = stack.enter_context(TrtSession(engine, plugin_library=plugin_library))
            runners.append(session_runner(sessions["tensorrt"], "tensorrt", bool(ref.manifest.get("logits_from"))))
        reports = compare_calls(ref, runners, policy) + skipped
        for line in format_calls(reports, ref, all_outputs):
            echo(line)
        failed = [f"{r.backend} per call" for r in reports if not r.passed]

        if steps > 0:
            reference, note = "ort-function", "stock ONNX Runtime, function bodies; PyTorch only with --checkpoint"
            if checkpoint is not None:
                try:
                    from rrwkv_trt.export.reference import TorchSession
                except ImportError as err:
                    raise UserError(f"--checkpoint needs torch ({err}); pip install 'rrwkv-trt[export]' or leave "
                                    "it out (stock ONNX Runtime is then the drift reference)") from None
                torch_session = stack.enter_context(TorchSession(checkpoint, info.precision))
                if torch_session.config != info.config:
                    raise UserError(f"--checkpoint {os.fspath(checkpoint)} is another model ({torch_session.config}) "
                                    f"than {model} ({info.config})")
                sessions = {"pytorch": torch_session, **sessions}
                reference, note = "pytorch", f"PyTorch step form of {os.fspath(checkpoint)}"
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

