"""∞-former (docs/families/inftyformer.md §4.11): the project's own checkpoint folder (config.json holding the
InftyformerConfig fields, model.safetensors holding InftyformerModel's parameters by name) in, InftyformerModel out;
and the random checkpoint that tests and the bench build."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor

from rrwkv_trt.core.config import config_from_dict
from rrwkv_trt.core.errors import ConfigError, UserError
from rrwkv_trt.core.families.inftyformer import InftyformerConfig
from rrwkv_trt.core.names import CONFIG_FILE

from ..models.inftyformer import InftyformerModel
from . import register_family
from .family import CheckpointAdapter, Family, count_layers

DETECT_KEY = "blocks.0.stm.q.weight"
LAYER_PREFIX = "blocks."
WEIGHTS_FILE = "model.safetensors"


class InftyformerCheckpoint(CheckpointAdapter):
    """The config from config.json (every InftyformerConfig field but `family`, which may be given), the layer
    count and sizes cross-checked against the tensors; the parameters are the model's own names."""

    transforms = ("cast to float32",)

    def detect(self, raw: dict[str, Tensor], file: Path) -> bool:
        return DETECT_KEY in raw

    def config(self, raw: dict[str, Tensor], meta: dict, file: Path) -> InftyformerConfig:
        path = file.parent / CONFIG_FILE
        if not meta:
            raise UserError(f"{path}: missing or empty; an inftyformer checkpoint's config.json holds its config "
                            "(window, segment_len and the LTM options are not in the tensors)")
        layers = count_layers(raw, LAYER_PREFIX, file)
        try:
            cfg = config_from_dict({**meta, "family": InftyformerConfig.family})
        except ConfigError as err:
            raise UserError(f"{path}: {err}") from None
        if cfg.n_layer != layers:
            raise UserError(f"{path}: n_layer is {cfg.n_layer} but {file.name} holds {layers} layers")
        return cfg

    def expected_shapes(self, cfg: InftyformerConfig) -> dict[str, tuple[int, ...]]:
        e, f, V, N = cfg.d_model, cfg.d_ff, cfg.vocab_size, cfg.num_basis
        shapes = {"embed.weight": (V, e), "ln_f.weight": (e,), "ln_f.bias": (e,), "head.weight": (V, e)}
        for i in range(cfg.n_layer):
            p = f"{LAYER_PREFIX}{i}."
            shapes |= {p + "ln1.weight": (e,), p + "ln1.bias": (e,), p + "ln2.weight": (e,), p + "ln2.bias": (e,),
                       p + "mlp.fc.weight": (f, e), p + "mlp.fc.bias": (f,), p + "mlp.proj.weight": (e, f),
                       p + "mlp.proj.bias": (e,)}
            shapes |= {f"{p}stm.{name}.weight": (e, e) for name in "qkvo"}
            if cfg.use_ltm:
                shapes |= {f"{p}ltm.{name}.weight": (e, e) for name in ("key", "value", "out")}
                shapes |= {p + "ltm.w_mu": (N,), p + "ltm.w_sigma": (N,)}
        return shapes

    def convert(self, raw: dict[str, Tensor], cfg: InftyformerConfig) -> dict[str, Tensor]:
        return {key: t.float().contiguous() for key, t in raw.items()}


def random_state_dict(cfg: InftyformerConfig, seed: int = 0) -> dict[str, Tensor]:
    """GPT-2-like random parameters (N(0, 0.02) matrices, the residual outputs scaled down by depth, unit
    LayerNorms, zero biases; w_mu, w_sigma as nn.Linear(N, 1) initialises them), from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    out_std = 0.02 / (2 * cfg.n_layer) ** 0.5
    params = {}
    for key, shape in InftyformerCheckpoint().expected_shapes(cfg).items():
        module, leaf = key.rsplit(".", 2)[-2:]  # "ln1", "weight"; "ltm", "w_mu"; "ln_f", "bias"
        if module.startswith("ln"):
            params[key] = torch.ones(shape) if leaf == "weight" else torch.zeros(shape)
        elif leaf == "bias":
            params[key] = torch.zeros(shape)
        elif leaf in ("w_mu", "w_sigma"):
            params[key] = (torch.rand(shape, generator=gen) * 2 - 1) * cfg.num_basis ** -0.5
        else:
            params[key] = torch.randn(shape, generator=gen) * (out_std if module in ("o", "out", "proj") else 0.02)
    return params


def write_random_checkpoint(folder: Path, cfg: InftyformerConfig, seed: int = 0) -> Path:
    """A checkpoint folder (config.json, model.safetensors) of random parameters for `cfg`; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    save_file(random_state_dict(cfg, seed), str(folder / WEIGHTS_FILE))
    (folder / CONFIG_FILE).write_text(json.dumps(cfg.to_dict(), indent=1, sort_keys=True) + "\n")
    return folder


def tracing_hints(cfg: InftyformerConfig, batch: int) -> tuple[int, dict]:
    """Three tokens (a dim of size 1 would be specialised) from unequal positions per sequence."""
    return 3, {"pos": torch.arange(batch, dtype=torch.int64) * (cfg.window + 1)}


FAMILY = register_family(Family(
    config_class=InftyformerConfig,
    model_class=InftyformerModel,
    checkpoint=InftyformerCheckpoint(),
    fp32_parameters=frozenset({"w_mu", "w_sigma"}),
    tracing_hints=tracing_hints,
))
