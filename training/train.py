"""Train the shipped RRWKV-R1 model on the Python standard library's own source (byte-level).

    python -m rrwkv_trt.training.train -o models/rrwkv-pystdlib --minutes 20

The corpus is every `.py` file under this interpreter's stdlib (sysconfig "stdlib"), sorted by
path; a file goes to the held-out split when crc32(relative path) % 20 == 0, so the split is
stable across machines. Training runs the medium WKV as the plain-PyTorch reference
`naive_wkv4_medium` (autograd differentiates its per-token loop, which on 2 CPU cores beat an
O(T^2) attention form; measured: README "The shipped model"), where export and decoding use the custom op. The output folder holds
model.safetensors (BlinkDL key names, raw time_decay, ln0), config.json and tokenizer.json.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import sysconfig
import time
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn
from torch.nn.utils import parametrize
from tqdm import tqdm

from rrwkv_trt.core.families.rrwkv import RrwkvConfig
from rrwkv_trt.runtime.tokenizer import byte_level_tokenizer

from rrwkv_trt.export.models.random_init import randomize_
from rrwkv_trt.export.models.rrwkv import MediumTimeMix, RrwkvModel
from rrwkv_trt.export.ops.wkv4_medium import naive_wkv4_medium

LN2 = math.log(2)


def stdlib_corpus(holdout_mod: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(train bytes, held-out bytes) as uint8 arrays; files joined by a blank line."""
    root = Path(sysconfig.get_paths()["stdlib"])
    train, held = [], []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if "site-packages" in rel:
            continue
        data = path.read_bytes() + b"\n\n"
        (held if zlib.crc32(rel.encode()) % holdout_mod == 0 else train).append(data)
    return np.frombuffer(b"".join(train), np.uint8), np.frombuffer(b"".join(held), np.uint8)


def unigram_bits_per_byte(train: np.ndarray, held: np.ndarray) -> float:
    """Cross-entropy of the held-out bytes under the (add-one smoothed) training byte frequencies."""
    counts = np.bincount(train, minlength=256).astype(np.float64) + 1
    logp = np.log2(counts / counts.sum())
    return float(-logp[held].mean())


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


def batches(data: np.ndarray, batch: int, seq: int, rng: np.random.Generator):
    while True:
        starts = rng.integers(0, len(data) - seq - 1, batch)
        chunk = np.stack([data[s:s + seq + 1] for s in starts]).astype(np.int64)
        yield torch.from_numpy(chunk[:, :-1]), torch.from_numpy(chunk[:, 1:])


def loss_on(model: RrwkvModel, x: Tensor, y: Tensor) -> Tensor:
    logits, _ = model(x, model.init_state(x.shape[0]))
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


@torch.no_grad()
def held_out_bpb(model: RrwkvModel, held: np.ndarray, seq: int, n_batches: int = 16, batch: int = 16) -> float:
    """Mean bits per byte over fixed, evenly spaced held-out windows (next-byte prediction)."""
    starts = np.linspace(0, len(held) - seq - 2, n_batches * batch).astype(np.int64)
    total = 0.0
    for chunk in np.split(starts, n_batches):
        xy = torch.from_numpy(np.stack([held[s:s + seq + 1] for s in chunk]).astype(np.int64))
        total += loss_on(model, xy[:, :-1], xy[:, 1:]).item()
    return total / n_batches / LN2


def train(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    cfg = RrwkvConfig(vocab_size=256, n_embd=args.n_embd, n_layer=args.n_layer, dim_att=args.n_embd,
                      dim_ffn=4 * args.n_embd, medium_interval=args.medium_interval)
    model = make_trainable(init_for_training(RrwkvModel(cfg), args.seed)).train()
    train_data, held = stdlib_corpus()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.01)
    rng = np.random.default_rng(args.seed)
    start, steps, deadline = time.time(), 0, time.time() + 60 * args.minutes
    bar = tqdm(total=args.max_steps, desc="train", unit="step", mininterval=10)
    for x, y in batches(train_data, args.batch, args.seq, rng):
        frac = min(1.0, (time.time() - start) / (60 * args.minutes))
        for group in opt.param_groups:  # linear warm-up then cosine decay over the time budget
            group["lr"] = args.lr * min(1.0, (steps + 1) / 100) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        loss = loss_on(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        steps += 1
        bar.update()
        bar.set_postfix(bpb=f"{loss.item() / LN2:.3f}")
        if steps >= args.max_steps or time.time() > deadline:
            break
    bar.close()
    model.eval()
    report = {"steps": steps, "train_minutes": round((time.time() - start) / 60, 1),
              "held_out_bits_per_byte": round(held_out_bpb(model, held, args.seq), 4),
              "unigram_bits_per_byte": round(unigram_bits_per_byte(train_data, held), 4),
              "train_bytes": int(len(train_data)), "held_out_bytes": int(len(held))}
    save(model, cfg, Path(args.out), report | {"command": args.command})
    return report


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


def save(model: RrwkvModel, cfg: RrwkvConfig, out: Path, report: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    save_file(raw_state_dict(model), str(out / "model.safetensors"))
    (out / "model.safetensors").chmod(0o644)  # safetensors writes 0600; this is a shipped artifact
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    byte_level_tokenizer().save(str(out / "tokenizer.json"))
    (out / "training.json").write_text(json.dumps(report, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--minutes", type=float, default=20.0, help="wall-clock training budget")
    p.add_argument("--max-steps", type=int, default=100_000)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--medium-interval", type=int, default=16)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.command = "python -m rrwkv_trt.training.train " + " ".join(argv if argv is not None else sys.argv[1:])
    print(json.dumps(train(args), indent=2))


if __name__ == "__main__":
    main()
