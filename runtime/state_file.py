"""State files: a decode state saved by one backend and resumed on any other, as safetensors (no pickle).

One tensor per state input name (`state_in.0.att_aa`, ..., `state_in.pos`): float slots as F32 whatever the
model's precision (an fp16 export's float16 slots widen exactly, and narrow again on load), integer slots as I64.
`__metadata__`, every value a string (docs/onnx.md "State files"):
  format          "rrwkv-state"
  format_version  "1"
  fingerprint     the model's rrwkv.fingerprint: only exports of that checkpoint (any precision, any backend) may
                  resume the state
  family          the model's family id
  precision       the precision of the model that saved it (informational: precisions of one checkpoint share
                  their states)
  positions       a JSON list, per batch row: the tokens consumed since the initial state (RRWKV's pos slot holds
                  the same numbers)
  producer        rrwkv-trt's version and the session that saved it

A state file is hostile until validated: `load_state_file` bounds the header by the model's state spec before
reading it, checks the metadata, then every tensor's name, dtype, shape and byte range against the spec and the
file's size, and only then reads the tensors; their values (finite floats, positions in [0, MAX_POS)) are checked
before anything is returned. Every refusal is one UserError naming the file, what was wrong and what was expected.
"""
from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata as package_metadata
from pathlib import Path
from typing import BinaryIO

import numpy as np

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.files import replace_file
from rrwkv_trt.core.metadata import PRECISIONS, ModelInfo
from rrwkv_trt.core.state import StateSpec

from .safetensors_file import Header, encode, read_header, read_tensor
from .state import MAX_POS, State, check_names, few, validate_state

FORMAT = "rrwkv-state"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
KEYS = ("format", "format_version", "fingerprint", "family", "precision", "positions", "producer")
FILE_CODES = {"f": "F32", "i": "I64"}  # by numpy dtype kind: every float slot is stored as F32, int slots as I64
POSITION_SLOT = "pos"  # a sequence-level slot of this name counts tokens (RRWKV); it must equal the positions
MAX_BATCH = 4096  # the exporter's largest batch (export/onnx_export.py); bounds the header of a file of any batch
MAX_PRODUCER = 200
_NPZ_MAGIC = b"PK\x03\x04"  # the zip archives of state files before 2026-12-06
_REGENERATE = "regenerate it: rerun the prompt with --state-out (without --state-in)"
_NOT_OURS = "is it a state file written by --state-out?"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SavedState:
    """A state file's contents, validated: the state in the model's dtypes and the file's metadata."""

    state: State
    positions: tuple[int, ...]  # per batch row: tokens consumed since the initial state
    precision: str
    producer: str


def require_fingerprint(info: ModelInfo, model: str) -> str:
    """The model's fingerprint; UserError when it has none (exported before fingerprints were recorded), since no
    state could then be matched to the model it came from."""
    if info.fingerprint is None:
        raise UserError(f"{model} has no rrwkv.fingerprint (exported before 2026-12-06), so its states cannot be "
                        "told apart from another model's: re-export it with `rrwkv-trt export` (and rebuild its "
                        "engines) to save or load state files")
    return info.fingerprint


def save_state_file(path: str | os.PathLike, info: ModelInfo, state: State, positions: Sequence[int],
                    producer: str, model: str = "the model") -> None:
    """Write `state` of the model `info` as a state file, atomically (core/files.py: a temporary file renamed over
    `path`, so `--state-in X --state-out X` never loses X).

    Args:
        positions: [B] tokens each sequence has consumed since the initial state.
        producer: what saved it (`producer_name(session)`).
        model: what to call the model in messages.
    Raises:
        UserError when the model has no fingerprint, the state does not fit its spec or holds NaN/Inf, or the file
        cannot be written; nothing is written then.
    """
    fingerprint = require_fingerprint(info, model)
    name = os.fspath(path)
    batch = validate_state(info.state, state, source="the state to save")
    rows = _check_positions(positions, batch, "the state to save")
    _check_values(info.state, state, rows, "the state to save")
    tensors = {t.input_name: state[t.input_name].astype(_file_dtype(t.slot.dtype), copy=False)
               for t in info.state.tensors()}
    meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "fingerprint": fingerprint,
            "family": info.config.family, "precision": info.precision, "positions": json.dumps(list(rows)),
            "producer": producer[:MAX_PRODUCER]}
    try:
        replace_file(Path(name), encode(tensors, meta))
    except OSError as err:
        raise UserError(f"cannot write state file {name}: {err.strerror or err}") from None


