"""Per-family model configs and the recurrent-state spec (stdlib only).

One config dataclass per family flows checkpoint -> torch model -> ONNX metadata -> runtime.
The state spec lists every recurrent-state slot by name; export builds dummy inputs from it
and the runtime allocates its buffers from it, so nothing else hard-codes state shapes.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import ClassVar

from .errors import UserError

FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)

STATE_IN = "state_in"
STATE_OUT = "state_out"
PP_INIT = -1e30  # ARCHITECTURES.md §1.3: initial max-exponent of the WKV state


class ConfigError(UserError):
    """A config, or the metadata it came from, is invalid; the message says what was expected."""


@dataclass(frozen=True)
class Rwkv4Config:
    """RWKV-4 (ARCHITECTURES.md §1). Sizes as read from a BlinkDL checkpoint."""

    family: ClassVar[str] = "rwkv4"
    vocab_size: int
    n_embd: int
    n_layer: int
    dim_att: int  # C_att; equals n_embd in released models
    dim_ffn: int  # F; 4 * n_embd in released models
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_embd", "n_layer", "dim_att", "dim_ffn"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{self.family} config: {name} must be a positive int, got {value!r}")
        check_format_version(self.format_version)

    def to_dict(self) -> dict:
        return {"family": self.family, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class RrwkvConfig(Rwkv4Config):
    """RRWKV-R1 (ARCHITECTURES.md §2): RWKV-4 plus a medium every `medium_interval` tokens."""

    family: ClassVar[str] = "rrwkv"
    medium_interval: int = 16  # s: window length; a medium closes after tokens pos % s == s-1
    medium_decays: int = 0  # 1: the inserted medium takes one extra decay step (§2.8.1); 0 reduces to RWKV-4

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.medium_interval, int) or self.medium_interval < 1:
            raise ConfigError(f"rrwkv config: medium_interval must be an int >= 1, got {self.medium_interval!r}")
        if self.medium_decays not in (0, 1):
            raise ConfigError(f"rrwkv config: medium_decays must be 0 or 1, got {self.medium_decays!r}")


CONFIG_CLASSES: dict[str, type[Rwkv4Config]] = {cls.family: cls for cls in (Rwkv4Config, RrwkvConfig)}


def check_format_version(version: object) -> None:
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise ConfigError(
            f"unsupported format_version {version!r}; this rrwkv-trt reads {list(SUPPORTED_FORMAT_VERSIONS)}"
        )


def config_from_dict(data: dict) -> Rwkv4Config:
    """Rebuild a config from `to_dict()` output, refusing unknown families, versions and fields."""
    data = dict(data)
    family = data.pop("family", None)
    if family not in CONFIG_CLASSES:
        raise ConfigError(f"unknown model family {family!r}; expected one of {sorted(CONFIG_CLASSES)}")
    check_format_version(data.get("format_version"))
    cls = CONFIG_CLASSES[family]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{family} config has unknown fields {unknown}; expected a subset of {sorted(known)}")
    missing = sorted(f.name for f in dataclasses.fields(cls) if f.name not in data
                     and f.default is dataclasses.MISSING)
    if missing:
        raise ConfigError(f"{family} config is missing fields {missing}")
    return cls(**data)


def config_to_json(config: Rwkv4Config) -> str:
    return json.dumps(config.to_dict(), sort_keys=True)


def config_from_json(text: str) -> Rwkv4Config:
    return config_from_dict(parse_json_object(text, "config"))


def parse_json_object(text: str, source: str, fix: str = "") -> dict:
    """`text` parsed as a JSON object; otherwise a ConfigError naming `source`, with `fix` ("; do ...") appended."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{source} is not valid JSON ({err}){fix}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must hold a JSON object, got {type(data).__name__}{fix}")
    return data


@dataclass(frozen=True)
class StateSlot:
    """One recurrent-state tensor. `shape` uses the symbol "batch" for the leading dim.

    `per_layer` slots exist once per layer as state_in.{layer}.{name}; others once as state_in.{name}.
    """

    name: str
    shape: tuple[str | int, ...]
    dtype: str  # numpy dtype name: "float32", "float16" or "int64"
    init: float
    per_layer: bool = True


@dataclass(frozen=True)
class StateTensor:
    """A concrete state input/output pair: one slot of one layer."""

    input_name: str
    output_name: str
    layer: int | None
    slot: StateSlot


@dataclass(frozen=True)
class StateSpec:
    n_layer: int
    slots: tuple[StateSlot, ...]
    pattern: str = field(default=STATE_IN + ".{layer}.{slot}")

    def tensors(self) -> list[StateTensor]:
        """Every state tensor in a fixed order: per-layer slots layer by layer, then sequence-level slots."""
        out = []
        for layer in range(self.n_layer):
            for slot in self.slots:
                if slot.per_layer:
                    suffix = f"{layer}.{slot.name}"
                    out.append(StateTensor(f"{STATE_IN}.{suffix}", f"{STATE_OUT}.{suffix}", layer, slot))
        for slot in self.slots:
            if not slot.per_layer:
                out.append(StateTensor(f"{STATE_IN}.{slot.name}", f"{STATE_OUT}.{slot.name}", None, slot))
        return out

    def input_names(self) -> list[str]:
        return [t.input_name for t in self.tensors()]

    def output_names(self) -> list[str]:
        return [t.output_name for t in self.tensors()]

    def concrete_shape(self, slot: StateSlot, batch: int) -> tuple[int, ...]:
        return tuple(batch if d == "batch" else int(d) for d in slot.shape)

    def to_dict(self) -> dict:
        return {
            "n_layer": self.n_layer,
            "pattern": self.pattern,
            "slots": [dataclasses.asdict(s) | {"shape": list(s.shape)} for s in self.slots],
        }

    @classmethod
    def from_dict(cls, data: dict) -> StateSpec:
        try:
            slots = tuple(StateSlot(**(s | {"shape": tuple(s["shape"])})) for s in data["slots"])
            return cls(n_layer=int(data["n_layer"]), slots=slots, pattern=data["pattern"])
        except (KeyError, TypeError) as err:
            raise ConfigError(f"malformed state spec: {err!r}") from None


def state_spec(config: Rwkv4Config, activation_dtype: str = "float32") -> StateSpec:
    """The state slots of a family (ARCHITECTURES.md §1.7, §2.5), in the given activation dtype."""
    c, a = config.n_embd, config.dim_att
    slots = [
        StateSlot("att_xx", ("batch", c), activation_dtype, 0.0),
        StateSlot("att_aa", ("batch", a), "float32", 0.0),
        StateSlot("att_bb", ("batch", a), "float32", 0.0),
        StateSlot("att_pp", ("batch", a), "float32", PP_INIT),
        StateSlot("ffn_xx", ("batch", c), activation_dtype, 0.0),
    ]
    if isinstance(config, RrwkvConfig):
        slots += [
            StateSlot("att_macc", ("batch", c), "float32", 0.0),
            StateSlot("att_m", ("batch", c), "float32", 0.0),
            StateSlot("ffn_macc", ("batch", c), "float32", 0.0),
            StateSlot("ffn_m", ("batch", c), "float32", 0.0),
            StateSlot("pos", ("batch",), "int64", 0.0, per_layer=False),
        ]
    return StateSpec(n_layer=config.n_layer, slots=tuple(slots))
