"""Text <-> token ids over a HF `tokenizers` tokenizer.json (torch-free), with streaming decode."""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import tokenizers
from tokenizers import decoders, models, pre_tokenizers

from rrwkv_trt.core.errors import UserError

TOKENIZER_FILE = "tokenizer.json"


class Tokenizer:
    """Wraps `tokenizers.Tokenizer`; ids are plain ints.

    Args:
        path: a tokenizer.json file.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"tokenizer file {path} not found")
        try:
            self.tok = tokenizers.Tokenizer.from_file(str(path))
        except Exception as err:  # tokenizers raises bare Exception on malformed JSON
            raise UserError(f"{path} is not a valid tokenizers JSON file: {err}") from None
        self.path = path

    @classmethod
    def from_dir(cls, out_dir: str | os.PathLike) -> Tokenizer:
        """The tokenizer saved beside an exported model (OUT_DIR/tokenizer.json)."""
        path = Path(out_dir) / TOKENIZER_FILE
        if not path.is_file():
            raise UserError(f"{out_dir} has no {TOKENIZER_FILE}; re-export with --tokenizer FILE")
        return cls(path)

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)

    def check_fits(self, vocab_size: int) -> None:
        """Refuse a tokenizer with ids a model of `vocab_size` has no embedding or logit for. A smaller one is fine:
        the byte tokenizer's 256 ids under a larger vocabulary."""
        top = max(self.tok.get_vocab(with_added_tokens=True).values(), default=-1)  # ids may be sparse
        if top >= vocab_size:
            raise UserError(f"tokenizer {self.path} has {self.vocab_size} tokens with ids up to {top}, but the model's "
                            f"vocab_size is {vocab_size}; use the tokenizer.json the model was exported with")

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, without special tokens (a prompt is plain text)."""
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=False)

    def stream(self) -> StreamDecoder:
        return StreamDecoder(self)

    def decode_stream(self, ids: Iterable[int]) -> Iterator[str]:
        """Yield text pieces as soon as they are valid UTF-8, then whatever is left at the end."""
        stream = self.stream()
        for i in ids:
            piece = stream.step(i)
            if piece:
                yield piece
        tail = stream.finish()
        if tail:
            yield tail


class StreamDecoder:
    """Incremental detokenizer: a byte-level token may end mid-character, so text is held back until valid."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self._stream = decoders.DecodeStream(skip_special_tokens=False)
        self._pending: list[int] = []  # ids fed since the last emitted piece

    def step(self, token_id: int) -> str:
        """Feed one id. Returns: the newly completed text, "" while a character is still incomplete."""
        piece = self._stream.step(self._tokenizer.tok, int(token_id))
        if piece is None:
            self._pending.append(int(token_id))
            return ""
        self._pending.clear()
        return piece

    def finish(self) -> str:
        """Text for ids still held back (an incomplete character decodes to U+FFFD)."""
        tail = self._tokenizer.decode(self._pending) if self._pending else ""
        self._pending.clear()
        return tail


def byte_level_tokenizer() -> tokenizers.Tokenizer:
    """A 256-token byte-level BPE without merges: token id == byte value. For tiny test models.

    Returns:
        a `tokenizers.Tokenizer`; `.save(path)` writes the tokenizer.json.
    """
    byte_chars = _bytes_to_unicode()
    vocab = {byte_chars[b]: b for b in range(256)}
    tok = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2's printable stand-in for each byte, the alphabet the ByteLevel pre-tokenizer emits
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars
