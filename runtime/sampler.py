"""Next-token sampling: exact greedy at temperature 0, else temperature + top-p with a seeded RNG."""
from __future__ import annotations

import numpy as np

from rrwkv_trt.core.errors import UserError


# Below this, temperature sampling is greedy in all but name, and far below it 1 / temperature overflows (1e-320 made
# every probability NaN and the sampler emit token V-1 forever). Such temperatures are refused, not silently made
# greedy: 0 says greedy.
MIN_TEMPERATURE = 1e-6


class Sampler:
    """Picks one token id from a logits row. Owns its RNG, so a seed reproduces a run exactly.

    Args:
        temperature: 0 is greedy argmax (no RNG draw); otherwise a finite number >= MIN_TEMPERATURE that divides
            the logits.
        top_p: keep the smallest set of most likely tokens whose probability reaches top_p (0 < top_p <= 1).
        seed: RNG seed, an int >= 0; None seeds from the OS.
    """

    def __init__(self, temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None) -> None:
        if not (temperature == 0.0 or MIN_TEMPERATURE <= temperature < float("inf")):  # also rejects NaN
            raise UserError(f"temperature must be 0 (greedy) or a finite number >= {MIN_TEMPERATURE:g}, got "
                            f"{temperature!r}")
        if not 0.0 < top_p <= 1.0:
            raise UserError(f"top_p must be in (0, 1], got {top_p!r}")
        if seed is not None and not (isinstance(seed, (int, np.integer)) and seed >= 0):
            raise UserError(f"seed must be an int >= 0 (or None to seed from the OS), got {seed!r}")
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.rng = np.random.default_rng(seed)
        self._probs = np.empty(0, dtype=np.float64)  # [V] work buffers, sized on the first call
        self._cdf = np.empty(0, dtype=np.float64)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def sample(self, logits: np.ndarray) -> int:
        """Args: logits [V] (any float dtype). Returns: the chosen token id in [0, V)."""
        if logits.ndim != 1:
            raise ValueError(f"sample() takes one logits row [V], got shape {list(logits.shape)}")
        if self.greedy:
            return int(np.argmax(logits))
        n = logits.shape[0]
        if self._probs.shape[0] != n:
            self._probs = np.empty(n, dtype=np.float64)
            self._cdf = np.empty(n, dtype=np.float64)
        probs, cdf = self._probs, self._cdf
        np.copyto(probs, logits)
        # softmax without overflow: shift first, so the scaled logits are <= 0 (at worst -inf, probability 0) and the
        # top one is exactly 0; unnormalised is fine for inverse-CDF sampling
        probs -= probs.max()
        probs *= 1.0 / self.temperature
        np.exp(probs, out=probs)
        if self.top_p >= 1.0:
            np.cumsum(probs, out=cdf)
            return self._draw(cdf, n)
        order = np.argsort(probs)[::-1]  # the sort is the one unavoidable allocation
        np.take(probs, order, out=cdf)
        np.cumsum(cdf, out=cdf)
        keep = int(np.searchsorted(cdf, self.top_p * cdf[-1], side="left")) + 1
        keep = min(keep, n)  # nucleus size in [1, V]
        return int(order[self._draw(cdf[:keep], keep)])

    def _draw(self, cdf: np.ndarray, n: int) -> int:
        # side="right" never lands on a zero-probability entry; min() guards float round-off at the top
        return min(int(np.searchsorted(cdf, self.rng.random() * cdf[-1], side="right")), n - 1)
