"""Checkpoints -> (config, converted state dict), for every family.

This module does what is the same for all families: find the checkpoint file (a `.safetensors`, `.pth` or `.bin`
file, or a folder holding exactly one, with an optional `config.json` beside it), read it
(`torch.load(weights_only=True)` or safetensors), pick the family (the `--family` given, `config.json`'s "family",
or detection from the keys), and check every key and shape against what the family expects. The family's checkpoint
adapter (export/families/) knows its key names and applies its one-time transforms, which are recorded in the ONNX
metadata.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from rrwkv_trt.core.config import ModelConfig, read_json_object
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.names import CONFIG_FILE

from .families import Family, families, family_of

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
SAFETENSORS_LENGTH_BYTES = 8  # the little-endian u64 header length a .safetensors file starts with
MAX_CONFIG_BYTES = 1 << 20


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
        # .bin: Hugging Face's pytorch_model.bin, a torch.save zip archive read (and checked) as a .pth
        found = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.pth")) or sorted(path.glob("*.bin"))
        if len(found) != 1:
            raise UserError(f"{path}: expected exactly one .safetensors, .pth or .bin checkpoint in the folder, "
                            f"found {[p.name for p in found]}")
        return found[0], path
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    return path, path.parent


def read_tensors(file: Path) -> dict[str, torch.Tensor]:
    """The file's tensors, every size checked against the file's own size before anything is allocated."""
    if file.suffix == ".safetensors":
        check_safetensors_header(file)
    else:
        check_pth_archive(file)
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file
            tensors = load_file(str(file))
        else:
            tensors = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # the parsers raise whatever a hostile file provokes (SafetensorError, pickle, zip, ...)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot read checkpoint {file}: {first}") from None
    if not isinstance(tensors, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                for k, v in tensors.items()):
        raise UserError(f"{file}: expected a flat dict of tensors with string keys (a BlinkDL state dict)")
    check_tensor_bytes(tensors, file)
    return tensors


def check_safetensors_header(file: Path) -> None:
    """The 8-byte header length must leave the header inside the file: safetensors would otherwise fail deep
    inside its parser."""
    size = file.stat().st_size
    with file.open("rb") as f:
        head = f.read(SAFETENSORS_LENGTH_BYTES)
    header_len = int.from_bytes(head, "little")  # 0 (refused) for a file shorter than the field
    if not 2 <= header_len <= size - SAFETENSORS_LENGTH_BYTES:
        raise UserError(f"cannot read checkpoint {file}: not a safetensors file (its header length field says "
                        f"{header_len} bytes, the file has {size}); re-save it with safetensors.torch.save_file")


def check_pth_archive(file: Path) -> None:
    """A .pth must be torch.save's zip archive with every record stored uncompressed, as torch.save writes it: then
    no storage torch.load allocates can exceed the file's size (a compressed record, or the pre-1.6 format, can
    declare any size)."""
    try:
        with zipfile.ZipFile(file) as archive:
            compressed = [i.filename for i in archive.infolist() if i.compress_type != zipfile.ZIP_STORED]
    except (OSError, zipfile.BadZipFile, ValueError) as err:
        raise UserError(f"cannot read checkpoint {file}: not a torch.save zip archive ({err}); re-save it with "
                        "torch.save (torch >= 1.6) or convert it to .safetensors") from None
    if compressed:
        raise UserError(f"cannot read checkpoint {file}: record {compressed[0]!r} is compressed, which torch.save "
                        "never does; re-save the state dict with torch.save")


def check_tensor_bytes(tensors: dict[str, torch.Tensor], file: Path) -> None:
    """The tensors may not view more bytes than their storages hold: a zero stride, or many tensors over one
    storage, would make the conversion to float32 allocate far more memory than the file holds."""
    fix = "save every tensor contiguous and on its own (a state dict of .contiguous().clone() tensors)"
    for key, t in tensors.items():
        if t.numel() * t.element_size() > t.untyped_storage().nbytes():
            raise UserError(f"{file}: tensor {key} has shape {list(t.shape)} and strides {list(t.stride())} over a "
                            f"storage of {t.untyped_storage().nbytes()} bytes; {fix}")
    viewed = sum(t.numel() * t.element_size() for t in tensors.values())
    stored = sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors.values()}.values())
    if viewed > stored:
        raise UserError(f"{file}: its tensors view {viewed} bytes of storages holding {stored}, so some share "
                        f"their storage; {fix}")


def read_config_json(path: Path) -> dict:
    """config.json beside the checkpoint: a UTF-8 JSON object of at most MAX_CONFIG_BYTES, "family" a string
    (the adapters type-check the fields they read)."""
    if not path.is_file():
        return {}
    meta = read_json_object(path, str(path), MAX_CONFIG_BYTES, "; a config.json is a small UTF-8 JSON object")
    if "family" in meta and not isinstance(meta["family"], str):
        raise UserError(f"{path}: \"family\" must be a family id string such as \"rwkv4\", got {meta['family']!r}")
    return meta


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
