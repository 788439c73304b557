"""Multi-step drift and greedy agreement: every backend decodes the same tokens carrying its own state; torch-free.

Polygraphy compares calls one at a time (runtime/compare.py feeds each its reference state), so error that builds up
in the recurrent state over many steps is measured here instead (docs/conventions.md §3.13).

Greedy agreement has this one definition, used by `rrwkv-trt compare` (runtime/compare.py), `make demo`'s check
(reference/verify.py), the benchmark's weight-only accuracy (bench/accuracy.py) and the fp16 check
(reference/precision_check.py): every session is fed the reference's greedy token at every step (teacher forcing),
and agreement is the fraction of steps at which a session's argmax equals the reference's. Letting each backend
follow its own argmax instead would, after the first disagreement, compare argmaxes of two different texts.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .tolerances import DriftTolerance


@dataclass
class DriftWindow:
    first: int  # 1-based decode step numbers
    last: int
    max_abs: dict[str, float]
    agree: dict[str, int]


@dataclass
class DriftReport:
    reference: str
    steps: int
    prefill_max_abs: dict[str, float]
    windows: list[DriftWindow]
    margins: list[float] = field(default_factory=list)  # per step: the reference's top-1 minus top-2 logit

    def max_abs(self, backend: str) -> float:
        """The largest |logit - reference logit| of the prefill's last position and of every decode step."""
        return max(self.prefill_max_abs[backend], self.decode_max_abs(backend))

    def decode_max_abs(self, backend: str) -> float:
        return max((w.max_abs[backend] for w in self.windows), default=0.0)

    def agreement(self, backend: str) -> float:
        """Greedy agreement: the fraction of decode steps whose argmax equals the reference's (1.0 for no steps)."""
        return sum(w.agree[backend] for w in self.windows) / self.steps if self.steps else 1.0


def drift(sessions: dict, reference: str, prompt_ids: list[int], steps: int, window: int) -> DriftReport:
    """Prefill `prompt_ids` in every session, then decode `steps` tokens, each session carrying its own state.

    Every session is fed the same tokens, the reference's greedy choice, so errors measure state drift alone.
    Args:
        sessions: {backend name: session with run / start_decode / step}, including `reference`.
        window: steps per reported window.
    Returns:
        per window: each other backend's max |logit - reference logit| and how many argmaxes agree.
    """
    others = [n for n in sessions if n != reference]
    ids = np.asarray([prompt_ids], dtype=np.int64)
    last: dict[str, np.ndarray] = {}
    prefill: dict[str, float] = {}
    for name, session in sessions.items():
        logits, state = session.run(ids, None, last_only=True)
        session.start_decode(state)
        last[name] = np.asarray(logits[0, -1], dtype=np.float64)
    for name in others:
        prefill[name] = _max_abs(last[name], last[reference])
    token = int(np.argmax(last[reference]))
    windows: list[DriftWindow] = []
    margins: list[float] = []
    for step in range(1, steps + 1):
        if (step - 1) % window == 0:
            windows.append(DriftWindow(step, min(step + window - 1, steps), dict.fromkeys(others, 0.0),
                                       dict.fromkeys(others, 0)))
        rows = {name: np.asarray(s.step(np.array([token])), dtype=np.float64).reshape(-1)
                for name, s in sessions.items()}
        ref_row = rows[reference]
        ref_token = int(np.argmax(ref_row))
        margins.append(_margin(ref_row))
        w = windows[-1]
        for name in others:
            w.max_abs[name] = max(w.max_abs[name], _max_abs(rows[name], ref_row))
            w.agree[name] += int(np.argmax(rows[name])) == ref_token
        token = ref_token
    return DriftReport(reference, steps, prefill, windows, margins)


def _margin(row: np.ndarray) -> float:
    """How far the argmax leads: a candidate can flip it only where its logit error reaches half of this."""
    top2 = np.partition(row, -2)[-2:] if row.size > 1 else np.array([row[0], -np.inf])
    return float(top2[1] - top2[0])


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    d = np.abs(a - b)
    return float(d.max()) if np.isfinite(d).all() else float("inf")


def format_drift(report: DriftReport, tolerances: dict[str, DriftTolerance], reference_note: str) -> list[str]:
    others = list(report.prefill_max_abs)
    lines = [f"drift: {report.steps} decode steps, each backend carrying its own state, all fed the reference's "
             f"greedy tokens; reference: {report.reference} ({reference_note})",
             f"{'steps':<11}" + "".join(f" {n + ' max abs':>22} {'argmax':>9}" for n in others)]
    lines.append(f"{'prefill':<11}" + "".join(f" {report.prefill_max_abs[n]:>22.2e} {'':>9}" for n in others))
    for w in report.windows:
        span = w.last - w.first + 1
        lines.append(f"{f'{w.first}-{w.last}':<11}" + "".join(
            f" {w.max_abs[n]:>22.2e} {f'{w.agree[n]}/{span}':>9}" for n in others))
    lines.append(f"{'all':<11}" + "".join(
        f" {report.max_abs(n):>22.2e} {report.agreement(n):>9.1%}" for n in others))
    lines.append(f"{'limit':<11}" + "".join(
        f" {tolerances[n].logits_atol:>22.0e} {'>=' + format(tolerances[n].min_greedy_agreement, '.0%'):>9}"
        for n in others))
    return [line.rstrip() for line in lines]


def drift_passed(report: DriftReport, tolerances: dict[str, DriftTolerance]) -> dict[str, bool]:
    return {n: report.max_abs(n) <= tolerances[n].logits_atol
            and report.agreement(n) >= tolerances[n].min_greedy_agreement for n in report.prefill_max_abs}
