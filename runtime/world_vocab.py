"""The RWKV "World" vocabulary (rwkv_vocab_v20230424.txt): a strict parser and the greedy longest-match encoder.

The file is untrusted input. Each line is `<id> <Python str or bytes literal> <length in UTF-8 bytes>`, e.g.
`33 '!' 1` or `257 b'\\xe4\\xb8' 2`, with LF or CRLF endings. The rwkv package's TRIE_TOKENIZER `eval`s the literal;
here it is parsed, never evaluated, and every line is bounded and checked: id, literal, declared length, unique
ids, unique tokens, and a token for every single byte (so that any text can be encoded).

Encoding is ChatRWKV's: from the current byte, take the longest token that matches, then go on after it. A dict of
every token and every proper prefix of one stands in for its trie (the same matches, a third of the memory).
"""
from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path

from rrwkv_trt.core.config import read_bounded_text
from rrwkv_trt.core.errors import UserError

MAX_FILE_BYTES = 16 << 20  # the shipped file has 1.1 MB
MAX_TOKEN_ID = (1 << 20) - 1  # ids index a model's vocabulary; the shipped file's largest is 65529
MAX_TOKEN_BYTES = 1024  # the shipped file's longest token has 128 bytes
MAX_LITERAL_CHARS = 16 * MAX_TOKEN_BYTES  # escapes take several characters per byte (\xff, \N{...})

_LINE = re.compile(r"(0|[1-9][0-9]{0,7}) (.+) (0|[1-9][0-9]{0,7})")  # id, literal, length: split as TRIE_TOKENIZER
_PREFIX = re.compile(r"[bBrRuU]{0,2}['\"]")  # a str or bytes literal starts so; anything else is refused unparsed
# Most lines quote printable text without escapes; they are read directly (the same value Python gives them)
_PLAIN = re.compile(r"'([^'\\\x00-\x1f]*)'|\"([^\"\\\x00-\x1f]*)\"")

FIX = "; use the rwkv_vocab_v20230424.txt the model was trained with (the rwkv package ships it)"


def read_world_vocab(path: Path) -> dict[int, bytes]:
    """The vocabulary in file `path`: token id -> token bytes. UserError naming the file and line otherwise."""
    source = f"World vocabulary {path}"
    return parse_world_vocab(read_bounded_text(path, source, MAX_FILE_BYTES, FIX), source)


def parse_world_vocab(text: str, source: str) -> dict[int, bytes]:
    """Parse the text of a World vocabulary file; `source` names it in errors.

    Returns:
        token id -> token bytes, every single byte among the tokens.
    """
    lines = text.split("\n")
    if lines[-1] == "":  # the newline that ends the last line
        lines.pop()
    vocab: dict[int, bytes] = {}
    seen: dict[bytes, int] = {}
    for number, line in enumerate(lines, start=1):
        token_id, token = _parse_line(line[:-1] if line.endswith("\r") else line, f"{source} line {number}")
        if token_id in vocab:
            raise UserError(f"{source} line {number}: id {token_id} appears twice{FIX}")
        if token in seen:
            raise UserError(f"{source} line {number}: token {token!r} appears twice (ids {seen[token]} and "
                            f"{token_id}){FIX}")
        vocab[token_id] = token
        seen[token] = token_id
    missing = [b for b in range(256) if bytes([b]) not in seen]
    if missing:
        raise UserError(f"{source} has no token for the single bytes {missing[:8]}{' ...' * (len(missing) > 8)}; "
                        f"a World vocabulary has one for every byte, so that any text can be encoded{FIX}")
    return vocab


def _parse_line(line: str, where: str) -> tuple[int, bytes]:
    match = _LINE.fullmatch(line)
    if match is None:
        raise UserError(f"{where}: expected `<id> <str or bytes literal> <length>`, got {line[:60]!r}{FIX}")
    token_id, length = int(match[1]), int(match[3])
    if token_id > MAX_TOKEN_ID:
        raise UserError(f"{where}: id {token_id} is larger than {MAX_TOKEN_ID}{FIX}")
    token = _literal_bytes(match[2], where)
    if not 1 <= len(token) <= MAX_TOKEN_BYTES:
        raise UserError(f"{where}: a token has 1 to {MAX_TOKEN_BYTES} bytes, this one {len(token)}{FIX}")
    if len(token) != length:
        raise UserError(f"{where}: the token has {len(token)} bytes in UTF-8, the line says {length}{FIX}")
    return token_id, token


def _literal_bytes(literal: str, where: str) -> bytes:
    """The bytes of one str (UTF-8 encoded) or bytes literal, parsed with Python's own grammar, never evaluated."""
    plain = _PLAIN.fullmatch(literal)
    if plain is not None:
        value: object = plain[1] if plain[1] is not None else plain[2]
    else:
        if len(literal) > MAX_LITERAL_CHARS or _PREFIX.match(literal) is None:
            raise UserError(f"{where}: expected a Python str or bytes literal, got {literal[:60]!r}{FIX}")
        value = _parse_constant(literal, where)
    if isinstance(value, bytes):
        return value
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate such as '\ud800'
        raise UserError(f"{where}: {literal[:60]} is not valid Unicode text{FIX}") from None


def _parse_constant(literal: str, where: str) -> str | bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an invalid escape ('\d') is an error, not a warning on stderr
        try:
            node = ast.parse(literal, mode="eval").body
        except (SyntaxError, ValueError, Warning) as err:
            raise UserError(f"{where}: {literal[:60]} is not a valid Python literal ({err}){FIX}") from None
    if not (isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes))):
        raise UserError(f"{where}: expected a Python str or bytes literal, got {literal[:60]}{FIX}")
    return node.value


class LongestMatch:
    """Greedy longest-match encoding over a validated vocabulary (token id -> bytes, every single byte present)."""

    def __init__(self, vocab: dict[int, bytes]) -> None:
        lookup: dict[bytes, int] = {}
        for token in vocab.values():  # every proper prefix of a token: -1 (keep walking, no token ends here)
            for end in range(1, len(token)):
                lookup.setdefault(token[:end], -1)
        for token_id, token in vocab.items():
            lookup[token] = token_id
        self._lookup = lookup

    def encode(self, data: bytes) -> list[int]:
        """Token ids of `data`: at each position the longest token that matches there."""
        get = self._lookup.get
        ids: list[int] = []
        start, n = 0, len(data)
        while start < n:
            end, best_end, best_id = start + 1, start, -1
            while end <= n:
                token_id = get(data[start:end])
                if token_id is None:  # no token starts with data[start:end]
                    break
                if token_id >= 0:
                    best_end, best_id = end, token_id
                end += 1
            assert best_id >= 0, "every single byte is a token (checked by parse_world_vocab)"
            ids.append(best_id)
            start = best_end
        return ids
