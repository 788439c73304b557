"""`rrwkv-trt run --state-in / --state-out`: a decode that resumes from a state file and saves one.

A state file records, per sequence, the tokens consumed since the initial state. Only some families keep that count
in their state (RRWKV's pos), so the decode runs on a `CountingSession`, which counts the tokens it feeds the
model, and the saved positions are the loaded ones plus that count.
"""
from __future__ import annotations

import os

import numpy as np

from .decode import Session
from .state import State
from .state_file import SavedState, load_state_file, producer_name, require_fingerprint, save_state_file


class CountingSession:
    """A session (runtime/decode.py `Session`) that counts the tokens fed through it: T per `run`, one per `step`.

    Attributes:
        tokens: tokens each sequence has consumed through this object.
        rows: the batch size of the last `run` (None before the first).
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.vocab_size = session.vocab_size
        self.tokens = 0
        self.rows: int | None = None

    def run(self, input_ids: np.ndarray, state: State | None = None,
            last_only: bool = False) -> tuple[np.ndarray, State]:
        out = self.session.run(input_ids, state, last_only)
        self.rows, length = np.shape(input_ids)
        self.tokens += length
        return out

    def start_decode(self, state: State) -> None:
        self.session.start_decode(state)

    def step(self, token_ids: np.ndarray) -> np.ndarray:
        logits = self.session.step(token_ids)
        self.tokens += 1
        return logits

    def decode_state(self) -> State:
        return self.session.decode_state()


class Resume:
    """One decode between an optional state file to resume from and an optional one to save.

    Args:
        session: an OrtSession or TrtSession (its `info` and `path` are read).
        state_in: the state file to resume from, read and validated here, before any decoding; None: the initial
            state.
        state_out: the state file `save` will write; the model's fingerprint is required here, so that a model
            that cannot save states fails before decoding rather than after.
    Attributes:
        session: the CountingSession to decode with, in place of `session`.
        state: the state to start from (None: the initial state).
    """

    def __init__(self, session, state_in: str | os.PathLike | None, state_out: str | os.PathLike | None) -> None:
        self._model = str(session.path)
        self._info = session.info
        self._producer = producer_name(session)
        self._state_out = state_out
        self._saved: SavedState | None = None
        if state_in is not None:
            self._saved = load_state_file(state_in, session.info, batch=1, model=self._model)
        if state_out is not None:
            require_fingerprint(session.info, self._model)
        self.session = CountingSession(session)
        self.state = None if self._saved is None else self._saved.state

    def save(self, state: State) -> None:
        """Write `state`, the state after every token decoded through `self.session`, to `state_out`."""
        assert self._state_out is not None and self.session.rows is not None
        start = self._saved.positions if self._saved is not None else (0,) * self.session.rows
        positions = [p + self.session.tokens for p in start]
        save_state_file(self._state_out, self._info, state, positions, self._producer, model=self._model)
