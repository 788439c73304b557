"""The trainers (training/): a few steps of each on tiny sizes and the folders they write; the HGRN2 trainer's fla
folder round trip (fla format -> adapter -> model) reproduces the trained model's logits and held-out loss exactly."""
import json

import numpy as np
import pytest
import torch
from helpers import REPO
from safetensors.torch import load_file

from rrwkv_trt.core.families.hgrn2 import Hgrn2Config
from rrwkv_trt.export.checkpoint import load_checkpoint
from rrwkv_trt.export.families import build_model
from rrwkv_trt.training import train, train_hgrn2
from rrwkv_trt.training.corpus import batches, held_out_bpb, loss_on, stdlib_corpus
from rrwkv_trt.training.loop import CHECKPOINT_SUFFIX, write_folder

TINY = ["--minutes", "1", "--max-steps", "4", "--batch", "2", "--seq", "32", "--eval-every", "2",
        "--eval-batches", "1"]
HGRN2_TINY = ["--hidden-size", "32", "--n-layer", "2", "--expand-ratio", "16", "--intermediate-size", "48",
              "--chunk-size", "8"]
FILES = ["config.json", "model.safetensors", "tokenizer.json", "training.json"]


@pytest.fixture(scope="module")
def corpus():
    return stdlib_corpus()


def run_trainer(module, out, extra):
    module.main(["-o", str(out), *TINY, *extra])
    assert sorted(p.name for p in out.iterdir()) == FILES
    assert not out.with_name(out.name + CHECKPOINT_SUFFIX).exists()  # removed once the folder is written
    assert (out / "tokenizer.json").read_bytes() == (REPO / "models/rrwkv-pystdlib/tokenizer.json").read_bytes()
    report = json.loads((out / "training.json").read_text())
    assert report["steps"] == 4 and [p["step"] for p in report["curve"]] == [2]
    assert report["command"].startswith(f"python -m {module.__name__} -o ")
    return report


@pytest.fixture(scope="module")
def hgrn2_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("hgrn2") / "out"
    return out, run_trainer(train_hgrn2, out, HGRN2_TINY)


def test_rrwkv_trainer_runs(tmp_path, corpus):
    out = tmp_path / "rrwkv"
    report = run_trainer(train, out, ["--n-embd", "16", "--n-layer", "1", "--medium-interval", "4"])
    ckpt = load_checkpoint(out)
    assert ckpt.config.family == "rrwkv"
    model = build_model(ckpt.config, ckpt.state_dict)
    assert round(held_out_bpb(model, corpus[1], 32, 1), 4) == report["held_out_bits_per_byte"]


def test_hgrn2_trainer_writes_an_fla_folder(hgrn2_folder, corpus):
    out, report = hgrn2_folder
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["model_type"], cfg["hidden_size"], cfg["expand_ratio"], cfg["num_heads"]) == ("hgrn2", 32, 16, 2)
    raw = load_file(out / "model.safetensors")
    assert "model.lower_bounds" in raw and "model.norm.weight" in raw and "lm_head.weight" in raw
    assert report["parameters"] == sum(t.numel() for t in raw.values())
    assert report["held_out_bits_per_byte"] < 8  # it learnt something in 4 steps (log2 256 = 8 at the start)
    ckpt = load_checkpoint(out)
    assert (ckpt.config.family, ckpt.config.num_heads, ckpt.config.head_k_dim) == ("hgrn2", 2, 16)
    model = build_model(ckpt.config, ckpt.state_dict)
    assert round(held_out_bpb(model, corpus[1], 32, 1), 4) == report["held_out_bits_per_byte"]


def test_hgrn2_round_trip_is_exact(tmp_path, corpus):
    """Trained weights (lower-bound logits away from 0, gains away from 1) through write_weights, load_checkpoint
    and build_model give the trained model's eval logits and held-out loss bit for bit; the training form (the
    plain-PyTorch chunked scan at chunk 8) computes the same function, with finite gradients reaching every
    lower-bound logit (layer 0's bound, exactly 0 and never applied by fla, is held constant: its gate branch
    has a NaN gradient at lb = 0)."""
    cfg = Hgrn2Config(vocab_size=256, n_layer=3, hidden_size=32, num_heads=2, head_k_dim=16, head_v_dim=16,
                      intermediate_size=48)
    model = train_hgrn2.init_fla_(train_hgrn2.FlaHgrn2(cfg, 8), seed=1)
    opt = torch.optim.AdamW(model.parameters(), lr=0.05)
    x, y = next(batches(corpus[0], 2, 40, np.random.default_rng(0)))
    for _ in range(3):
        opt.zero_grad()
        loss_on(model.train(), x, y).backward()
        grad = model.lower_bounds.grad
        assert torch.isfinite(grad).all() and (grad != 0).all()
        opt.step()
    assert (model.lower_bounds != 0).all()
    state = model.init_state(2)
    train_logits, _ = model.train()(x, state)
    with torch.no_grad():
        eval_logits, _ = model.eval()(x, state)
    torch.testing.assert_close(train_logits.detach(), eval_logits, atol=1e-5, rtol=1e-5)
    write_folder(tmp_path / "rt", lambda folder: train_hgrn2.write_weights(model, folder), {})
    ckpt = load_checkpoint(tmp_path / "rt")
    loaded = build_model(ckpt.config, ckpt.state_dict)
    with torch.no_grad():
        assert torch.equal(loaded(x, loaded.init_state(2))[0], eval_logits)
    assert held_out_bpb(loaded, corpus[1], 40, 1, 4) == held_out_bpb(model, corpus[1], 40, 1, 4)
