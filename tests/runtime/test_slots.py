"""SlotPool (runtime/slots.py): slots by key, prefill alone, one batched step, no state across slots, idle expiry.

The fake model's state counts the tokens each row was fed (tests/fake_model.py), so a row that got another row's
state, or lost a step, shows in the counts; the shipped model checks the same with real dynamics."""
import numpy as np
import pytest

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.runtime.backends.ort import OrtSession
from rrwkv_trt.runtime.decode import Generator
from rrwkv_trt.runtime.slots import SlotKeyError, SlotPool
from rrwkv_trt.runtime.tokenizer import Tokenizer

COUNTER = "state_in.0.att_aa"  # a float slot of the fake: + T per call


class CallLog:
    """A session that records its calls: run's ids shapes, start_decode's batch, step's ids."""

    def __init__(self, session):
        self.inner, self.spec, self.vocab_size = session, session.spec, session.vocab_size
        self.runs, self.starts, self.steps = [], [], []

    def run(self, ids, state=None, last_only=False):
        self.runs.append(ids.shape)
        return self.inner.run(ids, state, last_only)

    def start_decode(self, state):
        self.starts.append(state[COUNTER].shape[0])
        self.inner.start_decode(state)

    def step(self, ids):
        self.steps.append(ids.tolist())
        return self.inner.step(ids)

    def decode_state(self):
        return self.inner.decode_state()


def _count(pool, key, name=COUNTER):
    return pool.state(key)[name].reshape(-1)[0]


def test_open_close_reuse_and_stats(fake_model):
    with OrtSession(fake_model) as session:
        pool = SlotPool(session, 3)
        assert [pool.open(k) for k in ("a", "b", "c")] == [0, 1, 2]
        assert pool.live() == 3 and pool.is_open("b") and not pool.is_open("z") and not pool.is_open([1])
        pool.close("b")
        assert pool.open(7) == 1  # the lowest free slot
        pool.close("a")
        assert pool.stats() == {"capacity": 3, "live": 2, "free": 1, "expired_total": 0, "closed_total": 2}


def test_state_counts_every_token_of_its_own_slot(fake_model):
    with OrtSession(fake_model) as session:
        log = CallLog(session)
        pool = SlotPool(log, 4)
        for key in "abc":
            pool.open(key)
        pool.prefill("a", [1, 2, 3])
        pool.prefill("b", list(range(10)), chunk=4)
        assert log.runs == [(1, 3), (1, 4), (1, 4), (1, 2)]
        for _ in range(2):
            pool.step({"a": 5, "b": 6})
        pool.prefill("c", [9])  # another row: the decode buffers keep a and b
        logits = pool.step({"b": 7, "a": 8})
        assert log.starts == [2] and log.steps == [[5, 6], [5, 6], [8, 7]]  # one batched call, rows in slot order
        assert logits["a"].argmax() == 9 and logits["b"].argmax() == 8  # the fake predicts id + 1
        assert [_count(pool, k) for k in "abc"] == [6, 13, 1]
        if "state_in.pos" in session.spec.input_names():
            assert [_count(pool, k, "state_in.pos") for k in "abc"] == [6, 13, 1]
        pool.step({"a": 1})  # a new set: b's buffered state goes back to its row first
        assert log.starts == [2, 1] and [_count(pool, k) for k in "abc"] == [7, 13, 1]


def test_prefill_and_load_of_a_buffered_slot(fake_model):
    with OrtSession(fake_model) as session:
        pool = SlotPool(session, 2)
        pool.open("a"), pool.open("b")
        pool.step({"a": 1, "b": 2})
        pool.prefill("a", [3, 4])  # a's live state is in the decode buffers: it is read from there
        assert [_count(pool, k) for k in "ab"] == [3, 1]
        pool.load("b", pool.state("a"))
        pool.step({"a": 1, "b": 2})
        assert [_count(pool, k) for k in "ab"] == [4, 4]


def test_reopened_slot_starts_from_the_initial_state(fake_model):
    with OrtSession(fake_model) as session:
        pool = SlotPool(session, 2)
        pool.open("a"), pool.open("b")
        pool.prefill("a", [1, 2])
        pool.step({"a": 3, "b": 4})  # a and b now live in the decode buffers
        pool.close("a")
        assert pool.open("c") == 0
        initial = session.initial_state(1)
        assert all(np.array_equal(v, initial[k]) for k, v in pool.state("c").items())
        pool.step({"c": 1, "b": 2})
        assert [_count(pool, k) for k in "cb"] == [1, 2]


