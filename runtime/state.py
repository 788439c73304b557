"""Recurrent-state buffers from a StateSpec: allocate, validate, save and load (numpy only).

A state is a dict keyed by ONNX input names (`state_in.{layer}.{slot}`, `state_in.{slot}`), so the
state a session returns can be fed straight back as the next call's input.

A state file is hostile until validated (`load_state`): its zip directory and every member's .npy header are checked
against the spec before any data is read, so a load allocates no more than the file's own size and the state the
spec describes for the batch; the values are checked before the state is returned.
"""
from __future__ import annotations

import collections
import io
import math
import os
import stat
import zipfile
import zlib
from pathlib import Path

import numpy as np
from numpy.lib import format as npy

from rrwkv_trt.core.state import BATCH, StateSpec, StateTensor
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.files import replace_file

State = dict[str, np.ndarray]

# Integer slots count tokens (RRWKV's pos). 2^48 tokens is centuries of decoding, and leaves int64 room for any call
# to add its tokens without overflow.
MAX_POS = 2**48
_NPY = ".npy"
_NPY_HEADERS = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
# What a damaged zip makes zipfile, zlib or numpy raise (BadZipFile for a bad CRC, EOFError or ValueError for a
# truncated member, NotImplementedError for unsupported zip features).
_ZIP_ERRORS = (OSError, EOFError, ValueError, zipfile.BadZipFile, NotImplementedError, zlib.error)


def allocate_state(spec: StateSpec, batch: int) -> State:
    """Fresh state for `batch` sequences, every slot filled with its initial value (att_pp = -1e30).

    Args:
        spec: the model's state spec.
        batch: number of sequences B >= 1.
    Returns:
        {input name: array of the slot's concrete shape (e.g. [B, C]) and dtype}.
    """
    if not isinstance(batch, (int, np.integer)) or batch < 1:
        raise UserError(f"batch size must be an int >= 1, got {batch!r}")
    return {
        t.input_name: np.full(spec.concrete_shape(t.slot, int(batch)), t.slot.init, dtype=t.slot.dtype)
        for t in spec.tensors()
    }


def validate_state(spec: StateSpec, state: State, batch: int | None = None, source: str = "state") -> int:
    """Check names, shapes and dtypes of `state` against `spec` for `batch` sequences.

    Args:
        spec: the model's state spec.
        state: {input name: array}.
        batch: expected B; None takes it from the first tensor.
        source: what to call the state in messages (e.g. a file name).
    Returns:
        the batch size B.
    Raises:
        UserError naming the first offending tensor, what it is and what the spec expects.
    """
    if not isinstance(state, dict):
        raise UserError(f"{source} must be a dict of state_in.* arrays, got {type(state).__name__}")
    where = "" if source == "state" else f"{source}: "
    _check_names(spec, list(state), source)
    for t in spec.tensors():
        value = state[t.input_name]
        if not isinstance(value, np.ndarray):
            raise UserError(f"{where}state input {t.input_name} must be a numpy array, got {type(value).__name__}")
        batch = _batch_from(t, value.shape, batch)
        _check_shape_dtype(spec, t, value.shape, value.dtype, 1 if batch is None else batch, where)
    return 1 if batch is None else batch


def save_state(path: str | os.PathLike, spec: StateSpec, state: State) -> None:
    """Write a validated state to an .npz file (one array per input name), atomically.

    The state goes to a temporary file in the same folder, renamed over `path` only once complete: a failed write
    leaves `path` as it was, even when it is the file the state was loaded from (--state-in X --state-out X).
    """
    validate_state(spec, state)
    try:
        buffer = io.BytesIO()  # a state is small; a file object also stops numpy from appending ".npz"
        np.savez(buffer, **state)
        replace_file(Path(path), buffer.getvalue())
    except OSError as err:
        raise UserError(f"cannot write state file {os.fspath(path)}: {err.strerror}") from None


def load_state(path: str | os.PathLike, spec: StateSpec, batch: int | None = None) -> State:
    """Read an .npz state file written by `save_state` (or np.savez) and validate it against `spec`.

    The zip directory (member names, sizes, compression) and every .npy header (version, dtype, shape) are checked
    before any data is read; then every float must be finite and every position in [0, MAX_POS). Members must be
    stored uncompressed, as np.savez writes them, so that no member can inflate beyond the file's size.

    Args:
        path: the .npz file.
        spec: the model's state spec.
        batch: expected B; None takes it from the file.
    Returns:
        {input name: array}, in the spec's order.
    Raises:
        UserError naming the file, the member and what was expected.
    """
    name = os.fspath(path)
    source = f"state file {name}"
    size = _regular_file_size(name, source)
    try:
        with zipfile.ZipFile(name) as zf:
            members = _check_directory(zf, spec, size, source)
            _check_headers(zf, members, spec, batch, source)
            state = {n: _read_array(zf, members[n]) for n in spec.input_names()}
    except UserError:
        raise
    except _ZIP_ERRORS as err:
        raise UserError(f"{source} is not an .npz written by save_state (--state-out): {err}") from None
    _check_values(spec, state, source)
    return state


