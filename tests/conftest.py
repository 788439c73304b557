"""Make tests/helpers.py importable as `helpers` from every test folder."""
import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parents[0])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