def test_expiry_with_a_fake_clock(fake_model):
    now = [0.0]
    with OrtSession(fake_model) as session:
        pool = SlotPool(session, 3, idle_timeout_s=10, clock=lambda: now[0])
        pool.open("a"), pool.open("b"), pool.open("c")
        now[0] = 5.0
        pool.step({"a": 1})
        pool.state("c")  # any call naming a key counts as use
        now[0] = 12.0
        assert pool.expire() == ["b"]
        assert not pool.is_open("b") and pool.live() == 2
        now[0] = 15.5
        assert pool.expire() == ["a", "c"]
        assert pool.stats() == {"capacity": 3, "live": 0, "free": 3, "expired_total": 3, "closed_total": 3}
        assert SlotPool(session, 1).expire() == []  # no timeout: never


def test_bad_keys_and_ids(fake_model):
    with OrtSession(fake_model) as session:
        pool = SlotPool(session, 2)
        pool.open("a"), pool.open("b")
        with pytest.raises(UserError, match="already open for key 'a'"):
            pool.open("a")
        with pytest.raises(UserError, match="all 2 slots are in use"):
            pool.open("c")
        with pytest.raises(SlotKeyError, match="no slot is open for key 'zz'") as err:
            pool.close("zz")
        assert isinstance(err.value, KeyError) and str(err.value).startswith("no slot")  # not KeyError's quotes
        with pytest.raises(SlotKeyError, match="key 'zz'"):
            pool.step({"a": 1, "zz": 2})
        with pytest.raises(UserError, match="must be hashable"):
            pool.open(["a"])
        with pytest.raises(UserError, match=r"prefill of key 'a' needs a non-empty list of token ids"):
            pool.prefill("a", [])
        with pytest.raises(UserError, match=r"prefill of key 'b': token id 256 is out of range for vocab size 256"):
            pool.prefill("b", [1, 256])
        with pytest.raises(UserError, match=r"step of key 'b': token id -1 is not an int in \[0, 256\)"):
            pool.step({"a": 1, "b": -1})
        with pytest.raises(UserError, match="chunk must be an int >= 1"):
            pool.prefill("a", [1], chunk=0)
        with pytest.raises(UserError, match="has shape"):
            pool.load("a", session.initial_state(2))
        assert pool.step({}) == {}


@pytest.mark.parametrize("kwargs, match", [({"slots": 0}, "slots must be an int >= 1"),
                                           ({"slots": 2, "idle_timeout_s": 0}, "idle_timeout_s must be a number > 0")])
def test_bad_pool_arguments(fake_model, kwargs, match):
    with OrtSession(fake_model) as session, pytest.raises(UserError, match=match):
        SlotPool(session, **kwargs)


def test_no_state_crosses_slots_on_the_shipped_model(shipped_export, ort_backend):
    """B's logits are bitwise the same whatever happens to the other slots, and equal B decoded alone."""
    tokenizer = Tokenizer.from_dir(shipped_export)
    prompts = [tokenizer.encode(p) for p in ("def parse(self", "import os\n", "for i in range(")]
    with OrtSession(shipped_export, **ort_backend) as session:
        def decode_b(disturb: bool) -> tuple[list[int], list[np.ndarray]]:
            pool = SlotPool(session, 3)
            for key, prompt in zip("abc", prompts):
                pool.open(key)
                logits = pool.prefill(key, prompt)
                if key == "b":
                    b_logits = logits
            tokens, rows = {"a": 1, "c": 2}, []
            for i in range(12):
                token = int(np.argmax(b_logits))
                rows.append(b_logits)
                logits = pool.step({**tokens, "b": token} if i % 3 else {"b": token})  # the set changes
                b_logits = logits["b"]
                if disturb and i == 4:
                    pool.load("a", pool.state("c"))  # another slot's state changes ...
                    pool.close("c"), pool.open("c")  # ... or restarts
            return [int(np.argmax(r)) for r in rows], rows

        ids, plain = decode_b(False)
        disturbed_ids, disturbed = decode_b(True)
        assert disturbed_ids == ids and all(np.array_equal(x, y) for x, y in zip(plain, disturbed))
        assert Generator(session).greedy_ids(prompts[1], 12) == ids
