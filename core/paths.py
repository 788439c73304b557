"""Where things are: the source checkout this package runs from, and an exported model's file.

The editable install maps rrwkv_trt.core to <repo>/core, so the repository root is this file's grandparent; the
runtime looks for the libraries `make plugins` built under <repo>/build and the bench for the shipped model there.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError
from .names import MODEL_FILE

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = REPO_ROOT / "build"  # `make plugins` output: librrwkv_ort_ops.so, librrwkv_trt_plugins*.so
SHIPPED_MODEL = REPO_ROOT / "models" / "rrwkv-pystdlib"


def resolve_model_path(model: str | os.PathLike) -> Path:
    """A model folder written by `rrwkv-trt export` (-> MODEL/model.onnx) or a .onnx file; UserError if absent."""
    path = Path(model)
    if path.is_dir():
        path = path / MODEL_FILE
        if not path.is_file():
            raise UserError(f"{path.parent} has no {MODEL_FILE}; export a model into it with `rrwkv-trt export`")
    elif not path.is_file():
        raise UserError(f"model {path} not found; pass a model folder from `rrwkv-trt export` or a .onnx file")
    return path
