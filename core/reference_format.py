"""The PyTorch reference folder MODEL/reference/: its files, manifest, and the feeds built from them (stdlib + numpy).

`python -m rrwkv_trt.reference.writer CHECKPOINT MODEL` writes it (the only torch step); `rrwkv-trt compare` and
`polygraphy run --data-loader-script` read it:
  reference.json  manifest: prompt and decode ids, state spec, precision, sha256 of the model.onnx it belongs to
  inputs.json     the feed of every iteration (polygraphy.json.save_json): iteration 0 prefills the prompt from the
                  spec's initial state; iteration k >= 1 feeds decode token k with PyTorch's state after iteration k-1
  outputs.json    PyTorch's outputs of every iteration as Polygraphy RunResults (runner "pytorch")
  data_loader.py  `load_data()` for `polygraphy run --data-loader-script`, bound to its own folder

Polygraphy's comparator treats every iteration on its own, so each feed carries its state (docs/conventions.md §3.13).
inputs.json and outputs.json are Polygraphy's own file formats: runtime/reference_files.py reads and writes them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import config_from_dict, read_versioned_json
from .errors import ConfigError, UserError
from .metadata import model_sha256
from .names import INPUT_IDS, LOGITS, LOGITS_FROM, MODEL_FILE
from .state import StateSpec

REFERENCE_FORMAT_VERSION = 1
REFERENCE_DIR = "reference"
MANIFEST_FILE = "reference.json"
INPUTS_FILE = "inputs.json"
OUTPUTS_FILE = "outputs.json"
LOADER_FILE = "data_loader.py"
REFERENCE_RUNNER = "pytorch"
MAX_REFERENCE_TOKENS = 1 << 16  # bound on the manifest's prompt and decode lengths (the writer's default: 40 + 24)
_JSON_NAMES = {dict: "object", list: "array", bool: "boolean", str: "string"}


def reference_hint(model_dir: str | os.PathLike) -> str:
    return (f"write it with `python -m rrwkv_trt.reference.writer CHECKPOINT {os.fspath(model_dir)}` (CHECKPOINT: "
            "what the model was exported from; needs torch and polygraphy: pip install 'rrwkv-trt[export,dev]'), or "
            "run `make compare` for the shipped model")


@dataclass(frozen=True)
class Reference:
    """A reference folder's manifest. Iteration 0 is the prefill of `prompt_ids`, iteration k the k-th decode id."""

    folder: Path
    manifest: dict
    spec: StateSpec
    prompt_ids: list[int]
    decode_ids: list[int]
    vocab_size: int

    @property
    def iterations(self) -> int:
        return 1 + len(self.decode_ids)

    def describe(self) -> str:
        return (f"{self.iterations} iterations: a prefill of {len(self.prompt_ids)} tokens, then "
                f"{len(self.decode_ids)} decode steps, each fed PyTorch's state")


def read_reference(folder: str | os.PathLike, model_dir: str | os.PathLike | None = None) -> Reference:
    """The manifest of a reference folder, every field checked; UserError saying how to write one if it is
    missing, stale or malformed."""
    folder = Path(folder)
    model_dir = folder.parent if model_dir is None else model_dir
    path = folder / MANIFEST_FILE
    fix = f"; {reference_hint(model_dir)}"
    manifest = read_versioned_json(path, "reference manifest", REFERENCE_FORMAT_VERSION,
                                   f"no PyTorch reference: {path} not found{fix}", fix)
    for name in (INPUTS_FILE, OUTPUTS_FILE):
        if not (folder / name).is_file():
            raise UserError(f"{folder} lacks {name}{fix}")
    config_data, spec_data = (_field(manifest, key, dict, path, fix) for key in ("config", "state_spec"))
    try:
        config, spec = config_from_dict(config_data), StateSpec.from_dict(spec_data)
    except ConfigError as err:
        raise UserError(f"{path}: {err}{fix}") from None
    if spec.n_layer != config.n_layer:
        raise UserError(f"{path}: state_spec has n_layer {spec.n_layer}, its config {config.n_layer}{fix}")
    for key, kind in (("logits_from", bool), ("model_sha256", str)):
        _field(manifest, key, kind, path, fix)
    return Reference(folder, manifest, spec, _token_ids(manifest, "prompt_ids", 1, config.vocab_size, path, fix),
                     _token_ids(manifest, "decode_ids", 0, config.vocab_size, path, fix), config.vocab_size)


