"""The reference folder's Polygraphy files: inputs.json (polygraphy.json) and outputs.json (RunResults).

The folder's layout and manifest are core/reference_format.py's. The PyTorch reference writes these files
(rrwkv_trt.reference.writer); `rrwkv-trt compare` and `polygraphy run --data-loader-script` read them. polygraphy
is a [dev] dependency, imported inside the functions that need it.
"""
from __future__ import annotations

import base64
import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.reference_format import (
    INPUTS_FILE, LOADER_FILE, MANIFEST_FILE, OUTPUTS_FILE, REFERENCE_DIR, REFERENCE_FORMAT_VERSION, REFERENCE_RUNNER,
    Reference, check_outputs, read_reference, reference_feeds, reference_hint,
)

POLYGRAPHY_CLASS = "polygraphy_class"  # the key naming an object's class in Polygraphy's JSON
NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}

LOADER_SOURCE = '''"""The feeds of this PyTorch reference, for `polygraphy run --data-loader-script data_loader.py`.

Written by rrwkv_trt.reference.writer; it finds the reference through its own path.
"""
from pathlib import Path

from rrwkv_trt.runtime.reference_files import load_data as _load_data


def load_data():
    return _load_data(Path(__file__).resolve().parent)
'''


def write_folder(model_dir: str | os.PathLike, manifest: dict, feeds: list[dict[str, np.ndarray]],
                 outputs: list[dict[str, np.ndarray]]) -> Path:
    """Write MODEL/reference/ (replacing an older one) from PyTorch's feeds and outputs, one dict per iteration.

    `manifest` gets format_version here; it is written last, so a folder without it is incomplete."""
    pg = _polygraphy("writing a reference")
    model_dir = Path(model_dir)
    results = pg.RunResults()
    results.append((REFERENCE_RUNNER, [pg.IterationResult(outputs=o, runner_name=REFERENCE_RUNNER) for o in outputs]))
    final = model_dir / REFERENCE_DIR
    tmp = Path(tempfile.mkdtemp(prefix=f".{REFERENCE_DIR}.", dir=model_dir))
    try:
        tmp.chmod(0o755)
        with pg.G_LOGGER.verbosity(pg.G_LOGGER.WARNING):  # no "Saving ..." lines
            pg.save_json(feeds, str(tmp / INPUTS_FILE), description="rrwkv reference inputs")
            results.save(str(tmp / OUTPUTS_FILE))
        (tmp / LOADER_FILE).write_text(LOADER_SOURCE)
        manifest = {"format_version": REFERENCE_FORMAT_VERSION, **manifest}
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def read_outputs(ref: Reference) -> list[dict[str, np.ndarray]]:
    """PyTorch's outputs, one {output name: array} per iteration, checked against the manifest (`check_outputs`).

    A strict reader of what `write_folder` writes, not Polygraphy's decoder: that one builds whatever registered
    class a file names and allocates whatever shape an array header declares before reading the data. Memory: a
    few times the file's size."""
    path = ref.folder / OUTPUTS_FILE
    fix = f"; {reference_hint(ref.folder.parent)}"
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as err:
        raise UserError(f"cannot read {path} ({err.strerror or err}){fix}") from None
    except (ValueError, RecursionError) as err:  # not UTF-8, not JSON, or nested too deep for the parser
        raise UserError(f"{path} is not UTF-8 JSON ({type(err).__name__}: {err}){fix}") from None
    runs = _unwrap(data, "RunResults", "lst", list, str(path), fix)
    if len(runs) != 1 or type(runs[0]) is not list or len(runs[0]) != 2 or runs[0][0] != REFERENCE_RUNNER \
            or type(runs[0][1]) is not list or len(runs[0][1]) != ref.iterations:
        raise UserError(f"{path} does not hold one runner {REFERENCE_RUNNER!r} with {ref.iterations} iterations{fix}")
    outputs = [_iteration(it, f"{path} iteration {k}", fix) for k, it in enumerate(runs[0][1])]
    check_outputs(ref, outputs, path)
    return outputs


def _iteration(value: object, where: str, fix: str) -> dict[str, np.ndarray]:
    """One IterationResult's {output name: array}."""
    outputs = _unwrap(value, "IterationResult", "outputs", dict, where, fix)
    return {name: _array(_unwrap(_unwrap(lazy, "LazyArray", "values", dict, f"{where} {name}", fix), "ndarray",
                                 "array", str, f"{where} {name}", fix), f"{where} {name}", fix)
            for name, lazy in outputs.items()}


def _unwrap(value: object, polygraphy_class: str, key: str, kind: type, where: str, fix: str):
    """value[key] of a Polygraphy-encoded `polygraphy_class` object, which must be a `kind`."""
    if type(value) is not dict or value.get(POLYGRAPHY_CLASS) != polygraphy_class or type(value.get(key)) is not kind:
        raise UserError(f"{where}: expected a Polygraphy {polygraphy_class} object with a {kind.__name__} "
                        f"{key!r}{fix}")
    return value[key]


def _array(payload: str, where: str, fix: str) -> np.ndarray:
    """A base64 .npy payload (np.save's, as Polygraphy writes it), its header checked against the bytes that
    follow before the array is built."""
    try:
        raw = base64.b64decode(payload, validate=True)
        stream = io.BytesIO(raw)
        read_header = NPY_HEADER_READERS.get(np.lib.format.read_magic(stream))
        if read_header is None:
            raise ValueError("not an .npy version 1.0 or 2.0 header")
        shape, fortran_order, dtype = read_header(stream)
    except Exception as err:  # numpy's header parser raises whatever hostile bytes provoke (tokenize, syntax, ...)
        raise UserError(f"{where}: not a base64 .npy array ({err}){fix}") from None
    data = len(raw) - stream.tell()
    if dtype.kind not in "biuf" or min(shape, default=0) < 0 or math.prod(shape) * dtype.itemsize != data:
        raise UserError(f"{where}: its .npy header declares {dtype} {list(shape)} over {data} bytes of data; "
                        f"expected a numeric array whose size matches{fix}")
    return np.frombuffer(raw, dtype, offset=stream.tell()).reshape(shape, order="F" if fortran_order else "C").copy()


def load_data(reference_dir: str | os.PathLike | None = None) -> list[dict[str, np.ndarray]]:
    """The feeds of a reference folder, for `polygraphy run --data-loader-script` (see `reference_feeds`).

    Polygraphy calls the function with no argument: use MODEL/reference/data_loader.py:load_data, which passes
    its own folder here.
    """
    if reference_dir is None:
        raise UserError("load_data() needs the reference folder; pass --data-loader-script "
                        f"MODEL/{REFERENCE_DIR}/{LOADER_FILE}:load_data (written with the reference)")
    ref = read_reference(reference_dir)
    return reference_feeds(ref, read_outputs(ref))


def _polygraphy(task: str):
    """Polygraphy's RunResults, IterationResult, save_json and logger, or a UserError saying how to install it."""
    try:
        from polygraphy.comparator import IterationResult, RunResults
        from polygraphy.json import save_json
        from polygraphy.logger import G_LOGGER
    except ImportError as err:
        raise UserError(f"{task} needs polygraphy ({err}); pip install 'rrwkv-trt[dev]' (polygraphy==0.53.6)") from None
    return SimpleNamespace(RunResults=RunResults, IterationResult=IterationResult, save_json=save_json,
                           G_LOGGER=G_LOGGER)
