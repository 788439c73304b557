"""Checkpoints -> (config, converted state dict), for every family.

This module does what is the same for all families: find the checkpoint file (a `.safetensors` or `.pth` file, or
a folder holding exactly one, with an optional `config.json` beside it), read it (`torch.load(weights_only=True)`
or safetensors), pick the family (the `--family` given, `config.json`'s "family", or detection from the keys), and
check every key and shape against what the family expects. The family's checkpoint adapter (export/families/)
knows its key names and applies its one-time transforms, which are recorded in the ONNX metadata.
"""
from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from rrwkv_trt.core.config import ModelConfig, parse_json_object
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.names import CONFIG_FILE

from .families import Family, families, family_of

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@dataclass
class Checkpoint:
    config: ModelConfig
    state_dict: dict[str, torch.Tensor]  # converted form, keys = the torch model's parameter names
    source: Path
    tokenizer: Path | None  # the tokenizer file that came with the checkpoint, if any
    transforms: tuple[str, ...] = ()  # the one-time transforms applied (the family adapter's)


def load_checkpoint(path: str | Path, family: str | None = None) -> Checkpoint:
    """Read, pick the family (or take `family`), validate every key and shape, convert."""
    file, folder = resolve_checkpoint_file(Path(path))
    raw = read_tensors(file)
    meta = read_config_json(folder / CONFIG_FILE)
    record = family_of(family or meta.get("family") or detect_family(raw, file))
    adapter = record.checkpoint
    config = adapter.config(raw, meta, file)
    check_keys_and_shapes(raw, record, config, file)
    return Checkpoint(config, adapter.convert(raw, config), file, adapter.tokenizer(folder), adapter.transforms)


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
    """The id of the one family whose adapter recognises `raw`."""
    found = [f.id for f in families().values() if f.checkpoint.detect(raw, file)]
    if len(found) != 1:
        what = "no known family" if not found else f"several families ({found})"
        raise UserError(f"{file}: the keys match {what}; pass --family to choose one of {sorted(families())}")
    return found[0]


def check_keys_and_shapes(raw: dict[str, torch.Tensor], family: Family, config: ModelConfig, file: Path) -> None:
    shapes = family.checkpoint.expected_shapes(config)
    missing, extra = sorted(set(shapes) - set(raw)), sorted(set(raw) - set(shapes))
    if missing:
        raise UserError(f"{file}: missing {len(missing)} key(s), e.g. {missing[:3]}")
    if extra:
        raise UserError(f"{file}: {len(extra)} unexpected key(s), e.g. {extra[:3]}")
    for key, shape in shapes.items():
        t = raw[key]
        if not family.checkpoint.accepts_shape(key, tuple(t.shape), shape):
            raise UserError(f"{file}: tensor {key} has shape {list(t.shape)}, expected {list(shape)}")
        if t.dtype not in FLOAT_DTYPES:
            raise UserError(f"{file}: tensor {key} has dtype {t.dtype}, expected float32, float16 or bfloat16")
