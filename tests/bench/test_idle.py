"""bench/idle.py: the benchmark waits for a worker's spinning threads before the next measurement."""
import subprocess
import sys
import time

from rrwkv_trt.bench import idle

BUSY_THEN_SLEEP = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < {busy}: pass\ntime.sleep(30)"


def _child(busy: float) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", BUSY_THEN_SLEEP.format(busy=busy)])
    time.sleep(0.05)  # past the interpreter's start-up
    return child


def test_waits_while_the_process_runs_and_not_after():
    child = _child(busy=0.4)
    try:
        assert idle.process_cpu_clock(child.pid) is not None
        waited = idle.wait_until_idle(child.pid)
        assert 0.2 < waited < idle.LIMIT_S  # it spun for about 0.35 s more
        assert idle.wait_until_idle(child.pid) < 0.1  # asleep now: two quiet windows
    finally:
        child.kill()
        child.wait()


def test_gives_up_on_a_process_that_never_goes_quiet(monkeypatch):
    monkeypatch.setattr(idle, "LIMIT_S", 0.15)
    child = _child(busy=30)
    try:
        assert 0.15 <= idle.wait_until_idle(child.pid) < 0.5
    finally:
        child.kill()
        child.wait()


def test_an_exited_process_returns_at_once():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert idle.wait_until_idle(child.pid) < 0.05
