"""The sequences one Triton model instance serves: a SlotPool (runtime/slots.py) keyed by correlation id, a Sampler
per sequence, and the rule that turns one `execute` batch into at most one prefill per prompt and ONE batched step
(serve/protocol.py describes the requests). Nothing here imports Triton, so it is tested without a server.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.runtime.sampler import Sampler, SamplingParams
from rrwkv_trt.runtime.slots import SlotPool
from .protocol import INPUT_IDS


@dataclass(frozen=True)
class SequenceRequest:
    """One request of one sequence, as the sequence batcher delivered it.

    Args:
        key: the correlation id.
        start, end: the sequence_start / sequence_end flags.
        ids: `input_ids` as received ([rows, T]; one row expected), or None when the request has none.
        sampling: the SamplingParams fields the request carried (read at start only).
        want_logits: return the logits beside the token.
    """

    key: int
    start: bool
    end: bool
    ids: np.ndarray | None
    sampling: dict[str, object] = field(default_factory=dict)
    want_logits: bool = False


@dataclass(frozen=True)
class SequenceReply:
    """The answer to a request: the next token and, when asked for, the logits [V]; both None for a request that
    only ended its sequence."""

    token: int | None = None
    logits: np.ndarray | None = None


@dataclass(frozen=True)
class _Fed:
    """A request admitted with ids to feed: its index in the batch and its ids [T]."""

    index: int
    request: SequenceRequest
    ids: np.ndarray


class SequenceServer:
    """Runs the requests of one `execute` call against a SlotPool; thread-safe (the idle reaper runs beside it).

    Args:
        pool: the slots; its idle_timeout_s is the sequence batcher's max_sequence_idle_microseconds.
    """

    def __init__(self, pool: SlotPool) -> None:
        self.pool = pool
        self._samplers: dict[int, Sampler] = {}
        self._lock = threading.Lock()
        self._counts = {"step_calls": 0, "step_tokens": 0, "prefill_tokens": 0}

    def handle(self, requests: Sequence[SequenceRequest]) -> list[SequenceReply | UserError]:
        """Answer each request: prompts are prefilled one by one, then every one-token request runs in ONE batched
        step. A bad request gets its UserError and the others are answered as if it had not come."""
        with self._lock:
            self._expire()
            results: list[SequenceReply | UserError | None] = [None] * len(requests)
            fed = []
            for i, request in enumerate(requests):
                try:
                    ids = self._admit(request)
                except UserError as err:
                    results[i] = err
                    continue
                if ids is None:
                    results[i] = self._end(request)
                else:
                    fed.append(_Fed(i, request, ids))
            logits = self._prefill([f for f in fed if f.ids.size > 1], results)
            logits |= self._step([f for f in fed if f.ids.size == 1], results)
            for f in fed:
                if f.index in logits:
                    results[f.index] = self._reply(f.request, logits[f.index])
            return results

    def expire(self) -> list[int]:
        """Close the sequences idle for longer than the pool's timeout; returns their keys."""
        with self._lock:
            return self._expire()

    def stats(self) -> dict[str, int]:
        """The pool's stats (capacity, live, free, expired_total, closed_total) and the step_calls, step_tokens and
        prefill_tokens counted so far."""
        with self._lock:
            return self.pool.stats() | self._counts

    def _expire(self) -> list[int]:
        keys = self.pool.expire()
        for key in keys:
            self._samplers.pop(key, None)
        return keys

    def _admit(self, request: SequenceRequest) -> np.ndarray | None:
        """Open the sequence at start; returns its ids [T] to feed, None for a request that only ends one."""
        key = request.key
        if request.ids is None:
            if not request.end:
                raise UserError(f"sequence {key}: the request has no {INPUT_IDS} (the ids to feed); only the last "
                                "request of a sequence (sequence_end) may leave it out")
            return None
        ids = _check_ids(key, request.ids, self.pool.session.vocab_size)
        if request.start:
            self._open(key, request.sampling, ids)
        elif request.sampling:
            raise UserError(f"sequence {key}: sampling inputs {sorted(request.sampling)} are read at sequence_start "
                            "only; send them with the prompt")
        elif not self.pool.is_open(key):
            raise UserError(f"sequence {key} has no state on this server (never started, ended, or idle for longer "
                            f"than {self.pool.idle_timeout_s} s): start it again with sequence_start and its prompt")
        return ids

    def _open(self, key: int, sampling: dict[str, object], prompt: np.ndarray) -> None:
        sampler = Sampler(SamplingParams(**sampling))  # a ParamError (a UserError) before any slot is taken
        if self.pool.is_open(key):  # a new start under a live id begins a new sequence
            self.pool.close(key)
        if self.pool.live() == self.pool.capacity:
            raise UserError(f"sequence {key}: all {self.pool.capacity} state slots hold live sequences; retry when "
                            "one ends or idles out, or serve with more slots (rrwkv-trt triton-repo --slots)")
        self.pool.open(key)
        sampler.reset(prompt)
        self._samplers[key] = sampler

    def _prefill(self, fed: list[_Fed], results: list) -> dict[int, np.ndarray]:
        logits = {}
        for f in fed:
            try:
                logits[f.index] = self.pool.prefill(f.request.key, f.ids)
                self._counts["prefill_tokens"] += f.ids.size
            except UserError as err:
                results[f.index] = self._failed(f.request, err)
        return logits

    def _step(self, fed: list[_Fed], results: list) -> dict[int, np.ndarray]:
        if not fed:
            return {}
        try:
            out = self.pool.step({f.request.key: int(f.ids[0]) for f in fed})
        except UserError as err:
            for f in fed:
                results[f.index] = self._failed(f.request, err)
            return {}
        self._counts["step_calls"] += 1
        self._counts["step_tokens"] += len(fed)
        return {f.index: out[f.request.key] for f in fed}

    def _failed(self, request: SequenceRequest, err: UserError) -> UserError:
        """A prompt that failed at start leaves no half-open slot behind."""
        if request.start and self.pool.is_open(request.key):
            self.pool.close(request.key)
            self._samplers.pop(request.key, None)
        return err

    def _reply(self, request: SequenceRequest, logits: np.ndarray) -> SequenceReply:
        token = self._samplers[request.key].sample(logits)
        reply = SequenceReply(token, logits if request.want_logits else None)
        if request.end:
            self._end(request)
        return reply

    def _end(self, request: SequenceRequest) -> SequenceReply:
        """Free the sequence's slot; ending a sequence that holds none (a rejected start, an idled-out one) is
        allowed, so that a client can always release Triton's side of it."""
        if self.pool.is_open(request.key):
            self.pool.close(request.key)
        self._samplers.pop(request.key, None)
        return SequenceReply()



def _check_ids(key: int, ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """`ids` [1, T] as [T] int64; a UserError naming the sequence otherwise (Triton has checked the dtype)."""
    if ids.ndim != 2 or ids.shape[0] != 1 or ids.shape[1] == 0:
        raise UserError(f"sequence {key}: {INPUT_IDS} has shape {list(ids.shape)}; expected [1, T] with T >= 1 (one "
                        "sequence per request)")
    row = ids[0].astype(np.int64, copy=False)
    bad = row[(row < 0) | (row >= vocab_size)]
    if bad.size:
        raise UserError(f"sequence {key}: token id {int(bad[0])} in {INPUT_IDS} is outside the model's vocabulary "
                        f"[0, {vocab_size})")
    return row
