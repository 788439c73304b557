"""The HGRN2 reference model (export/models/hgrn2.py) in float64: step == sequence (chunk boundaries, arbitrary
splits, batches with different histories), the lower bounds, and the model against an independent float64
implementation of fla's forward written here from docs/families/hgrn2.md §3.2."""
import pytest
import torch
import torch.nn.functional as F
from hgrn2_fixtures import convert_in_memory, fla_config, random_fla_state_dict
from step_runs import run_steps

from rrwkv_trt.export.families import build_model
from rrwkv_trt.export.models.hgrn2 import layer_lower_bounds

EXACT = 1e-11  # float64 self-consistency; the chunked form reassociates sums
VOCAB, B = 64, 3


def f64_model(seed: int = 0, **cfg_overrides):
    """(model in float64, fla config.json dict, raw fla state dict)."""
    cfg = fla_config(vocab_size=VOCAB, **cfg_overrides)
    raw = random_fla_state_dict(cfg, seed)
    ckpt = convert_in_memory(cfg, raw)
    return build_model(ckpt.config, ckpt.state_dict).double(), cfg, raw


def ids_of(shape, seed):
    return torch.randint(0, VOCAB, shape, generator=torch.Generator().manual_seed(seed))


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.mark.parametrize("T", [1, 29, 150])  # 150 crosses two chunk boundaries of the op's prefill form
@torch.no_grad()
def test_sequence_equals_step_float64(T):
    model, _, _ = f64_model(seed=1)
    ids = ids_of((B, T), 2)
    seq, seq_state = model(ids, model.init_state(B, torch.float64))
    step, step_state = run_steps(model, ids, model.init_state(B, torch.float64))
    assert (seq - step).abs().max().item() < EXACT
    assert max_diff(seq_state, step_state) < EXACT


@pytest.mark.parametrize("split", [1, 5, 63, 64, 100])
@torch.no_grad()
def test_split_prefill_equals_unsplit_float64(split):
    model, _, _ = f64_model(seed=3)
    ids = ids_of((B, 130), 4)
    whole, whole_state = model(ids, model.init_state(B, torch.float64))
    first, mid = model(ids[:, :split], model.init_state(B, torch.float64))
    second, end = model(ids[:, split:], mid)
    assert (torch.cat([first, second], dim=1) - whole).abs().max().item() < EXACT
    assert max_diff(whole_state, end) < EXACT


@torch.no_grad()
def test_batch_rows_with_different_histories_are_independent():
    """Each row continues its own history: the batched call equals the rows run one by one."""
    model, _, _ = f64_model(seed=5)
    states = [model(ids_of((1, n), 10 + n), model.init_state(1, torch.float64))[1] for n in (3, 17, 70)]
    batched = {k: torch.cat([s[k] for s in states]) for k in states[0]}
    ids = ids_of((3, 20), 6)
    logits, new = model(ids, batched)
    step_logits, step_new = run_steps(model, ids, batched)
    for row, state in enumerate(states):
        alone, alone_state = model(ids[row:row + 1], state)
        assert (logits[row] - alone[0]).abs().max().item() < EXACT
        assert (step_logits[row] - alone[0]).abs().max().item() < EXACT
        assert max_diff({k: v[row:row + 1] for k, v in new.items()}, alone_state) < EXACT
        assert max_diff({k: v[row:row + 1] for k, v in step_new.items()}, alone_state) < EXACT


def test_lower_bounds_start_at_zero_and_grow():
    P = torch.randn(6, 32, generator=torch.Generator().manual_seed(7)) * 3
    lb = layer_lower_bounds(P)
    assert lb.dtype == torch.float32 and torch.equal(lb[0], torch.zeros(32))
    assert bool((lb[1:] >= lb[:-1]).all()) and bool((lb >= 0).all()) and bool((lb < 1).all())
    ref = torch.cumsum(torch.softmax(P.double(), 0), 0)
    assert (lb.double() - (ref - ref[0])).abs().max().item() < 1e-6


def test_converted_lower_bounds_per_layer():
    _, cfg, raw = f64_model(seed=8, num_hidden_layers=3)
    ckpt = convert_in_memory(cfg, raw)
    lb = layer_lower_bounds(raw["model.lower_bounds"])
    for i in range(3):
        assert torch.equal(ckpt.state_dict[f"layers.{i}.attn.lower_bound"], lb[i].reshape(4, 16))
    assert not (ckpt.state_dict["layers.0.attn.lower_bound"]).any()
    cfg = fla_config(vocab_size=VOCAB, use_lower_bound=False)
    off = convert_in_memory(cfg, random_fla_state_dict(cfg, 8))
    assert all(not t.any() for k, t in off.state_dict.items() if k.endswith("lower_bound"))


