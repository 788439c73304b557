"""How SlotPool's batched step should call the session (README "Continuous batching"; runtime/slots.py).

    python scripts/batched_step_routes.py MODEL_DIR [--threads 1] [--reps 3] [--calls 300]

MODEL_DIR: an export, e.g. of the shipped model (`rrwkv-trt export models/rrwkv-pystdlib -o build/shipped`). The
two alternative routes are SlotPool subclasses here, so the measured code is the shipped pool's but for its step.

Three routes (each on its own session) for one decode step over the active slots, each gathering their rows from
the pool's [N, ...] arrays and scattering the new state back:
    run        session.run(ids [b, 1], state, last_only=True) every step: new output arrays each call
    buffers    start_decode(gathered) / step / decode_state every step: the decode buffers, reallocated whenever
               the batch size changes
    resident   SlotPool as shipped: the decode buffers keep the live state while the same slots step together;
               gather and scatter only when the active set changes
Part 1 times one step at a fixed batch b (1..16; for `resident` the steady state, no gather), and at a batch that
alternates between 3 and 4 every call (the worst case for the decode buffers). Part 2 runs a continuous-batching
workload (ContinuousBatcher: 24 greedy requests of 8..96 prompt tokens and 8..64 new tokens over 4 and 8 slots,
joining in three waves) with each route and reports the mean time of a batched step. Calls are A/B interleaved
(part 1) or the routes rotated per repetition (part 2); medians, in ms.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from rrwkv_trt.runtime.backends.ort import OrtSession
from rrwkv_trt.runtime.scheduler import ContinuousBatcher, Request
from rrwkv_trt.runtime.slots import SlotPool

ROUTES = ("run", "buffers", "resident")
N = 16  # slots of the part 1 pool


class _RunPool(SlotPool):
    def step(self, tokens):
        keys = sorted(tokens, key=self._slot)
        rows = np.array([self._slot_of[k] for k in keys])
        ids = np.array([[tokens[k]] for k in keys], dtype=np.int64)  # [b, 1]
        logits, new = self.session.run(ids, {name: r[rows] for name, r in self._rows.items()}, last_only=True)
        for name, r in self._rows.items():
            r[rows] = new[name]
        return {k: logits[j, -1] for j, k in enumerate(keys)}


class _BufferPool(SlotPool):
    def step(self, tokens):
        out = super().step(tokens)
        self._flush()  # copy the state back at once: every step gathers and scatters
        return out


POOLS = {"run": _RunPool, "buffers": _BufferPool, "resident": SlotPool}


def fixed_batch(sessions: dict[str, OrtSession], sizes: list[int], reps: int) -> dict[str, float]:
    """Median ms of one step per route; the batch of call i is sizes[i % len(sizes)]."""
    rng = np.random.default_rng(0)
    pools = {route: POOLS[route](sessions[route], N) for route in ROUTES}
    vocab = sessions["run"].vocab_size
    for pool in pools.values():
        for key in range(N):
            pool.open(key)
    times: dict[str, list[float]] = {route: [] for route in ROUTES}
    for i in range(reps + 5):
        b = sizes[i % len(sizes)]
        tokens = {k: int(rng.integers(vocab)) for k in range(b)}
        for route in ROUTES[i % 3:] + ROUTES[:i % 3]:  # rotate which route runs first
            start = time.perf_counter()
            pools[route].step(tokens)
            if i >= 5:
                times[route].append(time.perf_counter() - start)
    return {route: 1e3 * statistics.median(t) for route, t in times.items()}


def workload(session: OrtSession, slots: int, route: str) -> float:
    """Mean ms of a batched step of the continuous-batching workload on `route`."""
    rng = np.random.default_rng(1)
    requests = [Request(i, rng.integers(session.vocab_size, size=int(rng.integers(8, 97))).tolist(),
                        int(rng.integers(8, 65))) for i in range(24)]
    batcher = ContinuousBatcher(session, slots, prefill_chunk=32)
    batcher.pool = POOLS[route](session, slots)
    spent, steps = 0.0, 0
    step = batcher.pool.step

    def timed(tokens):
        nonlocal spent, steps
        start = time.perf_counter()
        out = step(tokens)
        spent, steps = spent + time.perf_counter() - start, steps + bool(tokens)
        return out

    batcher.pool.step = timed
    for wave in range(3):
        for request in requests[wave::3]:
            batcher.submit(request)
        for _ in range(20 if wave < 2 else 10**6):
            if not batcher.unfinished:
                break
            batcher.step()
    return 1e3 * spent / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reps", type=int, default=3, help="repetitions of the workload per route")
    parser.add_argument("--calls", type=int, default=300, help="calls per batch size in part 1")
    args = parser.parse_args()
    for custom in (False, True):
        # one session per route: a pool owns its session's decode buffers
        sessions = {r: OrtSession(args.model, threads=args.threads, use_custom_ops=custom) for r in ROUTES}
        print("fused kernels" if custom else "function bodies", f"(threads {args.threads})")
        for label, sizes in [(f"b={b}", [b]) for b in (1, 2, 4, 8, 12, 16)] + [("b=3,4,3,...", [3, 4])]:
            ms = fixed_batch(sessions, sizes, args.calls)
            print(f"  {label:12s}" + "  ".join(f"{r} {ms[r]:6.3f}" for r in ROUTES))
        for slots in (4, 8):
            ms = {r: [] for r in ROUTES}
            for rep in range(args.reps):
                for route in ROUTES[rep % 3:] + ROUTES[:rep % 3]:
                    ms[route].append(workload(sessions[route], slots, route))
            print(f"  workload, {slots} slots: " + "  ".join(f"{r} {statistics.median(ms[r]):6.3f}" for r in ROUTES))
        for session in sessions.values():
            session.close()


if __name__ == "__main__":
    main()
