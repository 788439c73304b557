"""Atomic file writes: whatever the product writes (engines, sidecars, state files) replaces the old file whole or
not at all, so a crash or a full disk never leaves a half-written file or destroys the one it was replacing."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def stage_file(path: Path, data: bytes) -> Path:
    """`data` in a new temporary file beside `path`, flushed to disk, for the caller to rename over `path`: the
    same folder is the same file system, so the rename is atomic. Nothing is left behind if writing fails."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; engines and sidecars are ordinary files
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def fsync_dir(folder: Path) -> None:
    """Make the renames and removals in `folder` durable, in the order they were made."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically: staged beside it, then renamed over it, the rename made durable."""
    tmp = stage_file(path, data)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # only there when the rename failed
    fsync_dir(path.parent)
