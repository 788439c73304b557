"""RRWKV-R1's config and state slots (docs/families/rrwkv.md): RWKV-4 plus a medium every s tokens."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..config import require_positive_ints
from ..errors import ConfigError
from ..state import BATCH, StateSlot
from .rwkv4 import Rwkv4Config


@dataclass(frozen=True)
class RrwkvConfig(Rwkv4Config):
    """RRWKV-R1: RWKV-4 plus a medium every `medium_interval` tokens."""

    family: ClassVar[str] = "rrwkv"
    medium_interval: int = 16  # s: window length; a medium closes after tokens pos % s == s-1
    medium_decays: int = 0  # 1: the inserted medium takes one extra decay step (§2.8.1); 0 reduces to RWKV-4

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive_ints(self, ["medium_interval"])
        if self.medium_decays not in (0, 1) or isinstance(self.medium_decays, bool):
            raise ConfigError(f"rrwkv config: medium_decays must be 0 or 1, got {self.medium_decays!r}")

    def state_slots(self, activation_dtype: str) -> tuple[StateSlot, ...]:
        """RWKV-4's slots, then the medium accumulators and mediums and the position (§2.5)."""
        c = self.n_embd
        return (
            *super().state_slots(activation_dtype),
            StateSlot("att_macc", (BATCH, c), "float32", 0.0),
            StateSlot("att_m", (BATCH, c), "float32", 0.0),
            StateSlot("ffn_macc", (BATCH, c), "float32", 0.0),
            StateSlot("ffn_m", (BATCH, c), "float32", 0.0),
            StateSlot("pos", (BATCH,), "int64", 0.0, per_layer=False),
        )

    def layer_matmul_shapes(self) -> tuple[tuple[int, int], ...]:
        """RWKV-4's, plus the medium's key and value projections and the two excitations (every step: the graph
        projects the latest medium whether or not a window closes)."""
        C, A = self.n_embd, self.dim_att
        return (*super().layer_matmul_shapes(), (A, C), (A, C), (A, C), (C, C))
