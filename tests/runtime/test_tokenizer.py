import pytest
import tokenizers
from tokenizers import models

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.runtime.tokenizer import Tokenizer, byte_level_tokenizer

TEXT = "héllo wörld 日本 🎉 end"


@pytest.fixture
def tokenizer(tmp_path):
    byte_level_tokenizer().save(str(tmp_path / "tokenizer.json"))
    return Tokenizer.from_dir(tmp_path)


def test_byte_level_ids_are_bytes(tokenizer):
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
    with pytest.raises(UserError, match=r"has no tokenizer.json; re-export with --tokenizer FILE"):
        Tokenizer.from_dir(tmp_path)


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
