"""One sequence's token history for the repetition, presence and frequency penalties (runtime/sampler.py)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class Penalties:
    """Applies the penalties to a logits row and counts the tokens chosen from it (the arguments: the
    SamplingParams fields of the same names, validated there).

    Repetition (HF / CTRL) covers the prompt and the generated tokens; presence and frequency (ChatRWKV, OpenAI)
    only the generated ones, whose counts decay by `penalty_decay` per new token. ChatRWKV also exempts
    whitespace and digit tokens from counting; that depends on the vocabulary and is not done here.
    """

    def __init__(self, repetition_penalty: float, presence_penalty: float, frequency_penalty: float,
                 penalty_decay: float) -> None:
        self._repetition = float(repetition_penalty)
        self._presence = float(presence_penalty)
        self._frequency = float(frequency_penalty)
        self._decay = float(penalty_decay)
        self.reset()

    def reset(self, prompt_ids: Sequence[int] | np.ndarray = ()) -> None:
        """Forget the counts; the repetition penalty starts from `prompt_ids`."""
        self._prompt = np.unique(np.asarray(prompt_ids, dtype=np.int64))
        self._counts: np.ndarray | None = None  # [V] decayed occurrences, sized by the first logits row
        self._repeated: np.ndarray | None = None  # [V] bool: in the prompt or generated
        self._generated: np.ndarray | None = None  # [V] bool: generated
        self._generated_ids = np.empty(0, np.int64)  # distinct generated ids, in order of first appearance
        self._repeated_ids = np.empty(0, np.int64)  # distinct prompt and generated ids

    def apply(self, logits: np.ndarray) -> None:
        """Penalise `logits` [V] (float64) in place."""
        self._size(logits.shape[0])
        if self._repetition != 1.0 and self._repeated_ids.size:
            ids = self._repeated_ids
            x = logits[ids]
            logits[ids] = np.where(x > 0, x / self._repetition, x * self._repetition)
        if (self._presence or self._frequency) and self._generated_ids.size:
            ids = self._generated_ids
            logits[ids] -= self._presence + self._frequency * self._counts[ids]

    def record(self, token: int) -> None:
        """Count `token`, just generated (after decaying the earlier counts, as ChatRWKV)."""
        assert self._counts is not None, "apply() sizes the arrays first"
        if self._decay != 1.0:
            self._counts[self._generated_ids] *= self._decay
        self._counts[token] += 1.0
        if not self._generated[token]:
            self._generated[token] = True
            self._generated_ids = np.append(self._generated_ids, token)
        if not self._repeated[token]:
            self._repeated[token] = True
            self._repeated_ids = np.append(self._repeated_ids, token)

    def _size(self, vocab: int) -> None:
        if self._counts is not None:
            if self._counts.shape[0] != vocab:
                raise ValueError(f"logits rows changed size from {self._counts.shape[0]} to {vocab} within a sequence")
            return
        if self._prompt.size and not 0 <= self._prompt[0] <= self._prompt[-1] < vocab:
            raise ValueError(f"prompt ids must lie in [0, {vocab}), got {self._prompt[0]} .. {self._prompt[-1]}")
        self._counts = np.zeros(vocab, np.float64)
        self._repeated = np.zeros(vocab, bool)
        self._generated = np.zeros(vocab, bool)
        self._repeated[self._prompt] = True
        self._repeated_ids = self._prompt.copy()
