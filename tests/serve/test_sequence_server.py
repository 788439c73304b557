"""SequenceServer (serve/sequences.py) without Triton, on the fake model (tests/fake_model.py: the next token is
(id + 1) % V, and the state counts the tokens fed): one prefill per prompt, one batched step per call, per-request
errors, END and idle expiry."""
from __future__ import annotations

import numpy as np
import pytest

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.runtime.backends.ort import OrtSession
from rrwkv_trt.runtime.slots import SlotPool
from rrwkv_trt.serve.sequences import SequenceReply, SequenceRequest, SequenceServer

V = 256


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def server(make_fake_model, clock):
    with OrtSession(make_fake_model("rwkv4", n_layer=2)) as session:
        yield SequenceServer(SlotPool(session, 3, idle_timeout_s=10.0, clock=clock))


def req(key: int, ids: list[int] | None, start: bool = False, end: bool = False, **sampling) -> SequenceRequest:
    return SequenceRequest(key, start, end, None if ids is None else np.array([ids], dtype=np.int64), sampling)


def tokens(replies) -> list:
    return [r.token if isinstance(r, SequenceReply) else type(r).__name__ for r in replies]


def test_prompts_prefill_and_one_token_requests_share_one_batched_step(server):
    assert tokens(server.handle([req(1, [5, 6, 7], start=True), req(2, [9], start=True)])) == [8, 10]
    assert server.stats()["step_calls"] == 1 and server.stats()["prefill_tokens"] == 3
    assert tokens(server.handle([req(1, [8]), req(2, [10]), req(3, [40, 41], start=True)])) == [9, 11, 42]
    stats = server.stats()
    assert (stats["step_calls"], stats["step_tokens"], stats["live"]) == (2, 3, 3)


def test_a_bad_request_gets_its_error_and_the_others_their_tokens(server):
    server.handle([req(1, [5], start=True)])
    replies = server.handle([
        req(1, [6]),
        req(2, [7]),  # never started
        req(3, [V], start=True),  # outside the vocabulary
        req(4, [1], start=True, temperature=-1.0),  # a bad sampling value: refused before a slot is taken
        req(5, None),  # no ids and no END
    ])
    assert tokens(replies) == [7, "UserError", "UserError", "ParamError", "UserError"]
    assert "sequence 2 has no state" in str(replies[1]) and f"token id {V}" in str(replies[2])
    assert server.stats()["live"] == 1


def test_ids_must_be_one_row_and_sampling_comes_with_the_start(server):
    server.handle([req(1, [5], start=True)])
    two_rows = SequenceRequest(2, True, False, np.array([[1, 2], [3, 4]]))
    assert "expected [1, T]" in str(server.handle([two_rows])[0])
    assert "sequence_start only" in str(server.handle([req(1, [6], temperature=0.5)])[0])


def test_a_start_beyond_the_slots_is_refused(server):
    assert tokens(server.handle([req(k, [1], start=True) for k in range(3)])) == [2, 2, 2]
    refused = server.handle([req(9, [1], start=True)])[0]
    assert isinstance(refused, UserError) and "all 3 state slots" in str(refused)
    assert tokens(server.handle([req(9, None, end=True)])) == [None]  # ending a refused sequence is allowed


def test_end_frees_the_slot_with_or_without_a_last_token(server):
    server.handle([req(1, [5], start=True), req(2, [5], start=True)])
    assert tokens(server.handle([req(1, [6], end=True), req(2, None, end=True)])) == [7, None]
    stats = server.stats()
    assert (stats["live"], stats["closed_total"]) == (0, 2)
    assert "has no state" in str(server.handle([req(1, [7])])[0])


def test_a_new_start_under_a_live_id_starts_from_the_initial_state(server):
    server.handle([req(1, [5, 6, 7], start=True)])
    server.handle([req(1, [2, 3], start=True)])
    counted = server.pool.state(1)["state_in.0.att_aa"]  # the fake counts the tokens fed since the start
    assert float(counted[0, 0]) == 2.0


def test_idle_sequences_expire(server, clock):
    server.handle([req(1, [5], start=True), req(2, [5], start=True)])
    clock.now = 8.0
    server.handle([req(2, [6])])
    clock.now = 12.0
    assert server.expire() == [1]
    stats = server.stats()
    assert (stats["live"], stats["expired_total"]) == (1, 1)
    assert "idle for longer than 10.0 s" in str(server.handle([req(1, [6])])[0])
