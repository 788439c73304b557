"""Train the shipped RRWKV-R1 model on the Python standard library's own source (byte-level).

    python -m rrwkv_trt.training.train -o models/rrwkv-pystdlib --minutes 20

The corpus, the batches, the held-out evaluation and the loop are shared with the other trainers
(corpus.py, loop.py). Training runs the medium WKV as the plain-PyTorch reference
`naive_wkv4_medium` (autograd differentiates its per-token loop, which on 2 CPU cores beat an
O(T^2) attention form; measured: README "The shipped model"), where export and decoding use the custom op. The output folder holds
model.safetensors (BlinkDL key names, raw time_decay, ln0), config.json and tokenizer.json.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn
from torch.nn.utils import parametrize

from rrwkv_trt.core.families.rrwkv import RrwkvConfig
from rrwkv_trt.export.models.random_init import randomize_
from rrwkv_trt.export.models.rrwkv import MediumTimeMix, RrwkvModel
from rrwkv_trt.export.ops.wkv4_medium import naive_wkv4_medium

from .loop import common_parser, parse, train_and_save


class NegExp(nn.Module):
    """time_decay parametrised as -exp(raw), so w stays negative while training."""

    def forward(self, raw: Tensor) -> Tensor:
        return -torch.exp(raw)


class RowLayerNorm(nn.Module):
    """emb.weight = LN(raw rows) without affine: ln0 = (1, 0) folded, as export/checkpoint.py does on load."""

    def forward(self, raw: Tensor) -> Tensor:
        return F.layer_norm(raw, raw.shape[-1:], eps=1e-5)


def make_trainable(model: RrwkvModel) -> RrwkvModel:
    parametrize.register_parametrization(model.emb, "weight", RowLayerNorm())
    for block in model.blocks:
        parametrize.register_parametrization(block.att, "time_decay", NegExp())
    for m in model.modules():
        if isinstance(m, MediumTimeMix):
            m.wkv_fn = naive_wkv4_medium
    return model


def raw_state_dict(model: RrwkvModel) -> dict[str, Tensor]:
    """The BlinkDL-format checkpoint of a trainable model (inverse of checkpoint.convert)."""
    out = {}
    for name, p in model.named_parameters():
        name = name.replace("parametrizations.", "").replace(".original", "")
        if ".time_mix_" in name:
            p = p.reshape(1, 1, -1)
        out[name] = p.detach().float().clone().contiguous()
    C = model.config.n_embd
    out["blocks.0.ln0.weight"], out["blocks.0.ln0.bias"] = torch.ones(C), torch.zeros(C)
    return out


def train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    cfg = RrwkvConfig(vocab_size=256, n_embd=args.n_embd, n_layer=args.n_layer, dim_att=args.n_embd,
                      dim_ffn=4 * args.n_embd, medium_interval=args.medium_interval)
    model = make_trainable(init_for_training(RrwkvModel(cfg), args.seed))
    return train_and_save(model, args, lambda folder: write_weights(model, cfg, folder))


@torch.no_grad()
def init_for_training(model: RrwkvModel, seed: int) -> RrwkvModel:
    """Random init in the style of the RWKV-4 trainer: small projections, zero output projections,
    decays spread over channels, mediums active but gentle (β = -4, small excitation)."""
    randomize_(model, seed)
    C = model.config.n_embd
    ramp = torch.arange(C) / max(C - 1, 1)
    for block in model.blocks:
        block.att.time_decay.copy_(-torch.exp(-5 + 8 * ramp ** 0.7))  # raw decay spread as in RWKV-4
        block.att.time_first.copy_(torch.full((C,), math.log(0.3)))
        block.att.output.weight.zero_()
        block.ffn.value.weight.zero_()
        block.att.medium_key_bias.fill_(-4.0)
        block.att.medium_excite.mul_(0.1)
        block.ffn.medium_excite.mul_(0.1)
        block.att.medium_carry.uniform_(0.05, 0.5)  # nonzero: pow'(0) at exponent 0 is NaN
        block.ffn.medium_carry.uniform_(0.05, 0.5)
    model.emb.weight.uniform_(-1e-4, 1e-4)
    model.head.weight.normal_(0, 0.5 / math.sqrt(C))
    return model


def write_weights(model: RrwkvModel, cfg: RrwkvConfig, out: Path) -> None:
    save_file(raw_state_dict(model), str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    p = common_parser(__doc__)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--medium-interval", type=int, default=16)
    print(json.dumps(train(parse(p, "rrwkv_trt.training.train", argv)), indent=2))


if __name__ == "__main__":
    main()
