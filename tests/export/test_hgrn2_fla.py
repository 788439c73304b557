"""fla's own HGRN2 (flash-linear-attention 0.6.0, the dev extra) as the oracle: a real fla.models.HGRN2ForCausalLM built
on the CPU and saved with save_pretrained loads through our adapter (fla's key names and shapes), and our model
matches a float64 reimplementation of fla's forward around fla.ops.gla.naive.naive_recurrent_gla (fla's Triton
kernels cannot run on a CPU; its plain-PyTorch recurrence computes in fp32 with the scale K^-0.5 hard-coded)."""
import pytest
import torch
import torch.nn.functional as F

fla_models = pytest.importorskip("fla.models")
from fla.ops.gla.naive import naive_recurrent_gla  # noqa: E402
from helpers import assert_close, tolerance  # noqa: E402
from hgrn2_fixtures import fla_shapes  # noqa: E402

from rrwkv_trt.export.checkpoint import load_checkpoint  # noqa: E402
from rrwkv_trt.export.families import build_model, family_of  # noqa: E402

SIZES = dict(hidden_size=64, num_hidden_layers=2, expand_ratio=16, vocab_size=64)
# fuse_norm / fuse_swiglu off: fla then uses torch's nn.RMSNorm and an unfused MLP, which run on the CPU; the keys
# are the same either way.
CPU = dict(fuse_norm=False, fuse_swiglu=False, fuse_cross_entropy=False)


@torch.no_grad()
def fla_model(seed: int, **overrides):
    """fla's HGRN2ForCausalLM with seeded O(1) weights (fla's own init is N(0, 0.02): near-constant logits)."""
    model = fla_models.HGRN2ForCausalLM(fla_models.HGRN2Config(**(SIZES | CPU | overrides))).eval()
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        r = torch.randn(p.shape, generator=g)
        p.copy_(1 + 0.1 * r if name.endswith("norm.weight") else r / p.shape[-1] ** 0.5 if p.ndim == 2 and
                "embeddings" not in name else r)
    return model


def save(model, folder):
    model.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("overrides", [{}, {"tie_word_embeddings": True}, {"use_lower_bound": False},
                                       {"intermediate_size": None, "hidden_ratio": 3, "norm_eps": 1e-5}])
def test_save_pretrained_folder_loads_with_fla_s_keys(tmp_path, overrides):
    model = fla_model(0, **overrides)
    ckpt = load_checkpoint(save(model, tmp_path / "fla"))
    keys = dict(model.state_dict())
    if model.config.tie_word_embeddings:
        keys.pop("lm_head.weight")  # tied: save_pretrained drops it
    expected = family_of("hgrn2").checkpoint.expected_shapes(ckpt.config)
    assert expected == {k: tuple(v.shape) for k, v in keys.items()}
    assert expected == fla_shapes(model.config.to_dict())  # the test fixtures write what fla writes
    assert ckpt.config.intermediate_size == model.model.layers[0].mlp.intermediate_size
    assert ckpt.config.norm_eps == model.config.norm_eps
    assert torch.equal(ckpt.state_dict["lm_head.weight"], model.lm_head.weight)


def test_bin_folder_loads(tmp_path):
    model = fla_model(1)
    folder = save(model, tmp_path / "fla")
    (folder / "model.safetensors").unlink()
    torch.save({k: v.clone() for k, v in model.state_dict().items()}, folder / "pytorch_model.bin")
    assert load_checkpoint(folder).source.name == "pytorch_model.bin"


def fla_attention(attn, x, lower_bound):
    """fla/layers/hgrn2.py HGRN2Attention.forward, float64, with naive_recurrent_gla for the Triton recurrence."""
    q, f, i = F.silu(attn.q_proj(x)), attn.f_proj(x), attn.i_proj(x)
    g = F.logsigmoid(f)
    if lower_bound is not None and attn.layer_idx > 0:
        g = torch.logaddexp(lower_bound.log(), torch.log1p(-lower_bound) + g)
    k = 1 - g.exp()
    heads = lambda t, d: t.reshape(*t.shape[:-1], -1, d)  # noqa: E731
    o, _ = naive_recurrent_gla(heads(q, attn.head_f_dim), heads(k, attn.head_f_dim), heads(i, attn.head_i_dim),
                               heads(g, attn.head_f_dim))
    o = o.flatten(-2)
    o = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + 1e-5) * attn.g_norm.weight  # rms_norm_linear's eps
    return attn.o_proj(o)


@torch.no_grad()
def fla_forward(model, ids):
    """HGRN2ForCausalLM.forward's logits, float64 (the model converted to double; the recurrence in fp32)."""
    m = model.model
    lbs = None
    if model.config.use_lower_bound:
        lbs = m.lower_bounds.float().softmax(0, dtype=torch.float)
        lbs = (lbs.cumsum(0) - lbs[0]).double()
    x = m.embeddings.weight.double()[ids]
    model = model.double()
    for i, block in enumerate(m.layers):
        x = x + fla_attention(block.attn, block.attn_norm(x), None if lbs is None else lbs[i])
        h = block.mlp_norm(x)
        x = x + block.mlp.down_proj(F.silu(block.mlp.gate_proj(h)) * block.mlp.up_proj(h))
    return model.lm_head(m.norm(x))


@pytest.mark.parametrize("overrides", [{}, {"tie_word_embeddings": True}, {"use_lower_bound": False}])
@torch.no_grad()
def test_model_matches_fla_forward(tmp_path, overrides):
    model = fla_model(2, **overrides)
    ckpt = load_checkpoint(save(model, tmp_path / "fla"))
    ours = build_model(ckpt.config, ckpt.state_dict).double()
    ids = torch.randint(0, SIZES["vocab_size"], (2, 70), generator=torch.Generator().manual_seed(3))
    expected = fla_forward(model, ids)
    seq, _ = ours(ids, ours.init_state(2, torch.float64))
    assert expected.abs().max().item() > 1  # logits of size, not a degenerate model
    # The op's bound for naive_recurrent_gla's fp32 recurrence against float64 holds for the logits too (measured
    # 4e-7); g_norm's eps taken as norm_eps instead of rms_norm_linear's 1e-5 gives 2e-4.
    atol, rtol = tolerance("gated_outer_scan", "fla_naive_fp32", "y")
    assert_close("our model vs fla (naive_recurrent_gla)", expected, seq, atol, rtol)
