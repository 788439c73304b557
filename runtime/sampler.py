"""Next-token sampling: SamplingParams say how, a Sampler per sequence applies them with its own seeded RNG.

Order (HF's logits processors and vLLM's sampler; ChatRWKV's penalties, then its sampling):
1. repetition penalty (HF / CTRL) on every token of the prompt or generated so far: a positive logit is divided
   by it, a negative one multiplied;
2. presence and frequency penalties (ChatRWKV's alpha_presence / alpha_frequency) on the generated tokens:
   `logit[t] -= presence + frequency * count[t]`, where every count is multiplied by `penalty_decay` after each new
   token (ChatRWKV's alpha_decay; 1, the default, keeps plain counts as OpenAI and vLLM do);
3. temperature 0: the argmax, exactly, with no RNG draw; otherwise logits / temperature;
4. top-k, 5. top-p (nucleus), 6. min-p, each on what the previous steps kept;
7. one draw from the sequence's numpy Generator (inverse CDF over the kept tokens in id order).
Each sequence has its own Sampler, RNG and counts, so a sequence samples the same tokens alone or in a batch.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rrwkv_trt.core.errors import UserError
from .penalties import Penalties

# Below this, temperature sampling is greedy in all but name, and far below it 1 / temperature overflows (1e-320 made
# every probability NaN and the sampler emit token V-1 forever). Such temperatures are refused, not silently made
# greedy: 0 says greedy.
MIN_TEMPERATURE = 1e-6
MAX_PENALTY = 2.0  # presence / frequency penalties lie in [-2, 2], as in OpenAI's API and vLLM


class ParamError(UserError):
    """A sampling or stopping parameter outside its range; `field`, `allowed` and `value` let the CLI name its
    option instead of the field."""

    def __init__(self, field: str, allowed: str, value: object) -> None:
        self.field, self.allowed, self.value = field, allowed, value
        super().__init__(f"{field} must be {allowed}, got {value!r}")


@dataclass(frozen=True)
class SamplingParams:
    """How one sequence picks its next token (the order: this module's docstring). The defaults are exact greedy.

    Args:
        temperature: 0 is greedy argmax; otherwise a finite number >= MIN_TEMPERATURE that divides the logits.
        top_k: keep the k most likely tokens (ties at the k-th logit are all kept, as in HF); 0 = off.
        top_p: keep the smallest set of most likely tokens whose probability reaches top_p, in (0, 1]; 1 = off.
        min_p: keep the tokens at least min_p times as likely as the most likely one, in [0, 1]; 0 = off.
        repetition_penalty: > 0; 1 = off; > 1 discourages tokens of the prompt and of the generated text.
        presence_penalty: in [-2, 2], subtracted once from each token generated so far; 0 = off.
        frequency_penalty: in [-2, 2], subtracted per (decayed) occurrence of a generated token; 0 = off.
        penalty_decay: in (0, 1]; the occurrence counts are multiplied by it after each token; 1 = no decay.
        seed: an int >= 0 for a reproducible sequence; None seeds from the OS.
    """

    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    penalty_decay: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        t = self.temperature
        _require(_real(t) and (t == 0.0 or MIN_TEMPERATURE <= t < float("inf")), "temperature",
                 f"0 (greedy) or a finite number >= {MIN_TEMPERATURE:g}", t)
        _require(_integer(self.top_k) and self.top_k >= 0, "top_k", "an int >= 0 (0 = off)", self.top_k)
        _require(_real(self.top_p) and 0.0 < self.top_p <= 1.0, "top_p", "in (0, 1]", self.top_p)
        _require(_real(self.min_p) and 0.0 <= self.min_p <= 1.0, "min_p", "in [0, 1]", self.min_p)
        r = self.repetition_penalty
        _require(_real(r) and 0.0 < r < float("inf"), "repetition_penalty", "a finite number > 0 (1 = off)", r)
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            _require(_real(value) and -MAX_PENALTY <= value <= MAX_PENALTY, name, f"in [-{MAX_PENALTY:g}, "
                     f"{MAX_PENALTY:g}] (0 = off)", value)
        d = self.penalty_decay
        _require(_real(d) and 0.0 < d <= 1.0, "penalty_decay", "in (0, 1] (1 = no decay)", d)
        s = self.seed
        _require(s is None or (_integer(s) and s >= 0), "seed", "an int >= 0 (or None to seed from the OS)", s)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @property
    def penalized(self) -> bool:
        return (self.repetition_penalty != 1.0 or self.presence_penalty != 0.0
                or self.frequency_penalty != 0.0)


def _require(ok: bool, field: str, allowed: str, value: object) -> None:
    if not ok:
        raise ParamError(field, allowed, value)


def _real(value: object) -> bool:
    # NaN fails every range check that follows; bool is an int to Python but never a sampling parameter
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _integer(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


class Sampler:
    """Picks one sequence's tokens. Owns its RNG (a seed reproduces a run exactly) and its penalty counts.

    Args:
        params: None is exact greedy (`SamplingParams()`).
        **fields: instead of params, its fields: `Sampler(temperature=0.8, seed=0)`.
    """

    def __init__(self, params: SamplingParams | None = None, **fields) -> None:
        if params is not None and fields:
            raise TypeError("Sampler takes SamplingParams or its fields, not both")
        self.params = SamplingParams(**fields) if params is None else params
        if not isinstance(self.params, SamplingParams):
            raise TypeError(f"Sampler takes SamplingParams, got {type(self.params).__name__}")
        self.rng = np.random.default_rng(self.params.seed)
        p = self.params
        self._penalties = (Penalties(p.repetition_penalty, p.presence_penalty, p.frequency_penalty, p.penalty_decay)
                           if p.penalized else None)

    @property
    def greedy(self) -> bool:
        return self.params.greedy

    @property
    def plain_argmax(self) -> bool:
        """Greedy without penalties: the token is the argmax of the logits as given."""
        return self._penalties is None and self.greedy

    def reset(self, prompt_ids: Sequence[int] | np.ndarray = ()) -> None:
        """Start a new sequence: forget the penalty counts; `prompt_ids` count for the repetition penalty. The RNG
        goes on (a second generation with the same Sampler continues the seeded stream)."""
        if self._penalties is not None:
            self._penalties.reset(prompt_ids)

    def sample(self, logits: np.ndarray) -> int:
        """Choose the next token and count it for the penalties.

        Args: logits [V] (any float dtype). Returns: the chosen token id in [0, V).
        """
        if logits.ndim != 1:
            raise ValueError(f"sample() takes one logits row [V], got shape {list(logits.shape)}")
        if self.plain_argmax:
            return int(np.argmax(logits))
        work = logits.astype(np.float64)  # [V] a copy: the caller's logits stay as they are
        if self._penalties is not None:
            self._penalties.apply(work)
        token = int(np.argmax(work)) if self.greedy else self._draw(work)
        if self._penalties is not None:
            self._penalties.record(token)
        return token

    def _draw(self, work: np.ndarray) -> int:
        p = self.params
        # softmax without overflow: shift first, so the scaled logits are <= 0 (at worst -inf, probability 0) and the
        # top one is exactly 0; unnormalised weights are fine for an inverse-CDF draw
        work -= work.max()
        work *= 1.0 / p.temperature
        kept = _top_k(work, p.top_k)  # None: every token
        probs = np.exp(work if kept is None else work[kept])  # the top weight is exactly 1
        if p.top_p < 1.0:
            _top_p(probs, p.top_p)
        if p.min_p > 0.0:
            probs[probs < p.min_p] = 0.0  # min_p * the top weight, which is 1
        i = _inverse_cdf(probs, self.rng.random())
        return i if kept is None else int(kept[i])


def sample_rows(samplers: Sequence[Sampler], logits: np.ndarray, out: np.ndarray) -> None:
    """One token per batch row, row b by `samplers[b]`, into `out` [B]; each row exactly as if it ran alone.

    Args: logits [B, V].
    """
    assert logits.ndim == 2 and len(samplers) == logits.shape[0] == out.shape[0]
    if all(s.plain_argmax for s in samplers):
        np.argmax(logits, axis=-1, out=out)  # the common case in one call
        return
    for b, sampler in enumerate(samplers):
        out[b] = sampler.sample(logits[b])


def _top_k(work: np.ndarray, k: int) -> np.ndarray | None:
    """Ids (ascending) of the k largest entries and any tied with the k-th; None when k is 0 or keeps all."""
    n = work.shape[0]
    if k == 0 or k >= n:
        return None
    kth = np.partition(work, n - k)[n - k]
    return np.flatnonzero(work >= kth)


def _top_p(probs: np.ndarray, top_p: float) -> None:
    """Zero every weight outside the nucleus, in place: the smallest set of largest weights whose mass reaches
    top_p of the total (it always keeps the top one)."""
    n = probs.shape[0]
    target = top_p * probs.sum()
    # Sorting all of a 65536-token vocabulary took 17 ms a token; the nucleus is usually a few hundred tokens, so sort
    # the largest `head` weights (ties with the smallest of them included, so the order is the full sort's prefix)
    # and widen only when they do not reach the target.
    head = min(n, 256)
    while True:
        top = np.flatnonzero(probs >= np.partition(probs, n - head)[n - head]) if head < n else np.arange(n)
        order = top[np.argsort(-probs[top], kind="stable")]  # stable: ties go by id, the same on every platform
        mass = np.cumsum(probs[order])
        if mass[-1] >= target or head == n:
            break
        head = min(n, 4 * head)
    keep = min(int(np.searchsorted(mass, target, side="left")) + 1, order.shape[0])
    dropped = np.ones(n, bool)
    dropped[order[:keep]] = False
    probs[dropped] = 0.0


def _inverse_cdf(probs: np.ndarray, u: float) -> int:
    """The index that uniform `u` in [0, 1) picks from unnormalised weights `probs` (at least one positive)."""
    cdf = np.cumsum(probs)
    # side="right" never lands on a zero weight: its cdf equals its predecessor's, which is <= the target
    i = int(np.searchsorted(cdf, u * cdf[-1], side="right"))
    if i == cdf.shape[0]:  # u * total rounded up to the total: the last token with any weight
        i = int(np.flatnonzero(probs)[-1])
    return i
