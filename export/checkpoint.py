"""Checkpoints -> (config, converted state dict). The only place that looks at raw key names.

Formats:
  * BlinkDL RWKV-4 `.pth` (fp32/fp16/bf16 tensors), read with torch.load(weights_only=True);
  * a `.safetensors` file with the same BlinkDL key names (RWKV-4, or RRWKV-R1 with its
    `medium_*` keys), with an optional `config.json` beside it; a folder holding
    `model.safetensors` (or one `.pth`) is accepted too.

One-time transforms (ARCHITECTURES.md §1.1), applied here and recorded in the ONNX metadata:
ln0 folded into emb.weight, time_decay -> -exp(time_decay), time_mix_* squeezed to [C],
everything cast to float32.
"""
from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from rrwkv_trt.core.config import config_from_dict, parse_json_object
from rrwkv_trt.core.errors import ConfigError
from rrwkv_trt.core.families.rrwkv import RrwkvConfig
from rrwkv_trt.core.families.rwkv4 import Rwkv4Config
from rrwkv_trt.core.errors import UserError

TRANSFORMS = ("fold ln0 into emb.weight", "time_decay -> -exp(time_decay)", "squeeze time_mix_* to [C]",
              "cast to float32")
NEWER_RWKV_KEYS = ("ln_x", "gate.weight", "time_maa", "time_faaaa")
FAMILIES = ("rwkv4", "rrwkv")
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@dataclass
class Checkpoint:
    config: Rwkv4Config
    state_dict: dict[str, torch.Tensor]  # converted form, keys = the torch model's parameter names
    source: Path
    tokenizer: Path | None  # tokenizer.json found beside the checkpoint, if any


def load_checkpoint(path: str | Path, family: str | None = None) -> Checkpoint:
    """Read, detect the family (or take `family`), validate every key and shape, convert."""
    file, folder = resolve_checkpoint_file(Path(path))
    raw = read_tensors(file)
    meta = read_config_json(folder / "config.json")
    family = family or meta.get("family") or detect_family(raw, file)
    if family not in FAMILIES:
        raise UserError(f"unknown model family {family!r}; expected one of {list(FAMILIES)}")
    config = infer_config(raw, family, meta, file)
    check_keys_and_shapes(raw, expected_shapes(config), file)
    tokenizer = folder / "tokenizer.json"
    return Checkpoint(config, convert(raw, config), file, tokenizer if tokenizer.is_file() else None)


def resolve_checkpoint_file(path: Path) -> tuple[Path, Path]:
    if path.is_dir():
        found = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.pth"))
        if len(found) != 1:
            raise UserError(f"{path}: expected exactly one .safetensors or .pth checkpoint in the folder, "
                            f"found {[p.name for p in found]}")
        return found[0], path
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    return path, path.parent


