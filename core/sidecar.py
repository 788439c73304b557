"""The engine sidecar <engine>.json: what `rrwkv-trt build` knew when it wrote a TensorRT engine.

It carries the model's config, state spec and precision (core/metadata.py), plus what the engine was built with:
TensorRT product and version, GPU compute capability, plugin library and its sha256.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .config import check_format_version, config_from_dict, parse_json_object
from .errors import ConfigError
from .metadata import ModelInfo
from .state import StateSpec

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
