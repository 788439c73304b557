"""The benchmark's PyTorch baselines, as factories for bench/worker.py (need torch; run in worker processes).

torch_eager   this project's PyTorch model (rrwkv_trt.reference's TorchSession): step form for decode, sequence form
              for prefill; the baseline an exporter starts from
rwkv_package  BlinkDL's rwkv 0.8.32 on the same BlinkDL .pth, strategy "cpu fp32"
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from rrwkv_trt.reference.torch_session import TorchSession

from .worker import SessionBackend, Unsupported


def _parameter_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def torch_eager(checkpoint: str, threads: int) -> SessionBackend:
    """This project's PyTorch model in eager mode (fp32): the baseline an exporter starts from."""
    torch.set_num_threads(threads)
    session = TorchSession(checkpoint)
    return SessionBackend(session, _parameter_bytes(session.model.parameters()))


class RwkvPackageBackend:
    """BlinkDL's rwkv package (0.8.32, strategy "cpu fp32", TorchScript on) on the same BlinkDL .pth."""

    def __init__(self, checkpoint: str, threads: int) -> None:
        os.environ.setdefault("RWKV_JIT_ON", "1")  # the package reads both when rwkv.model is imported
        os.environ["RWKV_CUDA_ON"] = "0"
        from rwkv.model import RWKV

        torch.set_num_threads(threads)
        self.model = RWKV(model=str(Path(checkpoint).with_suffix("")), strategy="cpu fp32", verbose=False)
        self.weight_bytes = _parameter_bytes(t for t in self.model.w.values() if isinstance(t, torch.Tensor))
        self.state = None

    def prefill(self, ids: np.ndarray) -> np.ndarray:
        logits, _ = self.model.forward(ids[0].tolist(), None)  # sequence mode: the last token's logits
        return logits.numpy()

    def start(self, batch: int) -> None:
        if batch != 1:
            raise Unsupported("the rwkv package's forward() takes one sequence")
        self.state = None

    def step(self, tokens: np.ndarray) -> np.ndarray:
        logits, self.state = self.model.forward([int(tokens[0])], self.state)
        return logits.numpy()[None]


def rwkv_package(checkpoint: str, threads: int) -> RwkvPackageBackend:
    return RwkvPackageBackend(checkpoint, threads)
