"""Small ∞-former configs, float64 models and checkpoint folders for the tests (export/families/inftyformer.py)."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from rrwkv_trt.core.families.inftyformer import InftyformerConfig
from rrwkv_trt.core.names import TOKENIZER_FILE
from rrwkv_trt.export.families import build_model
from rrwkv_trt.export.families.inftyformer import WEIGHTS_FILE, random_state_dict, write_random_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ops"))
from ltm_oracle import np_constants, np_ltm_update  # noqa: E402,F401  (the independent float64 LTM oracle)

# Basis widths 0.1 and 0.25 (not the sorting task's 0.01 and 0.05): with 5 centres 0.25 apart, narrower bumps would
# leave the fitted signal ~0 between the centres and the LTM term too small to test anything.
SMALL = dict(vocab_size=97, n_layer=2, d_model=32, n_head=4, d_ff=64, window=6, segment_len=4, num_basis=10,
             num_samples=6, sigma_narrow_ppm=100_000, sigma_wide_ppm=250_000, hist_bins=16)
WEIGHT_STD = 0.3  # float64 model tests: weights large enough that every term moves the logits


def small_config(**overrides) -> InftyformerConfig:
    return InftyformerConfig(**(SMALL | overrides))


def strong_state_dict(cfg: InftyformerConfig, seed: int) -> dict[str, torch.Tensor]:
    """N(0, WEIGHT_STD) parameters (LayerNorm gains around 1): every term moves the logits, and greedy choices have
    margins far above fp32 rounding."""
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=gen, dtype=torch.float64) * WEIGHT_STD
            + (1.0 if ".ln" in k or k.startswith("ln") else 0.0) for k, v in random_state_dict(cfg, seed).items()}


def f64_model(seed: int = 0, **overrides):
    """A float64 model of small_config(**overrides) with strong_state_dict parameters."""
    cfg = small_config(**overrides)
    return build_model(cfg, strong_state_dict(cfg, seed)).double()


def write_checkpoint(folder: Path, seed: int = 0, tokenizer: Path | None = None, **overrides) -> Path:
    """A checkpoint folder of small_config(**overrides) with strong_state_dict parameters (fp32), and a copy of
    `tokenizer` beside it."""
    cfg = small_config(**overrides)
    write_random_checkpoint(folder, cfg, seed)
    save_file({k: v.float().contiguous() for k, v in strong_state_dict(cfg, seed).items()},
              str(folder / WEIGHTS_FILE))
    if tokenizer is not None:
        shutil.copy(tokenizer, folder / TOKENIZER_FILE)
    return folder


def ids_of(shape, seed: int, vocab: int = SMALL["vocab_size"]) -> torch.Tensor:
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))
