"""The engine sidecar <engine>.json: what `rrwkv-trt build` knew when it wrote a TensorRT engine.

It carries the model's config, state spec, precision and fingerprint (core/metadata.py), plus what the engine was
built with: TensorRT product and version, GPU compute capability, plugin library and its sha256.

A sidecar is read from disk and so is hostile until validated: `EngineSidecar.from_dict` checks the type and range
of every field, and refuses missing and unknown ones, before anything is built from it.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .config import check_format_version, config_from_dict, parse_json_object
from .errors import ConfigError
from .files import replace_file
from .metadata import FINGERPRINT, PRECISIONS, WEIGHT_ONLY_PRECISIONS, ModelInfo
from .state import StateSpec

# The engine sidecar <engine>.json: what `rrwkv-trt build` knew when it wrote the engine (runtime/engine.py).
SIDECAR_SUFFIX = ".json"
# A sidecar holds a config, a state spec and one name per rrwkv node: kilobytes. Anything far larger is not one,
# and is refused before it is read into memory.
MAX_SIDECAR_BYTES = 16 << 20
TENSORRT_PRODUCTS = ("TensorRT", "TensorRT-RTX")
ENGINE_PRECISIONS = tuple(p for p in PRECISIONS if p not in WEIGHT_ONLY_PRECISIONS)
INT32_MAX = 2**31 - 1  # TensorRT dimensions and profile indices are int32
SHA256 = re.compile(r"[0-9a-f]{64}")
COMPUTE_CAPABILITY = re.compile(r"\d{1,3}\.\d{1,3}")
REBUILD = "; rebuild the engine with `rrwkv-trt build`"


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
            # absent when the source model has none (exported before 2026-12-06), as in its metadata
            **({"fingerprint": self.info.fingerprint} if self.info.fingerprint is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: object, source: str = "sidecar") -> EngineSidecar:
        """The sidecar `to_dict` wrote; ConfigError naming `source`, the field and what was expected otherwise."""
        try:
            return cls._parse(_Fields(data, ""))
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}{REBUILD}") from None

    @classmethod
    def _parse(cls, top: _Fields) -> EngineSidecar:
        if "format_version" in top.data:  # a newer sidecar is told apart by its version, not by its new fields
            check_format_version(top.get("format_version"))
        top.expect({"format_version", "config", "state_spec", "precision", "transforms", "tensorrt", "gpu",
                    "plugin_library", "max_batch", "max_seq", "profiles", "plugin_layers", "engine_inspected",
                    "engine_bytes", "source_model", "fingerprint"}, optional={"transforms", "fingerprint"})
        tensorrt, gpu = top.obj("tensorrt", {"product", "version"}), top.obj("gpu", {"compute_capability", "name"})
        library, source = top.obj("plugin_library", {"path", "sha256"}), top.obj("source_model", {"path", "sha256"})
        return cls(
            info=_model_info(top), tensorrt_product=tensorrt.choice("product", TENSORRT_PRODUCTS),
            tensorrt_version=tensorrt.text("version"),
            compute_capability=gpu.text("compute_capability", COMPUTE_CAPABILITY, "major.minor", nullable=True),
            gpu_name=gpu.text("name", nullable=True, empty=True),
            plugin_library=library.path("path"), plugin_sha256=library.text("sha256", SHA256, "64 hex digits"),
            max_batch=top.integer("max_batch", 1, INT32_MAX), max_seq=top.integer("max_seq", 1, INT32_MAX),
            profiles=top.int_map("profiles", 0, INT32_MAX), plugin_layers=top.texts("plugin_layers"),
            engine_inspected=top.boolean("engine_inspected"),
            engine_bytes=top.integer("engine_bytes", 1, 2**63 - 1),
            source_model=source.path("path"), source_sha256=source.text("sha256", SHA256, "64 hex digits"))


def _model_info(top: _Fields) -> ModelInfo:
    """Config, state spec, precision, transforms and fingerprint, checked against each other as from_metadata
    does."""
    try:
        config = config_from_dict(top.get("config"))
    except ConfigError as err:
        raise ConfigError(f"field config: {err}") from None
    try:
        state = StateSpec.from_dict(top.get("state_spec"))
    except ConfigError as err:
        raise ConfigError(f"field state_spec: {err}") from None
    if state.n_layer != config.n_layer:
        raise ConfigError(f"field state_spec has {state.n_layer!r} layers, field config {config.n_layer}")
    return ModelInfo(config=config, state=state, precision=top.choice("precision", ENGINE_PRECISIONS),
                     transforms=top.texts("transforms", empty=True) if "transforms" in top.data else (),
                     fingerprint=top.text("fingerprint", FINGERPRINT, "64 lowercase hex digits")
                     if "fingerprint" in top.data else None)


class _Fields:
    """One JSON object of a sidecar, read field by field; each reader raises a ConfigError naming the field
    ("gpu.name") and what it must be."""

    def __init__(self, data: object, prefix: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{'field ' + prefix[:-1] if prefix else 'the sidecar'} must be a JSON object, got "
                              f"{type(data).__name__}")
        self.data, self.prefix = data, prefix

    def _error(self, key: str, expected: str) -> ConfigError:
        value = repr(self.data[key])
        return ConfigError(f"field {self.prefix}{key} must be {expected}, got "
                           f"{value if len(value) <= 60 else value[:57] + '...'}")

    def expect(self, keys: set[str], optional: set[str] = frozenset()) -> None:
        missing, unknown = sorted(keys - optional - set(self.data)), sorted(map(str, set(self.data) - keys))
        if missing:
            raise ConfigError(f"missing field{'s' * (len(missing) > 1)} {', '.join(self.prefix + k for k in missing)}")
        if unknown:
            raise ConfigError(f"unknown field{'s' * (len(unknown) > 1)} "
                              f"{', '.join(self.prefix + k for k in unknown[:4])}; expected {sorted(keys)}")

    def get(self, key: str) -> object:
        return self.data[key]

    def obj(self, key: str, keys: set[str]) -> _Fields:
        fields = _Fields(self.data[key], f"{self.prefix}{key}.")
        fields.expect(keys)
        return fields

    def integer(self, key: str, lo: int, hi: int) -> int:
        value = self.data[key]
        if type(value) is not int or not lo <= value <= hi:  # bool is no int here
            raise self._error(key, f"an int in [{lo}, {hi}]")
        return value

    def boolean(self, key: str) -> bool:
        if type(self.data[key]) is not bool:
            raise self._error(key, "true or false")
        return self.data[key]

    def text(self, key: str, pattern: re.Pattern | None = None, meaning: str = "", nullable: bool = False,
             empty: bool = False) -> str | None:
        value = self.data[key]
        if value is None and nullable:
            return None
        ok = isinstance(value, str) and (empty or value) and "\0" not in value
        if not ok or (pattern is not None and not pattern.fullmatch(value)):
            what = meaning or ("a string" if empty else "a non-empty string")
            raise self._error(key, what + " or null" * nullable)
        return value

    def path(self, key: str) -> str:
        return self.text(key, meaning="a non-empty file path")

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        if not isinstance(self.data[key], str) or self.data[key] not in allowed:
            raise self._error(key, f"one of {list(allowed)}")
        return self.data[key]

    def texts(self, key: str, empty: bool = False) -> tuple[str, ...]:
        value = self.data[key]
        if not isinstance(value, list) or not all(isinstance(v, str) and (empty or v) for v in value):
            raise self._error(key, "a list of non-empty strings" if not empty else "a list of strings")
        return tuple(value)

    def int_map(self, key: str, lo: int, hi: int) -> dict[str, int]:
        value = self.data[key]
        if not isinstance(value, dict) or not all(isinstance(k, str) and type(v) is int and lo <= v <= hi
                                                  for k, v in value.items()):
            raise self._error(key, f"an object of ints in [{lo}, {hi}]")
        return dict(value)


def write_sidecar(path: str | os.PathLike, sidecar: EngineSidecar) -> None:
    """Write the sidecar atomically: a temporary file in the same folder, then renamed over `path`."""
    replace_file(Path(path), sidecar_text(sidecar).encode())


def sidecar_text(sidecar: EngineSidecar) -> str:
    return json.dumps(sidecar.to_dict(), indent=2, sort_keys=True) + "\n"


def read_sidecar(engine: str | os.PathLike) -> EngineSidecar:
    """The sidecar of `engine` (engine.plan -> engine.plan.json); ConfigError naming the file if absent or bad."""
    path = sidecar_path(engine)
    source = f"engine sidecar {path}"
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SIDECAR_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"engine {os.fspath(engine)} has no sidecar {path}; rebuild the engine with "
                          "`rrwkv-trt build` (it writes both)") from None
    except OSError as err:
        raise ConfigError(f"cannot read {source}: {err.strerror or err}") from None
    if len(raw) > MAX_SIDECAR_BYTES:
        raise ConfigError(f"{source} has more than {MAX_SIDECAR_BYTES} bytes, which no sidecar has{REBUILD}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{source} is not UTF-8 text (byte {err.start}){REBUILD}") from None
    return EngineSidecar.from_dict(parse_json_object(text, source, REBUILD), source=source)
