"""The family registry of the export side: one `Family` record per family, one module each.

A record says everything the exporter needs to know about a family (docs/adding-a-family.md): its config class
(core/families/), its torch model class (export/models/), its checkpoint adapter, the parameters it keeps in fp32
in an fp16 export, how to trace it, and where its head starts. The built-in families are the modules of this
package and are found on first lookup; a family defined elsewhere (a test's, a plugin's) calls `register_family`.
"""
from __future__ import annotations

import importlib
import pkgutil

from torch import nn

from rrwkv_trt.core.config import ModelConfig
from rrwkv_trt.core.errors import UserError

from .family import CheckpointAdapter, Family

__all__ = ["CheckpointAdapter", "Family", "build_model", "families", "family_of", "register_family"]

_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add `family` to the registry (idempotent for the same record); returns it."""
    known = _FAMILIES.get(family.id)
    if known is not None and known is not family:
        raise ValueError(f"family {family.id!r} is already registered by {known.model_class.__module__}")
    _FAMILIES[family.id] = family
    return family


def families() -> dict[str, Family]:
    """family id -> record: this package's modules, then whatever was registered since."""
    for module in pkgutil.iter_modules(__path__):
        if module.name != "family":
            importlib.import_module(f"{__name__}.{module.name}")
    return dict(_FAMILIES)


def family_of(config_or_id: ModelConfig | str) -> Family:
    family_id = config_or_id if isinstance(config_or_id, str) else config_or_id.family
    found = _FAMILIES if family_id in _FAMILIES else families()
    if family_id not in found:
        raise UserError(f"unknown model family {family_id!r}; expected one of {sorted(found)}")
    return found[family_id]


def build_model(config: ModelConfig, state_dict: dict | None = None) -> nn.Module:
    """An eval-mode float32 model for `config`, loaded from a converted state dict when given."""
    model = family_of(config).model_class(config)
    if state_dict is not None:
        model.load_state_dict(state_dict, strict=True)
    return model.eval()
