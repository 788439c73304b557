"""The recurrent-state spec: every state tensor of a model by name, shape, dtype and initial value (stdlib only).

Export builds its dummy inputs and dynamic shapes from a StateSpec and writes it into the model's metadata; the
runtime reads it back and allocates its buffers from it, so nothing else hard-codes state names or shapes
(docs/conventions.md §3.5). Shapes are tuples of ints and named dims: "batch" is the one dynamic dim, every other
name is a static size the spec records in `dims` (e.g. HGRN2's heads, ∞-former's cache length).
"""
from __future__ import annotations

import dataclasses
import math
import string
from dataclasses import dataclass, field

from .errors import ConfigError
from .names import STATE_IN, STATE_OUT

BATCH = "batch"  # the dynamic leading dim of every slot
LAYER_PATTERN = STATE_IN + ".{layer}.{slot}"  # per-layer slots
SEQUENCE_PATTERN = STATE_IN + ".{slot}"  # sequence-level slots (one per sequence, e.g. RRWKV's pos)
DTYPES = ("float32", "float16", "int64")
MAX_LAYERS = 4096  # bounds from metadata are checked before anything is allocated from them
MAX_SLOT_ELEMENTS = 1 << 31  # per sequence: 8 GiB of fp32, far beyond any model's state
_INIT_LIMIT = {"float16": 65504.0, "float32": 3.4028234663852886e38, "int64": float(1 << 63)}


@dataclass(frozen=True)
class StateSlot:
    """One recurrent-state tensor kind. `per_layer` slots exist once per layer, the others once per model."""

    name: str
    shape: tuple[str | int, ...]
    dtype: str  # numpy dtype name, one of DTYPES
    init: float
    per_layer: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.replace("_", "").isalnum() or not self.name.isascii():
            raise ConfigError(f"state slot name {self.name!r} must be a non-empty ASCII identifier")
        if self.dtype not in DTYPES:
            raise ConfigError(f"state slot {self.name}: dtype {self.dtype!r} is not one of {list(DTYPES)}")
        if not isinstance(self.per_layer, bool):
            raise ConfigError(f"state slot {self.name}: per_layer must be true or false, got {self.per_layer!r}")
        if (isinstance(self.init, bool) or not isinstance(self.init, (int, float))
                or not abs(self.init) <= _INIT_LIMIT[self.dtype]
                or (self.dtype == "int64" and (self.init != int(self.init) or self.init == _INIT_LIMIT["int64"]))):
            raise ConfigError(f"state slot {self.name}: init {self.init!r} is not a {self.dtype} value")
        for d in self.shape:
            if not (isinstance(d, str) and d) and not (isinstance(d, int) and not isinstance(d, bool)
                                                       and 1 <= d <= MAX_SLOT_ELEMENTS):
                raise ConfigError(f"state slot {self.name}: dim {d!r} must be an int in [1, {MAX_SLOT_ELEMENTS}] "
                                  "or a dim name")

    def input_name(self, layer: int | None, pattern: str = LAYER_PATTERN,
                   sequence_pattern: str = SEQUENCE_PATTERN) -> str:
        """This slot's ONNX input name for `layer` (None for a sequence-level slot)."""
        if self.per_layer:
            return pattern.format(layer=layer, slot=self.name)
        return sequence_pattern.format(slot=self.name)


@dataclass(frozen=True)
class StateTensor:
    """A concrete state input/output pair: one slot of one layer."""

    input_name: str
    output_name: str
    layer: int | None
    slot: StateSlot

    @property
    def key(self) -> str:
        """The name without the state_in. prefix ("3.att_aa", "pos"): the torch models' state-dict key."""
        return self.input_name.removeprefix(STATE_IN + ".")


