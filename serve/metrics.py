"""What the Triton model reports beside its responses: slot and step counts as Prometheus metrics on Triton's metrics
port, and the thread that frees idle sequences' slots while no request arrives."""
from __future__ import annotations

import threading
from collections.abc import Callable

from .sequences import SequenceServer

GAUGES = ("capacity", "live", "free")  # rrwkv_slots{kind=...}
# SequenceServer.stats() key -> counter family (Prometheus names counters *_total)
COUNTERS = {"expired_total": "rrwkv_slots_expired_total", "closed_total": "rrwkv_slots_closed_total",
            "step_calls": "rrwkv_step_calls_total", "step_tokens": "rrwkv_step_tokens_total",
            "prefill_tokens": "rrwkv_prefill_tokens_total"}


class ServerMetrics:
    """Triton custom metrics (the Python backend's pb_utils.MetricFamily) fed from SequenceServer.stats().

    Args:
        pb_utils: the triton_python_backend_utils module (it exists only inside Triton's stub process).
        model: the model name, every metric's `model` label.
    """

    def __init__(self, pb_utils, model: str) -> None:
        family = pb_utils.MetricFamily
        slots = family(name="rrwkv_slots", description="state slots of the rrwkv model by kind: capacity, live "
                       "(held by a sequence), free", kind=family.GAUGE)
        self._gauges = {k: slots.Metric(labels={"model": model, "kind": k}) for k in GAUGES}
        counters = {key: family(name=name, description=f"rrwkv model: {key.replace('_', ' ')}", kind=family.COUNTER)
                    for key, name in COUNTERS.items()}
        self._counters = {key: f.Metric(labels={"model": model}) for key, f in counters.items()}
        # Triton refuses to update a Metric whose MetricFamily was garbage-collected: keep the families alive.
        self._families = [slots, *counters.values()]
        self._last = dict.fromkeys(COUNTERS, 0)
        self._lock = threading.Lock()  # execute and the idle reaper both update; a delta must be counted once

    def update(self, server: SequenceServer) -> None:
        """Publish `server`'s stats (read under the lock, so that a later snapshot is never overwritten by an
        earlier one)."""
        with self._lock:
            stats = server.stats()
            for kind, gauge in self._gauges.items():
                gauge.set(stats[kind])
            for key, counter in self._counters.items():
                if stats[key] > self._last[key]:
                    counter.increment(stats[key] - self._last[key])
                    self._last[key] = stats[key]


class IdleReaper:
    """A daemon thread that closes idle sequences every `period_s`, so that a slot frees on time even when no request
    comes (Triton forgets an idle sequence without telling the model).

    Args:
        on_expired: called with the expired keys, from the reaper's thread.
    """

    def __init__(self, server: SequenceServer, period_s: float, on_expired: Callable[[list[int]], None]) -> None:
        self._server, self._period_s, self._on_expired = server, period_s, on_expired
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rrwkv-idle-reaper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            keys = self._server.expire()
            if keys:
                self._on_expired(keys)
