"""Stop strings (held back across tokens, never shown), stop tokens, max tokens, and why a generation stopped.

The fake model continues each byte with the next one (a -> b -> c ...), except x -> the two bytes of é -> y.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.runtime.backends.ort import OrtSession
from rrwkv_trt.runtime.decode import Generator
from rrwkv_trt.runtime.sampler import ParamError
from rrwkv_trt.runtime.stopping import StopConditions, StopStringFilter
from rrwkv_trt.runtime.tokenizer import Tokenizer

CHAIN = {ord("x"): 0xC3, 0xC3: 0xA9, 0xA9: ord("y")}


@pytest.fixture
def generator(make_fake_model):
    out_dir = make_fake_model(next_token=CHAIN)
    with OrtSession(out_dir) as session:
        yield Generator(session, Tokenizer.from_dir(out_dir))


def _filtered(pieces, stops):
    stop_filter = StopStringFilter(stops)
    out = [stop_filter.push(p) for p in pieces]
    return out, ("" if stop_filter.hit else stop_filter.flush()), stop_filter.hit


def test_filter_holds_back_a_possible_stop():
    out, tail, hit = _filtered(["ab", "c", "d", "e"], ["cdx"])
    assert out == ["ab", "", "", "cde"] and tail == "" and not hit  # "c", "cd" might have become "cdx"
    out, tail, hit = _filtered(["ab", "c", "dx", "yz"], ["cdx"])
    assert out == ["ab", "", "", ""] and tail == "" and hit


def test_filter_cuts_at_the_earliest_stop():
    out, tail, hit = _filtered(["hello wor", "ld. bye"], ["bye", "world", "o w"])
    assert "".join(out) == "hell" and hit and tail == ""
    out, _, hit = _filtered(["abc"], ["c", "abc"])
    assert out == [""] and hit  # "abc" starts first


def test_filter_flushes_the_held_tail_at_the_end():
    out, tail, hit = _filtered(["one\n"], ["\n\n"])
    assert out == ["one"] and tail == "\n" and not hit


def test_filter_without_stops_passes_through():
    assert _filtered(["a", "", "b"], []) == (["a", "", "b"], "", False)


@pytest.mark.fuzz
@given(st.text(alphabet="abc\n", max_size=40), st.lists(st.text(alphabet="abc\n", min_size=1, max_size=4),
                                                        max_size=3), st.data())
def test_filter_shows_exactly_the_text_before_the_first_stop(text, stops, data):
    """However the text is cut into pieces, the shown text is everything before the first stop string, and no
    prefix shown along the way ever holds part of one. Generation ends at the first piece after which the text holds
    a stop string, so "first" is the earliest occurrence in the text up to that piece's end: a longer stop string
    that would have begun earlier but is only completed by later pieces never arrives (text "\naa", stops "a" and
    "\naa", pieces "\na" + "a" show "\n"; found by `make fuzz`)."""
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    pieces = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)])]
    out, tail, hit = _filtered(pieces, stops)
    assert "".join(out) + tail == _shown_before_first_stop(pieces, stops)
    assert hit == any(s in text for s in stops)


def _shown_before_first_stop(pieces: list[str], stops: list[str]) -> str:
    """The oracle: the text up to the earliest stop occurrence, looked for after each piece."""
    seen = ""
    for piece in pieces:
        seen += piece
        found = [i for i in (seen.find(s) for s in stops) if i >= 0]
        if found:
            return seen[:min(found)]
    return seen


def test_generate_stops_at_a_stop_string(generator):
    stream = generator.generate_text("a", 10, stop=["de"])
    pieces = list(stream)
    assert "".join(pieces) == "bc" == stream.text
    assert stream.finish_reason == "stop_string"
    assert stream.token_ids == [ord(c) for c in "bcde"]  # the stop string's tokens were generated


def test_stop_string_never_shown_in_part(generator):
    stream = generator.generate_text("a", 10, stop=["cdX", "fg"])
    assert list(stream) == ["b", "cde"]  # "c", "cd" held until "e" ruled out "cdX"; "f" until "g" completed "fg"
    assert stream.finish_reason == "stop_string"


def test_stop_string_inside_a_multibyte_character(generator):
    stream = generator.generate_text("x", 5, stop=["é"])
    assert list(stream) == [] and stream.finish_reason == "stop_string"
    stream = generator.generate_text("x", 5, stop=["y"])
    assert list(stream) == ["é"] and stream.finish_reason == "stop_string"


def test_stop_token(generator):
    stream = generator.generate_text("a", 10, stop_token_ids=[200, ord("e")])
    assert "".join(stream) == "bcd"  # the stop token's text is not shown
    assert stream.finish_reason == "stop_token" and stream.token_ids[-1] == ord("e")
    ids = generator.generate_ids([ord("a")], 10, stop_token_ids=[ord("c")])
    assert list(ids) == [ord("b"), ord("c")] and ids.finish_reason == "stop_token"


def test_stop_token_wins_over_a_stop_string(generator):
    stream = generator.generate_text("a", 10, stop=["d"], stop_token_ids=[ord("d")])
    assert "".join(stream) == "bc" and stream.finish_reason == "stop_token"


def test_max_tokens_flushes_held_text(generator):
    stream = generator.generate_text("a", 3, stop=["de"])
    assert "".join(stream) == "bcd" and stream.finish_reason == "max_tokens"
    empty = generator.generate_text("a", 0)
    assert list(empty) == [] and empty.finish_reason == "max_tokens" and empty.token_ids == []


def test_finish_reason_is_none_until_the_end(generator):
    stream = generator.generate_text("a", 3)
    assert stream.finish_reason is None
    next(stream)
    assert stream.finish_reason is None
    list(stream)
    assert stream.finish_reason == "max_tokens"


def test_state_includes_the_stopping_tokens(fake_model):
    with OrtSession(fake_model) as session:
        gen = Generator(session, Tokenizer.from_dir(fake_model))
        stream = gen.generate_text("ab", 10, stop_token_ids=[ord("e")])
        assert "".join(stream) == "cd"
        assert (gen.final_state()["state_in.0.att_aa"] == 5).all()  # a b c d e: the stop token is in the state


def test_bad_stop_conditions(generator):
    with pytest.raises(ParamError, match=r"stop_strings must be non-empty strings \(a tuple\), got \(''"):
        generator.generate_text("a", 3, stop=["", "x"])
    with pytest.raises(ParamError, match=r"stop_token_ids must be token ids >= 0 \(a tuple\), got \(-1,\)"):
        generator.generate_text("a", 3, stop_token_ids=[-1])
    with pytest.raises(ParamError, match=r"stop_token_ids must be token ids in \[0, 255\] \(the model's "
                                         r"vocabulary\), got \(256,\)"):
        generator.generate_ids([1], 3, stop_token_ids=[256])
    with pytest.raises(ParamError, match=r"max_new_tokens must be an int >= 0, got 1.5"):
        generator.generate_text("a", 1.5)
    with pytest.raises(UserError, match="stop strings need a text prompt"):
        generator.generate([1, 2], 3, stop=["x"])


def test_stop_conditions_accept_numpy_ints():
    stop = StopConditions(np.int64(3), ("x",), (np.int64(0),))
    assert stop.max_new_tokens == 3
