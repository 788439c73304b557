"""The decode loop: prefill the prompt with one session.run, then one token per step (session, tokenizer, sampler
apart)."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np

from rrwkv_trt.core.errors import UserError
from .sampler import Sampler
from .state import State
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
        sampler: None is greedy (`Sampler()`).
    """

    def __init__(self, session: Session, tokenizer: Tokenizer | None = None, sampler: Sampler | None = None) -> None:
        if tokenizer is not None:
            tokenizer.check_fits(session.vocab_size)
        self.session = session
        self.tokenizer = tokenizer
        self.sampler = Sampler() if sampler is None else sampler
        self._pending: np.ndarray | None = None  # [B] last sampled ids, not yet fed to the model

    def generate(self, prompt: str | Sequence[int], max_new_tokens: int,
                 state: State | None = None) -> Iterator[str] | Iterator[int]:
        """A text prompt yields text pieces (`generate_text`); a list of ids yields ids (`generate_ids`)."""
        if isinstance(prompt, str):
            return self.generate_text(prompt, max_new_tokens, state)
        return self.generate_ids(prompt, max_new_tokens, state)

    def generate_ids(self, prompt_ids: Sequence[int], max_new_tokens: int,
                     state: State | None = None) -> Iterator[int]:
        """Args: prompt_ids [T] (T >= 1); state for batch 1, None = initial. Yields: new token ids."""
        ids = np.asarray(prompt_ids)
        if ids.ndim != 1:
            raise UserError(f"generate_ids takes one prompt [T], got shape {list(ids.shape)}")
        for tokens in self._decode(ids[None, :], max_new_tokens, state, self.sampler):
            yield int(tokens[0])

    def generate_text(self, prompt: str, max_new_tokens: int, state: State | None = None) -> Iterator[str]:
        """Yields: text pieces of the continuation, each as soon as it is valid UTF-8."""
        if self.tokenizer is None:
            raise UserError("text generation needs a tokenizer; pass one to Generator")
        yield from self.tokenizer.decode_stream(self.generate_ids(self.tokenizer.encode(prompt), max_new_tokens, state))

    def greedy_ids(self, prompt_ids: Sequence[int] | np.ndarray, n: int) -> list[int] | list[list[int]]:
        """Greedy decode of `n` tokens from the initial state, whatever `self.sampler` is.

        Args:
            prompt_ids: [T] or [B, T] token ids.
        Returns:
            [n] ids for a [T] prompt, else B lists of n ids.
        """
        ids = np.asarray(prompt_ids)
        rows = [t.copy() for t in self._decode(np.atleast_2d(ids), n, None, Sampler(temperature=0.0))]
        out = np.stack(rows, axis=1) if rows else np.zeros((np.atleast_2d(ids).shape[0], 0), np.int64)  # [B, n]
        return out[0].tolist() if ids.ndim == 1 else out.tolist()

    def final_state(self) -> State:
        """State after the prompt and every token yielded so far (feeds the last one if still pending)."""
        if self._pending is not None:
            self.session.step(self._pending)
            self._pending = None
        return self.session.decode_state()

    def _decode(self, ids: np.ndarray, n: int, state: State | None, sampler: Sampler) -> Iterator[np.ndarray]:
        """Args: ids [B, T]. Yields: n times the sampled ids [B] (one reused buffer; copy to keep)."""
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise UserError(f"max_new_tokens must be an int >= 0, got {n!r}")
        if ids.size == 0:
            raise UserError("the prompt is empty; the model needs at least one token to predict from")
        self._pending = None
        logits, state = self.session.run(ids, state, last_only=True)  # prefill: [B, 1, V]
        self.session.start_decode(state)
        tokens = np.empty(ids.shape[0], dtype=np.int64)  # [B]
        last = logits[:, -1, :]  # [B, V]
        for i in range(n):
            if i > 0:
                last = self.session.step(tokens)
            _check_finite(last, i)
            for b in range(tokens.shape[0]):
                tokens[b] = sampler.sample(last[b])
            self._pending = tokens
            yield tokens


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
