"""The shipped model's corpus, torch-free: the Python standard library's own source and its held-out split.

Every `.py` file under this interpreter's stdlib (sysconfig "stdlib"), sorted by path, `site-packages` left out; a
file is held out when crc32(its path relative to the stdlib, with "/") % 20 == 0, so the split is the same on every
machine with the same Python. Files are joined with a blank line after each. This is the rule of the trainers
(training/corpus.py, which builds the training arrays with torch); the benchmark reads the held-out text from here,
and tests/bench/test_quality.py checks that the two give the same bytes.
"""
from __future__ import annotations

import sysconfig
import zlib
from pathlib import Path

HOLDOUT_MOD = 20
FILE_SEPARATOR = b"\n\n"  # appended to every file


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def is_held_out(relative_path: str, holdout_mod: int = HOLDOUT_MOD) -> bool:
    """Whether the stdlib file at `relative_path` ("asyncio/sslproto.py") is in the held-out split."""
    return zlib.crc32(relative_path.encode()) % holdout_mod == 0


def corpus_files(root: Path | None = None) -> list[tuple[str, Path]]:
    """(relative path, path) of every corpus file, sorted by path as the trainers read them."""
    root = stdlib_root() if root is None else root
    files = ((path.relative_to(root).as_posix(), path) for path in sorted(root.rglob("*.py")))
    return [(rel, path) for rel, path in files if "site-packages" not in rel]


def held_out_text(max_bytes: int, root: Path | None = None) -> tuple[bytes, list[str]]:
    """The first `max_bytes` bytes of the held-out split (each file followed by a blank line, as in training), and
    the relative paths of the files they come from. The cut may split a UTF-8 character; decode with errors that
    drop or keep the tail (runtime/evaluate.py cuts at a character boundary)."""
    out, names, size = [], [], 0
    for rel, path in corpus_files(root):
        if size >= max_bytes:
            break
        if is_held_out(rel):
            data = path.read_bytes() + FILE_SEPARATOR
            out.append(data[:max_bytes - size])
            names.append(rel)
            size += len(out[-1])
    return b"".join(out), names
