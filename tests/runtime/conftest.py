"""Fixtures of the runtime tests: fake exported models (tests/fake_model.py) and the shipped model's export."""
from pathlib import Path

import pytest

from fake_model import fake_model, make_fake_model  # noqa: F401 - fixtures


@pytest.fixture(scope="session")
def shipped_export(tmp_path_factory) -> Path:
    """The shipped checkpoint (models/rrwkv-pystdlib: an RRWKV, whose state holds each sequence's `pos`) exported
    at fp32, once per test session."""
    pytest.importorskip("torch", reason="exporting the shipped model needs torch ([export] extra)")
    from rrwkv_trt.core.paths import SHIPPED_MODEL
    from rrwkv_trt.export.checkpoint import load_checkpoint
    from rrwkv_trt.export.onnx_export import export_checkpoint

    return export_checkpoint(load_checkpoint(SHIPPED_MODEL), tmp_path_factory.mktemp("shipped") / "fp32")


@pytest.fixture(params=["ort-function", "ort-kernel"])
def ort_backend(request) -> dict:
    """OrtSession arguments for the function bodies and for the fused kernels (skipped where not built)."""
    if request.param == "ort-function":
        return {"use_custom_ops": False}
    from rrwkv_trt.runtime.backends.ort import find_custom_ops_library

    library = find_custom_ops_library()
    if library is None:
        pytest.skip("build/librrwkv_ort_ops.so not built (`make plugins`)")
    return {"custom_ops_library": library}
