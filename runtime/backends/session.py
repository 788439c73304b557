"""What OrtSession and TrtSession share: argument checks and the decode protocol around their ping-pong buffers."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rrwkv_trt.core.errors import UserError
from ..state import State, allocate_state, validate_state

if TYPE_CHECKING:
    from typing import Self  # Python 3.11+; the package supports 3.10


class BackendSession:
    """Base of OrtSession and TrtSession: `initial_state`, `start_decode` / `step` / `decode_state`, context manager.

    A subclass sets `spec` and `vocab_size` and provides `close()`, `_live()` (raises RuntimeError once closed) and
    `_new_decode(batch)`, which returns decode buffers with `batch`, `load(state)`, `step(ids)` and `snapshot()`.
    It overrides `_check_batch` where batches are limited and `_drop_decode` where the buffers must be freed.
    """

    _decode = None  # the decode buffers of the current batch size, made by start_decode

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def initial_state(self, batch: int = 1) -> State:
        """Fresh state for `batch` sequences (see state.allocate_state)."""
        return allocate_state(self.spec, batch)

    def start_decode(self, state: State) -> None:
        """Copy `state` into the decode buffers (allocated once per batch size) ahead of `step`."""
        self._live()
        batch = validate_state(self.spec, state)
        self._check_batch(batch)
        if self._decode is None or self._decode.batch != batch:
            self._drop_decode()
            self._decode = self._new_decode(batch)
        self._decode.load(state)

    def step(self, token_ids: np.ndarray | int) -> np.ndarray:
        """Feed one token per sequence and advance the decode state.

        Args:
            token_ids: [B] integer ids (an int when B == 1).
        Returns:
            logits [B, V]: a view of a buffer that the next `step` overwrites.
        """
        return self._decoding("step").step(check_token_ids(token_ids, 1, self.vocab_size))

    def decode_state(self) -> State:
        """A host copy of the current decode state, keyed by state_in.* names."""
        return self._decoding("decode_state").snapshot()

    def _decoding(self, call: str):
        self._live()
        if self._decode is None:
            raise RuntimeError(f"{call}() before start_decode(state)")
        return self._decode

    def _prefill_inputs(self, input_ids: np.ndarray, state: State | None) -> tuple[np.ndarray, State]:
        """`run`'s arguments checked: ids [B, T] as int64, and `state` (None: the initial state) for batch B."""
        ids = check_token_ids(input_ids, 2, self.vocab_size)
        batch = ids.shape[0]
        self._check_batch(batch)
        if state is None:
            state = allocate_state(self.spec, batch)
        validate_state(self.spec, state, batch)
        return ids, state

    def _check_batch(self, batch: int) -> None:
        """Refuse a batch this backend cannot run; the default takes any."""

    def _drop_decode(self) -> None:
        self._decode = None


def check_token_ids(ids: np.ndarray | int, ndim: int, vocab_size: int) -> np.ndarray:
    """Token ids as int64 of rank `ndim` ([B, T] or [B]) within [0, vocab_size); UserError otherwise."""
    ids = np.asarray(ids)
    if ids.ndim == 0 and ndim == 1:
        ids = ids.reshape(1)
    if ids.dtype.kind not in "iu":
        raise UserError(f"token ids must be integers, got dtype {ids.dtype}")
    want = "[batch, seq]" if ndim == 2 else "[batch]"
    if ids.ndim != ndim or 0 in ids.shape:
        raise UserError(f"token ids must have shape {want} with no empty dim, got {list(ids.shape)}")
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= vocab_size:
        bad = lo if lo < 0 else hi
        raise UserError(f"token id {bad} is out of range for vocab size {vocab_size}; ids must be in "
                        f"[0, {vocab_size})")
    return ids if ids.dtype == np.int64 else ids.astype(np.int64)
