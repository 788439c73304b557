"""RWKV-4's config and state slots (docs/families/rwkv4.md)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..config import ModelConfig, require_positive_ints
from ..state import BATCH, StateSlot

PP_INIT = -1e30  # docs/families/rwkv4.md §1.3: initial max-exponent of the WKV state


@dataclass(frozen=True)
class Rwkv4Config(ModelConfig):
    """RWKV-4. Sizes as read from a BlinkDL checkpoint."""

    family: ClassVar[str] = "rwkv4"
    n_embd: int
    dim_att: int  # C_att; equals n_embd in released models
    dim_ffn: int  # F; 4 * n_embd in released models

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive_ints(self, ["n_embd", "dim_att", "dim_ffn"])

    def state_slots(self, activation_dtype: str) -> tuple[StateSlot, ...]:
        """docs/families/rwkv4.md §1.7, in [PIP]'s slot order."""
        c, a = self.n_embd, self.dim_att
        return (
            StateSlot("att_xx", (BATCH, c), activation_dtype, 0.0),
            StateSlot("att_aa", (BATCH, a), "float32", 0.0),
            StateSlot("att_bb", (BATCH, a), "float32", 0.0),
            StateSlot("att_pp", (BATCH, a), "float32", PP_INIT),
            StateSlot("ffn_xx", (BATCH, c), activation_dtype, 0.0),
        )

    def step_matmul_shapes(self) -> tuple[tuple[int, int], ...]:
        """Per layer: time-mix r, k, v, output; channel-mix key, receptance, value. Then the head."""
        return (*self.layer_matmul_shapes() * self.n_layer, (self.vocab_size, self.n_embd))

    def layer_matmul_shapes(self) -> tuple[tuple[int, int], ...]:
        C, A, F = self.n_embd, self.dim_att, self.dim_ffn
        return ((A, C), (A, C), (A, C), (C, A), (F, C), (C, C), (C, F))
