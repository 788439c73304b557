"""Config and state spec <-> ONNX metadata_props (a plain str -> str mapping).

Keys written into every exported model:
  rrwkv.format_version  the FORMAT_VERSION that wrote it
  rrwkv.config          config JSON (family + sizes)
  rrwkv.state_spec      state slots JSON (names, symbolic shapes, dtypes, initial values)
  rrwkv.precision       "fp32" (the dtype of activations and logits)
  rrwkv.transforms      JSON list of the one-time checkpoint transforms applied at export
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from .config import (
    ConfigError,
    Rwkv4Config,
    StateSpec,
    check_format_version,
    config_from_json,
    config_to_json,
)

KEY_FORMAT = "rrwkv.format_version"
KEY_CONFIG = "rrwkv.config"
KEY_STATE = "rrwkv.state_spec"
KEY_PRECISION = "rrwkv.precision"
KEY_TRANSFORMS = "rrwkv.transforms"


@dataclass(frozen=True)
class ModelInfo:
    config: Rwkv4Config
    state: StateSpec
    precision: str
    transforms: tuple[str, ...] = ()


def to_metadata(info: ModelInfo) -> dict[str, str]:
    return {
        KEY_FORMAT: str(info.config.format_version),
        KEY_CONFIG: config_to_json(info.config),
        KEY_STATE: json.dumps(info.state.to_dict(), sort_keys=True),
        KEY_PRECISION: info.precision,
        KEY_TRANSFORMS: json.dumps(list(info.transforms)),
    }


def from_metadata(props: dict[str, str], source: str = "model") -> ModelInfo:
    """Parse metadata_props; `source` names the file in error messages."""
    missing = [k for k in (KEY_FORMAT, KEY_CONFIG, KEY_STATE, KEY_PRECISION) if k not in props]
    if missing:
        raise ConfigError(f"{source}: metadata lacks {missing}; was it exported by `rrwkv-trt export`?")
    try:
        check_format_version(int(props[KEY_FORMAT]))
        config = config_from_json(props[KEY_CONFIG])
        state = StateSpec.from_dict(json.loads(props[KEY_STATE]))
        transforms = tuple(json.loads(props.get(KEY_TRANSFORMS, "[]")))
    except (ConfigError, ValueError) as err:
        raise ConfigError(f"{source}: {err}") from None
    return ModelInfo(config=config, state=state, precision=props[KEY_PRECISION], transforms=transforms)
