"""Config and state spec <-> ONNX metadata_props (a plain str -> str mapping).

Keys written into every exported model:
  rrwkv.format_version  the FORMAT_VERSION that wrote it
  rrwkv.config          config JSON (family + sizes)
  rrwkv.state_spec      state slots JSON (names, symbolic shapes, dtypes, initial values)
  rrwkv.precision       "fp32" or "fp16": the dtype of weights and activations (export/precision.py); the state
                        spec carries each slot's dtype, and logits are fp32 at both precisions. "int8" / "int4":
                        an fp32 graph whose MatMul weights are rrwkv::MatMulW8 (int8) or
                        com.microsoft::MatMulNBits (int4) nodes (export/quantize.py)
  rrwkv.transforms      JSON list of the one-time checkpoint transforms applied at export

The engine sidecar <engine>.json (EngineSidecar) carries the same config, state spec and precision, plus what
the engine was built with: TensorRT product and version, GPU compute capability, plugin library and its sha256.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .config import (
    ConfigError,
    Rwkv4Config,
    StateSpec,
    check_format_version,
    config_from_dict,
    config_from_json,
    config_to_json,
    parse_json_object,
)

EXTERNAL_DATA_SUFFIX = ".data"  # model.onnx -> model.onnx.data, written by export for large models
KEY_FORMAT = "rrwkv.format_version"
KEY_CONFIG = "rrwkv.config"
KEY_STATE = "rrwkv.state_spec"
KEY_PRECISION = "rrwkv.precision"
KEY_TRANSFORMS = "rrwkv.transforms"
PRECISIONS = ("fp32", "fp16", "int8", "int4")  # rrwkv.precision values (export/precision.py)
WEIGHT_ONLY_PRECISIONS = ("int8", "int4")  # ONNX Runtime CPU only: not TensorRT-buildable


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


# The engine sidecar <engine>.json: what `rrwkv-trt build` knew when it wrote the engine (runtime/engine.py).
SIDECAR_SUFFIX = ".json"


def sidecar_path(engine: str | os.PathLike) -> Path:
    """engine.plan -> engine.plan.json (the suffix is appended, so it never collides with config.json)."""
    return Path(os.fspath(engine) + SIDECAR_SUFFIX)


@dataclass(frozen=True)
class EngineSidecar:
    """The JSON written beside every engine.

    tensorrt_product is "TensorRT" or "TensorRT-RTX"; compute_capability is "major.minor" (e.g. "8.6") or None
    when the build could not tell; profiles maps "decode" / "prefill" to the optimisation-profile index.
    """

    info: ModelInfo
    tensorrt_product: str
    tensorrt_version: str
    compute_capability: str | None
    gpu_name: str | None
    plugin_library: str
    plugin_sha256: str
    max_batch: int
    max_seq: int
    profiles: dict[str, int]
    plugin_layers: tuple[str, ...]  # names of the rrwkv nodes, each checked to be a plugin layer
    engine_inspected: bool  # the built engine was deserialised and its plugin layers checked (GPU hosts)
    engine_bytes: int
    source_model: str
    source_sha256: str

    def to_dict(self) -> dict:
        return {
            "format_version": self.info.config.format_version,
            "config": self.info.config.to_dict(),
            "state_spec": self.info.state.to_dict(),
            "precision": self.info.precision,
            "transforms": list(self.info.transforms),
            "tensorrt": {"product": self.tensorrt_product, "version": self.tensorrt_version},
            "gpu": {"compute_capability": self.compute_capability, "name": self.gpu_name},
            "plugin_library": {"path": self.plugin_library, "sha256": self.plugin_sha256},
            "max_batch": self.max_batch,
            "max_seq": self.max_seq,
            "profiles": dict(self.profiles),
            "plugin_layers": list(self.plugin_layers),
            "engine_inspected": self.engine_inspected,
            "engine_bytes": self.engine_bytes,
            "source_model": {"path": self.source_model, "sha256": self.source_sha256},
        }

    @classmethod
    def from_dict(cls, data: dict, source: str = "sidecar") -> EngineSidecar:
        try:
            check_format_version(data["format_version"])
            info = ModelInfo(config=config_from_dict(data["config"]), state=StateSpec.from_dict(data["state_spec"]),
                             precision=str(data["precision"]), transforms=tuple(data.get("transforms", ())))
            return cls(
                info=info,
                tensorrt_product=str(data["tensorrt"]["product"]),
                tensorrt_version=str(data["tensorrt"]["version"]),
                compute_capability=data["gpu"]["compute_capability"],
                gpu_name=data["gpu"].get("name"),
                plugin_library=str(data["plugin_library"]["path"]),
                plugin_sha256=str(data["plugin_library"]["sha256"]),
                max_batch=int(data["max_batch"]),
                max_seq=int(data["max_seq"]),
                profiles={str(k): int(v) for k, v in data["profiles"].items()},
                plugin_layers=tuple(data["plugin_layers"]),
                engine_inspected=bool(data["engine_inspected"]),
                engine_bytes=int(data["engine_bytes"]),
                source_model=str(data["source_model"]["path"]),
                source_sha256=str(data["source_model"]["sha256"]),
            )
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise ConfigError(f"{source} is not an engine sidecar written by `rrwkv-trt build` "
                              f"({type(err).__name__}: {err}); rebuild the engine") from None


def write_sidecar(path: str | os.PathLike, sidecar: EngineSidecar) -> None:
    Path(path).write_text(json.dumps(sidecar.to_dict(), indent=2, sort_keys=True) + "\n")


def read_sidecar(engine: str | os.PathLike) -> EngineSidecar:
    """The sidecar of `engine` (engine.plan -> engine.plan.json); ConfigError naming the file if absent or bad."""
    path = sidecar_path(engine)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"engine {os.fspath(engine)} has no sidecar {path}; rebuild the engine with "
                          "`rrwkv-trt build` (it writes both)") from None
    except OSError as err:
        raise ConfigError(f"cannot read engine sidecar {path}: {err.strerror}") from None
    data = parse_json_object(text, f"engine sidecar {path}", "; rebuild the engine")
    return EngineSidecar.from_dict(data, source=f"engine sidecar {path}")


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
