"""RWKV-4 (docs/families/rwkv4.md): BlinkDL checkpoints in, Rwkv4Model out."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from rrwkv_trt.core.errors import ConfigError, UserError
from rrwkv_trt.core.families.rwkv4 import Rwkv4Config
from rrwkv_trt.core.names import CONFIG_FILE

from ..models.rwkv4 import LN_EPS, Rwkv4Model
from . import register_family
from .family import CheckpointAdapter, Family, count_layers

NEWER_RWKV_KEYS = ("ln_x", "gate.weight", "time_maa", "time_faaaa")
SIZE_KEYS = ("emb.weight", "blocks.0.att.key.weight", "blocks.0.ffn.key.weight")


class BlinkDLCheckpoint(CheckpointAdapter):
    """BlinkDL `.pth` / `.safetensors` state dicts (§1.1); the key names are the torch model's own."""

    transforms = ("fold ln0 into emb.weight", "time_decay -> -exp(time_decay)", "squeeze time_mix_* to [C]",
                  "cast to float32")

    def detect(self, raw: dict[str, Tensor], file: Path) -> bool:
        newer = sorted(k for k in raw if any(part in k for part in NEWER_RWKV_KEYS))
        if newer:
            raise UserError(f"{file}: keys like {newer[0]!r} belong to RWKV-5/6/7, which rrwkv-trt does not support")
        return "emb.weight" in raw and "blocks.0.att.key.weight" in raw and not self.has_mediums(raw)

    @staticmethod
    def has_mediums(raw: dict[str, Tensor]) -> bool:
        return "blocks.0.att.medium_squeeze" in raw

    def sizes(self, raw: dict[str, Tensor], file: Path) -> dict[str, int]:
        """Sizes from tensor shapes, as [PIP] reads them."""
        for key in SIZE_KEYS:
            if key not in raw or raw[key].ndim != 2:
                raise UserError(f"{file}: missing or non-2-D tensor {key!r}, needed to infer the model sizes")
        return dict(vocab_size=raw["emb.weight"].shape[0], n_embd=raw["emb.weight"].shape[1],
                    n_layer=self.layer_count(raw, file), dim_att=raw["blocks.0.att.key.weight"].shape[0],
                    dim_ffn=raw["blocks.0.ffn.key.weight"].shape[0])

    @staticmethod
    def layer_count(raw: dict[str, Tensor], file: Path) -> int:
        """N, where the `blocks.{i}.` keys number exactly the layers 0..N-1."""
        return count_layers(raw, "blocks.", file)

    @staticmethod
    def meta_int(meta: dict, key: str, default: int | None, file: Path) -> int | None:
        """config.json's integer field `key` (`default` when absent); a bool, float or string is refused rather
        than converted."""
        value = meta.get(key, default)
        if value is not None and type(value) is not int:
            raise UserError(f"{file.parent / CONFIG_FILE}: {key!r} must be an integer, got {value!r}")
        return value

    def config(self, raw: dict[str, Tensor], meta: dict, file: Path) -> Rwkv4Config:
        return self.make_config(Rwkv4Config, self.sizes(raw, file), file)

    @staticmethod
    def make_config(cls: type, sizes: dict, file: Path):
        try:
            return cls(**sizes)
        except ConfigError as err:
            raise UserError(f"{file}: {err}") from None

    def expected_shapes(self, cfg: Rwkv4Config) -> dict[str, tuple[int, ...]]:
        V, C, A, Fd = cfg.vocab_size, cfg.n_embd, cfg.dim_att, cfg.dim_ffn
        shapes = {"emb.weight": (V, C), "blocks.0.ln0.weight": (C,), "blocks.0.ln0.bias": (C,),
                  "ln_out.weight": (C,), "ln_out.bias": (C,), "head.weight": (V, C)}
        for i in range(cfg.n_layer):
            p = f"blocks.{i}."
            shapes |= {p + "ln1.weight": (C,), p + "ln1.bias": (C,), p + "ln2.weight": (C,), p + "ln2.bias": (C,),
                       p + "att.time_decay": (A,), p + "att.time_first": (A,),
                       p + "att.time_mix_k": (1, 1, C), p + "att.time_mix_v": (1, 1, C),
                       p + "att.time_mix_r": (1, 1, C),
                       p + "att.key.weight": (A, C), p + "att.value.weight": (A, C),
                       p + "att.receptance.weight": (A, C), p + "att.output.weight": (C, A),
                       p + "ffn.time_mix_k": (1, 1, C), p + "ffn.time_mix_r": (1, 1, C),
                       p + "ffn.key.weight": (Fd, C), p + "ffn.receptance.weight": (C, C),
                       p + "ffn.value.weight": (C, Fd)}
        return shapes

    def accepts_shape(self, key: str, shape: tuple[int, ...], expected: tuple[int, ...]) -> bool:
        squeezed_mix = ".time_mix_" in key and shape == expected[-1:]  # some exports store [C]
        return shape == expected or squeezed_mix

    def convert(self, raw: dict[str, Tensor], cfg: Rwkv4Config) -> dict[str, Tensor]:
        out = {}
        for key, t in raw.items():
            t = t.float()
            if key.startswith("blocks.0.ln0."):
                continue
            if key.endswith("att.time_decay"):
                t = -torch.exp(t)
            elif ".time_mix_" in key:
                t = t.reshape(-1)
            out[key] = t.contiguous()
        out["emb.weight"] = F.layer_norm(raw["emb.weight"].float(), (cfg.n_embd,),
                                         raw["blocks.0.ln0.weight"].float(), raw["blocks.0.ln0.bias"].float(),
                                         LN_EPS)
        return out


FAMILY = register_family(Family(
    config_class=Rwkv4Config,
    model_class=Rwkv4Model,
    checkpoint=BlinkDLCheckpoint(),
    fp32_parameters=frozenset({"time_decay", "time_first"}),
))