def read_tensors(file: Path) -> dict[str, torch.Tensor]:
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file
            tensors = load_file(str(file))
        else:
            tensors = torch.load(file, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot read checkpoint {file}: {first}") from None
    if not isinstance(tensors, dict) or not all(isinstance(v, torch.Tensor) for v in tensors.values()):
        raise UserError(f"{file}: expected a flat dict of tensors (a BlinkDL state dict)")
    return tensors


def read_config_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    return parse_json_object(path.read_text(), str(path))


def detect_family(raw: dict[str, torch.Tensor], file: Path) -> str:
    newer = sorted(k for k in raw if any(part in k for part in NEWER_RWKV_KEYS))
    if newer:
        raise UserError(f"{file}: keys like {newer[0]!r} belong to RWKV-5/6/7, which rrwkv-trt does not support")
    if "emb.weight" not in raw or "blocks.0.att.key.weight" not in raw:
        raise UserError(f"{file}: no 'emb.weight' / 'blocks.0.att.key.weight'; not an RWKV checkpoint "
                        f"(pass --family to force one of {list(FAMILIES)})")
    return "rrwkv" if "blocks.0.att.medium_squeeze" in raw else "rwkv4"


def infer_config(raw: dict[str, torch.Tensor], family: str, meta: dict, file: Path) -> Rwkv4Config:
    """Sizes from tensor shapes (as [PIP] does); RRWKV's s from medium_squeeze, medium_decays from config.json."""
    for key in ("emb.weight", "blocks.0.att.key.weight", "blocks.0.ffn.key.weight"):
        if key not in raw or raw[key].ndim != 2:
            raise UserError(f"{file}: missing or non-2-D tensor {key!r}, needed to infer the model sizes")
    n_layer = 1 + max(int(k.split(".")[1]) for k in raw if k.startswith("blocks."))
    sizes = dict(vocab_size=raw["emb.weight"].shape[0], n_embd=raw["emb.weight"].shape[1], n_layer=n_layer,
                 dim_att=raw["blocks.0.att.key.weight"].shape[0], dim_ffn=raw["blocks.0.ffn.key.weight"].shape[0])
    if family == "rrwkv":
        squeeze = raw.get("blocks.0.att.medium_squeeze")
        if squeeze is None or squeeze.ndim != 2:
            raise UserError(f"{file}: rrwkv checkpoint lacks a 2-D 'blocks.0.att.medium_squeeze'")
        sizes |= dict(medium_interval=squeeze.shape[0], medium_decays=int(meta.get("medium_decays", 0)))
        declared = meta.get("medium_interval")
        if declared is not None and declared != squeeze.shape[0]:
            raise UserError(f"{file}: config.json says medium_interval={declared} but medium_squeeze has "
                            f"{squeeze.shape[0]} rows")
    try:
        return config_from_dict({"family": family, "format_version": 1, **{k: int(v) for k, v in sizes.items()}})
    except ConfigError as err:
        raise UserError(f"{file}: {err}") from None


def expected_shapes(cfg: Rwkv4Config) -> dict[str, tuple[int, ...]]:
    """Every key of the raw BlinkDL-format checkpoint and its shape (§1.1, §2.2)."""
    V, C, A, Fd = cfg.vocab_size, cfg.n_embd, cfg.dim_att, cfg.dim_ffn
    shapes = {"emb.weight": (V, C), "blocks.0.ln0.weight": (C,), "blocks.0.ln0.bias": (C,),
              "ln_out.weight": (C,), "ln_out.bias": (C,), "head.weight": (V, C)}
    for i in range(cfg.n_layer):
        p = f"blocks.{i}."
        shapes |= {p + "ln1.weight": (C,), p + "ln1.bias": (C,), p + "ln2.weight": (C,), p + "ln2.bias": (C,),
                   p + "att.time_decay": (A,), p + "att.time_first": (A,),
                   p + "att.time_mix_k": (1, 1, C), p + "att.time_mix_v": (1, 1, C), p + "att.time_mix_r": (1, 1, C),
                   p + "att.key.weight": (A, C), p + "att.value.weight": (A, C),
                   p + "att.receptance.weight": (A, C), p + "att.output.weight": (C, A),
                   p + "ffn.time_mix_k": (1, 1, C), p + "ffn.time_mix_r": (1, 1, C),
                   p + "ffn.key.weight": (Fd, C), p + "ffn.receptance.weight": (C, C), p + "ffn.value.weight": (C, Fd)}
        if isinstance(cfg, RrwkvConfig):
            s = cfg.medium_interval
            shapes |= {p + "att.medium_squeeze": (s, C), p + "att.medium_carry": (C,),
                       p + "att.medium_key": (A, C), p + "att.medium_value": (A, C),
                       p + "att.medium_key_bias": (A,), p + "att.medium_excite": (A, C),
                       p + "ffn.medium_squeeze": (s, C), p + "ffn.medium_carry": (C,),
                       p + "ffn.medium_excite": (C, C)}
    return shapes


def check_keys_and_shapes(raw: dict[str, torch.Tensor], shapes: dict[str, tuple[int, ...]], file: Path) -> None:
    missing, extra = sorted(set(shapes) - set(raw)), sorted(set(raw) - set(shapes))
    if missing:
        raise UserError(f"{file}: missing {len(missing)} key(s), e.g. {missing[:3]}")
    if extra:
        raise UserError(f"{file}: {len(extra)} unexpected key(s), e.g. {extra[:3]}")
    for key, shape in shapes.items():
        t = raw[key]
        squeezed_mix = ".time_mix_" in key and tuple(t.shape) == shape[-1:]  # some exports store [C]
        if tuple(t.shape) != shape and not squeezed_mix:
            raise UserError(f"{file}: tensor {key} has shape {list(t.shape)}, expected {list(shape)}")
        if t.dtype not in FLOAT_DTYPES:
            raise UserError(f"{file}: tensor {key} has dtype {t.dtype}, expected float32, float16 or bfloat16")


def convert(raw: dict[str, torch.Tensor], cfg: Rwkv4Config) -> dict[str, torch.Tensor]:
    """Apply TRANSFORMS; returns the torch model's state dict."""
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
    out["emb.weight"] = F.layer_norm(raw["emb.weight"].float(), (cfg.n_embd,), raw["blocks.0.ln0.weight"].float(),
                                     raw["blocks.0.ln0.bias"].float(), 1e-5)
    return out
