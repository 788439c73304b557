"""One benchmark backend in its own process, driven over a pipe.

Each backend lives in a separate process so that its peak RSS is its own and one backend's allocations and
threads cannot slow another; the coordinator (bench/suite.py) sends the same command to each in turn, so
repetitions are A/B interleaved. A backend is built in the worker by a factory named "module:function", so the
coordinator never imports what a backend needs (torch for the PyTorch baselines).

A backend object has:
    weight_bytes: int                          bytes of the weights it holds
    prefill(ids [1, T] int64) -> logits [V]    the prompt from a fresh state; the last position's logits
    start(batch)                               fresh decode state for `batch` sequences
    step(tokens [B] int64) -> logits [B, V]    one decode step
A backend that cannot do something (the rwkv package decodes one sequence per call) raises Unsupported.
"""
from __future__ import annotations

import importlib
import os
import time
import traceback

import numpy as np


class Unsupported(Exception):
    """The backend cannot run this measurement; the message says why (it is reported, not an error)."""


def proc_status_mb(*fields: str) -> dict[str, float]:
    """VmRSS / VmHWM (peak RSS) of this process in MiB (the JSON's "_mb" fields are MiB), from one read of
    /proc/self/status, so VmHWM >= VmRSS holds between them."""
    with open("/proc/self/status") as f:
        values = {k: int(v.split()[0]) / 1024 for k, _, v in (line.partition(":") for line in f) if k in fields}
    missing = set(fields) - set(values)
    if missing:
        raise KeyError(sorted(missing))
    return values


def time_decode(backend, batch: int, steps: int) -> float:
    """Seconds for `steps` greedy decode steps of `batch` sequences (the argmax is part of each step)."""
    backend.start(batch)
    tokens = np.full(batch, 1, dtype=np.int64)
    start = time.perf_counter()
    for _ in range(steps):
        logits = backend.step(tokens)
        tokens = np.asarray(logits).reshape(batch, -1).argmax(axis=1).astype(np.int64)
    return time.perf_counter() - start


def time_prefill(backend, ids: np.ndarray) -> tuple[float, float]:
    """(prefill seconds, time to first token): the prompt from a fresh state, then the first greedy token."""
    start = time.perf_counter()
    logits = backend.prefill(ids)
    prefill = time.perf_counter() - start
    int(np.asarray(logits).argmax())
    return prefill, time.perf_counter() - start


def build_backend(factory: str, kwargs: dict):
    module, _, name = factory.partition(":")
    return getattr(importlib.import_module(module), name)(**kwargs)


def handle(backend, cmd: dict) -> dict:
    op = cmd["op"]
    if op == "decode":
        return {"seconds": time_decode(backend, cmd["batch"], cmd["steps"])}
    if op == "prefill":
        ids = np.random.default_rng(cmd["seed"]).integers(0, cmd["vocab"], (1, cmd["tokens"]), dtype=np.int64)
        prefill, ttft = time_prefill(backend, ids)
        return {"seconds": prefill, "ttft_seconds": ttft}
    if op == "memory":
        mb = proc_status_mb("VmHWM", "VmRSS")
        return {"peak_rss_mb": mb["VmHWM"], "rss_mb": mb["VmRSS"]}
    if op in getattr(backend, "extra_ops", ()):  # e.g. MachineProbe.bounds
        return getattr(backend, op)(**cmd.get("args", {}))
    raise ValueError(f"unknown worker command {op!r}")


def serve(conn, factory: str, kwargs: dict) -> None:
    """Worker process main: build the backend, report load figures, then answer commands until None."""
    try:
        # interpreter + numpy, before the backend's libraries and weights
        baseline = proc_status_mb("VmRSS")["VmRSS"]
        start = time.perf_counter()
        backend = build_backend(factory, kwargs)
        conn.send({"ok": True, "load_seconds": time.perf_counter() - start, "baseline_rss_mb": baseline,
                   "weight_bytes": int(backend.weight_bytes), "pid": os.getpid()})
    except Exception as err:  # reported to the coordinator, which names the backend
        conn.send({"ok": False, "error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()})
        return
    while (cmd := conn.recv()) is not None:
        try:
            conn.send({"ok": True, **handle(backend, cmd)})
        except Unsupported as why:
            conn.send({"ok": False, "unsupported": str(why)})
        except Exception as err:
            conn.send({"ok": False, "error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()})


class SessionBackend:
    """A runtime session (OrtSession, or rrwkv_trt.reference's TorchSession) as a benchmark backend."""

    def __init__(self, session, weight_bytes: int) -> None:
        self.session, self.weight_bytes = session, weight_bytes

    def prefill(self, ids: np.ndarray) -> np.ndarray:
        logits, _ = self.session.run(ids, last_only=True)  # as the decode loop prefills (runtime/decode.py)
        return logits[0, -1]

    def start(self, batch: int) -> None:
        self.session.start_decode(self.session.initial_state(batch))

    def step(self, tokens: np.ndarray) -> np.ndarray:
        return self.session.step(tokens)


def ort_backend(model: str, threads: int, use_custom_ops: bool, weight_bytes: int,
                session_options: dict | None = None) -> SessionBackend:
    """ONNX Runtime on an exported folder: fused rrwkv kernels or the function bodies."""
    from rrwkv_trt.runtime.backends.ort import OrtSession

    session = OrtSession(model, threads=threads, use_custom_ops=use_custom_ops, session_options=session_options)
    if use_custom_ops and session.custom_ops_library is None:
        raise RuntimeError("librrwkv_ort_ops.so not found; run `make plugins`")
    return SessionBackend(session, weight_bytes)


class MachineProbe:
    """The machine worker: no model; `bounds` runs the probes of bench/machine.py under this process's
    BLAS thread count."""

    weight_bytes = 0
    extra_ops = ("bounds", "bandwidth")

    def bounds(self, gemv_shapes: list, gemm_shapes: list, batch_gemm_shapes: list) -> dict:
        from . import machine

        return {"gemv_model": machine.gemv_model_shapes(gemv_shapes), "gemm": machine.gemm_throughput(gemm_shapes),
                "gemm_batch": machine.gemm_throughput(batch_gemm_shapes), "facts": machine.machine_facts()}

    def bandwidth(self, gemm_shape: list) -> dict:
        """The per-repetition probes: read bandwidth, and the GEMM throughput at one [M, K, N] (the best prefill
        shape), both of which drift with the load of a shared machine."""
        from . import machine

        return machine.read_bandwidth(reps=3) | {
            "gemm_gflop_s": machine.gemm_throughput([tuple(gemm_shape)])["best_gflop_s"]}


def machine_probe() -> MachineProbe:
    return MachineProbe()
