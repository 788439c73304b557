"""Make tests/helpers.py importable as `helpers` from every test folder; the hypothesis profiles; the fixtures
more than one test folder uses."""
import os
import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parents[0])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

# Property-based tests (marker `fuzz`) take their example counts from the profile, never from @settings: `make test`
# runs the reproducible "ci" profile (the same examples every run); `make fuzz` runs ten times as many, new ones.
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

FUZZ_EXAMPLES = 50
settings.register_profile("ci", max_examples=FUZZ_EXAMPLES, derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=10 * FUZZ_EXAMPLES, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def shipped_export(tmp_path_factory) -> Path:
    """The shipped checkpoint (models/rrwkv-pystdlib: an RRWKV, whose state holds each sequence's `pos`) exported
    at fp32, once per test session (the runtime and the serving tests share it)."""
    pytest.importorskip("torch", reason="exporting the shipped model needs torch ([export] extra)")
    from rrwkv_trt.core.paths import SHIPPED_MODEL
    from rrwkv_trt.export.checkpoint import load_checkpoint
    from rrwkv_trt.export.onnx_export import export_checkpoint

    return export_checkpoint(load_checkpoint(SHIPPED_MODEL), tmp_path_factory.mktemp("shipped") / "fp32")
