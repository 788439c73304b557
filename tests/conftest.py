"""Make tests/helpers.py importable as `helpers` from every test folder."""
import os
import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parents[0])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

# Property-based tests (marker `fuzz`) take their example counts from the profile, never from @settings: `make test`
# runs the reproducible "ci" profile (the same examples every run); `make fuzz` runs ten times as many, new ones.
from hypothesis import HealthCheck, settings  # noqa: E402

FUZZ_EXAMPLES = 50
settings.register_profile("ci", max_examples=FUZZ_EXAMPLES, derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=10 * FUZZ_EXAMPLES, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
