"""Checkpoint loading: the rwkv==0.8.32 oracle on a random BlinkDL checkpoint, dtypes, bad inputs."""
import os

import pytest
import torch
from safetensors.torch import save_file

from rrwkv_trt.export.checkpoint import load_checkpoint
from rrwkv_trt.export.families import build_model
from rrwkv_trt.export.models.random_init import random_blinkdl_state_dict
from rrwkv_trt.core.families.rrwkv import RrwkvConfig
from rrwkv_trt.core.families.rwkv4 import Rwkv4Config
from rrwkv_trt.core.errors import UserError

CFG = Rwkv4Config(vocab_size=97, n_embd=32, n_layer=2, dim_att=32, dim_ffn=128)
RR_CFG = RrwkvConfig(vocab_size=97, n_embd=32, n_layer=2, dim_att=32, dim_ffn=128, medium_interval=4)
SLOTS = ("att_xx", "att_aa", "att_bb", "att_pp", "ffn_xx")  # [PIP] order 5*i + j
ORACLE_ATOL = 1e-4  # issue 2: logits max abs error vs rwkv 0.8.32, cpu fp32


@pytest.fixture(scope="module")
def oracle_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("oracle") / "tiny_rwkv4.pth"
    torch.save(random_blinkdl_state_dict(CFG, seed=0), path)
    return path


def rwkv_oracle(path):
    os.environ["RWKV_JIT_ON"] = "0"  # read by rwkv.model at import time
    os.environ["RWKV_CUDA_ON"] = "0"
    from rwkv.model import RWKV
    return RWKV(model=str(path.with_suffix("")), strategy="cpu fp32", verbose=False)


@torch.no_grad()
def test_matches_rwkv_package_prefill_and_step(oracle_checkpoint):
    tokens = torch.randint(0, CFG.vocab_size, (64,), generator=torch.Generator().manual_seed(1)).tolist()
    oracle = rwkv_oracle(oracle_checkpoint)
    ref_logits, ref_state = oracle.forward(tokens, None, full_output=True)
    step_state = None
    for tok in tokens:
        ref_step_logits, step_state = oracle.forward([tok], step_state)

    ckpt = load_checkpoint(oracle_checkpoint)
    assert ckpt.config == CFG
    model = build_model(ckpt.config, ckpt.state_dict)
    ids = torch.tensor([tokens])
    logits, state = model(ids, model.init_state(1))
    assert (logits[0] - ref_logits).abs().max().item() <= ORACLE_ATOL
    step = model.init_state(1)
    for tok in tokens:
        step_logits, step = model.step(torch.tensor([tok]), step)
    assert (step_logits[0] - ref_step_logits).abs().max().item() <= ORACLE_ATOL
    for i in range(CFG.n_layer):
        for j, slot in enumerate(SLOTS):
            for ours, ref in ((state, ref_state), (step, step_state)):
                assert torch.allclose(ours[f"{i}.{slot}"][0], ref[5 * i + j].float(), atol=1e-4, rtol=1e-4), slot


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_checkpoints_load_as_float32(tmp_path, dtype):
    path = tmp_path / "half.pth"
    torch.save(random_blinkdl_state_dict(CFG, seed=0, dtype=dtype), path)
    ckpt = load_checkpoint(path)
    assert all(t.dtype == torch.float32 for t in ckpt.state_dict.values())
    assert "blocks.0.ln0.weight" not in ckpt.state_dict and ckpt.state_dict["blocks.1.att.time_decay"].max() < 0


def test_rrwkv_safetensors_folder(tmp_path):
    save_file(random_blinkdl_state_dict(RR_CFG, seed=0), str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text('{"family": "rrwkv", "medium_interval": 4, "medium_decays": 0}')
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.config == RR_CFG and ckpt.tokenizer is None
    build_model(ckpt.config, ckpt.state_dict)  # strict load: every key consumed


def save_pth(tmp_path, sd, name="bad.pth"):
    path = tmp_path / name
    torch.save(sd, path)
    return path


def test_bad_checkpoints_name_the_problem(tmp_path):
    sd = random_blinkdl_state_dict(CFG, seed=0)
    cases = {
        "does not exist": tmp_path / "nope.pth",
        "cannot read checkpoint": tmp_path / "garbled.pth",
        "missing 1 key(s), e.g. ['blocks.1.ffn.value.weight']":
            save_pth(tmp_path, {k: v for k, v in sd.items() if k != "blocks.1.ffn.value.weight"}, "missing.pth"),
        "unexpected key(s), e.g. ['blocks.0.att.extra']":
            save_pth(tmp_path, sd | {"blocks.0.att.extra": torch.zeros(3)}, "extra.pth"),
        "tensor blocks.1.att.key.weight has shape [32, 31], expected [32, 32]":
            save_pth(tmp_path, sd | {"blocks.1.att.key.weight": torch.zeros(32, 31)}, "shape.pth"),
        "RWKV-5/6/7": save_pth(tmp_path, sd | {"blocks.0.att.ln_x.weight": torch.zeros(32)}, "v5.pth"),
        "has dtype torch.int64": save_pth(tmp_path, sd | {"ln_out.bias": torch.zeros(32, dtype=torch.long)}, "i.pth"),
    }
    (tmp_path / "garbled.pth").write_bytes(b"not a checkpoint at all")
    for expected, path in cases.items():
        with pytest.raises(UserError, match=None) as err:
            load_checkpoint(path)
        assert expected in str(err.value) and "\n" not in str(err.value), str(err.value)
    with pytest.raises(UserError, match="unknown model family 'gpt2'"):
        load_checkpoint(cases["does not exist"].with_name("missing.pth"), family="gpt2")
