"""ContinuousBatcher (runtime/scheduler.py): requests joining at different steps over fewer slots than requests yield
exactly the ids each yields alone (Generator), greedy and seeded; prefill chunks interleave with decode steps."""
import pytest

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.runtime.backends.ort import OrtSession
from rrwkv_trt.runtime.decode import Generator
from rrwkv_trt.runtime.sampler import Sampler, SamplingParams
from rrwkv_trt.runtime.scheduler import ContinuousBatcher, Event, Request
from rrwkv_trt.runtime.tokenizer import Tokenizer

PROMPTS = ["def ", "class Parser:\n    def __init__(self", "import os\n", "x = [", "for i in range(10):\n    ",
           "return", "# a comment\n" * 14, "if __name__ == '__main__':\n", "d", "    while True:\n        yield"]


def _requests(model, params=lambda i: SamplingParams()) -> list[Request]:
    """Prompts of 1 to 168 tokens (168: 11 prefill chunks of 16), 5 to 26 new tokens; some stop at a newline."""
    tokenizer = Tokenizer.from_dir(model)
    return [Request(f"r{i}", tokenizer.encode(p), 5 + (7 * i) % 28, params(i), (10,) if i % 4 == 1 else ())
            for i, p in enumerate(PROMPTS)]


def _solo(session, request: Request) -> list[int]:
    gen = Generator(session, sampler=Sampler(request.params))
    return list(gen.generate_ids(request.prompt_ids, request.max_new_tokens, stop_token_ids=request.stop_token_ids))


def _run_in_waves(batcher: ContinuousBatcher, requests: list[Request], joins: list[int]) -> int:
    """Submit request i at step joins[i], step until all finish. Returns: the steps in which some request waited."""
    waited, step = 0, 0
    while step <= max(joins) or batcher.unfinished:
        for request, join in zip(requests, joins):
            if join == step:
                batcher.submit(request)
        batcher.step()
        waited += batcher.unfinished > batcher.pool.live()
        step += 1
    return waited


@pytest.mark.parametrize("params", [lambda i: SamplingParams(),
                                    lambda i: SamplingParams(temperature=0.7 + 0.1 * (i % 3), top_p=0.9, top_k=40 * i,
                                                             repetition_penalty=1.1, presence_penalty=0.2,
                                                             frequency_penalty=0.1, penalty_decay=0.99, seed=i)],
                         ids=["greedy", "seeded"])
def test_equals_each_request_alone(shipped_export, ort_backend, params):
    requests = _requests(shipped_export, params)
    with OrtSession(shipped_export, **ort_backend) as solo_session, OrtSession(shipped_export, **ort_backend) as s:
        alone = {r.id: _solo(solo_session, r) for r in requests}
        batcher = ContinuousBatcher(s, 3, prefill_chunk=16)
        waited = _run_in_waves(batcher, requests, joins=[0, 0, 0, 0, 2, 3, 3, 9, 20, 21])
        assert batcher.results == alone
        assert waited > 0 and batcher.pool.stats()["closed_total"] == len(requests)  # slots were reused
        assert {batcher.finish_reasons[r.id] for r in requests} == {"stop_token", "max_tokens"}


def test_a_long_prompt_is_ingested_between_decode_steps(shipped_export):
    tokenizer = Tokenizer.from_dir(shipped_export)
    long_prompt = tokenizer.encode("# a comment\n" * 10)  # 120 tokens: 8 chunks of 16
    with OrtSession(shipped_export) as session:
        batcher = ContinuousBatcher(session, 2, prefill_chunk=16)
        batcher.submit(Request("short", tokenizer.encode("def "), 20))
        assert [(e.request_id, e.finished) for e in batcher.step()] == [("short", False)] * 2  # prefill, then a step
        batcher.submit(Request("long", long_prompt, 3))
        for _ in range(7):  # the long prompt's first 7 chunks: 'short' goes on, one token a step
            assert [e.request_id for e in batcher.step()] == ["short"]
        assert [e.request_id for e in batcher.step()] == ["long", "short", "long"]
        batcher.run_all()
        assert batcher.results["long"] == _solo(session, Request("long", long_prompt, 3))


