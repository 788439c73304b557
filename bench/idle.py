"""Wait for a worker process to stop using the CPU before the next measurement starts.

After a call returns, thread pools keep spinning: ONNX Runtime's intra-op threads spin on a full core for a while
after each Run (measured: README "Speed on the edge CPU", How); OpenMP and OpenBLAS pools spin-wait by design too
(not measured). On a 2-core machine that takes a core from whichever variant the benchmark measures next, and most
from the fastest ones, whose measurement is shortest. A deployment runs one model per process, so the benchmark
lets each worker go quiet first; reading the process's CPU clock covers any pool.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import time

WINDOW_S = 0.005  # a worker is quiet once it used under QUIET_FRACTION of one core in QUIET_WINDOWS windows in a row
QUIET_FRACTION = 0.05
QUIET_WINDOWS = 2  # one quiet window can be a spinning thread that the hypervisor descheduled
LIMIT_S = 1.0  # a worker that never goes quiet (busy on purpose) delays the next measurement at most this much

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def process_cpu_clock(pid: int) -> int | None:
    """The POSIX CPU-time clock of process `pid` (all its threads), or None where the platform has none."""
    clock = ctypes.c_int()
    getter = getattr(_libc, "clock_getcpuclockid", None)
    if getter is None or getter(ctypes.c_int(pid), ctypes.byref(clock)) != 0:
        return None
    return clock.value


def wait_until_idle(pid: int) -> float:
    """Block until process `pid` has been quiet (QUIET_WINDOWS), at most LIMIT_S; returns the seconds waited.
    Returns at once when its CPU clock cannot be read (no such platform clock, or the process has exited)."""
    clock = process_cpu_clock(pid)
    start = time.monotonic()
    if clock is None:
        return 0.0
    try:
        used, since, quiet = time.clock_gettime(clock), start, 0
        while since - start < LIMIT_S and quiet < QUIET_WINDOWS:
            time.sleep(WINDOW_S)
            now, at = time.clock_gettime(clock), time.monotonic()
            quiet = quiet + 1 if now - used < QUIET_FRACTION * (at - since) else 0
            used, since = now, at
    except OSError:  # the process exited meanwhile
        pass
    return time.monotonic() - start
