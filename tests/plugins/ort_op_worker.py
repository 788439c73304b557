"""A child process that runs one-node models in ONNX Runtime with build/librrwkv_ort_ops.so registered, so that a
crash in a custom op kills this process and not pytest (tests/plugins/test_ort_ops_fuzz.py).

Protocol on stdin / stdout: 8-byte little-endian length + pickle. Request: (model bytes, {input: array}). Reply:
("ok", [outputs]) or ("error", exception type name, message); session creation and run errors are both replies.

`OrtOpWorker` is the parent's side: one child reused across calls, restarted after it dies or hangs.
"""
from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

_LEN = struct.Struct("<Q")


def _read_exact(stream, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _serve(library: str) -> None:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.register_custom_ops_library(library)
    so.intra_op_num_threads = 1
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        header = _read_exact(stdin, _LEN.size)
        if header is None:
            return
        model, feeds = pickle.loads(_read_exact(stdin, _LEN.unpack(header)[0]))
        try:
            sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
            reply = ("ok", sess.run(None, feeds))
        except Exception as e:  # noqa: BLE001 - every ORT failure is a reply; a crash is the parent's finding
            reply = ("error", type(e).__name__, str(e))
        data = pickle.dumps(reply)
        stdout.write(_LEN.pack(len(data)) + data)
        stdout.flush()


class OrtOpWorker:
    """Runs (model, feeds) in a child process; `run` returns the child's reply, or ("crash", detail) when the child
    died (signal or exit) or did not answer within `timeout` seconds (then it is killed)."""

    def __init__(self, library: Path, timeout: float = 60.0):
        self.library, self.timeout = str(library), timeout
        self.proc: subprocess.Popen | None = None
        self.stderr = None  # a file, not a pipe: a chatty child must not block on a full pipe

    def _start(self) -> subprocess.Popen:
        env = dict(os.environ, OMP_NUM_THREADS="1")
        self.stderr = tempfile.TemporaryFile()
        return subprocess.Popen([sys.executable, __file__, self.library], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=self.stderr, env=env)

    def run(self, model: bytes, feeds: dict) -> tuple:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        proc = self.proc
        data = pickle.dumps((model, feeds))
        reply: list = []

        def exchange():
            try:
                proc.stdin.write(_LEN.pack(len(data)) + data)
                proc.stdin.flush()
                header = _read_exact(proc.stdout, _LEN.size)
                if header is not None:
                    body = _read_exact(proc.stdout, _LEN.unpack(header)[0])
                    if body is not None:
                        reply.append(pickle.loads(body))
            except (BrokenPipeError, OSError):
                pass

        thread = threading.Thread(target=exchange, daemon=True)
        thread.start()
        thread.join(self.timeout)
        if reply:
            return reply[0]
        hung = thread.is_alive()
        proc.kill()
        proc.wait()
        self.stderr.seek(0)
        stderr = self.stderr.read().decode(errors="replace")[-2000:]
        self.proc = None
        what = f"no answer within {self.timeout} s (hang)" if hung else f"child died with code {proc.returncode}"
        return ("crash", f"{what}; stderr: {stderr}")

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


if __name__ == "__main__":
    _serve(sys.argv[1])