# --- An independent float64 implementation of fla's HGRN2ForCausalLM (§3.2), on the raw fla keys ---

def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def fla_attention(raw, p, x, lb, layer, heads, scale):
    """fla/layers/hgrn2.py HGRN2Attention.forward with the recurrence written out per token (naive_recurrent_gla)."""
    W = lambda name: raw[p + name].double()  # noqa: E731
    q, f, i = F.silu(x @ W("q_proj.weight").T), x @ W("f_proj.weight").T, x @ W("i_proj.weight").T
    g = F.logsigmoid(f)
    if lb is not None and layer > 0:
        g = torch.logaddexp(lb.log(), torch.log1p(-lb) + g)
    k = 1 - g.exp()
    Bn, T, D = x.shape
    q, k, g = (t.reshape(Bn, T, heads, -1) for t in (q, k, g))
    v = i.reshape(Bn, T, heads, -1)
    S = torch.zeros(Bn, heads, q.shape[-1], v.shape[-1], dtype=torch.float64)
    o = torch.zeros_like(v)
    for t in range(T):
        S = S * g[:, t].exp()[..., None] + k[:, t][..., None] * v[:, t][..., None, :]
        o[:, t] = (q[:, t][..., None] * scale * S).sum(-2)
    o = rms_norm(o.reshape(Bn, T, D), W("g_norm.weight"), 1e-5)  # rms_norm_linear's default eps
    return o @ W("o_proj.weight").T


def fla_forward(raw, cfg, ids, scale=None):
    """Logits [B, T, V] of fla's HGRN2ForCausalLM for the raw state dict `raw` and config.json `cfg`, float64."""
    D, L, eps = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["norm_eps"]
    heads = D // cfg["expand_ratio"]
    scale = cfg["expand_ratio"] ** -0.5 if scale is None else scale
    lbs = None
    if cfg["use_lower_bound"]:  # fla: softmax(0, dtype=torch.float), in fp32
        lbs = raw["model.lower_bounds"].softmax(0, dtype=torch.float)
        lbs = (lbs.cumsum(0) - lbs[0]).double()
    x = raw["model.embeddings.weight"].double()[ids]
    for layer in range(L):
        p = f"model.layers.{layer}."
        lb = None if lbs is None else lbs[layer]
        x = x + fla_attention(raw, p + "attn.", rms_norm(x, raw[p + "attn_norm.weight"].double(), eps), lb, layer,
                              heads, scale)
        h = rms_norm(x, raw[p + "mlp_norm.weight"].double(), eps)
        mlp = F.silu(h @ raw[p + "mlp.gate_proj.weight"].double().T) * (h @ raw[p + "mlp.up_proj.weight"].double().T)
        x = x + mlp @ raw[p + "mlp.down_proj.weight"].double().T
    head = raw["model.embeddings.weight" if cfg["tie_word_embeddings"] else "lm_head.weight"].double()
    return rms_norm(x, raw["model.norm.weight"].double(), eps) @ head.T


@pytest.mark.parametrize("variant", [
    {},
    {"use_lower_bound": False},
    {"tie_word_embeddings": True, "norm_eps": 1e-5},
    {"query_scale": "one"},
    {"hidden_size": 72, "use_lower_bound": False},  # 4 heads of K = 16, V = 18
])
@torch.no_grad()
def test_model_matches_independent_fla_forward_float64(variant):
    model, cfg, raw = f64_model(seed=9, **variant)
    ids = ids_of((2, 80), 11)  # 80 tokens: the op's prefill crosses a chunk boundary
    expected = fla_forward(raw, cfg, ids, 1.0 if variant.get("query_scale") == "one" else None)
    seq, _ = model(ids, model.init_state(2, torch.float64))
    step, _ = run_steps(model, ids, model.init_state(2, torch.float64))
    assert expected.abs().max().item() > 1  # logits of size, not a degenerate model
    assert (seq - expected).abs().max().item() < 1e-10
    assert (step - expected).abs().max().item() < 1e-10


@torch.no_grad()
def test_float32_model_is_close_to_float64():
    model, cfg, raw = f64_model(seed=12)
    ids = ids_of((2, 100), 13)
    expected = fla_forward(raw, cfg, ids)
    fp32 = model.float()
    seq, _ = fp32(ids, fp32.init_state(2))
    assert seq.dtype == torch.float32 and (seq.double() - expected).abs().max().item() < 1e-4
