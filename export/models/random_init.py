"""Seeded random weights for tests, benchmarks and the start of training (never for shipping as-is).

Scales keep activations O(1) so float64/float32 comparisons are meaningful; medium parameters are
made non-trivial (carry, projections, excitation, β ≈ -8) unless `identity_medium` asks for the
RWKV-4 identity of docs/families/rrwkv.md §2.2.

Checkpoints in their source formats: a BlinkDL RWKV-4 state dict (random_blinkdl_state_dict), and an fla HGRN2
Hugging Face folder (fla_hgrn2_config, random_fla_hgrn2_state_dict, write_fla_folder) with the keys and config.json
fields flash-linear-attention 0.6.0 writes (tests/export/test_hgrn2_fla.py checks them against fla itself).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

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


def fla_hgrn2_config(hidden_size: int, num_hidden_layers: int, expand_ratio: int, vocab_size: int,
                     intermediate_size: int | None = None, **overrides) -> dict:
    """An fla HGRN2Config.to_dict()-like config.json (the fields the adapter reads, and a few it ignores);
    `intermediate_size` None leaves the MLP width to fla's rule (hidden_ratio 4)."""
    return dict(model_type="hgrn2", hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
                num_heads=hidden_size // expand_ratio, expand_ratio=expand_ratio, vocab_size=vocab_size,
                intermediate_size=intermediate_size, hidden_ratio=4, norm_eps=1e-6, use_lower_bound=True,
                use_short_conv=False, conv_size=4, attn=None, attn_mode="chunk", hidden_act="swish",
                tie_word_embeddings=False, attnres_block_size=None, elementwise_affine=True, fuse_norm=True,
                fuse_swiglu=True, max_position_embeddings=2048, architectures=["HGRN2ForCausalLM"]) | overrides


def fla_hgrn2_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    """Every key fla 0.6.0's HGRN2ForCausalLM.state_dict() has for config.json `cfg` (lm_head dropped when tied, as
    save_pretrained does) and its shape."""
    from ..families.hgrn2 import fla_mlp_width

    D, L, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    I = cfg.get("intermediate_size") or fla_mlp_width(D, cfg.get("hidden_ratio") or 4)  # noqa: E741
    HK = D // cfg["expand_ratio"] * cfg["expand_ratio"]  # fla: H = D // expand_ratio heads of K = expand_ratio
    shapes = {"model.embeddings.weight": (V, D), "model.norm.weight": (D,)}
    if cfg.get("use_lower_bound", True):
        shapes["model.lower_bounds"] = (L, D)
    if not cfg.get("tie_word_embeddings"):
        shapes["lm_head.weight"] = (V, D)
    for i in range(L):
        p = f"model.layers.{i}."
        shapes |= {p + "attn_norm.weight": (D,), p + "attn.q_proj.weight": (HK, D), p + "attn.f_proj.weight": (HK, D),
                   p + "attn.i_proj.weight": (D, D), p + "attn.g_norm.weight": (D,), p + "attn.o_proj.weight": (D, D),
                   p + "mlp_norm.weight": (D,), p + "mlp.gate_proj.weight": (I, D), p + "mlp.up_proj.weight": (I, D),
                   p + "mlp.down_proj.weight": (D, I)}
    return shapes


@torch.no_grad()
def random_fla_hgrn2_state_dict(cfg: dict, seed: int = 0, head_scale: float = 2.0) -> dict[str, torch.Tensor]:
    """fla HGRN2 tensors for config.json `cfg` (fla_hgrn2_shapes) with seeded O(1) activations: projections
    N(0, 1/fan_in), norm weights 1 + N(0, 0.1²), lower-bound logits N(0, 1) (so lb spreads over [0, 1)), logits of
    spread about `head_scale`."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in fla_hgrn2_shapes(cfg).items():
        r = torch.randn(shape, generator=g)
        if key.endswith("norm.weight"):
            r = 1 + 0.1 * r
        elif key == "lm_head.weight":
            r = r * head_scale / math.sqrt(shape[1])
        elif key.endswith("proj.weight"):
            r = r / math.sqrt(shape[1])
        out[key] = r.contiguous()
    return out


def write_fla_folder(folder: Path, cfg: dict, raw: dict[str, torch.Tensor], fmt: str = "safetensors",
                     tokenizer: Path | None = None) -> Path:
    """A Hugging Face folder: config.json and model.safetensors (fmt "safetensors") or pytorch_model.bin ("bin"),
    and a copy of `tokenizer` as tokenizer.json when given. Files already there are overwritten."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file(raw, str(folder / "model.safetensors"))
    else:
        torch.save(raw, folder / "pytorch_model.bin")
    if tokenizer is not None:
        (folder / "tokenizer.json").write_bytes(tokenizer.read_bytes())
    return folder
