"""Serving throughput and per-token latency, through Triton and through the Python API (README "Serving with Triton").

    python -m rrwkv_trt.bench.exports build/serve-bench --random-169m --precision fp32 --precision int8
    python scripts/serve_bench.py [--exports build/serve-bench] [--tokens 32] [--prompt 16] [--threads 2] [--reps 2]

For each export of the 169M random RWKV-4 (fp32, int8) and each number c of concurrent sequences (1, 4, 16), four
modes generate `--tokens` greedy tokens after a `--prompt`-token prompt for each of c sequences:
    api-batched        SlotPool (runtime/slots.py): the c prompts prefilled, then ONE batched step per token
    api-sequential     the c sequences one after another on the same session, batch 1 (prefill, then steps)
    triton-batched     the Python-backend model in the pytriton wheel's tritonserver, c gRPC clients at once
    triton-sequential  the c sequences one after another through the same server, one client
Reported per mode: tokens/s over all sequences (c * tokens / wall time, prompts included) and the per-token latency
(median and p90 of the time between a sequence's consecutive tokens). Modes are rotated in every repetition; each
figure is the median over repetitions. Every mode must produce the same tokens (checked). Clients and server share
the machine's cores, as a co-located client would. JSON goes to bench/results/DATE-serve.json.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rrwkv_trt.runtime.backends.ort import OrtSession
from rrwkv_trt.runtime.slots import SlotPool
from rrwkv_trt.serve.client import SequenceClient
from rrwkv_trt.serve.launcher import TritonServer
from rrwkv_trt.serve.repository import RepoOptions, write_repository

MODEL = "rwkv4-169m-random"
PRECISIONS = ("fp32", "int8")
CONCURRENCY = (1, 4, 16)
MODES = ("api-batched", "api-sequential", "triton-batched", "triton-sequential")


@dataclass
class Run:
    """One mode's generation: the tokens per sequence, the wall time and every gap between consecutive tokens."""

    tokens: list[list[int]]
    wall_s: float
    gaps_s: list[float] = field(default_factory=list)


def api_batched(session: OrtSession, prompts: list[list[int]], n: int) -> Run:
    pool = SlotPool(session, len(prompts))
    start = time.perf_counter()
    tokens = []
    for key, prompt in enumerate(prompts):
        pool.open(key)
        tokens.append([int(np.argmax(pool.prefill(key, prompt)))])
    gaps = []
    for _ in range(n - 1):
        t = time.perf_counter()
        out = pool.step({key: seq[-1] for key, seq in enumerate(tokens)})
        gaps.append(time.perf_counter() - t)
        for key, seq in enumerate(tokens):
            seq.append(int(np.argmax(out[key])))
    wall = time.perf_counter() - start
    return Run(tokens, wall, gaps * len(prompts))  # every sequence waits one step per token


def api_sequential(session: OrtSession, prompts: list[list[int]], n: int) -> Run:
    start, tokens, gaps = time.perf_counter(), [], []
    for prompt in prompts:
        logits, state = session.run(np.array([prompt], dtype=np.int64), last_only=True)
        session.start_decode(state)
        seq = [int(np.argmax(logits[0, -1]))]
        for _ in range(n - 1):
            t = time.perf_counter()
            seq.append(int(np.argmax(session.step(np.array([seq[-1]], dtype=np.int64))[0])))
            gaps.append(time.perf_counter() - t)
        tokens.append(seq)
    return Run(tokens, time.perf_counter() - start, gaps)


