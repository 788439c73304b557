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

from .config import read_versioned_json
from .errors import UserError
from .metadata import model_sha256
from .names import INPUT_IDS, LOGITS_FROM, MODEL_FILE
from .state import StateSpec

REFERENCE_FORMAT_VERSION = 1
REFERENCE_DIR = "reference"
MANIFEST_FILE = "reference.json"
INPUTS_FILE = "inputs.json"
OUTPUTS_FILE = "outputs.json"
LOADER_FILE = "data_loader.py"
REFERENCE_RUNNER = "pytorch"
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

    @property
    def iterations(self) -> int:
        return 1 + len(self.decode_ids)

    def describe(self) -> str:
        return (f"{self.iterations} iterations: a prefill of {len(self.prompt_ids)} tokens, then "
                f"{len(self.decode_ids)} decode steps, each fed PyTorch's state")


def read_reference(folder: str | os.PathLike, model_dir: str | os.PathLike | None = None) -> Reference:
    """The manifest of a reference folder; UserError saying how to write one if it is missing or stale."""
    folder = Path(folder)
    model_dir = folder.parent if model_dir is None else model_dir
    path = folder / MANIFEST_FILE
    manifest = read_versioned_json(path, "reference manifest", REFERENCE_FORMAT_VERSION,
                                   f"no PyTorch reference: {path} not found; {reference_hint(model_dir)}",
                                   f"; {reference_hint(model_dir)}")
    for name in (INPUTS_FILE, OUTPUTS_FILE):
        if not (folder / name).is_file():
            raise UserError(f"{folder} lacks {name}; {reference_hint(model_dir)}")
    try:
        spec = StateSpec.from_dict(manifest["state_spec"])
        return Reference(folder, manifest, spec, [int(i) for i in manifest["prompt_ids"]],
                         [int(i) for i in manifest["decode_ids"]])
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{path} is not a reference manifest ({type(err).__name__}: {err}); "
                        f"{reference_hint(model_dir)}") from None


def load_reference(model_dir: str | os.PathLike) -> Reference:
    """MODEL/reference, checked to belong to MODEL/model.onnx as it is now."""
    model_dir = Path(model_dir)
    ref = read_reference(model_dir / REFERENCE_DIR, model_dir)
    model = model_dir / MODEL_FILE
    if model.is_file() and model_sha256(model) != ref.manifest.get("model_sha256"):
        raise UserError(f"{ref.folder} was written for another {MODEL_FILE} (sha256 differs; re-exported since?); "
                        f"{reference_hint(model_dir)}")
    return ref


def reference_feeds(ref: Reference, outputs: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """The feed of every iteration, built from the state spec: iteration 0 starts from the spec's initial values,
    iteration k >= 1 takes the state_out.* of PyTorch's iteration k-1 as its state_in.* (matched by spec name)."""
    feeds = []
    extra = extra_feeds(ref.manifest.get("logits_from"))
    state = {t.input_name: np.full(ref.spec.concrete_shape(t.slot, 1), t.slot.init, dtype=t.slot.dtype)
             for t in ref.spec.tensors()}
    for k, ids in enumerate([ref.prompt_ids, *([t] for t in ref.decode_ids)]):
        if k:
            state = _chained_state(ref, outputs[k - 1], k - 1)
        feeds.append({INPUT_IDS: np.asarray([ids], dtype=np.int64), **extra, **state})
    return feeds


def _chained_state(ref: Reference, previous: dict[str, np.ndarray], iteration: int) -> dict[str, np.ndarray]:
    """PyTorch's state_out.* of `iteration` as the next iteration's state_in.*, checked against the spec."""
    where = f"{ref.folder / OUTPUTS_FILE} iteration {iteration}"
    missing = [t.output_name for t in ref.spec.tensors() if t.output_name not in previous]
    if missing:
        raise UserError(f"{where} lacks {missing[:4]}; {reference_hint(ref.folder.parent)}")
    for t in ref.spec.tensors():
        value, want = previous[t.output_name], ref.spec.concrete_shape(t.slot, 1)
        if value.shape != tuple(want) or value.dtype != np.dtype(t.slot.dtype):
            raise UserError(f"{where}: {t.output_name} is {value.dtype} {list(value.shape)}, the state spec expects "
                            f"{t.slot.dtype} {list(want)}; {reference_hint(ref.folder.parent)}")
    return {t.input_name: previous[t.output_name] for t in ref.spec.tensors()}


def extra_feeds(logits_from: bool) -> dict[str, np.ndarray]:
    """The inputs besides ids and state: logits_from = 0 (every position) for graphs that have it."""
    return {LOGITS_FROM: np.zeros(1, dtype=np.int64)} if logits_from else {}
