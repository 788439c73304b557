"""Fixtures of the bench tests: fake exported models (tests/fake_model.py)."""
from fake_model import make_fake_model  # noqa: F401 - a fixture