def load_state_file(path: str | os.PathLike, info: ModelInfo, batch: int | None = None,
                    model: str = "the model") -> SavedState:
    """Read and validate a state file for the model `info`.

    Args:
        batch: the number of sequences expected; None takes the file's.
        model: what to call the model in messages.
    Returns:
        the state (in the spec's order and dtypes) with the file's positions, precision and producer.
    Raises:
        UserError naming the file and the first problem; nothing is returned then.
    """
    fingerprint = require_fingerprint(info, model)
    name = os.fspath(path)
    source = f"state file {name}"
    f, size = _open_regular(name, source)
    try:
        with f:
            if f.read(len(_NPZ_MAGIC)) == _NPZ_MAGIC:
                raise UserError(f"{source} is an .npz state file of an earlier rrwkv-trt, which recorded neither the "
                                f"model nor the position; that format is no longer read: {_REGENERATE}")
            f.seek(0)
            header = read_header(f, size, _max_header(info.state, batch), source, fix=_NOT_OURS)
            positions = _check_metadata(header, info, fingerprint, batch, model, source)
            _check_entries(header, info.state, len(positions), source)
            state = {t.input_name: read_tensor(f, header.tensors[t.input_name], source) for t in info.state.tensors()}
    except OSError as err:
        raise UserError(f"cannot read {source}: {err.strerror or err}") from None
    _check_values(info.state, state, positions, source)
    meta = header.metadata
    return SavedState(_narrowed(info.state, state, source), positions, meta["precision"], meta["producer"])


def producer_name(session: object) -> str:
    """rrwkv-trt's version and the session's class, with the custom-op library when ONNX Runtime ran the fused
    kernels: what a state file records as its producer."""
    try:
        version = package_metadata.version("rrwkv-trt")
    except package_metadata.PackageNotFoundError:  # a checkout on sys.path, not installed
        version = "(not installed)"
    library = getattr(session, "custom_ops_library", None)
    kernels = f" + {Path(library).name}" if library is not None else ""
    return f"rrwkv-trt {version} {type(session).__name__}{kernels}"


def _file_dtype(slot_dtype: str) -> np.dtype:
    return np.dtype("float32" if np.dtype(slot_dtype).kind == "f" else "int64")


