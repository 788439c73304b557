"""∞-former's config and state slots (docs/families/inftyformer.md §4.11): a decoder-only Transformer whose
short-term memory is a sliding window of `window` positions kept in ring buffers and whose long-term memory is the
coefficient matrix of a continuous signal over `num_basis` Gaussian basis functions, refitted every `segment_len`
evicted vectors. With `use_ltm = 0` it is the plain sliding-window Transformer of the same width and depth."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..config import ModelConfig, require_positive_ints
from ..errors import ConfigError
from ..state import BATCH, StateSlot

MICRO = 1e6  # the *_ppm fields count millionths: tau_ppm = 750000 is τ = 0.75
FLAGS = ("use_ltm", "sticky", "code_quirks")
# Upper bounds, checked before anything is sized from a config (a 2^40-token segment would be a 2^41-point fit
# grid): far beyond the reference code's 512 / 512 / 512 / 128 and a 1M-position window.
MAXIMA = {"window": 1 << 20, "segment_len": 1 << 14, "num_basis": 1 << 13, "num_samples": 1 << 14,
          "hist_bins": 1 << 16}


@dataclass(frozen=True)
class InftyformerConfig(ModelConfig):
    """∞-former as the project defines it (§4.11). Sizes and options as written in the checkpoint's config.json."""

    family: ClassVar[str] = "inftyformer"
    d_model: int  # e: the residual width, also the width of the LTM's memory vectors
    n_head: int  # H; head size d = d_model / n_head
    d_ff: int  # the MLP's hidden width
    window: int  # W: each query attends to itself and the W positions before it (the ring buffers' length)
    use_ltm: int = 1  # 0: no long-term memory (a plain sliding-window Transformer, the bench's baseline)
    segment_len: int = 64  # L: evicted vectors per LTM update, and the most tokens one graph call may take
    num_basis: int = 64  # N Gaussian basis functions (§4.1)
    num_samples: int = 64  # M: samples of the old signal per update (§4.3)
    tau_ppm: int = 750_000  # τ: the old signal is contracted into [0, τ] (sorting: 0.75)
    ridge_ppm: int = 1_000_000  # λ of the ridge regression (sorting: 1.0)
    sigma_narrow_ppm: int = 10_000  # the two basis widths (sorting: 0.01 and 0.05)
    sigma_wide_ppm: int = 50_000
    sigma2_min_ppm: int = 1  # the floor of σ² (sorting: 1e-6)
    sticky: int = 0  # 1: sticky memories (§4.4, deterministic quantiles)
    hist_bins: int = 128  # the sticky histogram's bins (§4.4)
    code_quirks: int = 1  # 1: G_inf on the reference code's grid (§4.3); 0: the exact midpoint grid

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive_ints(self, ["d_model", "n_head", "d_ff", "window", "segment_len", "num_basis",
                                     "num_samples", "tau_ppm", "ridge_ppm", "sigma_narrow_ppm", "sigma_wide_ppm",
                                     "sigma2_min_ppm", "hist_bins"])
        for name, most in MAXIMA.items():
            if getattr(self, name) > most:
                raise ConfigError(f"inftyformer config: {name} must be <= {most}, got {getattr(self, name)}")
        for name in FLAGS:
            value = getattr(self, name)
            if isinstance(value, bool) or value not in (0, 1):
                raise ConfigError(f"inftyformer config: {name} must be 0 or 1, got {value!r}")
        if self.d_model % self.n_head:
            raise ConfigError(f"inftyformer config: d_model must be a multiple of n_head (equal heads), got "
                              f"{self.d_model} and {self.n_head}")
        if self.tau_ppm > MICRO:
            raise ConfigError(f"inftyformer config: tau_ppm must be <= {int(MICRO)} (τ <= 1), got {self.tau_ppm}")
        if self.num_basis < 2:
            raise ConfigError(f"inftyformer config: num_basis must be >= 2 (one centre per width), got "
                              f"{self.num_basis}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def tau(self) -> float:
        return self.tau_ppm / MICRO

    @property
    def ridge(self) -> float:
        return self.ridge_ppm / MICRO

    @property
    def sigmas(self) -> tuple[float, float]:
        return self.sigma_narrow_ppm / MICRO, self.sigma_wide_ppm / MICRO

    @property
    def sigma2_min(self) -> float:
        return self.sigma2_min_ppm / MICRO

    @property
    def max_call_tokens(self) -> int:
        """The most tokens per sequence one call of the sequence form (and of its ONNX graph) may take (§4.11.4):
        at most W, so that the ring slots a call writes are distinct, and with the LTM at most L, so that it holds
        at most one memory update."""
        return min(self.window, self.segment_len) if self.use_ltm else self.window

    def state_slots(self, activation_dtype: str) -> tuple[StateSlot, ...]:
        """§4.11.3, in the table's order: the STM ring buffers, then the LTM's coefficients, pending buffer and
        (sticky) histogram, then the position."""
        ring = (StateSlot("stm_k", (BATCH, "n_head", "window", "head_dim"), activation_dtype, 0.0),
                StateSlot("stm_v", (BATCH, "n_head", "window", "head_dim"), activation_dtype, 0.0))
        ltm = (StateSlot("stm_x", (BATCH, "window", "d_model"), activation_dtype, 0.0),
               StateSlot("ltm_b", (BATCH, "num_basis", "d_model"), "float32", 0.0),
               StateSlot("pending", (BATCH, "segment_len", "d_model"), "float32", 0.0))
        hist = (StateSlot("hist", (BATCH, "hist_bins"), "float32", 0.0),)
        pos = (StateSlot("pos", (BATCH,), "int64", 0.0, per_layer=False),)
        return (*ring, *(ltm if self.use_ltm else ()), *(hist if self.use_ltm and self.sticky else ()), *pos)

    def state_dims(self) -> dict[str, int]:
        dims = {"n_head": self.n_head, "window": self.window, "head_dim": self.head_dim, "d_model": self.d_model}
        if self.use_ltm:
            dims |= {"num_basis": self.num_basis, "segment_len": self.segment_len}
            if self.sticky:
                dims["hist_bins"] = self.hist_bins
        return dims

    def step_matmul_shapes(self) -> tuple[tuple[int, int], ...]:
        return (*self.layer_matmul_shapes() * self.n_layer, (self.vocab_size, self.d_model))

    def layer_matmul_shapes(self) -> tuple[tuple[int, int], ...]:
        """q, k, v, o; with the LTM the queries' and contexts' maps through the LTM key and value projections and
        the LTM output projection (§4.11.2); then the MLP."""
        e, f = self.d_model, self.d_ff
        return (*((e, e),) * (7 if self.use_ltm else 4), (f, e), (e, f))
