"""Fixtures of the serving tests: the shipped model's export, its Triton repository, and a real tritonserver (the
pinned nvidia-pytriton wheel's) on free 127.0.0.1 ports, stopped in teardown; a failing test shows the server's log."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fake_model import make_fake_model  # noqa: F401 - fixture
from triton_settings import CHECK_SUFFIX, IDLE_TIMEOUT_S, QUEUE_DELAY_US, SLOTS


@pytest.fixture(scope="session")
def triton_repo(shipped_export, tmp_path_factory) -> Path:
    """`rrwkv-trt triton-repo` of the shipped export, 16 slots, a short idle timeout, and a batching delay long enough
    for 16 client threads on a busy 2-core machine to send their next tokens before a step's batch closes (a batch
    closes early when every slot's sequence has a request)."""
    from rrwkv_trt.serve.repository import RepoOptions, write_repository

    options = RepoOptions(slots=SLOTS, idle_timeout_s=IDLE_TIMEOUT_S, queue_delay_us=QUEUE_DELAY_US, threads=1)
    return write_repository(shipped_export, tmp_path_factory.mktemp("repo") / "repo", options)


@pytest.fixture(scope="session")
def triton_server(triton_repo, tmp_path_factory):
    """A tritonserver serving `rrwkv` and, as Python-backend copies, the full-Triton models (so that Triton itself
    checks their sequence batching, states and initial-state files as it loads them)."""
    pytest.importorskip("tritonclient.grpc", reason="the serving tests need tritonclient (Makefile venv step)")
    from rrwkv_trt.serve.launcher import TritonServer, pytriton_dir
    from rrwkv_trt.core.errors import UserError

    try:
        pytriton_dir()
    except UserError as err:
        pytest.skip(str(err))
    checks = [_as_python_model(triton_repo, f"rrwkv_{kind}") for kind in ("onnx", "trt")]
    server = TritonServer(triton_repo, ["rrwkv", *checks], tmp_path_factory.mktemp("triton"))
    try:
        server.wait_ready(timeout_s=180)
        yield server
    finally:
        server.stop()


def _as_python_model(repo: Path, name: str) -> str:
    """A copy of full-Triton model `name` whose backend is Python (with a model.py that answers nothing): this
    server has no onnxruntime or tensorrt backend, and the copy is loaded for Triton's checks only."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    config = text_format.Parse((repo / name / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    copy = name + CHECK_SUFFIX
    config.name, config.backend, config.platform, config.default_model_filename = copy, "python", "", ""
    for group in config.instance_group:
        group.kind = model_config_pb2.ModelInstanceGroup.KIND_CPU
        del group.profile[:]
    (repo / copy / "1").mkdir(parents=True)
    shutil.copytree(repo / name / "initial_state", repo / copy / "initial_state")
    (repo / copy / "config.pbtxt").write_text(text_format.MessageToString(config))
    (repo / copy / "1" / "model.py").write_text("class TritonPythonModel:\n    def execute(self, requests):\n"
                                                "        return []\n")
    return copy


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the server's log to the report of a failed test that used the server."""
    outcome = yield
    report = outcome.get_result()
    server = item.funcargs.get("triton_server") if hasattr(item, "funcargs") else None
    if report.failed and server is not None:
        report.sections.append(("tritonserver log (tail)", server.log_tail(120)))
