"""The safetensors container, written and read with numpy alone.

A file is an 8-byte little-endian header length N, N bytes of JSON header, then the tensors' little-endian bytes
back to back. The header is an object: "__metadata__" maps strings to strings, and every other key names a tensor
as {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, offsets counted from the end of the header
(github.com/huggingface/safetensors, "Format"). The runtime does not import the safetensors package (an
import-linter contract in pyproject.toml keeps it out), so this module reads and writes the format itself; the
tests check both directions against safetensors.numpy.

Reading follows parse, bound, validate: `read_header` refuses a header length beyond the caller's bound before
reading the header, then checks every entry's dtype, shape and byte range against the file's size (the ranges back
to back, no gap or overlap, covering the data exactly) before any tensor is read, so `read_tensor` never allocates
more than the file holds.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from rrwkv_trt.core.errors import UserError

LENGTH_BYTES = 8
METADATA = "__metadata__"
MAX_RANK = 8  # far beyond any state slot; keeps a hostile shape's product small to compute
DTYPES = {"BOOL": "|b1", "U8": "|u1", "I8": "|i1", "U16": "<u2", "I16": "<i2", "F16": "<f2", "U32": "<u4",
          "I32": "<i4", "F32": "<f4", "U64": "<u8", "I64": "<i8", "F64": "<f8"}
_CODES = {np.dtype(d).newbyteorder("="): code for code, d in DTYPES.items()}
_ENTRY_KEYS = {"dtype", "shape", "data_offsets"}


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of a validated header: its dtype code ("F32"), shape and absolute byte range in the file."""

    code: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(DTYPES[self.code])


@dataclass(frozen=True)
class Header:
    metadata: dict[str, str]
    tensors: dict[str, TensorEntry]  # in the header's order


