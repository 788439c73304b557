"""Text <-> token ids (torch-free), with streaming decode that never splits a UTF-8 character.

Two kinds, told apart by the tokenizer file's name (core/names.py), which is how a model folder declares its kind:
- `tokenizer.json`: any Hugging Face `tokenizers` file (HfTokenizer): the shipped model's byte-level one, the
  GPT-NeoX 20B tokenizer of the RWKV-4 Pile models, ...
- `rwkv_vocab_v20230424.txt`: the RWKV "World" vocabulary (WorldTokenizer; runtime/world_vocab.py).
A TensorRT engine's copy keeps the suffix (`engine.plan.tokenizer.json`, runtime/engine.py).
"""
from __future__ import annotations

import codecs
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

import tokenizers
from tokenizers import decoders, models, pre_tokenizers

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.names import TOKENIZER_FILE, WORLD_VOCAB_FILE
from .world_vocab import LongestMatch, read_world_vocab


class StreamDecoder(Protocol):
    """Incremental detokenizer: text is handed out only once its characters are complete."""

    def step(self, token_id: int) -> str:
        """Feed one id. Returns: the newly completed text, "" while a character is still incomplete."""

    def finish(self) -> str:
        """Text for whatever is held back at the end (an incomplete character decodes to U+FFFD)."""


class Tokenizer(ABC):
    """Text <-> token ids; ids are plain ints. `from_dir` / `from_file` pick the kind from the file name.

    Ids with no token (a model's padding rows, World's reserved id 0) decode to no text, as in `tokenizers`.
    """

    path: Path

    @classmethod
    def from_dir(cls, out_dir: str | os.PathLike) -> Tokenizer:
        """The tokenizer saved beside an exported model: OUT_DIR/tokenizer.json or OUT_DIR/rwkv_vocab_v20230424.txt."""
        candidates = [Path(out_dir) / name for name in (TOKENIZER_FILE, WORLD_VOCAB_FILE)]
        found = [path for path in candidates if path.is_file()]
        if not found:
            raise UserError(f"{out_dir} has no {TOKENIZER_FILE}; re-export with --tokenizer FILE (for an RWKV World "
                            f"model, copy {WORLD_VOCAB_FILE} into it)")
        if len(found) > 1:
            raise UserError(f"{out_dir} has both {TOKENIZER_FILE} and {WORLD_VOCAB_FILE}; keep only the one the model "
                            "was trained with")
        return cls.from_file(found[0])

    @staticmethod
    def from_file(path: str | os.PathLike) -> Tokenizer:
        """A tokenizer file whose name ends in tokenizer.json (Hugging Face) or rwkv_vocab_v20230424.txt (World)."""
        path = Path(path)
        if path.name.endswith(WORLD_VOCAB_FILE):
            return WorldTokenizer(path)
        if path.name.endswith(TOKENIZER_FILE):
            return HfTokenizer(path)
        raise UserError(f"tokenizer file {path}: the name must end in {TOKENIZER_FILE} (Hugging Face tokenizers) or "
                        f"{WORLD_VOCAB_FILE} (RWKV World vocabulary), which says its kind")

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """How many tokens it has."""

    @property
    @abstractmethod
    def max_id(self) -> int:
        """Its largest token id (ids may be sparse)."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, without special tokens (a prompt is plain text)."""

    @abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids`; invalid UTF-8 becomes U+FFFD."""

    @abstractmethod
    def stream(self) -> StreamDecoder:
        """A fresh incremental decoder."""

    def check_fits(self, vocab_size: int) -> None:
        """Refuse a tokenizer with ids a model of `vocab_size` has no embedding or logit for. A smaller one is fine:
        the byte tokenizer's 256 ids under a larger vocabulary."""
        if self.max_id >= vocab_size:
            raise UserError(f"tokenizer {self.path} has {self.vocab_size} tokens with ids up to {self.max_id}, but the "
                            f"model's vocab_size is {vocab_size}; use the tokenizer file the model was exported with")

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


class HfTokenizer(Tokenizer):
    """A Hugging Face `tokenizers` tokenizer.json.

    Args:
        path: the tokenizer.json file.
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
        self._max_id = max(self.tok.get_vocab(with_added_tokens=True).values(), default=-1)

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)

    @property
    def max_id(self) -> int:
        return self._max_id

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=False)

    def stream(self) -> HfStreamDecoder:
        return HfStreamDecoder(self)


class HfStreamDecoder:
    """`tokenizers`' DecodeStream: a byte-level token may end mid-character, so text is held back until valid."""

    def __init__(self, tokenizer: HfTokenizer) -> None:
        self._tokenizer = tokenizer
        self._stream = decoders.DecodeStream(skip_special_tokens=False)
        self._pending: list[int] = []  # ids fed since the last emitted piece

    def step(self, token_id: int) -> str:
        piece = self._stream.step(self._tokenizer.tok, int(token_id))
        if piece is None:
            self._pending.append(int(token_id))
            return ""
        self._pending.clear()
        return piece

    def finish(self) -> str:
        tail = self._tokenizer.decode(self._pending) if self._pending else ""
        self._pending.clear()
        return tail


class WorldTokenizer(Tokenizer):
    """The RWKV World tokenizer: greedy longest match over the UTF-8 bytes, as the rwkv package's TRIE_TOKENIZER.

    Args:
        path: the rwkv_vocab_v20230424.txt file (validated line by line; runtime/world_vocab.py).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"tokenizer file {path} not found")
        self.path = path
        self._tokens = read_world_vocab(path)  # id -> bytes
        self._matcher = LongestMatch(self._tokens)

    @property
    def vocab_size(self) -> int:
        return len(self._tokens)

    @property
    def max_id(self) -> int:
        return max(self._tokens)

    def encode(self, text: str) -> list[int]:
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise UserError(f"the text is not valid Unicode ({err.reason} at character {err.start})") from None
        return self._matcher.encode(data)

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes of one token; b"" for an id with no token."""
        return self._tokens.get(int(token_id), b"")

    def decode(self, ids: Iterable[int]) -> str:
        return b"".join(map(self.token_bytes, ids)).decode("utf-8", errors="replace")

    def stream(self) -> Utf8StreamDecoder:
        return Utf8StreamDecoder(self)


class Utf8StreamDecoder:
    """Incremental UTF-8 over token bytes: a character split across tokens is emitted once its last byte arrives."""

    def __init__(self, tokenizer: WorldTokenizer) -> None:
        self._tokenizer = tokenizer
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def step(self, token_id: int) -> str:
        return self._utf8.decode(self._tokenizer.token_bytes(token_id))

    def finish(self) -> str:
        return self._utf8.decode(b"", final=True)


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
