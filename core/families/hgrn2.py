"""HGRN2's config and state slot (docs/families/hgrn2.md §3): fla's HGRN2 language model."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..config import ModelConfig, require_positive_ints
from ..errors import ConfigError
from ..state import BATCH, StateSlot

QUERY_SCALE_FLA = 0  # scale = head_k_dim^-0.5: fla's chunk_gla / fused_recurrent_gla default (§3.2)
QUERY_SCALE_ONE = 1  # scale = 1: the official HGRN2 code (§3.3)
QUERY_SCALES = (QUERY_SCALE_FLA, QUERY_SCALE_ONE)
EPS_UNIT = 1e12  # norm_eps_pico counts 1e-12; n / 1e12 is the correctly rounded double of n·10^-12
MAX_EPS_PICO = 10**11  # eps <= 0.1


@dataclass(frozen=True)
class Hgrn2Config(ModelConfig):
    """HGRN2 as fla writes it (fla/models/hgrn2). Sizes and options as read from an fla checkpoint's config.json."""

    family: ClassVar[str] = "hgrn2"
    hidden_size: int  # D
    num_heads: int  # H
    head_k_dim: int  # K: fla's expand_ratio (head_f_dim)
    head_v_dim: int  # V = D / H (fla's head_i_dim)
    intermediate_size: int  # the SwiGLU MLP's width
    query_scale: int = QUERY_SCALE_FLA  # which scale the checkpoint was trained with (QUERY_SCALES)
    use_lower_bound: int = 1  # 0: every layer's forget-gate lower bound is 0 (fla use_lower_bound=False)
    norm_eps_pico: int = 1_000_000  # the block and final RMSNorms' eps in units of 1e-12 (fla norm_eps 1e-6)
    tie_word_embeddings: int = 0  # 1: the checkpoint has no lm_head.weight; the head is the embedding table

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive_ints(self, ["hidden_size", "num_heads", "head_k_dim", "head_v_dim", "intermediate_size",
                                     "norm_eps_pico"])
        for name, allowed in (("query_scale", QUERY_SCALES), ("use_lower_bound", (0, 1)),
                              ("tie_word_embeddings", (0, 1))):
            value = getattr(self, name)
            if isinstance(value, bool) or value not in allowed:
                raise ConfigError(f"hgrn2 config: {name} must be one of {list(allowed)}, got {value!r}")
        if self.norm_eps_pico > MAX_EPS_PICO:
            raise ConfigError(f"hgrn2 config: norm_eps_pico must be <= {MAX_EPS_PICO} (eps 0.1), "
                              f"got {self.norm_eps_pico}")
        if self.num_heads * self.head_v_dim != self.hidden_size:
            raise ConfigError(f"hgrn2 config: num_heads * head_v_dim must equal hidden_size (i_proj's output is "
                              f"split into heads), got {self.num_heads} * {self.head_v_dim} != {self.hidden_size}")
        if self.use_lower_bound and self.num_heads * self.head_k_dim != self.hidden_size:
            raise ConfigError(f"hgrn2 config: with use_lower_bound, num_heads * head_k_dim must equal hidden_size "
                              f"(the [D] lower bound is split into heads like f), got {self.num_heads} * "
                              f"{self.head_k_dim} != {self.hidden_size}")

    @property
    def scale(self) -> float:
        """The query scale of §3.2/§3.3: K^-0.5 (fla) or 1 (official code)."""
        return self.head_k_dim ** -0.5 if self.query_scale == QUERY_SCALE_FLA else 1.0

    @property
    def norm_eps(self) -> float:
        return self.norm_eps_pico / EPS_UNIT

    def state_slots(self, activation_dtype: str) -> tuple[StateSlot, ...]:
        """docs/families/hgrn2.md §3.6: the fp32 matrix state S [B, H, K, V] (no short convolution)."""
        return (StateSlot("recurrent_state", (BATCH, "num_heads", "head_k_dim", "head_v_dim"), "float32", 0.0),)

    def state_dims(self) -> dict[str, int]:
        return {"num_heads": self.num_heads, "head_k_dim": self.head_k_dim, "head_v_dim": self.head_v_dim}

    def step_matmul_shapes(self) -> tuple[tuple[int, int], ...]:
        """Per layer: q_proj, f_proj, i_proj, o_proj, then the MLP's gate, up and down. Then the head."""
        return (*self.layer_matmul_shapes() * self.n_layer, (self.vocab_size, self.hidden_size))

    def layer_matmul_shapes(self) -> tuple[tuple[int, int], ...]:
        D, F, HK = self.hidden_size, self.intermediate_size, self.num_heads * self.head_k_dim
        return ((HK, D), (HK, D), (D, D), (D, D), (F, D), (F, D), (D, F))
