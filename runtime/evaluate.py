"""Bits per byte and perplexity of a model on a text, streamed through the recurrent state in chunks (torch-free).

What is counted. The text is encoded to token ids t_0 .. t_{N-1}, fed in order in calls of `chunk` tokens with the
state carried from call to call, and the logits at position i-1 predict t_i. The first token has no prediction:
these models have no begin-of-text token to condition it on (the shipped byte-level vocabulary has none at all), so
it is context only and N - 1 tokens are scored:

    bits per byte = sum_{i=1}^{N-1} -log2 p(t_i | t_0 .. t_{i-1})  /  UTF-8 bytes of the whole text
    perplexity    = exp(mean over the N - 1 scored tokens of -ln p(t_i | t_0 .. t_{i-1}))

The bytes include the first token's, as lm-evaluation-harness counts a document's bytes; for the shipped model on a
200 KB text that lowers bits per byte by one part in 200,000 against dividing by the scored bytes. Log-probabilities
are computed on the host in float64 from the model's logits, the row maximum subtracted first (a stable
log-softmax), whatever the export's precision.
"""
from __future__ import annotations

import codecs
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rrwkv_trt.core.errors import UserError
from .decode import Session
from .tokenizer import Tokenizer

DEFAULT_CHUNK = 1024
MAX_TEXT_BYTES = 64 << 20  # a whole file is read into memory and tokenized at once; --max-bytes takes a prefix
ERRORS = ("strict", "replace")
_ROWS = 256  # logits rows converted to float64 at once: bounds the host copy (256 x V x 8 bytes)


@dataclass(frozen=True)
class EvalResult:
    text_bytes: int  # UTF-8 bytes of the text
    tokens: int  # N
    scored_tokens: int  # N - 1: every token but the first
    nats: float  # total cross-entropy of the scored tokens

    @property
    def bits_per_byte(self) -> float:
        return self.nats / math.log(2) / self.text_bytes

    @property
    def perplexity(self) -> float:
        return math.exp(self.nats / self.scored_tokens)

    def to_dict(self) -> dict:
        return asdict(self) | {"bits_per_byte": self.bits_per_byte, "perplexity": self.perplexity}


@dataclass(frozen=True)
class Text:
    text: str
    source: str  # file name, for messages
    file_bytes: int  # bytes of the file read (a prefix with max_bytes)
    truncated: bool  # max_bytes cut the file


def read_text_file(path: str | os.PathLike, max_bytes: int | None = None, errors: str = "strict") -> Text:
    """A UTF-8 text file, bounded: the whole file (at most MAX_TEXT_BYTES), or its first `max_bytes` bytes cut back
    to a character boundary.

    Args:
        errors: "strict" refuses a file that is not UTF-8, naming the byte offset; "replace" reads each
            undecodable byte sequence as U+FFFD (3 bytes of the text evaluated).
    """
    if errors not in ERRORS:
        raise UserError(f"errors must be one of {ERRORS}, got {errors!r}")
    if max_bytes is not None and max_bytes < 1:
        raise UserError(f"max_bytes must be >= 1 (or None: the whole file), got {max_bytes}")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"text file {path} not found (or not a regular file)")
    limit = MAX_TEXT_BYTES if max_bytes is None else max_bytes
    with path.open("rb") as f:
        data = f.read(limit + 1)
    truncated = len(data) > limit
    if truncated and max_bytes is None:
        raise UserError(f"text file {path} has more than {MAX_TEXT_BYTES} bytes, the most eval reads whole; pass "
                        "--max-bytes N to evaluate its first N bytes")
    data = data[:limit]
    return Text(decode_utf8(data, errors, final=not truncated, source=str(path)), str(path), len(data), truncated)


def decode_utf8(data: bytes, errors: str, final: bool, source: str) -> str:
    """`data` as text; with final=False an incomplete character at the end (a cut) is dropped, not an error."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors)
    try:
        return decoder.decode(data, final=final)
    except UnicodeDecodeError as err:
        raise UserError(f"{source} is not UTF-8: byte 0x{data[err.start]:02x} at offset {err.start} ({err.reason}); "
                        "read undecodable bytes as U+FFFD with errors='replace' (`rrwkv-trt eval --errors "
                        "replace`)") from None


def evaluate_text(session: Session, tokenizer: Tokenizer, text: str, chunk: int = DEFAULT_CHUNK,
                  progress: Callable[[int], None] | None = None) -> EvalResult:
    """Encode `text` and score it (evaluate_ids); the bytes are its UTF-8 encoding."""
    tokenizer.check_fits(session.vocab_size)
    return evaluate_ids(session, tokenizer.encode(text), len(text.encode("utf-8")), chunk, progress)


def evaluate_ids(session: Session, ids: Sequence[int] | np.ndarray, text_bytes: int, chunk: int = DEFAULT_CHUNK,
                 progress: Callable[[int], None] | None = None) -> EvalResult:
    """Total cross-entropy of ids[1:] given their prefixes, one sequence fed `chunk` tokens per session.run.

    Args:
        session: a backend session (OrtSession, TrtSession); `run(ids [1, T], state)` must return every
            position's logits [1, T, V].
        ids: [N] token ids, N >= 2.
        text_bytes: the UTF-8 bytes of the text `ids` encode (the denominator of bits per byte).
        progress: called with the number of tokens fed after each call.
    """
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if ids.size < 2:
        raise UserError(f"the text has {ids.size} token(s); bits per byte needs at least 2 (the first is context "
                        "only)")
    if not isinstance(chunk, int) or chunk < 1:
        raise UserError(f"chunk must be an int >= 1, got {chunk!r}")
    if text_bytes < 1:
        raise UserError(f"text_bytes must be >= 1, got {text_bytes}")
    state, nats = None, 0.0
    for start in range(0, ids.size - 1, chunk):
        stop = min(start + chunk, ids.size - 1)  # the last token is only a target
        logits, state = session.run(ids[None, start:stop], state)
        nats += nll_sum(logits[0], ids[start + 1:stop + 1], start)
        if progress is not None:
            progress(stop - start)
    return EvalResult(text_bytes, int(ids.size), int(ids.size - 1), nats)


def nll_sum(logits: np.ndarray, targets: np.ndarray, first_position: int = 0) -> float:
    """sum_i -ln softmax(logits[i])[targets[i]] in float64.

    Args:
        logits: [T, V] (any float dtype); targets: [T] ids.
        first_position: the text position of row 0, for the message about non-finite logits.
    """
    if logits.ndim != 2 or logits.shape[0] != targets.shape[0]:
        raise UserError(f"the model returned logits of shape {list(logits.shape)} for {targets.shape[0]} tokens; "
                        "expected one row per token (does the backend return every position's logits?)")
    total = 0.0
    for row in range(0, logits.shape[0], _ROWS):
        x = logits[row:row + _ROWS].astype(np.float64)  # [t, V]
        bad = ~np.isfinite(x).all(axis=1)
        if bad.any():
            where = first_position + row + int(np.argmax(bad))
            raise UserError(f"the model's logits after token {where} are not finite (NaN or Inf); the export or "
                            "backend is broken at this position: check it with `rrwkv-trt compare`")
        peak = x.max(axis=1)  # [t]
        log_z = peak + np.log(np.exp(x - peak[:, None]).sum(axis=1))
        total += float((log_z - x[np.arange(x.shape[0]), targets[row:row + _ROWS]]).sum())
    return total
