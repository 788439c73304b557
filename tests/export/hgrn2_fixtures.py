"""Random fla-format HGRN2 checkpoints for the tests, at test sizes: the generator is the product's
(export/models/random_init.py, shared with `rrwkv-trt bench`); here are its tiny defaults and two loaders."""
from __future__ import annotations

from pathlib import Path

import torch

from rrwkv_trt.export.checkpoint import Checkpoint, check_keys_and_shapes, load_checkpoint
from rrwkv_trt.export.families import family_of
from rrwkv_trt.export.models.random_init import fla_hgrn2_config
from rrwkv_trt.export.models.random_init import fla_hgrn2_shapes as fla_shapes
from rrwkv_trt.export.models.random_init import random_fla_hgrn2_state_dict as random_fla_state_dict
from rrwkv_trt.export.models.random_init import write_fla_folder

__all__ = ["convert_in_memory", "fla_checkpoint", "fla_config", "fla_shapes", "random_fla_state_dict",
           "write_fla_folder"]


def fla_config(hidden_size: int = 64, num_hidden_layers: int = 2, expand_ratio: int = 16, vocab_size: int = 64,
               intermediate_size: int | None = 96, **overrides) -> dict:
    """fla_hgrn2_config at test sizes (4 heads of K = 16 over D = 64, MLP width 96)."""
    return fla_hgrn2_config(hidden_size, num_hidden_layers, expand_ratio, vocab_size, intermediate_size, **overrides)


def fla_checkpoint(folder: Path, seed: int = 0, **cfg_overrides) -> Checkpoint:
    """load_checkpoint of a fresh random fla folder."""
    cfg = fla_config(**cfg_overrides)
    write_fla_folder(folder, cfg, random_fla_state_dict(cfg, seed))
    return load_checkpoint(folder)


def convert_in_memory(cfg: dict, raw: dict[str, torch.Tensor]) -> Checkpoint:
    """What load_checkpoint does with a folder holding `cfg` and `raw`, without the files."""
    file = Path("memory") / "model.safetensors"
    family = family_of("hgrn2")
    config = family.checkpoint.config(raw, cfg, file)
    check_keys_and_shapes(raw, family, config, file)
    return Checkpoint(config, family.checkpoint.convert(raw, config), file, None, family.checkpoint.transforms)
