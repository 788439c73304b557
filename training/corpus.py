"""The training corpus of the shipped models: the Python standard library's own source, byte-level.

The corpus is every `.py` file under this interpreter's stdlib (sysconfig "stdlib"), sorted by path; a file goes to
the held-out split when crc32(relative path) % 20 == 0, so the split is stable across machines. Every trainer
(train.py, train_hgrn2.py) reads the same bytes, samples the same windows and scores the same held-out windows, so
their bits per byte compare.
"""
from __future__ import annotations

import math
import sysconfig
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

LN2 = math.log(2)
HOLDOUT_MOD = 20


def stdlib_corpus(holdout_mod: int = HOLDOUT_MOD) -> tuple[np.ndarray, np.ndarray]:
    """(train bytes, held-out bytes) as uint8 arrays; files joined by a blank line."""
    root = Path(sysconfig.get_paths()["stdlib"])
    train, held = [], []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if "site-packages" in rel:
            continue
        data = path.read_bytes() + b"\n\n"
        (held if zlib.crc32(rel.encode()) % holdout_mod == 0 else train).append(data)
    return np.frombuffer(b"".join(train), np.uint8), np.frombuffer(b"".join(held), np.uint8)


def unigram_bits_per_byte(train: np.ndarray, held: np.ndarray) -> float:
    """Cross-entropy of the held-out bytes under the (add-one smoothed) training byte frequencies."""
    counts = np.bincount(train, minlength=256).astype(np.float64) + 1
    logp = np.log2(counts / counts.sum())
    return float(-logp[held].mean())


def batches(data: np.ndarray, batch: int, seq: int, rng: np.random.Generator):
    """Endless (x, y) pairs of `batch` random windows of `seq` bytes, y the next byte of each position."""
    while True:
        starts = rng.integers(0, len(data) - seq - 1, batch)
        chunk = np.stack([data[s:s + seq + 1] for s in starts]).astype(np.int64)
        yield torch.from_numpy(chunk[:, :-1]), torch.from_numpy(chunk[:, 1:])


def loss_on(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Mean next-byte cross-entropy (nats) of a model with the project's interface: model(ids, init_state(B))."""
    logits, _ = model(x, model.init_state(x.shape[0]))
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


@torch.no_grad()
def held_out_bpb(model: nn.Module, held: np.ndarray, seq: int, n_batches: int = 16, batch: int = 16) -> float:
    """Mean bits per byte over fixed, evenly spaced held-out windows (next-byte prediction), each window from a
    fresh state."""
    starts = np.linspace(0, len(held) - seq - 2, n_batches * batch).astype(np.int64)
    total = 0.0
    for chunk in np.split(starts, n_batches):
        xy = torch.from_numpy(np.stack([held[s:s + seq + 1] for s in chunk]).astype(np.int64))
        total += loss_on(model, xy[:, :-1], xy[:, 1:]).item()
    return total / n_batches / LN2
