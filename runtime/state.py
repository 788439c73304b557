"""Recurrent-state buffers from a StateSpec: allocate, validate, save and load (numpy only).

A state is a dict keyed by ONNX input names (`state_in.{layer}.{slot}`, `state_in.{slot}`), so the
state a session returns can be fed straight back as the next call's input.
"""
from __future__ import annotations

import os
import zipfile

import numpy as np

from rrwkv_trt.core.state import StateSpec
from rrwkv_trt.core.errors import UserError

State = dict[str, np.ndarray]


def allocate_state(spec: StateSpec, batch: int) -> State:
    """Fresh state for `batch` sequences, every slot filled with its initial value (att_pp = -1e30).

    Args:
        spec: the model's state spec.
        batch: number of sequences B >= 1.
    Returns:
        {input name: array of the slot's concrete shape (e.g. [B, C]) and dtype}.
    """
    if not isinstance(batch, (int, np.integer)) or batch < 1:
        raise UserError(f"batch size must be an int >= 1, got {batch!r}")
    return {
        t.input_name: np.full(spec.concrete_shape(t.slot, int(batch)), t.slot.init, dtype=t.slot.dtype)
        for t in spec.tensors()
    }


def validate_state(spec: StateSpec, state: State, batch: int | None = None, source: str = "state") -> int:
    """Check names, shapes and dtypes of `state` against `spec` for `batch` sequences.

    Args:
        spec: the model's state spec.
        state: {input name: array}.
        batch: expected B; None takes it from the first tensor.
        source: what to call the state in messages (e.g. a file name).
    Returns:
        the batch size B.
    Raises:
        UserError naming the first offending tensor, what it is and what the spec expects.
    """
    if not isinstance(state, dict):
        raise UserError(f"{source} must be a dict of state_in.* arrays, got {type(state).__name__}")
    where = "" if source == "state" else f"{source}: "
    expected = spec.input_names()
    missing = [n for n in expected if n not in state]
    unknown = sorted(set(state) - set(expected))
    if missing or unknown:
        found = "; ".join(f"{what} {_few(names)}" for what, names in (("missing", missing), ("unexpected", unknown))
                          if names)
        raise UserError(
            f"{source} does not match the model's state spec ({found}); "
            f"expected the {len(expected)} inputs {_few(expected)}"
        )
    for t in spec.tensors():
        value = state[t.input_name]
        if not isinstance(value, np.ndarray):
            raise UserError(f"{where}state input {t.input_name} must be a numpy array, got {type(value).__name__}")
        if batch is None and "batch" in t.slot.shape and value.ndim == len(t.slot.shape):
            batch = int(value.shape[t.slot.shape.index("batch")])
        want = list(spec.concrete_shape(t.slot, 1 if batch is None else batch))
        if list(value.shape) != want:
            raise UserError(f"{where}state input {t.input_name} has shape {list(value.shape)}, spec expects {want}")
        if value.dtype != np.dtype(t.slot.dtype):
            raise UserError(f"{where}state input {t.input_name} has dtype {value.dtype}, spec expects {t.slot.dtype}")
    return 1 if batch is None else batch


def save_state(path: str | os.PathLike, spec: StateSpec, state: State) -> None:
    """Write a validated state to an .npz file (one array per input name)."""
    validate_state(spec, state)
    try:
        with open(path, "wb") as f:  # a file object stops numpy from appending ".npz" to the name
            np.savez(f, **state)
    except OSError as err:
        raise UserError(f"cannot write state file {os.fspath(path)}: {err.strerror}") from None


def load_state(path: str | os.PathLike, spec: StateSpec, batch: int | None = None) -> State:
    """Read an .npz state file written by `save_state` and validate it against `spec`.

    Args:
        path: the .npz file.
        spec: the model's state spec.
        batch: expected B; None takes it from the file.
    Returns:
        {input name: array}.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            state = {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise UserError(f"state file {os.fspath(path)} not found") from None
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise UserError(f"state file {os.fspath(path)} is not an .npz written by save_state: {err}") from None
    source = f"state file {os.fspath(path)}"
    validate_state(spec, state, batch, source=source)
    return state


def _few(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return f"[{shown}, ... ({len(names)} in all)]" if len(names) > limit else f"[{shown}]"
