"""Tokenizer kinds by file name, the byte-level and World tokenizers, streaming, and hostile World vocabularies."""
import pytest
import tokenizer_corpus
import tokenizers
from tokenizers import models

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.runtime import world_vocab
from rrwkv_trt.runtime.tokenizer import HfTokenizer, Tokenizer, WorldTokenizer, byte_level_tokenizer

TEXT = "héllo wörld 日本 🎉 end"
WORLD_FILE = "rwkv_vocab_v20230424.txt"
EXTRA = ["he", "hel", "hello", " w", "日本", "日", "a b", "\n\n"]  # tokens after the 256 bytes of a small vocabulary


def world_vocab_text(newline="\n") -> str:
    return tokenizer_corpus.world_vocab_text([t.encode("utf-8") for t in EXTRA], newline)


@pytest.fixture
def tokenizer(tmp_path):
    byte_level_tokenizer().save(str(tmp_path / "tokenizer.json"))
    return Tokenizer.from_dir(tmp_path)


@pytest.fixture
def world(tmp_path):
    (tmp_path / WORLD_FILE).write_text(world_vocab_text(), encoding="utf-8")
    return Tokenizer.from_dir(tmp_path)


def test_byte_level_ids_are_bytes(tokenizer):
    assert isinstance(tokenizer, HfTokenizer)
    assert tokenizer.vocab_size == 256
    assert tokenizer.encode(TEXT) == list(TEXT.encode("utf-8"))
    assert tokenizer.decode(tokenizer.encode(TEXT)) == TEXT


def test_stream_holds_back_partial_utf8(tokenizer):
    stream = tokenizer.stream()
    pieces = [stream.step(i) for i in "a日🎉".encode("utf-8")]
    assert pieces == ["a", "", "", "日", "", "", "", "🎉"]
    assert stream.finish() == ""


def test_decode_stream_joins_to_text(tokenizer):
    pieces = list(tokenizer.decode_stream(tokenizer.encode(TEXT)))
    assert "".join(pieces) == TEXT
    assert "日" in pieces and "🎉" in pieces  # emitted whole, never as halves


def test_stream_finish_flushes_incomplete_char(tokenizer):
    ids = list("ok日".encode("utf-8"))[:-1]  # cut inside 日
    pieces = list(tokenizer.decode_stream(ids))
    assert pieces[:2] == ["o", "k"] and pieces[-1] == "\ufffd"


def test_missing_tokenizer_message(tmp_path):
    with pytest.raises(UserError, match=r"has no tokenizer.json; re-export with --tokenizer FILE \(for an RWKV World "
                                        r"model, copy rwkv_vocab_v20230424.txt into it\)"):
        Tokenizer.from_dir(tmp_path)


def test_two_tokenizers_are_ambiguous(tmp_path):
    byte_level_tokenizer().save(str(tmp_path / "tokenizer.json"))
    (tmp_path / WORLD_FILE).write_text(world_vocab_text(), encoding="utf-8")
    with pytest.raises(UserError, match="has both tokenizer.json and rwkv_vocab_v20230424.txt; keep only the one"):
        Tokenizer.from_dir(tmp_path)


def test_kind_from_file_name(tmp_path):
    byte_level_tokenizer().save(str(tmp_path / "engine.plan.tokenizer.json"))  # an engine's copy keeps the suffix
    assert isinstance(Tokenizer.from_file(tmp_path / "engine.plan.tokenizer.json"), HfTokenizer)
    (tmp_path / f"engine.plan.{WORLD_FILE}").write_text(world_vocab_text(), encoding="utf-8")
    assert isinstance(Tokenizer.from_file(tmp_path / f"engine.plan.{WORLD_FILE}"), WorldTokenizer)
    with pytest.raises(UserError, match="the name must end in tokenizer.json .* or rwkv_vocab_v20230424.txt"):
        Tokenizer.from_file(tmp_path / "vocab.txt")
    with pytest.raises(UserError, match="not found"):
        Tokenizer.from_file(tmp_path / "nope" / WORLD_FILE)