def _regular_file_size(name: str, source: str) -> int:
    # stat before open: opening a FIFO would block until someone writes to it
    try:
        info = os.stat(name)
    except FileNotFoundError:
        raise UserError(f"{source} not found") from None
    except OSError as err:
        raise UserError(f"cannot read {source}: {err.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{source} is not a regular file; pass an .npz written by --state-out")
    return info.st_size


def _check_directory(zf: zipfile.ZipFile, spec: StateSpec, size: int, source: str) -> dict[str, zipfile.ZipInfo]:
    """The zip directory against the spec and the file's real size. Returns: {input name: member}."""
    infos = zf.infolist()
    names = [info.filename.removesuffix(_NPY) for info in infos]
    twice = sorted(n for n, count in collections.Counter(names).items() if count > 1)  # linear in the members
    if twice:
        raise UserError(f"{source}: members {_few(twice)} appear more than once; save the state again")
    _check_names(spec, names, source)
    for info in infos:
        member = f"{source}: member {info.filename}"
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:  # bit 0: encrypted
            raise UserError(f"{member} is compressed or encrypted; state files are stored uncompressed, as "
                            "--state-out and np.savez write them")
        if info.compress_size != info.file_size:
            raise UserError(f"{member} is stored in {info.compress_size} bytes but declares {info.file_size}; the "
                            "file is damaged")
        if info.header_offset + info.compress_size > size:
            raise UserError(f"{member} claims {info.compress_size} bytes at offset {info.header_offset}, past the end "
                            f"of the file ({size} bytes); the file is truncated")
    return dict(zip(names, infos))


def _check_headers(zf: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], spec: StateSpec, batch: int | None,
                   source: str) -> None:
    """Every member's .npy header and size against the spec for `batch` (None: the file's first), before any data."""
    for t in spec.tensors():
        info = members[t.input_name]
        where = f"{source}: member {info.filename}"
        shape, dtype, header_size = _read_header(zf, info, where)
        batch = _batch_from(t, shape, batch)
        if batch is not None and batch < 1:
            raise UserError(f"{where} has batch size {batch}; a state holds at least one sequence")
        _check_shape_dtype(spec, t, shape, dtype, 1 if batch is None else batch, f"{source}: ")
        want = header_size + dtype.itemsize * math.prod(shape)  # Python ints: a hostile shape cannot overflow
        if info.file_size != want:
            raise UserError(f"{where} holds {info.file_size} bytes; its header {list(shape)} {dtype} needs {want}")


def _read_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """A member's .npy header, read without its data. Returns: shape, dtype and the header's size in bytes."""
    with zf.open(info) as f:
        try:
            version = npy.read_magic(f)
            if version not in _NPY_HEADERS:
                raise ValueError(f"format {version[0]}.{version[1]}, expected 1.0 or 2.0 (np.save)")
            shape, _, dtype = _NPY_HEADERS[version](f)
        except ValueError as err:  # numpy's messages say what is wrong with the header
            raise UserError(f"{where} is not a readable .npy array: {err}") from None
        return shape, dtype, f.tell()


def _read_array(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    with zf.open(info) as f:
        return npy.read_array(f, allow_pickle=False)


def _check_values(spec: StateSpec, state: State, source: str) -> None:
    """Floats finite, positions in [0, MAX_POS): a NaN state would poison every later logit."""
    for t in spec.tensors():
        value = state[t.input_name]
        if np.issubdtype(value.dtype, np.floating):
            if not np.isfinite(value).all():
                raise UserError(f"{source}: state input {t.input_name} holds NaN or Inf; save a state from a "
                                "healthy run or start without --state-in")
        elif value.size and not (value.min() >= 0 and value.max() < MAX_POS):
            raise UserError(f"{source}: state input {t.input_name} holds {value.min()}..{value.max()}; positions "
                            f"must be in [0, {MAX_POS})")


def _check_names(spec: StateSpec, names: list[str], source: str) -> None:
    expected, found = spec.input_names(), set(names)  # sets: a hostile zip may list many thousands of members
    missing = [n for n in expected if n not in found]
    unknown = sorted(found - set(expected))
    if missing or unknown:
        problems = "; ".join(f"{what} {_few(group)}" for what, group in (("missing", missing), ("unexpected", unknown))
                             if group)
        raise UserError(
            f"{source} does not match the model's state spec ({problems}); "
            f"expected the {len(expected)} inputs {_few(expected)}"
        )


def _batch_from(t: StateTensor, shape: tuple[int, ...], batch: int | None) -> int | None:
    """`batch`, or the first tensor's batch dim when None."""
    if batch is None and BATCH in t.slot.shape and len(shape) == len(t.slot.shape):
        return int(shape[t.slot.shape.index(BATCH)])
    return batch


def _check_shape_dtype(spec: StateSpec, t: StateTensor, shape: tuple[int, ...], dtype: np.dtype, batch: int,
                       where: str) -> None:
    want = list(spec.concrete_shape(t.slot, batch))
    if list(shape) != want:
        raise UserError(f"{where}state input {t.input_name} has shape {list(shape)}, spec expects {want}")
    if dtype != np.dtype(t.slot.dtype):
        raise UserError(f"{where}state input {t.input_name} has dtype {dtype}, spec expects {t.slot.dtype}")


def _few(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return f"[{shown}, ... ({len(names)} in all)]" if len(names) > limit else f"[{shown}]"
