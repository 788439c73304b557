"""The kernel-weights index: `model.onnx` + KERNEL_WEIGHTS_SUFFIX, beside an export whose weights are external.

It lists every initializer of the external data file that only rrwkv nodes read (MatMulW8's packed weights and
scales, WKV's parameters) with its dtype, shape and byte range, so the runtime can load them into huge pages
without the onnx package (docs/onnx.md, "Files"). The export writes it (export/kernel_weights.py); the runtime reads
it (runtime/backends/huge_pages.py).
"""
from __future__ import annotations

import json
import math
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


# The index is hostile until checked (docs/conventions.md): nothing is allocated or read from the data file before
# every field has its type and range and every byte range lies inside the data file, without overlap.
MAX_INDEX_BYTES = 16 << 20  # an index holds ~150 bytes per tensor: room for 100k tensors, and a bound on memory
MAX_RANK = 8
# The dtypes an initializer of an rrwkv node can have, by the names write_index records (str(np.dtype)); anything
# else (object, structured, byte-swapped dtypes) could not be viewed safely from raw bytes.
DTYPES = ("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float16", "float32",
          "float64")
_FIX = "; re-export the model"


def read_index(model_path: Path) -> list[ExternalTensor]:
    """The tensors listed in the kernel-weights index beside `model_path` ([] without one), sorted by offset and
    checked against the external data file they point into: a plain file in the model's folder, which holds every
    tensor's byte range [offset, offset + length), length the size of its shape and dtype, and no two overlap."""
    path = index_path(model_path)
    if not path.is_file():
        return []
    index = _read_json(path)
    if type(index.get("format_version")) is not int or index["format_version"] != KERNEL_WEIGHTS_FORMAT:
        raise UserError(f"{path} is not a valid kernel-weights index (format_version "
                        f"{index.get('format_version')!r}, expected {KERNEL_WEIGHTS_FORMAT}){_FIX}")
    data = _data_file(path, model_path.parent, index.get("data_file"))
    size = data.stat().st_size
    if index.get("data_bytes") != size or type(index.get("data_bytes")) is not int:
        raise UserError(f"{path} describes {index.get('data_bytes')!r} bytes of {data.name}, the file has "
                        f"{size}; the index and the weights are from different exports{_FIX}")
    entries = index.get("tensors")
    if not isinstance(entries, list):
        raise UserError(f"{path} is not a valid kernel-weights index (field 'tensors' must be a list){_FIX}")
    tensors = sorted((_tensor(path, data, i, e) for i, e in enumerate(entries)), key=lambda t: t.offset)
    _check_layout(path, data, size, tensors)
    return tensors


def _read_json(path: Path) -> dict:
    if path.stat().st_size > MAX_INDEX_BYTES:
        raise UserError(f"{path} has {path.stat().st_size} bytes, more than a kernel-weights index can "
                        f"({MAX_INDEX_BYTES}){_FIX}")
    try:
        index = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as err:  # invalid JSON or UTF-8; nesting deeper than the parser goes
        raise UserError(f"{path} is not a valid kernel-weights index ({err}){_FIX}") from None
    if not isinstance(index, dict):
        raise UserError(f"{path} must hold a JSON object, got {type(index).__name__}{_FIX}")
    return index


def _data_file(path: Path, folder: Path, name: object) -> Path:
    """The data file `name` of index `path`: a plain file name inside the model's `folder` (not a path out of it,
    nor a link that leads out of it)."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise UserError(f"{path}: data_file {name!r} must be a plain file name inside {folder}{_FIX}")
    data = folder / name
    if not data.resolve().is_relative_to(folder.resolve()):
        raise UserError(f"{path}: data_file {name!r} is a link to {data.resolve()}, outside {folder}{_FIX}")
    if not data.is_file():
        raise UserError(f"{path}: data_file {name!r} is not a file in {folder}{_FIX}")
    return data


def _tensor(path: Path, data: Path, i: int, entry: object) -> ExternalTensor:
    """Entry `i` of the index's tensors, each field of its type and range (lengths are checked by _check_layout)."""
    where = f"{path}: tensors[{i}]"
    if not isinstance(entry, dict):
        raise UserError(f"{where} must be an object with name, dtype, shape, offset and length{_FIX}")
    name, dtype, shape = entry.get("name"), entry.get("dtype"), entry.get("shape")
    offset, length = entry.get("offset"), entry.get("length")
    if not isinstance(name, str) or not name:
        raise UserError(f"{where}: name {name!r} must be a non-empty string{_FIX}")
    if dtype not in DTYPES:
        raise UserError(f"{where} ({name!r}): dtype {dtype!r} is not one of {list(DTYPES)}{_FIX}")
    if (not isinstance(shape, list) or len(shape) > MAX_RANK
            or not all(type(d) is int and d >= 0 for d in shape)):
        raise UserError(f"{where} ({name!r}): shape {shape!r} must be a list of at most {MAX_RANK} ints >= 0{_FIX}")
    for field, value in (("offset", offset), ("length", length)):
        if type(value) is not int or value < 0:
            raise UserError(f"{where} ({name!r}): {field} {value!r} must be an int >= 0{_FIX}")
    return ExternalTensor(name, np.dtype(dtype), tuple(shape), data, offset, length)


def _check_layout(path: Path, data: Path, size: int, tensors: list[ExternalTensor]) -> None:
    """Unique names; each length what its shape and dtype need; byte ranges inside the file, in offset order
    without overlap (so all of them together hold at most the file's size)."""
    names = set()
    end = 0
    for t in tensors:
        if t.name in names:
            raise UserError(f"{path}: {t.name!r} is listed twice{_FIX}")
        names.add(t.name)
        expected = math.prod(t.dims) * t.dtype.itemsize  # Python ints: no overflow whatever the shape
        if t.length != expected:
            raise UserError(f"{path}: {t.name!r} has {t.length} bytes, its shape {list(t.dims)} of {t.dtype} "
                            f"needs {expected}{_FIX}")
        if t.offset + t.length > size:
            raise UserError(f"{path}: {t.name!r} lies outside {data.name} (bytes [{t.offset}, "
                            f"{t.offset + t.length}) of {size}){_FIX}")
        if t.offset < end:
            raise UserError(f"{path}: {t.name!r} overlaps the tensor before it in {data.name} (starts at byte "
                            f"{t.offset}, before {end}){_FIX}")
        end = t.offset + t.length
