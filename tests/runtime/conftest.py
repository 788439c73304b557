"""Fixtures of the runtime tests: fake exported models (tests/fake_model.py) and the two ORT backends (the shipped
model's export, `shipped_export`, is in tests/conftest.py)."""
import pytest

from fake_model import fake_model, make_fake_model  # noqa: F401 - fixtures


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
