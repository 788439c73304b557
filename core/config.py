"""The config base class of every family and the registry of config classes (stdlib only).

One frozen dataclass per family flows checkpoint -> torch model -> ONNX metadata -> engine sidecar -> runtime
(docs/conventions.md §3.4). A subclass that sets `family` registers itself; the built-in families live in
`core/families/` and are found there on first lookup, so adding a family edits no list (docs/adding-a-family.md).
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from .errors import ConfigError, UserError
from .state import StateSlot, StateSpec

FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)
MAX_JSON_BYTES = 64 << 20  # read_versioned_json's bound: manifests and policies are kilobytes

_CONFIG_CLASSES: dict[str, type[ModelConfig]] = {}


@dataclass(frozen=True)
class ModelConfig:
    """What every family's config has: its family id, vocabulary, depth and the format version that wrote it.

    Subclasses set `family` (a ClassVar), add their sizes as int fields, and implement `state_slots`.
    """

    family: ClassVar[str] = ""
    vocab_size: int
    n_layer: int
    format_version: int = field(default=FORMAT_VERSION, kw_only=True)

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        family = cls.__dict__.get("family")
        if family:
            known = _CONFIG_CLASSES.get(family)
            if known is not None and known.__qualname__ != cls.__qualname__:
                raise ConfigError(f"family id {family!r} is taken by {known.__module__}.{known.__qualname__}")
            _CONFIG_CLASSES[family] = cls

    def __post_init__(self) -> None:
        check_format_version(self.format_version)
        require_positive_ints(self, ["vocab_size", "n_layer"])

    def state_slots(self, activation_dtype: str) -> tuple[StateSlot, ...]:
        """The family's state slots (docs/families/<family>.md), "activation dtype" slots in `activation_dtype`."""
        raise NotImplementedError(f"{type(self).__name__} does not define its state slots")

    def state_dims(self) -> dict[str, int]:
        """Static named dims the slots' shapes may use besides "batch" (e.g. {"n_embd": 768})."""
        return {}

    def step_matmul_shapes(self) -> tuple[tuple[int, int], ...]:
        """[N, K] of every weight matrix one decode step multiplies, the head last: the bench's bandwidth and GEMM
        bounds at the model's own shapes."""
        raise NotImplementedError(f"{type(self).__name__} does not list its decode-step matmuls")

    @property
    def max_call_tokens(self) -> int | None:
        """The most tokens per sequence one call of the model's graph may take (None: any); backends split longer
        inputs into calls of at most this many tokens, the state carried from one to the next."""
        return None

    def state_spec(self, activation_dtype: str = "float32") -> StateSpec:
        return StateSpec(n_layer=self.n_layer, slots=self.state_slots(activation_dtype), dims=self.state_dims())

    def to_dict(self) -> dict:
        return {"family": self.family, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """`config_from_dict`, also checking that `data` is a config of this class (or a subclass)."""
        config = config_from_dict(data)
        if not isinstance(config, cls):
            raise ConfigError(f"expected a {cls.family or cls.__name__} config, got family {config.family!r}")
        return config


def require_positive_ints(config: object, names: list[str], minimum: int = 1) -> None:
    """ConfigError naming the first field of `names` that is not an int >= `minimum`."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ConfigError(f"{getattr(config, 'family', '?')} config: {name} must be an int >= {minimum}, "
                              f"got {value!r}")


def check_format_version(version: object) -> None:
    if type(version) is not int or version not in SUPPORTED_FORMAT_VERSIONS:
        raise ConfigError(
            f"unsupported format_version {version!r}; this rrwkv-trt reads {list(SUPPORTED_FORMAT_VERSIONS)}"
        )


def config_classes() -> dict[str, type[ModelConfig]]:
    """family id -> config class: the built-in families (core/families/) and any registered since."""
    from . import families

    for module in pkgutil.iter_modules(families.__path__):
        importlib.import_module(f"{families.__name__}.{module.name}")
    return dict(_CONFIG_CLASSES)


def config_class(family: object) -> type[ModelConfig]:
    classes = _CONFIG_CLASSES if isinstance(family, str) and family in _CONFIG_CLASSES else config_classes()
    if not isinstance(family, str) or family not in classes:
        raise ConfigError(f"unknown model family {family!r}; expected one of {sorted(classes)}")
    return classes[family]


def config_from_dict(data: dict) -> ModelConfig:
    """Rebuild a config from `to_dict()` output, refusing unknown families, versions and fields."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a JSON object, got {type(data).__name__}")
    data = dict(data)
    cls = config_class(data.pop("family", None))
    check_format_version(data.get("format_version"))
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{cls.family} config has unknown fields {unknown}; expected a subset of {sorted(known)}")
    missing = sorted(f.name for f in dataclasses.fields(cls) if f.name not in data
                     and f.default is dataclasses.MISSING)
    if missing:
        raise ConfigError(f"{cls.family} config is missing fields {missing}")
    return cls(**data)


def config_to_json(config: ModelConfig) -> str:
    return json.dumps(config.to_dict(), sort_keys=True)


def config_from_json(text: str) -> ModelConfig:
    return config_from_dict(parse_json_object(text, "config"))


def read_versioned_json(path: Path, what: str, version: int, missing: str, fix: str = "") -> dict:
    """The JSON object in file `path` (a `what`, e.g. "tolerance policy"; UTF-8, at most MAX_JSON_BYTES), whose
    "format_version" is `version`.

    Raises UserError: `missing` when the file does not exist; otherwise naming the file and what is wrong, with
    `fix` ("; do ...") appended."""
    data = read_json_object(path, f"{what} {path}", MAX_JSON_BYTES, fix, missing)
    if type(data.get("format_version")) is not int or data["format_version"] != version:
        raise UserError(f"{what} {path} has format_version {data.get('format_version')!r}, this rrwkv-trt reads "
                        f"{version}{fix}")
    return data


def read_json_object(path: Path, source: str, max_bytes: int, fix: str = "", missing: str | None = None) -> dict:
    """The JSON object in file `path`, UTF-8 and at most `max_bytes` long (never more is read); UserError naming
    `source` otherwise, with `fix` ("; do ...") appended, or `missing` when the file does not exist."""
    return parse_json_object(read_bounded_text(path, source, max_bytes, fix, missing), source, fix)


def read_bounded_text(path: Path, source: str, max_bytes: int, fix: str = "", missing: str | None = None) -> str:
    """The UTF-8 text of file `path`, at most `max_bytes` long (never more is read); UserError naming `source`
    otherwise, with `fix` ("; do ...") appended, or `missing` when the file does not exist."""
    try:
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise UserError(missing or f"{source} not found{fix}") from None
    except OSError as err:
        raise UserError(f"cannot read {source} ({err.strerror or err}){fix}") from None
    if len(raw) > max_bytes:
        raise UserError(f"{source} is larger than {max_bytes} bytes{fix}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{source} is not UTF-8 text ({err.reason} at byte {err.start}){fix}") from None
    return text


def parse_json_object(text: str, source: str, fix: str = "") -> dict:
    """`text` parsed as a JSON object; otherwise a ConfigError naming `source`, with `fix` ("; do ...") appended."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{source} is not valid JSON ({err}){fix}") from None
    except RecursionError:  # arrays or objects nested thousands deep exhaust the parser's stack
        raise ConfigError(f"{source} nests JSON arrays or objects too deeply{fix}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must hold a JSON object, got {type(data).__name__}{fix}")
    return data
