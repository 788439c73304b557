"""A pool of N recurrent-state slots over one session: the layer continuous batching (runtime/scheduler.py) and the
Triton model build on.

Every state tensor is held once, as one array [N, ...] (batch first, as the StateSpec says). A sequence opens a slot
under a key, is prefilled alone (batch 1) and decoded together with the other open slots in one batched call.

The batched step runs on the session's decode buffers (`start_decode` / `step` / `decode_state`): while the same
slots step together, their live state stays in those buffers (on TensorRT, on the GPU) and a step is one session
call with no gather or scatter; when the set changes, the buffers are copied back into the pool's rows and the new
set gathered into them. A step therefore costs `session.step` alone in the steady state, and one gather/scatter
plus, on a new batch size, the decode buffers' allocation when sequences join or leave (measured against
`session.run` per step: README "Continuous batching"; scripts/batched_step_routes.py).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.state import BATCH
from .backends.session import check_token_ids
from .decode import Session
from .state import State, allocate_state, validate_state


class SlotKeyError(UserError, KeyError):
    """A key with no open slot: a UserError (one `error:` line in the CLI) that `except KeyError` also catches."""

    __str__ = UserError.__str__  # KeyError's would quote the message


class SlotPool:
    """N state slots of one session: each state tensor is held as one array [N, ...]; slots are opened by a key
    (any hashable: a Triton correlation id, a request id), run alone (prefill) or together (one batched step).

    The pool owns the session's decode buffers: while it is in use, call the session's `run` freely but not its
    `start_decode` / `step`. Not thread-safe: one caller at a time (a Triton model instance executes serially).

    Args:
        session: an OrtSession or TrtSession (`spec`, `vocab_size`, `run`, `start_decode`, `step`, `decode_state`).
        slots: N >= 1, the most sequences open at once (TensorRT: at most the engine's max batch).
        idle_timeout_s: `expire()` closes slots unused for longer than this; None: never.
        clock: seconds, monotonic (tests pass a fake one).
    Attributes:
        capacity: N.
    """

    def __init__(self, session: Session, slots: int, idle_timeout_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not isinstance(slots, (int, np.integer)) or isinstance(slots, bool) or slots < 1:
            raise UserError(f"slots must be an int >= 1, got {slots!r}")
        timeout = idle_timeout_s
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not timeout > 0):  # `not > 0` refuses NaN too
            raise UserError(f"idle_timeout_s must be a number > 0 (or None: never expire), got {idle_timeout_s!r}")
        _check_batch_first(session.spec)
        self.session = session
        self.capacity = int(slots)
        self.idle_timeout_s = idle_timeout_s
        self._clock = clock
        self._initial = allocate_state(session.spec, 1)  # the row a slot starts from
        self._rows = allocate_state(session.spec, self.capacity)  # [N, ...] per state tensor
        self._slot_of: dict[Hashable, int] = {}
        self._used_at: dict[Hashable, float] = {}
        self._free = list(range(self.capacity - 1, -1, -1))  # popped from the end: the lowest slot first
        self._resident: np.ndarray | None = None  # [b] rows whose live state is in the decode buffers
        self._expired_total = 0
        self._closed_total = 0

    def open(self, key: Hashable) -> int:
        """Give `key` a free slot holding the initial state. Returns: the slot index in [0, N)."""
        _check_hashable(key)
        if key in self._slot_of:
            raise UserError(f"a slot is already open for key {key!r}; close it first")
        if not self._free:
            raise UserError(f"all {self.capacity} slots are in use; close one (or expire idle ones) or make a pool "
                            "with more slots")
        slot = self._free.pop()
        self._release_resident(slot)  # a later copy-back must not overwrite the fresh row
        for name, rows in self._rows.items():
            rows[slot] = self._initial[name][0]
        self._slot_of[key] = slot
        self._used_at[key] = self._clock()
        return slot

    def close(self, key: Hashable) -> None:
        """Free `key`'s slot; SlotKeyError if none is open."""
        self._free_slot(key)
        self._closed_total += 1

    def is_open(self, key: Hashable) -> bool:
        return hashable(key) and key in self._slot_of

    def live(self) -> int:
        """The number of open slots."""
        return len(self._slot_of)

    def prefill(self, key: Hashable, ids: Sequence[int] | np.ndarray, chunk: int = 256) -> np.ndarray:
        """Feed `ids` to `key`'s slot alone (batch 1), in session calls of at most `chunk` tokens.

        Args:
            ids: [T] token ids, T >= 1, each in [0, vocab_size).
        Returns:
            logits [V] of the last position (a new array).
        """
        slot = self._slot(key)
        if not isinstance(chunk, (int, np.integer)) or isinstance(chunk, bool) or chunk < 1:
            raise UserError(f"chunk must be an int >= 1, got {chunk!r}")
        tokens = _prompt_ids(ids, self.session.vocab_size, key)
        self._release_resident(slot)
        state = {name: rows[slot:slot + 1] for name, rows in self._rows.items()}  # views; run returns new arrays
        for start in range(0, tokens.shape[1], chunk):
            logits, state = self.session.run(tokens[:, start:start + chunk], state, last_only=True)  # [1, 1, V]
        for name, rows in self._rows.items():
            rows[slot] = state[name][0]
        return logits[0, -1]

    def step(self, tokens: Mapping[Hashable, int]) -> dict[Hashable, np.ndarray]:
        """Feed one token to each given key's slot, all in ONE batched session call.

        Args:
            tokens: {key: token id}; every key must be open.
        Returns:
            {key: logits [V]} (rows of one new array [b, V]).
        """
        if not tokens:
            return {}
        keys = sorted(tokens, key=self._slot)  # slot order: the same set always makes the same batch
        rows = np.array([self._slot_of[k] for k in keys])
        ids = _step_ids(tokens, keys, self.session.vocab_size)
        if self._resident is None or not np.array_equal(rows, self._resident):
            self._flush()
            self.session.start_decode({name: r[rows] for name, r in self._rows.items()})  # gather: [b, ...]
            self._resident = rows
        logits = self.session.step(ids).copy()  # [b, V]; the session's buffer is overwritten by the next step
        return {k: logits[j] for j, k in enumerate(keys)}

    def state(self, key: Hashable) -> State:
        """A copy of `key`'s slot state for batch 1 ({state_in.* name: [1, ...]}), e.g. for a state file."""
        slot = self._slot(key)
        self._release_resident(slot)
        return {name: rows[slot:slot + 1].copy() for name, rows in self._rows.items()}

    def load(self, key: Hashable, state: State) -> None:
        """Replace `key`'s slot state by `state`, a batch-1 state (validated against the session's spec)."""
        slot = self._slot(key)
        validate_state(self.session.spec, state, 1)
        self._release_resident(slot)
        for name, rows in self._rows.items():
            rows[slot] = state[name][0]

    def expire(self) -> list[Hashable]:
        """Close the slots unused (no open, prefill, step, state or load) for longer than `idle_timeout_s`.

        Returns: their keys, oldest first ([] when the pool has no timeout).
        """
        if self.idle_timeout_s is None:
            return []
        now = self._clock()
        stale = sorted((k for k, t in self._used_at.items() if now - t > self.idle_timeout_s), key=self._used_at.get)
        for key in stale:
            self._free_slot(key)
        self._expired_total += len(stale)
        self._closed_total += len(stale)
        return stale

    def stats(self) -> dict[str, int]:
        """{"capacity", "live", "free", "expired_total", "closed_total"}: closed_total counts every slot freed,
        by `close` or by `expire`; expired_total those `expire` freed."""
        return {"capacity": self.capacity, "live": self.live(), "free": len(self._free),
                "expired_total": self._expired_total, "closed_total": self._closed_total}

    def _slot(self, key: Hashable) -> int:
        """`key`'s slot, marked as used now; SlotKeyError if none is open."""
        if not hashable(key) or key not in self._slot_of:
            raise SlotKeyError(f"no slot is open for key {key!r} ({self.live()} open); open it first")
        self._used_at[key] = self._clock()
        return self._slot_of[key]

    def _free_slot(self, key: Hashable) -> None:
        slot = self._slot(key)
        self._release_resident(slot)
        del self._slot_of[key], self._used_at[key]
        self._free.append(slot)
        self._free.sort(reverse=True)

    def _release_resident(self, slot: int) -> None:
        """Before `slot`'s row is read or written outside `step`: copy the decode buffers back if they hold it."""
        if self._resident is not None and slot in self._resident:
            self._flush()

    def _flush(self) -> None:
        """Scatter the decode buffers' live state back into the pool's rows."""
        if self._resident is None:
            return
        live = self.session.decode_state()  # [b, ...] copies
        for name, rows in self._rows.items():
            rows[self._resident] = live[name]
        self._resident = None


def _check_batch_first(spec) -> None:
    for t in spec.tensors():
        if t.slot.shape[:1] != (BATCH,):
            raise UserError(f"state slot {t.slot.name} has shape {list(t.slot.shape)}; a SlotPool needs the batch "
                            "dim first in every slot")


def hashable(key: object) -> bool:
    """Whether `key` can key a dict (a slot, a request)."""
    try:
        hash(key)
    except TypeError:
        return False
    return True


def _check_hashable(key: object) -> None:
    if not hashable(key):
        raise UserError(f"slot keys must be hashable (an int or str id), got {type(key).__name__}")


def _prompt_ids(ids: Sequence[int] | np.ndarray, vocab_size: int, key: Hashable) -> np.ndarray:
    """`ids` [T] as int64 [1, T]; a UserError naming `key` for an empty prompt or an id outside the vocabulary."""
    tokens = np.asarray(ids)
    if tokens.ndim != 1 or tokens.size == 0:
        raise UserError(f"prefill of key {key!r} needs a non-empty list of token ids [T], got shape "
                        f"{list(tokens.shape)}")
    try:
        return check_token_ids(tokens[None, :], 2, vocab_size)
    except UserError as err:
        raise UserError(f"prefill of key {key!r}: {err}") from None


def _step_ids(tokens: Mapping[Hashable, int], keys: list[Hashable], vocab_size: int) -> np.ndarray:
    """The step's ids [b] in the order of `keys`; a UserError naming the key of a bad id."""
    for k in keys:
        t = tokens[k]
        if not isinstance(t, (int, np.integer)) or isinstance(t, (bool, np.bool_)) or not 0 <= t < vocab_size:
            raise UserError(f"step of key {k!r}: token id {t!r} is not an int in [0, {vocab_size}) (the model's "
                            "vocabulary)")
    return np.array([tokens[k] for k in keys], dtype=np.int64)