@dataclass(frozen=True)
class StateSpec:
    n_layer: int
    slots: tuple[StateSlot, ...]
    dims: dict[str, int] = field(default_factory=dict)
    pattern: str = LAYER_PATTERN
    sequence_pattern: str = SEQUENCE_PATTERN

    def __post_init__(self) -> None:
        if isinstance(self.n_layer, bool) or not isinstance(self.n_layer, int) or not 1 <= self.n_layer <= MAX_LAYERS:
            raise ConfigError(f"state spec: n_layer must be an int in [1, {MAX_LAYERS}], got {self.n_layer!r}")
        for name, size in self.dims.items():
            if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_SLOT_ELEMENTS:
                raise ConfigError(f"state spec: dim {name!r} must be an int in [1, {MAX_SLOT_ELEMENTS}], got {size!r}")
        _check_pattern(self.pattern, {"layer", "slot"})
        _check_pattern(self.sequence_pattern, {"slot"})
        names = [s.name for s in self.slots]
        if len(set(names)) != len(names):
            raise ConfigError(f"state spec has duplicate slot names: {names}")
        for slot in self.slots:
            unknown = [d for d in slot.shape if isinstance(d, str) and d != BATCH and d not in self.dims]
            if unknown:
                raise ConfigError(f"state slot {slot.name}: dims {unknown} are neither {BATCH!r} nor in the "
                                  f"spec's dims {sorted(self.dims)}")
            if math.prod(self.concrete_shape(slot, 1)) > MAX_SLOT_ELEMENTS:
                raise ConfigError(f"state slot {slot.name}: {list(slot.shape)} holds more than {MAX_SLOT_ELEMENTS} "
                                  "elements per sequence")

    def tensors(self) -> list[StateTensor]:
        """Every state tensor in a fixed order: per-layer slots layer by layer, then sequence-level slots."""
        out = []
        for layer in range(self.n_layer):
            out += [self._tensor(slot, layer) for slot in self.slots if slot.per_layer]
        return out + [self._tensor(slot, None) for slot in self.slots if not slot.per_layer]

    def _tensor(self, slot: StateSlot, layer: int | None) -> StateTensor:
        name = slot.input_name(layer, self.pattern, self.sequence_pattern)
        return StateTensor(name, STATE_OUT + name.removeprefix(STATE_IN), layer, slot)

    def input_names(self) -> list[str]:
        return [t.input_name for t in self.tensors()]

    def output_names(self) -> list[str]:
        return [t.output_name for t in self.tensors()]

    def concrete_shape(self, slot: StateSlot, batch: int) -> tuple[int, ...]:
        return tuple(batch if d == BATCH else self.dims[d] if isinstance(d, str) else d for d in slot.shape)

    def to_dict(self) -> dict:
        out = {
            "n_layer": self.n_layer,
            "pattern": self.pattern,
            "slots": [dataclasses.asdict(s) | {"shape": list(s.shape)} for s in self.slots],
        }
        if self.sequence_pattern != SEQUENCE_PATTERN:
            out["sequence_pattern"] = self.sequence_pattern
        if self.dims:
            out["dims"] = dict(self.dims)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> StateSpec:
        """The spec as `to_dict` wrote it; the patterns are read back, not assumed."""
        try:
            slots = tuple(StateSlot(**(s | {"shape": tuple(s["shape"])})) for s in data["slots"])
            dims = dict(data.get("dims", {}))
            return cls(n_layer=data["n_layer"], slots=slots, dims=dims, pattern=data["pattern"],
                       sequence_pattern=data.get("sequence_pattern", SEQUENCE_PATTERN))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(f"malformed state spec: {err!r}") from None


def _check_pattern(pattern: object, fields: set[str]) -> None:
    if not isinstance(pattern, str) or not pattern.startswith(STATE_IN + "."):
        raise ConfigError(f"state name pattern {pattern!r} must start with {STATE_IN + '.'!r}")
    found = {f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None}
    if found != fields:
        raise ConfigError(f"state name pattern {pattern!r} must use exactly the fields {sorted(fields)}")
