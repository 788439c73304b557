"""Random fla-format HGRN2 checkpoints for the tests: an fla config.json dict, a seeded raw state dict with the key
names flash-linear-attention 0.6.0 writes, and the Hugging Face folder holding both."""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors.torch import save_file

from rrwkv_trt.export.checkpoint import Checkpoint, check_keys_and_shapes, load_checkpoint
from rrwkv_trt.export.families import family_of


def fla_config(hidden_size: int = 64, num_hidden_layers: int = 2, expand_ratio: int = 16, vocab_size: int = 64,
               intermediate_size: int | None = 96, **overrides) -> dict:
    """An fla HGRN2Config.to_dict()-like config.json (the fields the adapter reads, and a few it ignores)."""
    return dict(model_type="hgrn2", hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
                num_heads=hidden_size // expand_ratio, expand_ratio=expand_ratio, vocab_size=vocab_size,
                intermediate_size=intermediate_size, hidden_ratio=4, norm_eps=1e-6, use_lower_bound=True,
                use_short_conv=False, conv_size=4, attn=None, attn_mode="chunk", hidden_act="swish",
                tie_word_embeddings=False, attnres_block_size=None, elementwise_affine=True, fuse_norm=True,
                fuse_swiglu=True, max_position_embeddings=2048, architectures=["HGRN2ForCausalLM"]) | overrides


def fla_intermediate_size(cfg: dict) -> int:
    """fla GatedMLP's width rule."""
    if cfg.get("intermediate_size") is not None:
        return cfg["intermediate_size"]
    width = int(cfg["hidden_size"] * (cfg.get("hidden_ratio") or 4) * 2 / 3)
    return 256 * ((width + 255) // 256)


def fla_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    """Every key fla 0.6.0's HGRN2ForCausalLM.state_dict() has for `cfg` (lm_head dropped when tied, as
    save_pretrained does) and its shape."""
    D, L, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    I = fla_intermediate_size(cfg)  # noqa: E741
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
def random_fla_state_dict(cfg: dict, seed: int = 0, head_scale: float = 2.0) -> dict[str, torch.Tensor]:
    """Seeded random weights with O(1) activations: projections N(0, 1/fan_in), norm weights 1 + N(0, 0.1²),
    lower-bound logits N(0, 1) (so lb spreads over [0, 1)), logits of spread about `head_scale`."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in fla_shapes(cfg).items():
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
    """A Hugging Face folder: config.json and model.safetensors (fmt "safetensors") or pytorch_model.bin ("bin")."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    if fmt == "safetensors":
        save_file(raw, str(folder / "model.safetensors"))
    else:
        torch.save(raw, folder / "pytorch_model.bin")
    if tokenizer is not None:
        (folder / "tokenizer.json").write_bytes(tokenizer.read_bytes())
    return folder


def fla_checkpoint(folder: Path, seed: int = 0, **cfg_overrides) -> Checkpoint:
    """load_checkpoint of a fresh random fla folder."""
    cfg = fla_config(**cfg_overrides)
    write_fla_folder(folder, cfg, random_fla_state_dict(cfg, seed))
    return load_checkpoint(folder)


def convert_in_memory(cfg: dict, raw: dict[str, torch.Tensor]) -> Checkpoint:
    """What load_checkpoint does with a folder holding `cfg` and `raw`, without the files."""
    file = Path("memory") / "model.safetensors"
    family = family_of("hgrn2")
    config = family.checkpoint.config(raw, cfg, file)
    check_keys_and_shapes(raw, family, config, file)
    return Checkpoint(config, family.checkpoint.convert(raw, config), file, None, family.checkpoint.transforms)
