"""Make tests/helpers.py importable as `helpers` from every test folder."""
import os
import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parents[0])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

# Property-based tests: reproducible in `make test` (the same examples every run); HYPOTHESIS_PROFILE=fuzz explores.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("fuzz", max_examples=5000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
