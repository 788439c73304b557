"""Recurrent-state buffers from a StateSpec: allocate and validate (numpy only).

A state is a dict keyed by ONNX input names (`state_in.{layer}.{slot}`, `state_in.{slot}`), so the
state a session returns can be fed straight back as the next call's input. State files: runtime/state_file.py.
"""
from __future__ import annotations

import numpy as np

from rrwkv_trt.core.state import BATCH, StateSpec, StateTensor
from rrwkv_trt.core.errors import UserError

State = dict[str, np.ndarray]

# Integer slots count tokens (RRWKV's pos). 2^48 tokens is centuries of decoding, and leaves int64 room for any call
# to add its tokens without overflow.
MAX_POS = 2**48


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
    check_names(spec, list(state), source)
    for t in spec.tensors():
        value = state[t.input_name]
        if not isinstance(value, np.ndarray):
            raise UserError(f"{where}state input {t.input_name} must be a numpy array, got {type(value).__name__}")
        batch = _batch_from(t, value.shape, batch)
        _check_shape_dtype(spec, t, value.shape, value.dtype, 1 if batch is None else batch, where)
    return 1 if batch is None else batch


def check_names(spec: StateSpec, names: list[str], source: str) -> None:
    """UserError naming `source` unless `names` are exactly the spec's input names (in any order)."""
    expected, found = spec.input_names(), set(names)  # sets: a hostile file may name many thousands of tensors
    missing = [n for n in expected if n not in found]
    unknown = sorted(found - set(expected))
    if missing or unknown:
        problems = "; ".join(f"{what} {few(group)}" for what, group in (("missing", missing), ("unexpected", unknown))
                             if group)
        raise UserError(
            f"{source} does not match the model's state spec ({problems}); "
            f"expected the {len(expected)} inputs {few(expected)}"
        )


def _batch_from(t: StateTensor, shape: tuple[int, ...], batch: int | None) -> int | None:
    """`batch`, or the first tensor's batch dim when None."""
    if batch is None and BATCH in t.slot.shape and len(shape) == len(t.slot.shape):
        return int(shape[t.slot.shape.index(BATCH)])
    return batch


def _check_shape_dtype(spec: StateSpec, t: StateTensor, shape: tuple[int, ...], dtype: np.dtype, batch: int,
                       where: str) -> None:
    want = list(spec.concrete_shape(t.slot, batch))
    if list(shape) != want:
        raise UserError(f"{where}state input {t.input_name} has shape {list(shape)}, spec expects {want}")
    if dtype != np.dtype(t.slot.dtype):
        raise UserError(f"{where}state input {t.input_name} has dtype {dtype}, spec expects {t.slot.dtype}")


def few(names: list[str], limit: int = 4) -> str:
    """The first `limit` names for a message, and how many there are in all."""
    shown = ", ".join(names[:limit])
    return f"[{shown}, ... ({len(names)} in all)]" if len(names) > limit else f"[{shown}]"
