"""Model families: config class -> torch model class. One line per family."""
from __future__ import annotations

from torch import nn

from rrwkv_trt.core.families.rrwkv import RrwkvConfig
from rrwkv_trt.core.families.rwkv4 import Rwkv4Config

from .models.rrwkv import RrwkvModel
from .models.rwkv4 import Rwkv4Model

MODEL_CLASSES: dict[str, type[nn.Module]] = {
    Rwkv4Config.family: Rwkv4Model,
    RrwkvConfig.family: RrwkvModel,
}


def build_model(config: Rwkv4Config, state_dict: dict | None = None) -> nn.Module:
    """An eval-mode float32 model for `config`, loaded from a converted state dict when given."""
    model = MODEL_CLASSES[config.family](config)
    if state_dict is not None:
        model.load_state_dict(state_dict, strict=True)
    return model.eval()
