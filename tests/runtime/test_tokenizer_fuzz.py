"""Property-based tests: the World vocabulary loader refuses anything malformed with a UserError (never another
exception) and parses every well-formed file as the rwkv package does; tokenizers round-trip any text with the
rwkv package's ids. Example counts come from the hypothesis profile (tests/conftest.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
import tokenizer_corpus
from hypothesis import given
from hypothesis import strategies as st

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.runtime.tokenizer import Tokenizer, WorldTokenizer, byte_level_tokenizer
from rrwkv_trt.runtime.world_vocab import LongestMatch, parse_world_vocab, read_world_vocab

rwkv_tokenizer = pytest.importorskip("rwkv.rwkv_tokenizer", reason="the rwkv package is the [dev] extra's oracle")
WORLD_VOCAB = Path(rwkv_tokenizer.__file__).parent / "rwkv_vocab_v20230424.txt"

pytestmark = pytest.mark.fuzz

# Text with every kind of code point but surrogates, which no UTF-8 text can hold
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=200)
tokens = st.one_of(st.binary(min_size=2, max_size=12),
                   st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=6).map(str.encode)
                   .filter(lambda b: len(b) >= 2))
literals = st.one_of(tokens.map(repr), st.text(max_size=12).map(repr), st.text(max_size=12),
                     st.sampled_from(["'", "b'", "'\\", "''", "'\\x'", "'\\N{}'", "u'a'", "rb'\\d'", "f'{a}'"]))
lines = st.one_of(st.builds(lambda i, lit, n: f"{i} {lit} {n}", st.integers(-2, 1 << 21), literals,
                            st.integers(-1, 20)),
                  st.text(max_size=40))


@pytest.fixture(scope="module")
def world() -> tuple[WorldTokenizer, rwkv_tokenizer.TRIE_TOKENIZER]:
    return WorldTokenizer(WORLD_VOCAB), rwkv_tokenizer.TRIE_TOKENIZER(str(WORLD_VOCAB))


@pytest.fixture(scope="module")
def world_bytes() -> tuple[dict[int, bytes], LongestMatch]:
    vocab = read_world_vocab(WORLD_VOCAB)
    return vocab, LongestMatch(vocab)


@pytest.fixture(scope="module")
def byte_level(tmp_path_factory) -> Tokenizer:
    folder = tmp_path_factory.mktemp("byte_level")
    byte_level_tokenizer().save(str(folder / "tokenizer.json"))
    return Tokenizer.from_dir(folder)


@given(st.lists(lines, max_size=6), st.integers(0, 300))
def test_vocab_loader_refuses_or_accepts(extra_lines, at):
    base = tokenizer_corpus.world_vocab_text([b"ab", b"abc"]).splitlines()
    base[at:at] = extra_lines
    try:
        vocab = parse_world_vocab("\n".join(base), "fuzzed vocabulary")
    except UserError:
        return
    assert all(isinstance(i, int) and isinstance(t, bytes) and t for i, t in vocab.items())


@given(st.binary(max_size=400))
def test_vocab_loader_on_any_bytes(data):
    try:
        parse_world_vocab(data.decode("utf-8", errors="replace"), "fuzzed vocabulary")
    except UserError:
        pass


@given(st.lists(tokens, max_size=40, unique=True), st.lists(texts, max_size=3))
def test_well_formed_vocab_parses_and_encodes_as_rwkv(tmp_path_factory, extra, samples):
    extra = [t for t in extra if len(t) > 1]  # the single bytes are there already
    path = tmp_path_factory.mktemp("vocab") / "rwkv_vocab_v20230424.txt"
    path.write_text(tokenizer_corpus.world_vocab_text(extra), encoding="utf-8")
    ours, theirs = WorldTokenizer(path), rwkv_tokenizer.TRIE_TOKENIZER(str(path))
    assert parse_world_vocab(path.read_text(encoding="utf-8"), "vocabulary") == theirs.idx2token
    for text in samples:
        assert ours.encode(text) == theirs.encode(text)
        assert ours.decode(ours.encode(text)) == text


@given(texts)
def test_world_matches_rwkv_and_round_trips(world, text):
    ours, theirs = world
    ids = ours.encode(text)
    assert ids == theirs.encode(text)
    assert ours.decode(ids) == text
    assert "".join(ours.decode_stream(ids)) == text


@given(st.binary(max_size=200))
def test_world_any_bytes(world, world_bytes, data):
    """Any bytes, valid UTF-8 or not, encode as TRIE_TOKENIZER.encodeBytes does, to tokens holding exactly them."""
    vocab, matcher = world_bytes
    ids = matcher.encode(data)
    assert ids == world[1].encodeBytes(data)
    assert b"".join(vocab[i] for i in ids) == data


@given(texts)
def test_byte_level_round_trips(byte_level, text):
    tok = byte_level
    ids = tok.encode(text)
    assert ids == list(text.encode("utf-8"))
    assert tok.decode(ids) == text
    assert "".join(tok.decode_stream(ids)) == text
