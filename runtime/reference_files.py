"""The reference folder's Polygraphy files: inputs.json (polygraphy.json) and outputs.json (RunResults).

The folder's layout and manifest are core/reference_format.py's. The PyTorch reference writes these files
(rrwkv_trt.reference.writer); `rrwkv-trt compare` and `polygraphy run --data-loader-script` read them. polygraphy
is a [dev] dependency, imported inside the functions that need it.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.reference_format import (
    INPUTS_FILE, LOADER_FILE, MANIFEST_FILE, OUTPUTS_FILE, REFERENCE_DIR, REFERENCE_FORMAT_VERSION, REFERENCE_RUNNER,
    Reference, read_reference, reference_feeds, reference_hint,
)

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
    """PyTorch's outputs, one {output name: array} per iteration."""
    pg = _polygraphy("reading a reference")
    with pg.G_LOGGER.verbosity(pg.G_LOGGER.WARNING):
        results = pg.RunResults.load(str(ref.folder / OUTPUTS_FILE))
    if len(results) != 1 or len(results[0][1]) != ref.iterations:
        raise UserError(f"{ref.folder / OUTPUTS_FILE} does not hold one runner with {ref.iterations} iterations; "
                        f"{reference_hint(ref.folder.parent)}")
    return [{name: np.asarray(value) for name, value in it.items()} for it in results[0][1]]


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