def _open_regular(name: str, source: str) -> tuple[BinaryIO, int]:
    """The file opened for reading and its size, taken from the open file: a file replaced after a check cannot
    slip in. O_NONBLOCK: opening a FIFO would otherwise block until someone writes to it."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise UserError(f"{source} not found") from None
    except OSError as err:
        raise UserError(f"cannot read {source}: {err.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise UserError(f"{source} is not a regular file; pass a file written by --state-out")
    return os.fdopen(fd, "rb"), info.st_size


def _max_header(spec: StateSpec, batch: int | None) -> int:
    """The most header bytes a state file of `spec` and `batch` rows (None: up to MAX_BATCH) can need: its
    metadata, one entry per tensor (name, dtype, shape and two offsets, at most 160 more bytes) and a position of
    at most 15 digits per row."""
    names = sum(len(n) for n in spec.input_names())
    return 1024 + MAX_PRODUCER + names + 160 * len(spec.input_names()) + 20 * (MAX_BATCH if batch is None else batch)


def _check_metadata(header: Header, info: ModelInfo, fingerprint: str, batch: int | None, model: str,
                    source: str) -> tuple[int, ...]:
    """Format, version, model and position metadata against the model; returns the positions."""
    meta = header.metadata
    if meta.get("format") != FORMAT:
        raise UserError(f"{source} is not an rrwkv-trt state file (its __metadata__ format is "
                        f"{str(meta.get('format'))[:40]!r}, expected {FORMAT!r}); {_NOT_OURS}")
    if meta.get("format_version") not in [str(v) for v in SUPPORTED_VERSIONS]:
        raise UserError(f"{source} has format_version {str(meta.get('format_version'))[:20]!r}; this rrwkv-trt "
                        f"reads {list(SUPPORTED_VERSIONS)}: {_REGENERATE}, or use the rrwkv-trt that wrote it")
    missing, unknown = [k for k in KEYS if k not in meta], sorted(k[:40] for k in set(meta) - set(KEYS))
    if missing or unknown:
        problems = "; ".join(f"{what} {few(group)}" for what, group in (("missing", missing), ("unknown", unknown))
                             if group)
        raise UserError(f"{source}: __metadata__ keys do not match format version {FORMAT_VERSION} ({problems}); "
                        f"expected exactly {list(KEYS)}")
    if meta["fingerprint"] != fingerprint:
        raise UserError(f"{source} was saved from another model (family {meta['family'][:40]!r}, fingerprint "
                        f"{meta['fingerprint'][:16]!r}...), not from {model} (fingerprint {fingerprint[:16]}...): a "
                        "state resumes only on exports of the checkpoint that saved it; use that model or start "
                        "without --state-in")
    if meta["family"] != info.config.family:
        raise UserError(f"{source} has family {meta['family'][:40]!r} with {model}'s fingerprint, whose family is "
                        f"{info.config.family!r}; the file is damaged: {_REGENERATE}")
    if meta["precision"] not in PRECISIONS:
        raise UserError(f"{source} has precision {meta['precision'][:20]!r}, expected one of {list(PRECISIONS)}")
    if len(meta["producer"]) > MAX_PRODUCER:
        raise UserError(f"{source} has a producer of {len(meta['producer'])} characters, at most {MAX_PRODUCER}")
    return _check_positions(_parse_positions(meta["positions"], source), batch, source)


def _parse_positions(text: str, source: str) -> list:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, list):
        raise UserError(f"{source}: positions {text[:40]!r} is not a JSON list of ints, one per batch row")
    return value


def _check_positions(positions: Sequence[int], batch: int | None, source: str) -> tuple[int, ...]:
    """`positions` as ints: one per row (`batch` of them when given), each in [0, MAX_POS)."""
    rows = list(positions)
    if not 1 <= len(rows) <= MAX_BATCH or (batch is not None and len(rows) != batch):
        want = f"{batch}" if batch is not None else f"1 to {MAX_BATCH}"
        raise UserError(f"{source} has {len(rows)} positions (batch rows), expected {want}")
    for row, p in enumerate(rows):
        if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, np.integer)):
            raise UserError(f"{source}: position {str(p)[:20]!r} of batch row {row} is not an int")
        if not 0 <= p < MAX_POS:
            what = "is negative" if p < 0 else f"is not below {MAX_POS}"
            raise UserError(f"{source}: position {p} of batch row {row} {what}; positions count the tokens a "
                            f"sequence has consumed, in [0, {MAX_POS})")
    return tuple(int(p) for p in rows)


def _check_entries(header: Header, spec: StateSpec, batch: int, source: str) -> None:
    """Every tensor's name, dtype and shape against the spec for `batch` rows, before any is read."""
    check_names(spec, list(header.tensors), source)
    for t in spec.tensors():
        entry = header.tensors[t.input_name]
        code = FILE_CODES[np.dtype(t.slot.dtype).kind]
        if entry.code != code:
            raise UserError(f"{source}: state input {t.input_name} has dtype {entry.code}, expected {code} (state "
                            "files store float slots as F32 and integer slots as I64)")
        want = spec.concrete_shape(t.slot, batch)
        if entry.shape != want:
            raise UserError(f"{source}: state input {t.input_name} has shape {list(entry.shape)}, spec expects "
                            f"{list(want)}")


def _check_values(spec: StateSpec, state: State, positions: tuple[int, ...], source: str) -> None:
    """Floats finite, integer slots in [0, MAX_POS), a position slot equal to the positions: a NaN state would
    poison every later logit, and a position out of step would misplace RRWKV's mediums."""
    for t in spec.tensors():
        value = state[t.input_name]
        if value.dtype.kind == "f":
            if not np.isfinite(value).all():
                raise UserError(f"{source}: state input {t.input_name} holds NaN or Inf; save a state from a "
                                "healthy run or start without --state-in")
        elif value.size and not (value.min() >= 0 and value.max() < MAX_POS):
            raise UserError(f"{source}: state input {t.input_name} holds {value.min()}..{value.max()}; positions "
                            f"must be in [0, {MAX_POS})")
        elif t.layer is None and t.slot.name == POSITION_SLOT and value.tolist() != list(positions):
            raise UserError(f"{source}: state input {t.input_name} holds {value.tolist()[:4]}, but the positions "
                            f"are {list(positions)[:4]}; the two must agree")


def _narrowed(spec: StateSpec, state: State, source: str) -> State:
    """The file's F32 / I64 tensors in the spec's dtypes (float16 slots of an fp16 export)."""
    out = {}
    for t in spec.tensors():
        with np.errstate(over="ignore"):  # an overflow becomes Inf, refused below
            value = state[t.input_name].astype(t.slot.dtype, copy=False)
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise UserError(f"{source}: state input {t.input_name} holds values beyond the range of {t.slot.dtype}, "
                            "the model's dtype for it; the state cannot resume on this precision")
        out[t.input_name] = value
    return out
