"""Logging helpers shared by the runtime modules."""
from __future__ import annotations

import logging

_logged: set[str] = set()


def log_once(logger: logging.Logger, level: int, message: str) -> None:
    """Log `message` on `logger` the first time this process sees it: a fallback warns once, not every call
    (docs/conventions.md §3.14)."""
    if message not in _logged:
        _logged.add(message)
        logger.log(level, message)
