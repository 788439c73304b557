"""Continuous batching: requests join and leave a SlotPool (runtime/slots.py) at any step.

One `ContinuousBatcher.step()`:
1. admits queued requests, first come first served, while slots are free;
2. feeds each request still ingesting its prompt ONE chunk of at most `prefill_chunk` tokens, alone (batch 1); a
   request whose prompt is complete samples its first token from the prefill's logits;
3. runs ONE batched decode call for every request holding a token to feed (those prefilled in 2 included), and
   samples each one's next token.
So the prefill work between two decode steps is at most `slots * prefill_chunk` tokens, and running sequences keep
producing a token per step while a long prompt is ingested. A request that samples a stop token or its
`max_new_tokens`-th token finishes and frees its slot at once; its last token is never fed to the model.

Each request samples with its own Sampler (runtime/sampler.py), and each slot's state is its own row, so a request
yields the ids it would yield alone (runtime/decode.py Generator): exactly, for greedy and for a seed, as long as the
backend computes a row the same in any batch (ONNX Runtime's CPU kernels do; tests/runtime/test_scheduler.py).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rrwkv_trt.core.errors import UserError
from .decode import Session
from .sampler import ParamError, Sampler, SamplingParams
from .slots import SlotPool, hashable
from .stopping import FinishReason, StopConditions


@dataclass(frozen=True)
class Request:
    """One generation: `prompt_ids` [T] (T >= 1), then at most `max_new_tokens` ids sampled with `params`, ending
    after the first of `stop_token_ids` (which is yielded). `id` is any hashable, unique among unfinished requests."""

    id: Hashable
    prompt_ids: Sequence[int]
    max_new_tokens: int
    params: SamplingParams = SamplingParams()
    stop_token_ids: Sequence[int] = ()


@dataclass(frozen=True)
class Event:
    """A token of request `request_id`, or its end. `token_id` is None only for a request of max_new_tokens 0, which
    finishes without one; `finish_reason` ("stop_token" or "max_tokens") is set when `finished`."""

    request_id: Hashable
    token_id: int | None
    finished: bool
    finish_reason: FinishReason | None = None


@dataclass
class _Running:
    """A request holding a slot: its prompt position, sampler and generated ids."""

    request: Request
    prompt: np.ndarray  # [T] int64
    stop: StopConditions
    sampler: Sampler
    fed: int = 0  # prompt tokens prefilled so far
    token_ids: list[int] = field(default_factory=list)

    @property
    def prefilling(self) -> bool:
        return self.fed < self.prompt.shape[0]


class ContinuousBatcher:
    """Runs requests over `slots` state slots of one session, admitting queued ones as slots free up.

    Args:
        session: an OrtSession or TrtSession; the batcher's SlotPool owns its decode buffers (runtime/slots.py).
        slots: the most requests decoding at once.
        prefill_chunk: the most prompt tokens a request is fed per step (see the module docstring).
    Attributes:
        results: {request id: generated ids} of every finished request (pop them to free memory).
        finish_reasons: {request id: why it finished}.
    """

    def __init__(self, session: Session, slots: int, prefill_chunk: int = 64) -> None:
        if not isinstance(prefill_chunk, int) or isinstance(prefill_chunk, bool) or prefill_chunk < 1:
            raise UserError(f"prefill_chunk must be an int >= 1, got {prefill_chunk!r}")
        self.pool = SlotPool(session, slots)
        self.prefill_chunk = prefill_chunk
        self.results: dict[Hashable, list[int]] = {}
        self.finish_reasons: dict[Hashable, FinishReason] = {}
        self._queue: deque[_Running] = deque()
        self._running: dict[Hashable, _Running] = {}  # in order of admission
        self._unfinished: set[Hashable] = set()  # the ids queued or running

    @property
    def unfinished(self) -> int:
        """Requests queued or running."""
        return len(self._unfinished)

    def submit(self, request: Request) -> None:
        """Queue `request` (checked here: a bad one raises UserError naming it); it joins when a slot is free."""
        self._queue.append(self._check(request))
        self._unfinished.add(request.id)

    def cancel(self, request_id: Hashable) -> None:
        """Drop a queued or running request, freeing its slot; it gets no further events and no result."""
        if not hashable(request_id) or request_id not in self._unfinished:
            raise UserError(f"no unfinished request has id {request_id!r}")
        self._unfinished.remove(request_id)
        if request_id in self._running:
            del self._running[request_id]
            self.pool.close(request_id)
        else:
            self._queue.remove(next(r for r in self._queue if r.request.id == request_id))

    def step(self) -> list[Event]:
        """One scheduling iteration (module docstring): admit, one prefill chunk per joining request, one batched
        decode call. Returns: the events in that order (a request of max_new_tokens 0 finishes as it is admitted)."""
        events: list[Event] = []
        self._admit(events)
        ready = {}  # request id -> the token to feed
        for run in list(self._running.values()):
            if run.prefilling:
                self._prefill_chunk(run, events)
            if run.request.id in self._running and not run.prefilling:
                ready[run.request.id] = run.token_ids[-1]
        logits = self.pool.step(ready)
        for request_id in ready:
            self._sample(self._running[request_id], logits[request_id], events)
        return events

    def run_all(self) -> dict[Hashable, list[int]]:
        """Step until every submitted request has finished. Returns: `results` (every finished request's ids)."""
        while self.unfinished:
            self.step()
        return self.results

    def _check(self, request: Request) -> _Running:
        """`request` validated, with its sampler (UserErrors name the request)."""
        if not isinstance(request, Request):
            raise UserError(f"submit takes a Request, got {type(request).__name__}")
        rid = request.id
        if not hashable(rid):
            raise UserError(f"request ids must be hashable (an int or str), got {type(rid).__name__}")
        if rid in self._unfinished:
            raise UserError(f"request id {rid!r} is already queued or running; ids must be unique")
        vocab = self.pool.session.vocab_size
        prompt = _prompt_ids(request, vocab)
        try:
            stop = StopConditions(request.max_new_tokens, (), tuple(request.stop_token_ids))
            if any(i >= vocab for i in stop.stop_token_ids):
                raise ParamError("stop_token_ids", f"token ids in [0, {vocab - 1}]", stop.stop_token_ids)
            sampler = Sampler(request.params)
        except (ParamError, TypeError) as err:
            raise UserError(f"request {rid!r}: {err}") from None
        sampler.reset(prompt)  # the prompt counts for the repetition penalty, as in Generator
        return _Running(request, prompt, stop, sampler)

    def _admit(self, events: list[Event]) -> None:
        while self._queue and self.pool.live() < self.pool.capacity:
            run = self._queue.popleft()
            if run.stop.max_new_tokens == 0:
                self._finish(run, "max_tokens", None, events)
                continue
            self.pool.open(run.request.id)
            self._running[run.request.id] = run

    def _prefill_chunk(self, run: _Running, events: list[Event]) -> None:
        end = min(run.fed + self.prefill_chunk, run.prompt.shape[0])
        logits = self.pool.prefill(run.request.id, run.prompt[run.fed:end], chunk=self.prefill_chunk)
        run.fed = end
        if not run.prefilling:
            self._sample(run, logits, events)

    def _sample(self, run: _Running, logits: np.ndarray, events: list[Event]) -> None:
        """Pick `run`'s next token from `logits` [V]; finish it on a stop token or its last token."""
        if not np.isfinite(logits.sum(dtype=np.float64)):
            raise UserError(f"request {run.request.id!r}: the model produced NaN or Inf logits for new token "
                            f"{len(run.token_ids) + 1}; its weights are broken (compare the model with its checkpoint)")
        token = run.sampler.sample(logits)
        run.token_ids.append(token)
        if token in run.stop.stop_token_ids:
            self._finish(run, "stop_token", token, events)
        elif len(run.token_ids) == run.stop.max_new_tokens:
            self._finish(run, "max_tokens", token, events)
        else:
            events.append(Event(run.request.id, token, False))

    def _finish(self, run: _Running, reason: FinishReason, token: int | None, events: list[Event]) -> None:
        rid = run.request.id
        self._unfinished.remove(rid)
        if rid in self._running:
            del self._running[rid]
            self.pool.close(rid)
        self.results[rid] = run.token_ids
        self.finish_reasons[rid] = reason
        events.append(Event(rid, token, True, reason))


def _prompt_ids(request: Request, vocab: int) -> np.ndarray:
    """The request's prompt as int64 [T]; a UserError naming the request when empty or outside the vocabulary."""
    prompt = np.asarray(request.prompt_ids)
    if prompt.ndim != 1 or prompt.size == 0 or prompt.dtype.kind not in "iu":
        raise UserError(f"request {request.id!r}: prompt_ids must be a non-empty list of token ids, got "
                        f"{prompt.size} values of dtype {prompt.dtype}")
    bad = prompt[(prompt < 0) | (prompt >= vocab)]
    if bad.size:
        raise UserError(f"request {request.id!r}: prompt token id {bad[0]} is out of range for vocab size {vocab}")
    return prompt.astype(np.int64)
