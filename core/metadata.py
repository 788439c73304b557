"""Config and state spec <-> ONNX metadata_props (a plain str -> str mapping), and the files' digests.

Keys written into every exported model:
  rrwkv.format_version  the FORMAT_VERSION that wrote it
  rrwkv.config          config JSON (family + sizes)
  rrwkv.state_spec      state slots JSON (names, symbolic shapes, dtypes, initial values)
  rrwkv.precision       "fp32" or "fp16": the dtype of weights and activations (export/precision.py); the state
                        spec carries each slot's dtype, and logits are fp32 at both precisions. "w16" / "int8" /
                        "int4": an fp32 graph whose MatMul weights are rrwkv::MatMulWF16 (fp16 weights),
                        rrwkv::MatMulW8 (int8) or rrwkv::MatMulW4 (int4) nodes (export/quantize.py)
  rrwkv.transforms      JSON list of the one-time checkpoint transforms applied at export
  rrwkv.fingerprint     64 hex digits: sha256 of the source checkpoint's config and fp32 weights
                        (export/fingerprint.py), the same for every precision of one checkpoint; state files record
                        it (runtime/state_file.py). Absent in exports made before 2026-12-06.

The engine sidecar (core/sidecar.py) carries the same config, state spec, precision and fingerprint.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .config import ModelConfig, check_format_version, config_from_json, config_to_json
from .errors import ConfigError
from .names import EXTERNAL_DATA_SUFFIX
from .state import StateSpec

KEY_FORMAT = "rrwkv.format_version"
KEY_CONFIG = "rrwkv.config"
KEY_STATE = "rrwkv.state_spec"
KEY_PRECISION = "rrwkv.precision"
KEY_TRANSFORMS = "rrwkv.transforms"
KEY_FINGERPRINT = "rrwkv.fingerprint"
FINGERPRINT = re.compile(r"[0-9a-f]{64}")  # a lowercase hex sha256
PRECISIONS = ("fp32", "fp16", "w16", "int8", "int4")  # rrwkv.precision values (export/precision.py)
WEIGHT_ONLY_PRECISIONS = ("w16", "int8", "int4")  # ONNX Runtime CPU only: not TensorRT-buildable


@dataclass(frozen=True)
class ModelInfo:
    config: ModelConfig
    state: StateSpec
    precision: str
    transforms: tuple[str, ...] = ()
    fingerprint: str | None = None  # the checkpoint's (export/fingerprint.py); None: exported before 2026-12-06


def to_metadata(info: ModelInfo) -> dict[str, str]:
    props = {
        KEY_FORMAT: str(info.config.format_version),
        KEY_CONFIG: config_to_json(info.config),
        KEY_STATE: json.dumps(info.state.to_dict(), sort_keys=True),
        KEY_PRECISION: info.precision,
        KEY_TRANSFORMS: json.dumps(list(info.transforms)),
    }
    if info.fingerprint is not None:
        props[KEY_FINGERPRINT] = info.fingerprint
    return props


def from_metadata(props: dict[str, str], source: str = "model") -> ModelInfo:
    """Parse metadata_props; `source` names the file in error messages."""
    missing = [k for k in (KEY_FORMAT, KEY_CONFIG, KEY_STATE, KEY_PRECISION) if k not in props]
    if missing:
        raise ConfigError(f"{source}: metadata lacks {missing}; was it exported by `rrwkv-trt export`?")
    try:
        check_format_version(int(props[KEY_FORMAT]))
        config = config_from_json(props[KEY_CONFIG])
        state = StateSpec.from_dict(json.loads(props[KEY_STATE]))
        transforms = json.loads(props.get(KEY_TRANSFORMS, "[]"))
    except (ConfigError, ValueError) as err:
        raise ConfigError(f"{source}: {err}") from None
    if not isinstance(transforms, list) or not all(isinstance(t, str) for t in transforms):
        raise ConfigError(f"{source}: {KEY_TRANSFORMS} must be a JSON list of strings")
    if props[KEY_PRECISION] not in PRECISIONS:
        raise ConfigError(f"{source}: {KEY_PRECISION} is {props[KEY_PRECISION]!r}, expected one of {list(PRECISIONS)}")
    if state.n_layer != config.n_layer:
        raise ConfigError(f"{source}: the state spec has {state.n_layer} layers, the config {config.n_layer}")
    fingerprint = props.get(KEY_FINGERPRINT)
    if fingerprint is not None and not FINGERPRINT.fullmatch(fingerprint):
        raise ConfigError(f"{source}: {KEY_FINGERPRINT} must be 64 lowercase hex digits (a sha256), got "
                          f"{fingerprint[:70]!r}; re-export the model")
    return ModelInfo(config=config, state=state, precision=props[KEY_PRECISION], transforms=tuple(transforms),
                     fingerprint=fingerprint)


def model_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of an exported model: model.onnx, followed by its external-data file when it has one (exports
    of large models keep their weights in `<model>` + EXTERNAL_DATA_SUFFIX)."""
    data = Path(str(path) + EXTERNAL_DATA_SUFFIX)
    return _sha256([Path(path), *[data] * data.is_file()])


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file: sidecars and references record those of models, checkpoints and libraries."""
    return _sha256([Path(path)])


def _sha256(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