def encode(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """The safetensors bytes of `tensors` (in the given order) and `metadata`.

    The header is padded with spaces to a multiple of 8 bytes, as safetensors pads it.
    """
    assert METADATA not in tensors
    entries, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        entries[name] = {"dtype": _CODES[array.dtype.newbyteorder("=")], "shape": list(array.shape),
                         "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header = json.dumps({METADATA: metadata, **entries}, separators=(",", ":")).encode()
    header += b" " * (-len(header) % LENGTH_BYTES)
    return len(header).to_bytes(LENGTH_BYTES, "little") + header + b"".join(blobs)


def read_header(f: BinaryIO, size: int, max_header: int, source: str, fix: str = "") -> Header:
    """The validated header of the safetensors file `f` (positioned at 0) of `size` bytes.

    Args:
        max_header: the most header bytes the caller expects; a longer header is refused before it is read.
        source: what to call the file in messages.
        fix: what to do when the file is not one of the kind expected (a header too long or not JSON).
    Raises:
        UserError naming `source`, what is wrong and what was expected.
    """
    tail = f"; {fix}" if fix else ""
    head = f.read(LENGTH_BYTES)
    if len(head) < LENGTH_BYTES:
        raise UserError(f"{source} has {size} bytes; a safetensors file starts with an 8-byte header length")
    length = int.from_bytes(head, "little")
    if length > max_header:
        raise UserError(f"{source} declares a header of {length} bytes; at most {max_header} are expected "
                        f"here{tail}")
    if LENGTH_BYTES + length > size:
        raise UserError(f"{source} declares a header of {length} bytes but has only {size - LENGTH_BYTES} after "
                        "the length field; the file is truncated")
    top = _parse_json(f.read(length), source, tail)
    data_start = LENGTH_BYTES + length
    metadata = _metadata(top.pop(METADATA, {}), source)
    tensors = {name: _entry(name, value, data_start, source) for name, value in top.items()}
    _check_layout(tensors, data_start, size, source)
    return Header(metadata, tensors)


def read_tensor(f: BinaryIO, entry: TensorEntry, source: str) -> np.ndarray:
    """The tensor `entry` of a header `read_header` validated, read from `f` into a new native-order array."""
    array = np.empty(entry.shape, entry.dtype)
    buffer = memoryview(array.reshape(-1).view(np.uint8))
    f.seek(entry.begin)
    done = 0
    while done < len(buffer):
        got = f.readinto(buffer[done:])
        if not got:  # the file shrank since its size was taken
            raise UserError(f"{source} ended at byte {entry.begin + done} inside a tensor; the file is truncated")
        done += got
    return array.astype(entry.dtype.newbyteorder("="), copy=False)


def _parse_json(raw: bytes, source: str, tail: str) -> dict:
    """The header's JSON object; duplicate keys are refused (json.loads would keep the last silently). `tail` ends
    the messages that say the file is not safetensors."""
    def no_duplicates(pairs: list[tuple[str, object]]) -> dict:
        seen = dict(pairs)
        if len(seen) != len(pairs):
            names = [k for k, _ in pairs]
            raise UserError(f"{source}: header key {next(k for k in names if names.count(k) > 1)!r} appears more "
                            "than once")
        return seen

    if not raw.startswith(b"{"):
        raise UserError(f"{source}: the header does not start with '{{'; not a safetensors file{tail}")
    try:
        top = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)
    except UserError:
        raise
    except UnicodeDecodeError as err:
        raise UserError(f"{source}: the header is not UTF-8 (byte {err.start})") from None
    except (ValueError, RecursionError) as err:  # RecursionError: a header of nested brackets
        raise UserError(f"{source}: the header is not valid JSON ({str(err)[:80]}){tail}") from None
    if not isinstance(top, dict):
        raise UserError(f"{source}: the header is not a JSON object")
    return top


def _metadata(value: object, source: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise UserError(f"{source}: {METADATA} must map strings to strings")
    return value


def _entry(name: str, value: object, data_start: int, source: str) -> TensorEntry:
    """One tensor's entry, its byte count checked against its dtype and shape."""
    where = f"{source}: tensor {name[:80]!r}"
    if not isinstance(value, dict) or set(value) != _ENTRY_KEYS:
        raise UserError(f"{where} must be an object with exactly the keys {sorted(_ENTRY_KEYS)}")
    code, shape, offsets = value["dtype"], value["shape"], value["data_offsets"]
    if not isinstance(code, str) or code not in DTYPES:
        raise UserError(f"{where} has dtype {str(code)[:20]!r}, expected one of {sorted(DTYPES)}")
    if (not isinstance(shape, list) or len(shape) > MAX_RANK
            or not all(type(d) is int and d >= 0 for d in shape)):
        raise UserError(f"{where} has shape {str(shape)[:80]}, expected a list of at most {MAX_RANK} ints >= 0")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
            and 0 <= offsets[0] <= offsets[1]):
        raise UserError(f"{where} has data_offsets {str(offsets)[:80]}, expected [begin, end] with 0 <= begin <= end")
    nbytes = math.prod(shape) * np.dtype(DTYPES[code]).itemsize  # Python ints: a hostile shape cannot overflow
    if offsets[1] - offsets[0] != nbytes:
        raise UserError(f"{where} spans {offsets[1] - offsets[0]} bytes; its shape {shape} of {code} needs {nbytes}")
    return TensorEntry(code, tuple(shape), data_start + offsets[0], data_start + offsets[1])


def _check_layout(tensors: dict[str, TensorEntry], data_start: int, size: int, source: str) -> None:
    """The tensors' ranges back to back from the end of the header to the end of the file: no gap, no overlap."""
    end = data_start
    for name, entry in sorted(tensors.items(), key=lambda item: (item[1].begin, item[1].end)):
        if entry.begin != end:
            what = "overlaps the tensor before it" if entry.begin < end else "leaves a gap after the tensor before it"
            raise UserError(f"{source}: tensor {name[:80]!r} at data bytes [{entry.begin - data_start}, "
                            f"{entry.end - data_start}) {what}; tensors must lie back to back")
        end = entry.end
    if end != size:
        raise UserError(f"{source}: the header's tensors hold {end - data_start} bytes, the file has "
                        f"{size - data_start} after the header; the file is "
                        f"{'truncated' if end > size else 'padded with unknown bytes'}")
