"""The decode loop on the fake model: prefill once, then step; state flows through (golden torch/TRT tests: TODO)."""
import numpy as np
import pytest

from rrwkv_trt.runtime.backends.ort import OrtSession
from rrwkv_trt.runtime.decode import Generator
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.runtime.sampler import Sampler
from rrwkv_trt.runtime.state import allocate_state
from rrwkv_trt.runtime.tokenizer import Tokenizer

# x -> the two bytes of é -> y -> z -> ...
CHAIN = {ord("x"): 0xC3, 0xC3: 0xA9, 0xA9: ord("y")}


class CountingSession:
    """Wraps a session to count prefill and step calls."""

    def __init__(self, session):
        self.inner, self.runs, self.steps = session, [], 0

    def run(self, ids, state=None, last_only=False):
        self.runs.append(ids.shape)
        return self.inner.run(ids, state, last_only)

    def start_decode(self, state):
        self.inner.start_decode(state)

    def step(self, ids):
        self.steps += 1
        return self.inner.step(ids)

    def decode_state(self):
        return self.inner.decode_state()


def test_prefill_once_then_steps(fake_model):
    with OrtSession(fake_model) as session:
        counting = CountingSession(session)
        ids = list(Generator(counting).generate_ids([10, 11, 12], 5))
        assert ids == [13, 14, 15, 16, 17]
        assert counting.runs == [(1, 3)] and counting.steps == 4  # the last token is never fed


def test_greedy_ids_single_and_batch(fake_model):
    with OrtSession(fake_model) as session:
        gen = Generator(session, sampler=Sampler(temperature=1.0, seed=0))  # greedy_ids ignores it
        assert gen.greedy_ids([40, 41], 3) == [42, 43, 44]
        assert gen.greedy_ids(np.array([[1, 2], [100, 101]]), 2) == [[3, 4], [102, 103]]
        assert gen.greedy_ids([1], 0) == []


def test_final_state_counts_every_token(fake_model):
    with OrtSession(fake_model) as session:
        gen = Generator(session)
        assert len(list(gen.generate_ids([1, 2, 3], 4))) == 4
        state = gen.final_state()
        assert (state["state_in.0.att_aa"] == 7).all() and (state["state_in.1.ffn_xx"] == 7).all()
        if "state_in.pos" in state:
            assert state["state_in.pos"].tolist() == [7]
        assert (gen.final_state()["state_in.0.att_aa"] == 7).all()  # idempotent


def test_continue_from_state(fake_model):
    with OrtSession(fake_model) as session:
        gen = Generator(session)
        list(gen.generate_ids([1], 2))
        state = gen.final_state()
        assert list(gen.generate_ids([50], 1, state)) == [51]
        assert (gen.final_state()["state_in.0.att_bb"] == 5).all()  # 1 + 2 + 1 + 1


def test_generate_text_streams_utf8(make_fake_model):
    out_dir = make_fake_model(next_token=CHAIN)
    with OrtSession(out_dir) as session:
        gen = Generator(session, Tokenizer.from_dir(out_dir))
        assert list(gen.generate("x", 4)) == ["é", "y", "z"]
        assert list(gen.generate([ord("x")], 2)) == [0xC3, 0xA9]


def test_seeded_generation_reproducible(make_fake_model):
    out_dir = make_fake_model()
    with OrtSession(out_dir) as session:
        runs = [list(Generator(session, sampler=Sampler(temperature=50.0, seed=4)).generate_ids([1], 8))
                for _ in range(2)]
        assert runs[0] == runs[1] and runs[0] != [2, 3, 4, 5, 6, 7, 8, 9]


def test_bad_prompts(make_fake_model):
    with OrtSession(make_fake_model()) as session:
        gen = Generator(session)
        with pytest.raises(UserError, match="the prompt is empty"):
            list(gen.generate_ids([], 3))
        with pytest.raises(UserError, match="needs a tokenizer"):
            list(gen.generate("hi", 3))
        with pytest.raises(UserError, match="max_new_tokens must be an int >= 0"):
            list(gen.generate_ids([1], -1))
        with pytest.raises(UserError, match="spec expects"):
            list(gen.generate_ids([1], 1, allocate_state(session.spec, 2)))


class PoisonedSession(CountingSession):
    """One logit of batch row `row` becomes `value` (NaN, Inf) from decode step `at` on; logits are [B, V]."""

    def __init__(self, session, at, row=0, value=np.nan):
        super().__init__(session)
        self.at, self.row, self.value = at, row, value

    def step(self, ids):
        logits = super().step(ids).copy()
        if self.steps >= self.at:
            logits[self.row, 7] = self.value
        return logits


def test_nan_logits_stop_generation(fake_model):
    """Before, greedy emitted token 0 forever after NaN logits, with no warning."""
    with OrtSession(fake_model) as session:
        gen = Generator(PoisonedSession(session, at=2))
        out = []
        with pytest.raises(UserError, match=r"NaN or Inf logits for new token 3 \(batch rows \[0\]\)"):
            out.extend(gen.generate_ids([10], 5))
        assert out == [11, 12]  # the tokens from finite logits, and none after


def test_inf_logits_name_the_batch_row(fake_model):
    with OrtSession(fake_model) as session:
        gen = Generator(PoisonedSession(session, at=1, row=1, value=np.inf))
        with pytest.raises(UserError, match=r"for new token 2 \(batch rows \[1\]\)"):
            gen.greedy_ids(np.array([[1], [2]]), 3)


def test_generator_refuses_a_larger_tokenizer(make_fake_model):
    out_dir = make_fake_model(vocab_size=100)
    with OrtSession(out_dir) as session, pytest.raises(UserError, match="but the model's vocab_size is 100"):
        Generator(session, Tokenizer.from_dir(out_dir))
