"""Start the tritonserver of the nvidia-pytriton wheel (docs/toolchain.md §12) on a repository, localhost only.

The wheel holds the server binary, its Python backend and one backend stub per Python version. The stub must match
the interpreter the models run under, so it is copied, with the backend, into a backends folder of our own. Two
environment variables make the stub run as this environment's Python: PATH starts with this interpreter's folder
(the embedded interpreter finds `python3` there, hence this venv's pyvenv.cfg, site-packages and editable install)
and LD_LIBRARY_PATH names its libpython (so the stub links the same patch release) and the wheel's bundled
libraries.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from rrwkv_trt.core.errors import UserError

HOST = "127.0.0.1"


def pytriton_dir() -> Path:
    """The installed `pytriton` package folder, found without importing it (its __init__ imports its client)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the Triton server comes from the nvidia-pytriton wheel, which is not installed: "
                        "pip install --no-deps nvidia-pytriton==0.7.0 (README \"Serving with Triton\")")
    return Path(next(iter(spec.submodule_search_locations)))


def prepare_backends(work: Path) -> Path:
    """WORK/backends: the wheel's Python backend with the stub of the running Python copied in (replaced each time,
    so a changed interpreter gets its stub)."""
    dist = pytriton_dir() / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = dist / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        have = sorted(p.name for p in (dist / "python_backend_stubs").iterdir())
        raise UserError(f"the pytriton wheel has no Python backend stub for Python {version} (it has {have})")
    backends = work / "backends"
    shutil.rmtree(backends, ignore_errors=True)
    shutil.copytree(dist / "backends" / "python", backends / "python",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(stub, backends / "python" / "triton_python_backend_stub")
    return backends


def server_env() -> dict[str, str]:
    """os.environ with PATH and LD_LIBRARY_PATH set for the stub (module docstring)."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    libs = [str(pytriton_dir().parent / "nvidia_pytriton.libs")]
    libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
    if libdir and soname and (Path(libdir) / soname).is_file():  # a shared libpython (else the system's is used)
        libs.insert(0, libdir)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libs + [p for p in [env.get("LD_LIBRARY_PATH")] if p])
    return env


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on HOST (bound to port 0 together, then released)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind((HOST, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass(frozen=True)
class Ports:
    http: int
    grpc: int
    metrics: int

    @classmethod
    def free(cls) -> Ports:
        return cls(*free_ports(3))


def server_command(repo: Path, backends: Path, ports: Ports, models: list[str]) -> list[str]:
    """tritonserver's command line: localhost only, explicit model control loading `models` alone (a repository also
    holds full-Triton models this server cannot load)."""
    binary = pytriton_dir() / "tritonserver" / "bin" / "tritonserver"
    return [str(binary), f"--model-repository={repo}", f"--backend-directory={backends}",
            "--model-control-mode=explicit", *[f"--load-model={m}" for m in models],
            f"--http-address={HOST}", f"--grpc-address={HOST}", f"--http-port={ports.http}",
            f"--grpc-port={ports.grpc}", f"--metrics-address={HOST}", f"--metrics-port={ports.metrics}",
            "--allow-gpu-metrics=false", "--exit-timeout-secs=10", "--log-verbose=0"]


class TritonServer:
    """A running tritonserver; a context manager that stops it on exit.

    Args:
        repo: the model repository; models: the models to load.
        work: a folder for the backends copy and the server log (server.log).
        ports: None picks free ones.
    """

    def __init__(self, repo: str | os.PathLike, models: list[str], work: str | os.PathLike,
                 ports: Ports | None = None) -> None:
        self.repo, self.models, self.work = Path(repo).resolve(), models, Path(work)
        self.ports = ports or Ports.free()
        self.work.mkdir(parents=True, exist_ok=True)
        self.log_path = self.work / "server.log"
        backends = prepare_backends(self.work)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(server_command(self.repo, backends, self.ports, models), env=server_env(),
                                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def __enter__(self) -> TritonServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def grpc_url(self) -> str:
        return f"{HOST}:{self.ports.grpc}"

    @property
    def http_url(self) -> str:
        return f"{HOST}:{self.ports.http}"

    @property
    def metrics_url(self) -> str:
        return f"http://{HOST}:{self.ports.metrics}/metrics"

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Poll /v2/health/ready until the server and its models are up; UserError with the log's tail if the
        server exits or the deadline passes."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise UserError(f"tritonserver exited with code {self.process.returncode}:\n{self.log_tail()}")
            if self._ready():
                return
            time.sleep(0.2)
        raise UserError(f"tritonserver was not ready after {timeout_s:g} s:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM (Triton unloads its models and exits), then SIGKILL after `timeout_s`."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as reply:
                return reply.status == 200
        except (urllib.error.URLError, OSError):
            return False