def test_stop_token_ends_a_request_and_frees_its_slot(fake_model):
    with OrtSession(fake_model) as session:  # the fake predicts id + 1
        batcher = ContinuousBatcher(session, 1)
        batcher.submit(Request("a", [10], 8, stop_token_ids=(12,)))
        batcher.submit(Request("b", [50, 51], 2))
        assert batcher.step() == [Event("a", 11, False), Event("a", 12, True, "stop_token")]
        assert batcher.pool.live() == 0 and batcher.unfinished == 1
        assert batcher.run_all() == {"a": [11, 12], "b": [52, 53]}
        assert batcher.finish_reasons == {"a": "stop_token", "b": "max_tokens"}


def test_zero_new_tokens_finish_without_a_slot(fake_model):
    with OrtSession(fake_model) as session:
        batcher = ContinuousBatcher(session, 1)
        batcher.submit(Request("a", [1], 0))
        assert batcher.step() == [Event("a", None, True, "max_tokens")]
        assert batcher.results == {"a": []} and batcher.pool.stats()["closed_total"] == 0


def test_cancel(fake_model):
    with OrtSession(fake_model) as session:
        batcher = ContinuousBatcher(session, 1)
        for rid in "abc":
            batcher.submit(Request(rid, [1], 5))
        batcher.step()
        batcher.cancel("a")  # running: its slot is free for the next in line
        batcher.cancel("c")  # queued
        assert batcher.pool.live() == 0
        with pytest.raises(UserError, match="no unfinished request has id 'a'"):
            batcher.cancel("a")
        assert batcher.run_all() == {"b": [2, 3, 4, 5, 6]}


@pytest.mark.parametrize("request_, match", [
    (Request("e", [], 3), "request 'e': prompt_ids must be a non-empty list"),
    (Request("v", [1, 256], 3), "request 'v': prompt token id 256 is out of range for vocab size 256"),
    (Request("n", [-4], 3), "request 'n': prompt token id -4 is out of range"),
    (Request("f", [1.5], 3), "request 'f': prompt_ids must be a non-empty list of token ids"),
    (Request("m", [1], -1), r"request 'm': max_new_tokens must be an int >= 0, got -1"),
    (Request("s", [1], 3, stop_token_ids=(300,)), r"request 's': stop_token_ids must be token ids in \[0, 255\]"),
    (Request("p", [1], 3, params="greedy"), "request 'p': Sampler takes SamplingParams"),
    (Request(["x"], [1], 3), "request ids must be hashable"),
])
def test_bad_requests_are_refused_at_submit(fake_model, request_, match):
    with OrtSession(fake_model) as session:
        with pytest.raises(UserError, match=match):
            ContinuousBatcher(session, 1).submit(request_)


def test_duplicate_ids_and_bad_arguments(fake_model):
    with OrtSession(fake_model) as session:
        batcher = ContinuousBatcher(session, 1)
        batcher.submit(Request("a", [1], 5))
        batcher.submit(Request("b", [1], 5))
        batcher.step()
        for rid in "ab":  # running, queued
            with pytest.raises(UserError, match=f"request id '{rid}' is already queued or running"):
                batcher.submit(Request(rid, [1], 5))
        with pytest.raises(UserError, match="prefill_chunk must be an int >= 1"):
            ContinuousBatcher(session, 1, prefill_chunk=0)
        with pytest.raises(UserError, match="slots must be an int >= 1"):
            ContinuousBatcher(session, 0)
        with pytest.raises(UserError, match="submit takes a Request"):
            batcher.submit(("a", [1], 5))


def test_results_of_a_batched_step_are_rows_of_one_call(fake_model):
    """Each decode step is one session call: count them over a run of three requests on three slots."""
    with OrtSession(fake_model) as session:
        batcher = ContinuousBatcher(session, 3)
        calls = []
        step = session.step
        session.step = lambda ids: calls.append(len(ids)) or step(ids)
        for rid, n in zip("abc", (4, 2, 3)):
            batcher.submit(Request(rid, [rid.encode()[0]], n))
        batcher.run_all()
        assert calls == [3, 2, 1]  # one call per step: the last token of each request is never fed
        assert batcher.results == {"a": [98, 99, 100, 101], "b": [99, 100], "c": [100, 101, 102]}
        stats = batcher.pool.stats()
        assert stats["live"] == 0 and stats["closed_total"] == 3