def _field(manifest: dict, key: str, kind: type, path: Path, fix: str):
    """manifest[key], which must be a `kind` (exactly: a bool is no int)."""
    value = manifest.get(key)
    if type(value) is not kind:
        raise UserError(f"{path}: {key!r} must be a JSON {_JSON_NAMES[kind]}, got {type(value).__name__}{fix}")
    return value


def _token_ids(manifest: dict, key: str, at_least: int, vocab_size: int, path: Path, fix: str) -> list[int]:
    """manifest[key]: between `at_least` and MAX_REFERENCE_TOKENS token ids, each an int in [0, vocab_size)."""
    ids = _field(manifest, key, list, path, fix)
    if not at_least <= len(ids) <= MAX_REFERENCE_TOKENS:
        raise UserError(f"{path}: {key!r} holds {len(ids)} ids, expected {at_least} to {MAX_REFERENCE_TOKENS}{fix}")
    bad = [i for i in ids if type(i) is not int or not 0 <= i < vocab_size]
    if bad:
        raise UserError(f"{path}: {key!r} holds {bad[0]!r}, expected token ids in [0, {vocab_size}){fix}")
    return ids


def load_reference(model_dir: str | os.PathLike) -> Reference:
    """MODEL/reference, checked to belong to MODEL/model.onnx as it is now."""
    model_dir = Path(model_dir)
    ref = read_reference(model_dir / REFERENCE_DIR, model_dir)
    model = model_dir / MODEL_FILE
    if model.is_file() and model_sha256(model) != ref.manifest.get("model_sha256"):
        raise UserError(f"{ref.folder} was written for another {MODEL_FILE} (sha256 differs; re-exported since?); "
                        f"{reference_hint(model_dir)}")
    return ref


def check_outputs(ref: Reference, outputs: list[dict[str, np.ndarray]], source: Path) -> None:
    """UserError unless `outputs` (PyTorch's, as read from `source`) hold one dict per iteration with exactly the
    logits, float32 [1, T, vocab_size] (T: the prompt's length, then 1), and the spec's state_out.* at their dtypes
    and batch-1 shapes. The spec's n_layer comes from the manifest, so the counts are compared before its tensors
    are listed."""
    fix = f"; {reference_hint(ref.folder.parent)}"
    per_layer = sum(slot.per_layer for slot in ref.spec.slots)
    count = 1 + ref.spec.n_layer * per_layer + len(ref.spec.slots) - per_layer
    if len(outputs) != ref.iterations or any(len(out) != count for out in outputs):
        raise UserError(f"{source} does not hold {ref.iterations} iterations of {count} outputs each (the logits and "
                        f"the state spec's state_out.*){fix}")
    state = {t.output_name: (t.slot.dtype, ref.spec.concrete_shape(t.slot, 1)) for t in ref.spec.tensors()}
    for k, out in enumerate(outputs):
        expected = state | {LOGITS: ("float32", (1, len(ref.prompt_ids) if k == 0 else 1, ref.vocab_size))}
        for name, value in out.items():
            if name not in expected:
                raise UserError(f"{source} iteration {k}: unexpected output {name!r}; expected {LOGITS} and the "
                                f"state spec's state_out.*{fix}")
            dtype, shape = expected[name]
            if value.dtype != np.dtype(dtype) or value.shape != shape:
                raise UserError(f"{source} iteration {k}: {name} is {value.dtype} {list(value.shape)}, expected "
                                f"{dtype} {list(shape)}{fix}")


def reference_feeds(ref: Reference, outputs: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """The feed of every iteration, built from the state spec: iteration 0 starts from the spec's initial values,
    iteration k >= 1 takes the state_out.* of PyTorch's iteration k-1 as its state_in.* (matched by spec name).

    `outputs` as runtime/reference_files.py's read_outputs returns them: checked by `check_outputs`, so the initial
    state's shapes are those of arrays the file holds."""
    feeds = []
    extra = extra_feeds(ref.manifest["logits_from"])
    state = {t.input_name: np.full(ref.spec.concrete_shape(t.slot, 1), t.slot.init, dtype=t.slot.dtype)
             for t in ref.spec.tensors()}
    for k, ids in enumerate([ref.prompt_ids, *([t] for t in ref.decode_ids)]):
        if k:
            state = {t.input_name: outputs[k - 1][t.output_name] for t in ref.spec.tensors()}
        feeds.append({INPUT_IDS: np.asarray([ids], dtype=np.int64), **extra, **state})
    return feeds


def extra_feeds(logits_from: bool) -> dict[str, np.ndarray]:
    """The inputs besides ids and state: logits_from = 0 (every position) for graphs that have it."""
    return {LOGITS_FROM: np.zeros(1, dtype=np.int64)} if logits_from else {}
