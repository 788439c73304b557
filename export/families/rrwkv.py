"""RRWKV-R1 (docs/families/rrwkv.md): RWKV-4's BlinkDL checkpoints plus the `medium_*` keys, RrwkvModel out."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.families.rrwkv import RrwkvConfig

from ..models.rrwkv import RrwkvModel
from . import register_family
from .family import Family
from .rwkv4 import BlinkDLCheckpoint

MEDIUM_FP32 = frozenset({"medium_squeeze", "medium_carry", "medium_key", "medium_value", "medium_key_bias"})


class RrwkvCheckpoint(BlinkDLCheckpoint):
    """RWKV-4's keys plus nine `medium_*` keys per layer (§2.2); s is the rows of medium_squeeze and
    medium_decays comes from config.json."""

    def detect(self, raw: dict[str, Tensor], file: Path) -> bool:
        return "emb.weight" in raw and self.has_mediums(raw)

    def config(self, raw: dict[str, Tensor], meta: dict, file: Path) -> RrwkvConfig:
        squeeze = raw.get("blocks.0.att.medium_squeeze")
        if squeeze is None or squeeze.ndim != 2:
            raise UserError(f"{file}: rrwkv checkpoint lacks a 2-D 'blocks.0.att.medium_squeeze'")
        declared = self.meta_int(meta, "medium_interval", None, file)
        if declared is not None and declared != squeeze.shape[0]:
            raise UserError(f"{file}: config.json says medium_interval={declared} but medium_squeeze has "
                            f"{squeeze.shape[0]} rows")
        sizes = self.sizes(raw, file) | dict(medium_interval=squeeze.shape[0],
                                             medium_decays=self.meta_int(meta, "medium_decays", 0, file))
        return self.make_config(RrwkvConfig, sizes, file)

    def expected_shapes(self, cfg: RrwkvConfig) -> dict[str, tuple[int, ...]]:
        shapes = super().expected_shapes(cfg)
        C, A, s = cfg.n_embd, cfg.dim_att, cfg.medium_interval
        for i in range(cfg.n_layer):
            p = f"blocks.{i}."
            shapes |= {p + "att.medium_squeeze": (s, C), p + "att.medium_carry": (C,),
                       p + "att.medium_key": (A, C), p + "att.medium_value": (A, C),
                       p + "att.medium_key_bias": (A,), p + "att.medium_excite": (A, C),
                       p + "ffn.medium_squeeze": (s, C), p + "ffn.medium_carry": (C,),
                       p + "ffn.medium_excite": (C, C)}
        return shapes


def tracing_hints(cfg: RrwkvConfig, batch: int) -> tuple[int, dict]:
    """Enough tokens for >= 2 windows per call (a window count of 1 would be specialised as a broadcast) and
    unequal positions per sequence (equal ones would be specialised too)."""
    return 3 * cfg.medium_interval + 2, {"pos": torch.arange(batch, dtype=torch.int64) * 3}


FAMILY = register_family(Family(
    config_class=RrwkvConfig,
    model_class=RrwkvModel,
    checkpoint=RrwkvCheckpoint(),
    fp32_parameters=frozenset({"time_decay", "time_first"}) | MEDIUM_FP32,
    tracing_hints=tracing_hints,
))
