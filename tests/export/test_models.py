"""Reference models: sequence form == step form (float64), arbitrary splits, RRWKV identity == RWKV-4."""
import pytest
import torch
from step_runs import run_steps

from rrwkv_trt.export.families import build_model
from rrwkv_trt.export.models.random_init import randomize_
from rrwkv_trt.core.families.rrwkv import RrwkvConfig
from rrwkv_trt.core.families.rwkv4 import Rwkv4Config

SIZES = dict(vocab_size=61, n_embd=12, n_layer=2, dim_att=10, dim_ffn=40)
CONFIGS = {
    "rwkv4": Rwkv4Config(**SIZES),
    "rrwkv-s4": RrwkvConfig(**SIZES, medium_interval=4),
    "rrwkv-s5-decays": RrwkvConfig(**SIZES, medium_interval=5, medium_decays=1),
    "rrwkv-s1": RrwkvConfig(**SIZES, medium_interval=1),
}
B, T = 3, 29


def f64_model(config, seed=0):
    return randomize_(build_model(config), seed).double()


def start_state(model, batch=B):
    state = model.init_state(batch, torch.float64)
    if "pos" in state:
        state["pos"] = torch.tensor([0, 3, 6], dtype=torch.int64)[:batch]  # unequal, not multiples of s
    return state


def max_state_diff(a, b):
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


@pytest.mark.parametrize("name", CONFIGS)
@torch.no_grad()
def test_sequence_equals_step_float64(name):
    model = f64_model(CONFIGS[name])
    ids = torch.randint(0, SIZES["vocab_size"], (B, T), generator=torch.Generator().manual_seed(1))
    seq_logits, seq_state = model(ids, start_state(model))
    step_logits, step_state = run_steps(model, ids, start_state(model))
    assert (seq_logits - step_logits).abs().max().item() < 1e-12
    assert max_state_diff(seq_state, step_state) < 1e-12


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("split", [1, 5, 8, 17])
@torch.no_grad()
def test_split_prefill_equals_unsplit_float64(name, split):
    model = f64_model(CONFIGS[name], seed=2)
    ids = torch.randint(0, SIZES["vocab_size"], (B, T), generator=torch.Generator().manual_seed(3))
    whole, whole_state = model(ids, start_state(model))
    first, mid_state = model(ids[:, :split], start_state(model))
    second, end_state = model(ids[:, split:], mid_state)
    assert (torch.cat([first, second], dim=1) - whole).abs().max().item() < 1e-12
    assert max_state_diff(whole_state, end_state) < 1e-12


@pytest.mark.parametrize("s", [1, 4, 7])
@torch.no_grad()
def test_rrwkv_identity_equals_rwkv4_bit_for_bit(s):
    """W_ea = W_ef = 0 and β = -1e30: RRWKV-R1 is RWKV-4 exactly, in float32, in both forms."""
    rr = randomize_(build_model(RrwkvConfig(**SIZES, medium_interval=s)), 4, identity_medium=True)
    r4 = build_model(Rwkv4Config(**SIZES))
    r4.load_state_dict({k: v for k, v in rr.state_dict().items() if "medium" not in k})
    ids = torch.randint(0, SIZES["vocab_size"], (B, T), generator=torch.Generator().manual_seed(5))
    rr_state, r4_state = rr.init_state(B), r4.init_state(B)
    rr_state["pos"] = torch.tensor([0, 3, 6])
    assert torch.equal(rr(ids, rr_state)[0], r4(ids, r4_state)[0])
    assert torch.equal(run_steps(rr, ids, rr_state)[0], run_steps(r4, ids, r4_state)[0])
