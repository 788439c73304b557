"""The kernel-weights index: `model.onnx` + KERNEL_WEIGHTS_SUFFIX, beside an export whose weights are external.

It lists every initializer of the external data file that only rrwkv nodes read (MatMulW8's packed weights and
scales, WKV's parameters) with its dtype, shape and byte range, so the runtime can load them into huge pages
without the onnx package (docs/onnx.md, "Files"). The export writes it (export/kernel_weights.py); the runtime reads
it (runtime/backends/huge_pages.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError

KERNEL_WEIGHTS_SUFFIX = ".kernel-weights.json"  # model.onnx -> model.onnx.kernel-weights.json
KERNEL_WEIGHTS_FORMAT = 1


def index_path(model_path: Path) -> Path:
    return Path(str(model_path) + KERNEL_WEIGHTS_SUFFIX)


def write_index(model_path: Path, data: Path, entries: list[dict]) -> Path:
    """Write the index of `entries` ({name, dtype, shape, offset, length}) into external data file `data`."""
    path = index_path(model_path)
    path.write_text(json.dumps({"format_version": KERNEL_WEIGHTS_FORMAT, "data_file": data.name,
                                "data_bytes": data.stat().st_size, "tensors": entries}, indent=1) + "\n")
    return path


@dataclass(frozen=True)
class ExternalTensor:
    name: str
    dtype: np.dtype
    dims: tuple[int, ...]
    file: Path
    offset: int
    length: int


def read_index(model_path: Path) -> list[ExternalTensor]:
    """The tensors listed in the kernel-weights index beside `model_path` ([] without one), checked against the
    external data file they point into."""
    path = index_path(model_path)
    if not path.is_file():
        return []
    try:
        index = json.loads(path.read_text())
        if index["format_version"] != KERNEL_WEIGHTS_FORMAT:
            raise ValueError(f"format_version {index['format_version']}, expected {KERNEL_WEIGHTS_FORMAT}")
        data = model_path.parent / index["data_file"]
        tensors = [ExternalTensor(t["name"], np.dtype(t["dtype"]), tuple(t["shape"]), data, t["offset"], t["length"])
                   for t in index["tensors"]]
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{path} is not a valid kernel-weights index ({err}); re-export the model") from None
    size = data.stat().st_size if data.is_file() else None
    if size != index.get("data_bytes"):
        raise UserError(f"{path} describes {index.get('data_bytes')} bytes of {data.name}, the file has "
                        f"{size}; the index and the weights are from different exports, re-export the model")
    for t in tensors:
        if t.offset < 0 or t.offset + t.length > size:
            raise UserError(f"{path}: {t.name!r} lies outside {data.name}; re-export the model")
    return tensors


def checked_length(model_path: Path, t: ExternalTensor) -> int:
    expected = int(np.prod(t.dims, dtype=np.int64)) * t.dtype.itemsize
    if t.length != expected:
        raise UserError(f"{model_path}{KERNEL_WEIGHTS_SUFFIX}: {t.name!r} has {t.length} bytes, its shape "
                        f"{list(t.dims)} of {t.dtype} needs {expected}; re-export the model")
    return expected

