"""The training loop every trainer shares: command line, AdamW on a wall-clock budget, periodic held-out evaluation
with a checkpoint, and the output folder written whole or not at all.

A trainer (train.py, train_hgrn2.py) builds a trainable model with the project's interface (model(ids,
model.init_state(B)) -> logits, state) and a `write_weights(folder)` that writes its model.safetensors and
config.json for the current weights; `train_and_save` does the rest. The folder gets the byte-level tokenizer.json
and a training.json (steps, minutes, held-out and unigram bits per byte, the evaluation curve, the command).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from rrwkv_trt.core.files import fsync_dir
from rrwkv_trt.runtime.tokenizer import byte_level_tokenizer

from .corpus import LN2, batches, held_out_bpb, loss_on, stdlib_corpus, unigram_bits_per_byte

WARMUP_STEPS = 100
FINAL_LR_FRACTION = 0.1  # the cosine decays the learning rate to this fraction of --lr at the end of the budget
CHECKPOINT_SUFFIX = ".checkpoint"  # OUT.checkpoint/: the latest periodic checkpoint, removed once OUT is written

WriteWeights = Callable[[Path], None]


def common_parser(doc: str, threads: int = 2, lr: float = 2e-3, eval_every: int = 0) -> argparse.ArgumentParser:
    """The options every trainer has; `doc`'s first line is the description."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--minutes", type=float, default=20.0, help="wall-clock training budget")
    p.add_argument("--max-steps", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--threads", type=int, default=threads)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=eval_every,
                   help="steps between held-out evaluations, each followed by a checkpoint in OUT.checkpoint/ "
                        "(0: evaluate only at the end)")
    p.add_argument("--eval-batches", type=int, default=16, help="held-out windows / 16 scored per evaluation")
    p.add_argument("--note", default=None, help="recorded in training.json (e.g. the conditions of the run)")
    return p


def parse(p: argparse.ArgumentParser, module: str, argv: list[str] | None) -> argparse.Namespace:
    args = p.parse_args(argv)
    args.command = f"python -m {module} " + shlex.join(argv if argv is not None else sys.argv[1:])
    return args


def fit(model: nn.Module, args: argparse.Namespace, train_data: np.ndarray, held: np.ndarray,
        on_eval: Callable[[dict], None]) -> dict:
    """AdamW with a linear warm-up, then a cosine decay over the wall-clock budget; stops at --max-steps or when the
    budget is spent. Every --eval-every steps: held-out bits per byte (eval mode), then `on_eval(progress)`.
    Returns {"steps", "train_minutes", "curve"}; the model is left in eval mode."""
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.01)
    rng = np.random.default_rng(args.seed)
    start, steps, curve = time.time(), 0, []
    budget = 60 * args.minutes
    model.train()
    bar = tqdm(total=args.max_steps, desc="train", unit="step", mininterval=10)
    for x, y in batches(train_data, args.batch, args.seq, rng):
        frac = min(1.0, (time.time() - start) / budget)
        for group in opt.param_groups:
            group["lr"] = args.lr * min(1.0, (steps + 1) / WARMUP_STEPS) * (
                FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * frac)))
        loss = loss_on(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        steps += 1
        bar.update()
        bar.set_postfix(bpb=f"{loss.item() / LN2:.3f}", refresh=False)  # the bar redraws every mininterval
        done = steps >= args.max_steps or time.time() - start > budget
        if args.eval_every and steps % args.eval_every == 0 and not done:
            model.eval()
            point = {"step": steps, "minutes": round((time.time() - start) / 60, 1),
                     "held_out_bits_per_byte": round(held_out_bpb(model, held, args.seq, args.eval_batches), 4)}
            model.train()
            curve.append(point)
            bar.write(f"step {steps}: held-out {point['held_out_bits_per_byte']:.4f} bits/byte "
                      f"at {point['minutes']} min")
            on_eval({"steps": steps, "train_minutes": point["minutes"],
                     "held_out_bits_per_byte": point["held_out_bits_per_byte"], "curve": curve})
        if done:
            break
    bar.close()
    model.eval()
    return {"steps": steps, "train_minutes": round((time.time() - start) / 60, 1), "curve": curve}


def train_and_save(model: nn.Module, args: argparse.Namespace, write_weights: WriteWeights,
                   info: dict | None = None) -> dict:
    """Train `model` on the stdlib corpus (corpus.py) under args' budget, then write args.out (atomically):
    write_weights' files, tokenizer.json and training.json (with `info`). Returns the training.json report."""
    torch.set_num_threads(args.threads)
    train_data, held = stdlib_corpus()
    out = Path(args.out)
    checkpoint = out.with_name(out.name + CHECKPOINT_SUFFIX)
    data = {**(info or {}), "unigram_bits_per_byte": round(unigram_bits_per_byte(train_data, held), 4),
            "train_bytes": int(len(train_data)), "held_out_bytes": int(len(held))}
    extra = {"command": args.command} | ({"note": args.note} if args.note else {})

    def on_eval(progress: dict) -> None:
        write_folder(checkpoint, write_weights, progress | data | extra | {"checkpoint": True})

    progress = fit(model, args, train_data, held, on_eval)
    report = {"steps": progress["steps"], "train_minutes": progress["train_minutes"],
              "held_out_bits_per_byte": round(held_out_bpb(model, held, args.seq, args.eval_batches), 4)}
    report |= data | extra | ({"curve": progress["curve"]} if progress["curve"] else {})
    write_folder(out, write_weights, report)
    shutil.rmtree(checkpoint, ignore_errors=True)
    return report


def write_folder(out: Path, write_weights: WriteWeights, report: dict) -> None:
    """The model folder, whole or not at all: written into a temporary sibling, then renamed to `out` (an existing
    `out` is moved aside first and removed after). Files are 0644: the folder is a shipped artifact."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write_weights(tmp)
        byte_level_tokenizer().save(str(tmp / "tokenizer.json"))
        (tmp / "training.json").write_text(json.dumps(report, indent=2) + "\n")
        for f in tmp.iterdir():
            f.chmod(0o644)  # safetensors writes 0600
        tmp.chmod(0o755)
        aside = out.with_name(f".{out.name}.old") if out.exists() else None
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(out, aside)
        try:
            os.replace(tmp, out)
        except BaseException:
            if aside is not None:
                os.replace(aside, out)
            raise
        fsync_dir(out.parent)
        if aside is not None:
            shutil.rmtree(aside)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # only there when something failed
