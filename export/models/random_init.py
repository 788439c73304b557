"""Seeded random weights for tests, benchmarks and the start of training (never for shipping as-is).

Scales keep activations O(1) so float64/float32 comparisons are meaningful; medium parameters are
made non-trivial (carry, projections, excitation, β ≈ -8) unless `identity_medium` asks for the
RWKV-4 identity of docs/families/rrwkv.md §2.2.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .rrwkv import MEDIUM_KEY_BIAS_OFF


@torch.no_grad()
def randomize_(model: nn.Module, seed: int, identity_medium: bool = False) -> nn.Module:
    g = torch.Generator().manual_seed(seed)

    def randn(shape, scale):
        return torch.randn(shape, generator=g) * scale

    for name, p in model.named_parameters():
        if name.endswith("time_decay"):
            p.copy_(-torch.exp(randn(p.shape, 1.0)))  # w < 0, decays from ~0.1 to ~0.99 per token
        elif name.endswith("time_first"):
            p.copy_(randn(p.shape, 1.0))
        elif "time_mix" in name:
            p.copy_(torch.rand(p.shape, generator=g))
        elif name.endswith(("ln1.weight", "ln2.weight", "ln_out.weight")):
            p.copy_(1 + randn(p.shape, 0.1))
        elif name.endswith(("ln1.bias", "ln2.bias", "ln_out.bias")):
            p.copy_(randn(p.shape, 0.1))
        elif "medium" in name:
            _medium_param_(name, p, randn, g, identity_medium)
        elif p.ndim == 2:
            p.copy_(randn(p.shape, 1.0 if name.startswith("emb") else 1.0 / math.sqrt(p.shape[1])))
        else:
            raise AssertionError(f"randomize_: no rule for parameter {name}")
    return model


def _medium_param_(name: str, p: torch.Tensor, randn, g: torch.Generator, identity: bool) -> None:
    if name.endswith("medium_squeeze"):
        p.copy_(torch.rand(p.shape, generator=g) * 2 / p.shape[0])
    elif name.endswith("medium_carry"):
        p.copy_(torch.rand(p.shape, generator=g) * 1.8 - 0.9)  # |λ| < 1 keeps the chain bounded
    elif name.endswith("medium_key_bias"):
        p.copy_(torch.full(p.shape, MEDIUM_KEY_BIAS_OFF) if identity else -8 + randn(p.shape, 1.0))
    elif name.endswith("medium_excite"):
        p.copy_(torch.zeros(p.shape) if identity else randn(p.shape, 0.5 / math.sqrt(p.shape[1])))
    else:  # medium_key, medium_value
        p.copy_(randn(p.shape, 1.0 / math.sqrt(p.shape[1])))


@torch.no_grad()
def random_blinkdl_state_dict(config, seed: int, identity_medium: bool = False,
                              dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """A BlinkDL-format (raw, unconverted) checkpoint of `config` with seeded random weights.

    Raw means what a `.pth` file holds: time_decay before -exp, time_mix_* as [1, 1, C], ln0 present.
    """
    from ..families import build_model

    model = randomize_(build_model(config), seed, identity_medium)
    g = torch.Generator().manual_seed(seed + 1)
    raw = {}
    for name, p in model.state_dict().items():
        if name.endswith("att.time_decay"):
            p = torch.log(-p)
        elif ".time_mix_" in name:
            p = p.reshape(1, 1, -1)
        raw[name] = p.to(dtype).contiguous()
    C = config.n_embd
    raw["blocks.0.ln0.weight"] = (1 + 0.1 * torch.randn(C, generator=g)).to(dtype)
    raw["blocks.0.ln0.bias"] = (0.1 * torch.randn(C, generator=g)).to(dtype)
    return raw
