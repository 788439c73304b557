"""The decode loop: prefill the prompt with one session.run, then one token per step (session, tokenizer, sampler
apart)."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np

from rrwkv_trt.core.errors import UserError
from .sampler import ParamError, Sampler, sample_rows
from .state import State
from .stopping import IdStream, StopConditions, TextStream
from .tokenizer import Tokenizer


class Session(Protocol):
    """What the loop needs from a backend (backends.ort.OrtSession; later TrtSession)."""

    vocab_size: int

    def run(self, input_ids: np.ndarray, state: State | None = None,
            last_only: bool = False) -> tuple[np.ndarray, State]: ...
    def start_decode(self, state: State) -> None: ...
    def step(self, token_ids: np.ndarray) -> np.ndarray: ...
    def decode_state(self) -> State: ...


class Generator:
    """Generates tokens from a session.

    Args:
        session: a backend session (see `Session`).
        tokenizer: needed only for text prompts and text output; its ids must fit the model's vocab_size.
        sampler: picks the tokens of `generate*` (runtime/sampler.py); None is exact greedy (`Sampler()`).
    """

    def __init__(self, session: Session, tokenizer: Tokenizer | None = None, sampler: Sampler | None = None) -> None:
        if tokenizer is not None:
            tokenizer.check_fits(session.vocab_size)
        self.session = session
        self.tokenizer = tokenizer
        self.sampler = Sampler() if sampler is None else sampler
        self._pending: np.ndarray | None = None  # [B] last sampled ids, not yet fed to the model

    def generate(self, prompt: str | Sequence[int], max_new_tokens: int, state: State | None = None, *,
                 stop: Sequence[str] = (), stop_token_ids: Sequence[int] = ()) -> TextStream | IdStream:
        """A text prompt gives text pieces (`generate_text`); a list of ids gives ids (`generate_ids`)."""
        if isinstance(prompt, str):
            return self.generate_text(prompt, max_new_tokens, state, stop=stop, stop_token_ids=stop_token_ids)
        if stop:
            raise UserError("stop strings need a text prompt (generate_text); an id prompt stops at stop_token_ids")
        return self.generate_ids(prompt, max_new_tokens, state, stop_token_ids=stop_token_ids)

    def generate_ids(self, prompt_ids: Sequence[int], max_new_tokens: int, state: State | None = None, *,
                     stop_token_ids: Sequence[int] = ()) -> IdStream:
        """Args: prompt_ids [T] (T >= 1); state for batch 1, None = initial; stop_token_ids: end after any of them.

        Returns: an iterator of the new token ids (runtime/stopping.py); its finish_reason says why it ended.
        """
        return self._id_stream(prompt_ids, self._stop_conditions(max_new_tokens, (), stop_token_ids), state)

    def generate_text(self, prompt: str, max_new_tokens: int, state: State | None = None, *,
                      stop: Sequence[str] = (), stop_token_ids: Sequence[int] = ()) -> TextStream:
        """Returns: an iterator of text pieces of the continuation, each as soon as it is valid UTF-8, never showing
        a stop string or a stop token (runtime/stopping.py); its finish_reason says why it ended."""
        if self.tokenizer is None:
            raise UserError("text generation needs a tokenizer; pass one to Generator")
        conditions = self._stop_conditions(max_new_tokens, stop, stop_token_ids)
        ids = self._id_stream(self.tokenizer.encode(prompt), conditions, state)
        return TextStream(ids, self.tokenizer.stream(), conditions.stop_strings)

    def greedy_ids(self, prompt_ids: Sequence[int] | np.ndarray, n: int) -> list[int] | list[list[int]]:
        """Greedy decode of `n` tokens from the initial state, whatever `self.sampler` is.

        Args:
            prompt_ids: [T] or [B, T] token ids.
        Returns:
            [n] ids for a [T] prompt, else B lists of n ids.
        """
        ids = np.atleast_2d(np.asarray(prompt_ids))
        _check_prompt(ids)
        rows = [t.copy() for t in self._decode(ids, n, None, [Sampler() for _ in range(ids.shape[0])])]
        out = np.stack(rows, axis=1) if rows else np.zeros((ids.shape[0], 0), np.int64)  # [B, n]
        return out[0].tolist() if np.ndim(prompt_ids) == 1 else out.tolist()

    def final_state(self) -> State:
        """State after the prompt and every token generated so far (feeds the last one if still pending), a stop
        token included."""
        if self._pending is not None:
            self.session.step(self._pending)
            self._pending = None
        return self.session.decode_state()

    def _stop_conditions(self, max_new_tokens: int, stop: Sequence[str],
                         stop_token_ids: Sequence[int]) -> StopConditions:
        conditions = StopConditions(max_new_tokens, tuple(stop), tuple(stop_token_ids))
        vocab = self.session.vocab_size if conditions.stop_token_ids else 0
        if any(i >= vocab for i in conditions.stop_token_ids):  # an id the model can never sample
            raise ParamError("stop_token_ids", f"token ids in [0, {vocab - 1}] (the model's vocabulary)",
                             conditions.stop_token_ids)
        return conditions

    def _id_stream(self, prompt_ids: Sequence[int], stop: StopConditions, state: State | None) -> IdStream:
        ids = np.asarray(prompt_ids)
        if ids.ndim != 1:
            raise UserError(f"generate_ids takes one prompt [T], got shape {list(ids.shape)}")
        _check_prompt(ids)
        rows = self._decode(ids[None, :], stop.max_new_tokens, state, [self.sampler])
        return IdStream((int(tokens[0]) for tokens in rows), stop)

    def _decode(self, ids: np.ndarray, n: int, state: State | None,
                samplers: Sequence[Sampler]) -> Iterator[np.ndarray]:
        """Args: ids [B, T]; samplers: one per row. Yields: n times the sampled ids [B] (one reused buffer; copy to
        keep)."""
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise UserError(f"max_new_tokens must be an int >= 0, got {n!r}")
        self._pending = None
        for sampler, row in zip(samplers, ids):
            sampler.reset(row)  # the prompt counts for the repetition penalty
        logits, state = self.session.run(ids, state, last_only=True)  # prefill: [B, 1, V]
        self.session.start_decode(state)
        tokens = np.empty(ids.shape[0], dtype=np.int64)  # [B]
        last = logits[:, -1, :]  # [B, V]
        for i in range(n):
            if i > 0:
                last = self.session.step(tokens)
            _check_finite(last, i)
            sample_rows(samplers, last, tokens)
            self._pending = tokens
            yield tokens


def _check_prompt(ids: np.ndarray) -> None:
    if ids.size == 0:
        raise UserError("the prompt is empty; the model needs at least one token to predict from")


def _check_finite(logits: np.ndarray, index: int) -> None:
    """Stop at NaN/Inf logits: greedy would emit token 0 forever and sampling an arbitrary token, both silently.

    Args: logits [B, V] (float16 or float32); index: which new token they predict (0-based).
    """
    # One pass and no [B, V] temporary per step: a float64 sum of finite float16/float32 values cannot overflow, and
    # any NaN or Inf makes it non-finite.
    if np.isfinite(logits.sum(dtype=np.float64)):
        return
    rows = np.flatnonzero(~np.isfinite(logits).all(axis=-1)).tolist()
    raise UserError(f"the model produced NaN or Inf logits for new token {index + 1} (batch rows {rows}); its "
                    "weights or the state it continued from are broken: compare the model with its checkpoint "
                    "(`python -m rrwkv_trt.reference.verify CHECKPOINT MODEL`), or start from the initial state")