class TritonModes:
    """The two Triton modes against one running server; correlation ids never repeat."""

    def __init__(self, server: TritonServer) -> None:
        import tritonclient.grpc as grpc

        self._grpc, self._url, self._next_id = grpc, server.grpc_url, iter(range(1, 1 << 62))

    def one(self, client, prompt: list[int], n: int, gaps: list[float]) -> list[int]:
        seq = SequenceClient(client, next(self._next_id))
        tokens = [seq.start(prompt)]
        while len(tokens) < n:
            t = time.perf_counter()
            tokens.append(seq.step(tokens[-1], end=len(tokens) == n - 1))
            gaps.append(time.perf_counter() - t)
        return tokens

    def batched(self, prompts: list[list[int]], n: int) -> Run:
        clients = [self._grpc.InferenceServerClient(self._url) for _ in prompts]
        tokens: list = [None] * len(prompts)
        gaps: list[float] = []
        barrier = threading.Barrier(len(prompts) + 1)

        def run(i: int) -> None:
            barrier.wait()
            tokens[i] = self.one(clients[i], prompts[i], n, gaps)  # list.append is atomic under the GIL

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(prompts))]
        for t in threads:
            t.start()
        barrier.wait()
        start = time.perf_counter()
        for t in threads:
            t.join()
        return Run(tokens, time.perf_counter() - start, gaps)

    def sequential(self, prompts: list[list[int]], n: int) -> Run:
        client, gaps = self._grpc.InferenceServerClient(self._url), []
        start = time.perf_counter()
        tokens = [self.one(client, p, n, gaps) for p in prompts]
        return Run(tokens, time.perf_counter() - start, gaps)


def measure(export: Path, work: Path, args) -> list[dict]:
    rng = np.random.default_rng(0)
    repo = work / f"repo-{export.name}"
    if not repo.exists():
        write_repository(export, repo, RepoOptions(slots=max(CONCURRENCY), threads=args.threads, full_triton=False))
    rows = []
    with OrtSession(export, threads=args.threads) as session, \
            TritonServer(repo, ["rrwkv"], work / f"triton-{export.name}") as server:
        server.wait_ready(600)
        triton = TritonModes(server)
        modes = {"api-batched": lambda p: api_batched(session, p, args.tokens),
                 "api-sequential": lambda p: api_sequential(session, p, args.tokens),
                 "triton-batched": lambda p: triton.batched(p, args.tokens),
                 "triton-sequential": lambda p: triton.sequential(p, args.tokens)}
        vocab = session.vocab_size
        for c in CONCURRENCY:
            prompts = [rng.integers(0, vocab, args.prompt).tolist() for _ in range(c)]
            runs: dict[str, list[Run]] = {m: [] for m in MODES}
            for rep in range(args.reps):
                for mode in MODES[rep % len(MODES):] + MODES[:rep % len(MODES)]:
                    runs[mode].append(modes[mode](prompts))
                    print(f"{export.name} c={c} rep {rep} {mode}: {runs[mode][-1].wall_s:.2f} s", file=sys.stderr)
            reference = runs["api-sequential"][0].tokens
            for mode, done in runs.items():
                rows.append(summary(export.name, mode, c, done, args.tokens, all(r.tokens == reference for r in done)))
    return rows


def summary(precision: str, mode: str, c: int, runs: list[Run], n: int, same_tokens: bool) -> dict:
    ms = [1e3 * g for r in runs for g in r.gaps_s]
    return {"precision": precision, "mode": mode, "concurrency": c,
            "tokens_per_s": round(statistics.median(c * n / r.wall_s for r in runs), 2),
            "token_latency_ms_median": round(statistics.median(ms), 2),
            "token_latency_ms_p90": round(float(np.percentile(ms, 90)), 2),
            "wall_s": [round(r.wall_s, 3) for r in runs], "same_tokens_as_api_sequential": same_tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--exports", type=Path, default=Path("build/serve-bench"))
    parser.add_argument("--tokens", type=int, default=32, help="tokens generated per sequence")
    parser.add_argument("--prompt", type=int, default=16, help="prompt tokens per sequence")
    parser.add_argument("--threads", type=int, default=2, help="ORT intra-op threads (API session and server)")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--results", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    rows = []
    for precision in PRECISIONS:
        rows += measure(args.exports / MODEL / precision, args.exports, args)
    report = {"date": datetime.date.today().isoformat(), "model": MODEL, "machine": {
        "cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "settings": {k: getattr(args, k) for k in ("tokens", "prompt", "threads", "reps")}, "results": rows}
    out = args.results / f"{report['date']}-serve.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    for r in rows:
        print(f"{r['precision']:5} c={r['concurrency']:2} {r['mode']:18} {r['tokens_per_s']:8.1f} tok/s  "
              f"{r['token_latency_ms_median']:7.1f} ms/token (p90 {r['token_latency_ms_p90']:.1f})"
              f"{'' if r['same_tokens_as_api_sequential'] else '  TOKENS DIFFER'}")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