def test_malformed_tokenizer(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{")
    with pytest.raises(UserError, match="not a valid tokenizers JSON file"):
        Tokenizer.from_dir(tmp_path)


def test_check_fits_vocab(tokenizer):
    tokenizer.check_fits(256)
    tokenizer.check_fits(50277)  # a byte tokenizer under a larger vocabulary is fine
    with pytest.raises(UserError, match=r"tokenizer .*tokenizer.json has 256 tokens with ids up to 255, but the "
                                        r"model's vocab_size is 200"):
        tokenizer.check_fits(200)


def test_check_fits_counts_sparse_ids(tmp_path):
    """Two tokens, but one with id 1000: the count alone would hide it."""
    sparse = tokenizers.Tokenizer(models.WordLevel({"a": 0, "b": 1000}, unk_token="a"))
    sparse.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(UserError, match="has 2 tokens with ids up to 1000, but the model's vocab_size is 300"):
        Tokenizer.from_dir(tmp_path).check_fits(300)


def test_world_longest_match(world):
    assert isinstance(world, WorldTokenizer)
    assert world.vocab_size == 256 + len(EXTRA) and world.max_id == 256 + len(EXTRA)
    ids = world.encode("hello hel a b日本日")
    assert [world.decode([i]) for i in ids] == ["hello", " ", "hel", " ", "a b", "日本", "日"]
    assert world.encode("h") == [ord("h") + 1]  # byte b has id b + 1
    assert world.decode(ids) == "hello hel a b日本日"


def test_world_check_fits(world):
    world.check_fits(65536)
    with pytest.raises(UserError, match=f"has {256 + len(EXTRA)} tokens with ids up to {256 + len(EXTRA)}"):
        world.check_fits(256)


def test_world_stream_holds_back_partial_utf8(world):
    stream = world.stream()
    ids = world.encode("a🎉") + world.encode("日")  # 🎉: four single-byte tokens; 日: one token
    assert [stream.step(i) for i in ids] == ["a", "", "", "", "🎉", "日"]
    assert stream.finish() == ""
    cut = world.stream()
    assert [cut.step(i) for i in world.encode("🎉")[:2]] == ["", ""]
    assert cut.finish() == "\ufffd"


def test_world_decode_odd_ids(world):
    assert world.decode([0, 70000]) == ""  # ids without a token (World's reserved 0, padding rows) show nothing
    assert world.decode([0xFF + 1, ord("a") + 1]) == "\ufffda"  # a lone byte 0xff is not UTF-8
    assert "".join(world.decode_stream([0xE6 + 1, ord("a") + 1])) == "\ufffda"  # a cut-off lead byte


def test_world_refuses_unencodable_text(world):
    with pytest.raises(UserError, match="not valid Unicode"):
        world.encode("a\ud800")


def test_world_crlf_and_no_final_newline(tmp_path):
    text = world_vocab_text(newline="\r\n")
    for name, content in (("crlf", text), ("unterminated", text.rstrip("\r\n"))):
        path = tmp_path / name / WORLD_FILE
        path.parent.mkdir()
        path.write_bytes(content.encode("utf-8"))
        assert WorldTokenizer(path).encode("hello") == [256 + EXTRA.index("hello") + 1]


def _base_lines():
    return world_vocab_text().splitlines()


@pytest.mark.parametrize("line, match", [
    ("300 'ab' 3", "the token has 2 bytes in UTF-8, the line says 3"),
    ("300 __import__('os').system('echo hi') 1", "expected a Python str or bytes literal"),
    ("300 ('ab') 2", "expected a Python str or bytes literal"),
    ("300 f'{x}' 1", "expected a Python str or bytes literal"),
    ("300 'a' + 'b' 2", "expected a Python str or bytes literal"),
    ("300 123 3", "expected a Python str or bytes literal"),
    ("300 'a\\d' 3", "is not a valid Python literal"),
    ("300 'ab 2", "is not a valid Python literal"),
    ("300 'a\x00b' 3", "is not a valid Python literal"),
    ("300 '\\ud800' 3", "is not valid Unicode text"),
    ("300 '' 0", "a token has 1 to 1024 bytes, this one 0"),
    ("300 'ab'", "expected `<id> <str or bytes literal> <length>`"),
    ("x 'ab' 2", "expected `<id> <str or bytes literal> <length>`"),
    ("-3 'ab' 2", "expected `<id> <str or bytes literal> <length>`"),
    ("0300 'ab' 2", "expected `<id> <str or bytes literal> <length>`"),
    ("", "expected `<id> <str or bytes literal> <length>`"),
    ("99999999 'ab' 2", "id 99999999 is larger than 1048575"),
    ("1 'ab' 2", "id 1 appears twice"),
    ("300 'a' 1", r"token b'a' appears twice \(ids 98 and 300\)"),
    ("300 b'\\x61' 1", r"token b'a' appears twice"),
    (f"300 '{'x' * 1025}' 1025", "a token has 1 to 1024 bytes, this one 1025"),
    ("300 '" + "\\x41" * 5000 + "' 5000", "expected a Python str or bytes literal"),  # longer than the bound
])
def test_hostile_vocab_line(tmp_path, line, match):
    lines = _base_lines()
    lines.insert(100, line)
    (tmp_path / WORLD_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=f"{WORLD_FILE} line 101: .*{match}"):
        Tokenizer.from_dir(tmp_path)


def test_vocab_without_every_byte(tmp_path):
    lines = [line for line in _base_lines() if not line.startswith(("11 ", "200 "))]
    (tmp_path / WORLD_FILE).write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(UserError, match=r"has no token for the single bytes \[10, 199\]"):
        Tokenizer.from_dir(tmp_path)


def test_vocab_not_utf8_or_too_large(tmp_path, monkeypatch):
    (tmp_path / WORLD_FILE).write_bytes(world_vocab_text().encode("utf-8") + b"\xff")
    with pytest.raises(UserError, match=r"is not UTF-8 text \(invalid start byte at byte"):
        Tokenizer.from_dir(tmp_path)
    monkeypatch.setattr(world_vocab, "MAX_FILE_BYTES", 1000)
    with pytest.raises(UserError, match="is larger than 1000 bytes"):
        Tokenizer.from_dir(tmp_path)


def test_vocab_literal_forms(tmp_path):
    """What Python's repr writes, and other plain literals: escapes, double quotes, bytes, spaces inside."""
    lines = _base_lines() + ["300 \"it's\" 4", "301 '\\u65e5\\t' 4", "302 b'\\xe6\\x97' 2", "303 'x y z' 5",
                             "304 'q\\'' 2", "305 u'uu' 2", "306 r'\\d' 2"]
    (tmp_path / WORLD_FILE).write_text("\n".join(lines), encoding="utf-8")
    world = Tokenizer.from_dir(tmp_path)
    assert [world.decode([i]) for i in range(300, 307)] == ["it's", "日\t", "\ufffd", "x y z", "q'", "uu", "\\d"]
