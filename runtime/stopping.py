"""When a generation stops, and the streams that say why: stop token ids, stop strings, max new tokens.

- A stop token is part of the sequence: IdStream yields it (last) and the model's state includes it, but
  TextStream shows none of its text.
- A stop string is matched on the decoded text, across token boundaries. The text is streamed up to the first
  stop string and never shows any of it: text that could still grow into a stop string is held back until it
  cannot. The tokens that produced it are in `token_ids` and in the state.
- Matching is on Unicode code points of the decoded text, with no normalisation.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from numbers import Integral
from dataclasses import dataclass
from typing import Literal

from .sampler import ParamError
from .tokenizer import StreamDecoder

FinishReason = Literal["stop_token", "stop_string", "max_tokens"]


@dataclass(frozen=True)
class StopConditions:
    """When one generation ends (whichever comes first).

    Args:
        max_new_tokens: an int >= 0, the most tokens to generate.
        stop_strings: non-empty strings; the text ends before the first one that appears.
        stop_token_ids: ids >= 0; generation ends after the first of them is sampled.
    """

    max_new_tokens: int
    stop_strings: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        n = self.max_new_tokens
        if not _is_int(n) or n < 0:
            raise ParamError("max_new_tokens", "an int >= 0", n)
        strings, ids = self.stop_strings, self.stop_token_ids
        if not isinstance(strings, tuple) or not all(isinstance(s, str) and s for s in strings):
            raise ParamError("stop_strings", "non-empty strings (a tuple)", strings)
        if not isinstance(ids, tuple) or not all(_is_int(i) and i >= 0 for i in ids):
            raise ParamError("stop_token_ids", "token ids >= 0 (a tuple)", ids)


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)  # numpy ints too


class StopStringFilter:
    """Streams text up to the first stop string, holding back any tail that may still become one."""

    def __init__(self, stop_strings: Sequence[str]) -> None:
        self._stops = tuple(stop_strings)
        self._held = ""
        self.hit = False

    def push(self, piece: str) -> str:
        """Feed the next piece of text. Returns: the text now safe to show; sets `hit` at a stop string."""
        if self.hit or not self._stops:
            return "" if self.hit else piece
        text = self._held + piece
        cut = min((i for i in (text.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.hit, self._held = True, ""
            return text[:cut]
        keep = self._undecided_tail(text)
        self._held = text[len(text) - keep:]
        return text[:len(text) - keep]

    def flush(self) -> str:
        """The text held back, once no more will come (it can no longer become a stop string)."""
        held, self._held = self._held, ""
        return held

    def _undecided_tail(self, text: str) -> int:
        """Length of the longest suffix of `text` that is a proper prefix of a stop string."""
        longest = min(len(text), max(len(s) for s in self._stops) - 1)
        for k in range(longest, 0, -1):
            tail = text[-k:]
            if any(s.startswith(tail) for s in self._stops):
                return k
        return 0


class IdStream:
    """Iterates the new token ids of one sequence; a stop token is yielded, then the stream ends.

    Attributes:
        token_ids: the ids yielded so far.
        finish_reason: why it ended; None until then.
    """

    def __init__(self, tokens: Iterator[int], stop: StopConditions) -> None:
        self.token_ids: list[int] = []
        self.finish_reason: FinishReason | None = None
        self._it = self._run(tokens, frozenset(stop.stop_token_ids))

    def __iter__(self) -> IdStream:
        return self

    def __next__(self) -> int:
        return next(self._it)

    def _run(self, tokens: Iterator[int], stop_ids: frozenset[int]) -> Iterator[int]:
        for token in tokens:  # at most max_new_tokens of them
            self.token_ids.append(token)
            if token in stop_ids:
                self.finish_reason = "stop_token"
                yield token
                return
            yield token
        self.finish_reason = "max_tokens"


class TextStream:
    """Iterates UTF-8-safe text pieces of one sequence's continuation (never part of a character or of a stop
    string).

    Attributes:
        text: the text yielded so far.
        token_ids, finish_reason: as in IdStream, with "stop_string" when a stop string ended it.
    """

    def __init__(self, ids: IdStream, decoder: StreamDecoder, stop_strings: Sequence[str]) -> None:
        self.text = ""
        self._ids = ids
        self._filter = StopStringFilter(stop_strings)
        self._it = self._run(decoder)

    @property
    def token_ids(self) -> list[int]:
        return self._ids.token_ids

    @property
    def finish_reason(self) -> FinishReason | None:
        return "stop_string" if self._filter.hit else self._ids.finish_reason

    def __iter__(self) -> TextStream:
        return self

    def __next__(self) -> str:
        return next(self._it)

    def _run(self, decoder: StreamDecoder) -> Iterator[str]:
        for token in self._ids:
            if self._ids.finish_reason == "stop_token":
                break  # the stop token's own text is not shown
            piece = self._filter.push(decoder.step(token))
            if piece:
                self.text += piece
                yield piece
            if self._filter.hit:
                return
        tail = self._filter.push(decoder.finish())
        tail += "" if self._filter.hit else self._filter.flush()
        if tail:
            self.text += tail
            yield tail
