"""Train a small HGRN2 on the Python standard library's own source (byte-level) and write it as an fla folder.

    python -m rrwkv_trt.training.train_hgrn2 -o build/train-hgrn2 --minutes 55

Same corpus, held-out split, batches, evaluation and loop as the RRWKV-R1 trainer (corpus.py, loop.py), so the two
models' held-out bits per byte compare. The model is export/models/hgrn2.py's Hgrn2Model trained in fla's parameter
space: the one parameter that fla stores differently, `model.lower_bounds` (the logits P [L, D]), is the trained
parameter, and every forward recomputes each layer's lower bound from it with the adapter's own function
(`layer_lower_bounds`, what `load_checkpoint` applies), so the gradient reaches P as it does in fla. The output folder
is what fla's save_pretrained writes (config.json with model_type "hgrn2", model.safetensors with fla's key names,
RMSNorm weights as `weight`, an untied lm_head), plus the byte-level tokenizer.json and training.json; it loads with
`load_checkpoint` (export/families/hgrn2.py) and with fla's HGRN2ForCausalLM.from_pretrained.

Initialisation is fla's (`FLAPreTrainedModel._init_weights`): every projection and the embedding N(0, 0.02²), norm
weights 1, lower-bound logits 0 (layer i's bound starts at i / L). The query scale is fla's, head_k_dim^-0.5.
In training mode the scan is the plain-PyTorch chunked form (`chunked_gated_outer_scan`) at --chunk-size tokens a
chunk (16 was about 3x faster than fla's 64 on the 2-core machine), called directly: the custom op's backward
recomputes its forward, which this loop does not need; in eval mode the model runs its own forward, the custom op, so every held-out number
is what the loaded checkpoint computes.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from rrwkv_trt.core.families.hgrn2 import Hgrn2Config
from rrwkv_trt.export.models.hgrn2 import Hgrn2Attention, Hgrn2Model, layer_lower_bounds
from rrwkv_trt.export.ops.gated_outer_scan import chunked_gated_outer_scan

from .loop import common_parser, parse, train_and_save

INIT_STD = 0.02  # fla's initializer_range


class ChunkedScanAttention(Hgrn2Attention):
    """Hgrn2Attention whose scan, in training mode, is the differentiable plain-PyTorch chunked form at
    `chunk_size`; in eval mode, the model's own forward (the custom op)."""

    def __init__(self, cfg: Hgrn2Config, chunk_size: int):
        super().__init__(cfg)
        self.chunk_size = chunk_size

    def forward(self, x: Tensor, S: Tensor) -> tuple[Tensor, Tensor]:
        if not self.training:
            return super().forward(x, S)
        q, f, v = self.qfv(x)
        o, S = chunked_gated_outer_scan(q, f, self.lower_bound, v, S, self.scale, self.chunk_size)
        return self.output(o, x.dtype), S


