"""A test-only family, defined entirely here to prove that adding a family edits no project file.

"diag-rnn": embedding, then per layer a running sum of a projection (h_t = h_{t-1} + x_t W^T, its recurrence ONE
standard CumSum node in the sequence form) fed back through tanh, a final LayerNorm and a head. Checkpoints are
safetensors with the keys below; the tokenizer comes from the folder.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor, nn

from rrwkv_trt.core.config import ModelConfig, require_positive_ints
from rrwkv_trt.core.state import BATCH, StateSlot
from rrwkv_trt.export.families import CheckpointAdapter, Family, register_family


@dataclass(frozen=True)
class DiagRnnConfig(ModelConfig):
    family: ClassVar[str] = "diag-rnn"
    width: int

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive_ints(self, ["width"])

    def state_slots(self, activation_dtype: str) -> tuple[StateSlot, ...]:
        return (StateSlot("h", (BATCH, "width"), "float32", 0.0),)

    def state_dims(self) -> dict[str, int]:
        return {"width": self.width}


class DiagRnnModel(nn.Module):
    def __init__(self, cfg: DiagRnnConfig):
        super().__init__()
        self.config = cfg
        self.emb = nn.Embedding(cfg.vocab_size, cfg.width)
        self.proj = nn.ModuleList(nn.Linear(cfg.width, cfg.width, bias=False) for _ in range(cfg.n_layer))
        self.norm = nn.LayerNorm(cfg.width)
        self.head = nn.Linear(cfg.width, cfg.vocab_size, bias=False)

    def init_state(self, batch: int) -> dict[str, Tensor]:
        spec = self.config.state_spec()
        return {t.key: torch.zeros(spec.concrete_shape(t.slot, batch)) for t in spec.tensors()}

    def forward(self, ids: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        x, new = self.emb(ids), {}
        for i, proj in enumerate(self.proj):
            h = state[f"{i}.h"][:, None] + torch.cumsum(proj(x), dim=1)  # [B, T, W]
            new[f"{i}.h"] = h[:, -1]
            x = x + torch.tanh(h)
        return self.head(self.norm(x)), new

    def step(self, token: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        logits, new = self.forward(token[:, None], state)
        return logits[:, 0], new


class DiagRnnCheckpoint(CheckpointAdapter):
    transforms = ("cast to float32",)

    def detect(self, raw, file: Path) -> bool:
        return "layers.0.proj.weight" in raw

    def config(self, raw, meta: dict, file: Path) -> DiagRnnConfig:
        vocab, width = raw["emb.weight"].shape
        return DiagRnnConfig(vocab_size=vocab, width=width,
                             n_layer=sum(k.endswith(".proj.weight") for k in raw))

    def expected_shapes(self, cfg: DiagRnnConfig) -> dict[str, tuple[int, ...]]:
        V, W = cfg.vocab_size, cfg.width
        return {"emb.weight": (V, W), "norm.weight": (W,), "norm.bias": (W,), "head.weight": (V, W),
                **{f"layers.{i}.proj.weight": (W, W) for i in range(cfg.n_layer)}}

    def convert(self, raw, cfg: DiagRnnConfig) -> dict[str, Tensor]:
        return {k.replace("layers.", "proj.").replace(".proj.weight", ".weight"): t.float() for k, t in raw.items()}


FAMILY = register_family(Family(config_class=DiagRnnConfig, model_class=DiagRnnModel, checkpoint=DiagRnnCheckpoint()))
