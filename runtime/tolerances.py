"""The model-level accuracy policy (runtime/tolerances.json), read by `rrwkv-trt compare` and by the tests.

Per precision, two kinds of entries:
  per_call  backend -> tolerances of logits and of every state output, for one call fed PyTorch's state; each cites
            the plugins/<op>/spec.yaml tolerance entry it is built on (a model-level bound is never tighter than
            its ops' bound; tests/runtime/test_compare.py checks that).
  drift     backend -> max abs logit error over a multi-step decode in which the backend carries its own state,
            and the least fraction of steps whose greedy token must agree with the reference's.
Elementwise rule (Polygraphy's CompareFunc.simple): an element fails when |out - ref| > atol and
|out - ref| / |ref| > rtol.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rrwkv_trt.core.config import read_versioned_json
from rrwkv_trt.core.errors import UserError

POLICY_FILE = Path(__file__).with_name("tolerances.json")
POLICY_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Tol:
    atol: float
    rtol: float


@dataclass(frozen=True)
class CallTolerance:
    """One backend's tolerances for one call: `logits`, and `state` for every state_out.* output."""

    logits: Tol
    state: Tol
    op_spec_entry: str  # the plugins/<op>/spec.yaml tolerances entry this is built on


@dataclass(frozen=True)
class DriftTolerance:
    logits_atol: float  # max |logit - reference logit| over every step
    min_greedy_agreement: float  # least fraction of steps whose argmax equals the reference's


@dataclass(frozen=True)
class Policy:
    precision: str
    per_call: dict[str, CallTolerance]
    drift: dict[str, DriftTolerance]

    def call(self, backend: str) -> CallTolerance:
        if backend not in self.per_call:
            raise UserError(f"{POLICY_FILE.name} has no per_call entry for backend {backend!r} at precision "
                            f"{self.precision}; entries: {sorted(self.per_call)}")
        return self.per_call[backend]

    def drift_for(self, backend: str) -> DriftTolerance:
        if backend not in self.drift:
            raise UserError(f"{POLICY_FILE.name} has no drift entry for backend {backend!r} at precision "
                            f"{self.precision}; entries: {sorted(self.drift)}")
        return self.drift[backend]


def load_policy(precision: str, path: str | os.PathLike | None = None) -> Policy:
    """The policy of `precision` ("fp32", ...) from `path` (None: the runtime's tolerances.json)."""
    path = POLICY_FILE if path is None else Path(path)
    data = read_versioned_json(path, "tolerance policy", POLICY_FORMAT_VERSION,
                               f"tolerance policy {path} not found; it ships with rrwkv_trt.runtime")
    precisions = data.get("precisions", {})
    if precision not in precisions:
        raise UserError(f"{path} has no policy for precision {precision!r}; it has {sorted(precisions)}")
    entry = precisions[precision]
    try:
        per_call = {name: CallTolerance(Tol(**e["logits"]), Tol(**e["state"]), e["op_spec_entry"])
                    for name, e in entry["per_call"].items()}
        drift = {name: DriftTolerance(float(e["logits_atol"]), float(e["min_greedy_agreement"]))
                 for name, e in entry["drift"].items()}
    except (KeyError, TypeError) as err:
        raise UserError(f"{path}: malformed {precision} policy ({type(err).__name__}: {err})") from None
    return Policy(precision, per_call, drift)