class FlaHgrn2(nn.Module):
    """Hgrn2Model with fla's `lower_bounds` logits P [L, D] as the parameter in place of the layers' converted bounds
    (which become plain tensors, recomputed from P at every forward)."""

    def __init__(self, cfg: Hgrn2Config, chunk_size: int):
        super().__init__()
        self.model = Hgrn2Model(cfg)
        for layer in self.model.layers:
            layer.attn = ChunkedScanAttention(cfg, chunk_size)
            del layer.attn.lower_bound  # set from lower_bounds in forward
        self.lower_bounds = nn.Parameter(torch.zeros(cfg.n_layer, cfg.hidden_size))

    def init_state(self, batch: int) -> dict[str, Tensor]:
        return self.model.init_state(batch)

    def forward(self, input_ids: Tensor, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        cfg = self.model.config
        bounds = layer_lower_bounds(self.lower_bounds)
        for i, layer in enumerate(self.model.layers):
            # Layer 0's bound is exactly 0 and fla never applies it; detached because the gate's lb > 0 branch
            # (log lb, masked by torch.where) gives a NaN gradient at lb = 0.
            lb = bounds[i].detach() if i == 0 else bounds[i]
            layer.attn.lower_bound = lb.reshape(cfg.num_heads, cfg.head_k_dim)
        return self.model(input_ids, state)


@torch.no_grad()
def init_fla_(model: FlaHgrn2, seed: int) -> FlaHgrn2:
    """fla's _init_weights: Linear and Embedding weights N(0, INIT_STD²); RMSNorm weights 1, lower_bounds 0."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) * INIT_STD)
    return model


def fla_state_dict(model: FlaHgrn2) -> dict[str, Tensor]:
    """The fla checkpoint of a trainable model (the inverse of FlaHgrn2Checkpoint.convert): fla's key names,
    RMSNorm `gain` -> `weight`, `model.lower_bounds` the logits, lm_head outside `model.`."""
    out = {}
    for name, p in model.named_parameters():
        if name == "lower_bounds":
            name = "model.lower_bounds"
        elif name == "model.lm_head.weight":
            name = "lm_head.weight"
        elif name.endswith(".gain"):
            name = name.removesuffix("gain") + "weight"
        out[name] = p.detach().float().clone().contiguous()
    return out


def fla_config(cfg: Hgrn2Config) -> dict:
    """config.json as fla 0.6.0's HGRN2Config writes it for these sizes (its defaults otherwise; no bos/eos: the
    vocabulary is the 256 bytes)."""
    return dict(model_type="hgrn2", architectures=["HGRN2ForCausalLM"], vocab_size=cfg.vocab_size,
                hidden_size=cfg.hidden_size, num_hidden_layers=cfg.n_layer, num_heads=cfg.num_heads,
                expand_ratio=cfg.head_k_dim, intermediate_size=cfg.intermediate_size, hidden_ratio=4,
                hidden_act="swish", norm_eps=cfg.norm_eps, use_lower_bound=True, use_short_conv=False, conv_size=4,
                attn=None, attn_mode="chunk", elementwise_affine=True, tie_word_embeddings=False,
                attnres_block_size=None, initializer_range=INIT_STD, max_position_embeddings=2048, use_cache=True,
                fuse_norm=True, fuse_swiglu=True, fuse_cross_entropy=True, fuse_linear_cross_entropy=False,
                use_l2warp=False, pad_token_id=None, bos_token_id=None, eos_token_id=None)


def write_weights(model: FlaHgrn2, out: Path) -> None:
    save_file(fla_state_dict(model), str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(fla_config(model.model.config), indent=2) + "\n")


def hgrn2_config(args: argparse.Namespace) -> Hgrn2Config:
    D, K = args.hidden_size, args.expand_ratio
    return Hgrn2Config(vocab_size=256, n_layer=args.n_layer, hidden_size=D, num_heads=D // K, head_k_dim=K,
                       head_v_dim=K, intermediate_size=args.intermediate_size)  # norm_eps: fla's default 1e-6


def train(args: argparse.Namespace) -> dict:
    cfg = hgrn2_config(args)
    model = init_fla_(FlaHgrn2(cfg, args.chunk_size), args.seed)
    parameters = sum(p.numel() for p in model.parameters())
    return train_and_save(model, args, lambda folder: write_weights(model, folder), {"parameters": parameters})


def main(argv: list[str] | None = None) -> None:
    p = common_parser(__doc__, threads=1, eval_every=250)
    p.add_argument("--hidden-size", type=int, default=128)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--expand-ratio", type=int, default=32, help="head_k_dim; heads = hidden size / expand ratio")
    p.add_argument("--intermediate-size", type=int, default=568,
                   help="SwiGLU width (568: about the parameters of models/rrwkv-pystdlib)")
    p.add_argument("--chunk-size", type=int, default=16, help="chunk length of the training scan")
    print(json.dumps(train(parse(p, "rrwkv_trt.training.train_hgrn2", argv)), indent=2))


if __name__ == "__main__":
    main()
