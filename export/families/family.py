"""What a family declares: the `Family` record and the checkpoint-adapter interface it carries."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from rrwkv_trt.core.config import ModelConfig
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.names import TOKENIZER_FILE

State = dict[str, Tensor]


class CheckpointAdapter:
    """Reads one family's checkpoints: raw key -> tensor dicts in, (config, converted state dict) out.

    export/checkpoint.py does the family-independent work (find the file, read it, check every key and shape
    against `expected_shapes`); an adapter knows the family's key names and one-time transforms.
    """

    transforms: tuple[str, ...] = ()  # the one-time transforms `convert` applies, recorded in the metadata

    def detect(self, raw: dict[str, Tensor], file: Path) -> bool:
        """Whether `raw` is a checkpoint of this family (may raise UserError for a near miss worth naming)."""
        raise NotImplementedError

    def config(self, raw: dict[str, Tensor], meta: dict, file: Path) -> ModelConfig:
        """The config, from tensor shapes and `meta` (the checkpoint folder's config.json, {} without one)."""
        raise NotImplementedError

    def expected_shapes(self, config: ModelConfig) -> dict[str, tuple[int, ...]]:
        """Every key of a raw checkpoint of `config` and its shape."""
        raise NotImplementedError

    def accepts_shape(self, key: str, shape: tuple[int, ...], expected: tuple[int, ...]) -> bool:
        """Whether `shape` is acceptable for `key` where `expected` is the canonical shape."""
        return shape == expected

    def convert(self, raw: dict[str, Tensor], config: ModelConfig) -> dict[str, Tensor]:
        """The torch model's state dict: key map and transforms applied once, everything float32."""
        raise NotImplementedError

    def tokenizer(self, folder: Path) -> Path | None:
        """The tokenizer file that came with the checkpoint, if any."""
        path = folder / TOKENIZER_FILE
        return path if path.is_file() else None


MAX_LAYER_DIGITS = 6  # a layer number longer than this is not a layer number (`blocks.1000000000.x`)


def count_layers(raw: dict[str, Tensor], prefix: str, file: Path) -> int:
    """N, where the `{prefix}{i}.` keys of a raw checkpoint number exactly the layers 0..N-1. Checked before any
    expected key is built, so that they are never built for a layer count larger than the file's keys."""
    names = {k[len(prefix):].split(".")[0] for k in raw if k.startswith(prefix)}
    bad = sorted(i for i in names if not (i.isascii() and i.isdigit() and len(i) <= MAX_LAYER_DIGITS))
    if bad:
        raise UserError(f"{file}: key '{prefix}{bad[0]}...' has no layer number after '{prefix}'; expected "
                        f"'{prefix}<layer>.<name>'")
    layers = {int(i) for i in names}
    if layers != set(range(len(layers))):
        gap = min(set(range(len(layers))) - layers)
        raise UserError(f"{file}: the {prefix}<layer> keys name {len(layers)} layers, the highest {max(layers)}, "
                        f"but layer {gap} has no keys; expected the layers 0..N-1")
    return len(layers)


@dataclass(frozen=True)
class Family:
    """One model family, as the exporter sees it.

    Attributes:
        config_class: the family's ModelConfig subclass (core/families/<id>.py); its `family` is the id.
        model_class: the torch model, built as model_class(config); has init_state(batch), forward, step.
        checkpoint: the adapter that reads the family's checkpoints.
        fp32_parameters: last name components of the parameters an fp16 export keeps in fp32 (norms always are).
        head_input_op: op_type of the node whose input is the head's input (the final norm): logits_from slices
            there, so the head runs only on the positions asked for.
        tracing_hints: (config, batch) -> (T, state overrides) for the traced example; None is T = 5 and the
            initial state. A family picks them so that no dim the graph keeps dynamic is specialised.
    """

    config_class: type[ModelConfig]
    model_class: type[nn.Module]
    checkpoint: CheckpointAdapter
    fp32_parameters: frozenset[str] = frozenset()
    head_input_op: str = "LayerNormalization"
    tracing_hints: Callable[[ModelConfig, int], tuple[int, State]] | None = None

    @property
    def id(self) -> str:
        return self.config_class.family

    def tracing_inputs(self, model: nn.Module, batch: int) -> tuple[Tensor, State]:
        """Example input_ids [batch, T] and state for torch.onnx.export (see `tracing_hints`)."""
        state = model.init_state(batch)
        seq_len, overrides = (5, {}) if self.tracing_hints is None else self.tracing_hints(model.config, batch)
        state.update(overrides)
        return torch.zeros(batch, seq_len, dtype=torch.int64), state
