"""Fixtures of the runtime tests: fake exported models (tests/fake_model.py)."""
from fake_model import fake_model, make_fake_model  # noqa: F401 - fixtures
