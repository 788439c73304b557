"""The ∞-former reference model (export/models/inftyformer.py) in float64: step == sequence across several LTM
updates (sticky or not), arbitrary call splits, batches whose sequences stand at different positions; the short-term
attention against a whole-sequence banded attention written here; the first and second memory updates against the
independent numpy oracle of tests/ops/ltm_oracle.py (docs/families/inftyformer.md §4.11)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from inftyformer_fixtures import SMALL, f64_model, ids_of, np_constants, np_ltm_update
from step_runs import run_steps

from rrwkv_trt.export.models.inftyformer import alibi_slopes

erf = np.vectorize(math.erf)  # numpy has no erf; math.erf is correctly rounded to ~1 ulp

EXACT = 1e-11  # float64 self-consistency
W, L = SMALL["window"], SMALL["segment_len"]
THREE_SEGMENTS = W + 3 * L + 3  # three updates and then some


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def fresh(model, batch):
    return model.init_state(batch, torch.float64)


@pytest.mark.parametrize("sticky", [0, 1])
@torch.no_grad()
def test_sequence_equals_step_across_updates(sticky):
    model = f64_model(seed=1, sticky=sticky)
    ids = ids_of((3, THREE_SEGMENTS), 2)
    seq, seq_state = model(ids, fresh(model, 3))
    step, step_state = run_steps(model, ids, fresh(model, 3))
    assert (seq - step).abs().max().item() < EXACT
    assert max_diff(seq_state, step_state) < EXACT
    assert seq_state["0.ltm_b"].abs().max() > 0.01 and seq_state["1.pending"].abs().max() > 0.01


@pytest.mark.parametrize("cuts", [(1,), (3, 4), (5, 6, 7, 11), (2, 6, 9, 10, 13, 17, 20)])
@torch.no_grad()
def test_split_calls_equal_one_pass(cuts):
    model = f64_model(seed=3, sticky=1)
    ids = ids_of((2, THREE_SEGMENTS), 4)
    whole, whole_state = model(ids, fresh(model, 2))
    state, pieces = fresh(model, 2), []
    for a, b in zip((0, *cuts), (*cuts, ids.shape[1])):
        out, state = model(ids[:, a:b], state)
        pieces.append(out)
    assert (torch.cat(pieces, 1) - whole).abs().max().item() < EXACT
    assert max_diff(state, whole_state) < EXACT


@torch.no_grad()
def test_sequences_at_different_positions_in_one_batch():
    """Rows that have seen 0, 5, 9 and 13 tokens take one call of L tokens together, each as if alone: the call
    holds an update for some rows and not for others."""
    model = f64_model(seed=5, sticky=1)
    history, ids = ids_of((4, 13), 6), ids_of((4, L), 7)
    alone, states = [], []
    for row, seen in enumerate((0, 5, 9, 13)):
        _, st = model(history[row:row + 1, :seen], fresh(model, 1)) if seen else (None, fresh(model, 1))
        states.append(st)
        alone.append(model(ids[row:row + 1], st))
    batch_state = {k: torch.cat([s[k] for s in states]) for k in states[0]}
    together, new = model(ids, batch_state)
    assert (together - torch.cat([a[0] for a in alone])).abs().max().item() < EXACT
    assert max_diff(new, {k: torch.cat([a[1][k] for a in alone]) for k in new}) < EXACT


def banded_attention_logits(model, ids: torch.Tensor) -> torch.Tensor:
    """The model without the LTM term, written over the whole sequence: query i attends to keys i-W..i with the
    ALiBi bias, pre-LN blocks, GELU MLP."""
    cfg = model.config
    T, H, d = ids.shape[1], cfg.n_head, cfg.head_dim
    i = torch.arange(T)
    rel = i[:, None] - i[None, :]
    band = (rel >= 0) & (rel <= cfg.window)
    bias = -alibi_slopes(H)[:, None, None] * rel
    x = model.embed.weight[ids]
    for blk in model.blocks:
        h = F.layer_norm(x, (cfg.d_model,), blk.ln1.weight, blk.ln1.bias, blk.ln1.eps)
        q, k, v = (p(h).view(*ids.shape, H, d).transpose(1, 2) for p in (blk.stm.q, blk.stm.k, blk.stm.v))
        scores = (q @ k.transpose(-1, -2)) / d ** 0.5 + bias
        att = scores.masked_fill(~band, float("-inf")).softmax(-1) @ v
        x = x + blk.stm.o(att.transpose(1, 2).flatten(2))
        h = F.layer_norm(x, (cfg.d_model,), blk.ln2.weight, blk.ln2.bias, blk.ln2.eps)
        x = x + blk.mlp.proj(F.gelu(blk.mlp.fc(h)))
    x = F.layer_norm(x, (cfg.d_model,), model.ln_f.weight, model.ln_f.bias, model.ln_f.eps)
    return x @ model.head.weight.T


@pytest.mark.parametrize("window", [3, 6, 40])
@torch.no_grad()
def test_plain_variant_is_banded_attention(window):
    model = f64_model(seed=8, use_ltm=0, window=window)
    assert {t.slot.name for t in model.state_spec().tensors()} == {"stm_k", "stm_v", "pos"}
    ids = ids_of((2, 30), 9)
    logits, _ = model(ids, fresh(model, 2))
    assert (logits - banded_attention_logits(model, ids)).abs().max().item() < EXACT


@torch.no_grad()
def test_ltm_term_starts_with_the_first_update():
    """Until W + L tokens (the first L evictions and their fit), the model is the banded attention; from then on
    the LTM term moves the logits."""
    model = f64_model(seed=10)
    ids = ids_of((2, THREE_SEGMENTS), 11)
    logits, _ = model(ids, fresh(model, 2))
    gap = (logits - banded_attention_logits(model, ids)).abs().amax((0, 2))
    assert gap[:W + L].max() < EXACT
    assert gap[W + L:].min() > 1e-4


def layer0_inputs(model, ids: torch.Tensor) -> np.ndarray:
    """ln1 outputs of layer 0 [B, T, e]: the vectors layer 0 evicts into its memory."""
    blk = model.blocks[0]
    x = model.embed.weight[ids]
    return F.layer_norm(x, (model.config.d_model,), blk.ln1.weight, blk.ln1.bias, blk.ln1.eps).numpy()


def np_histogram(model, xs: np.ndarray, b1: np.ndarray) -> np.ndarray:
    """§4.4's histogram of layer 0's queries xs [B, n, e] (ln1 outputs) read against the memory b1 [B, N, e]: the
    N(μ, σ²) mass of every head's query in each bin, summed, in float64 numpy."""
    cfg, ltm, stm = model.config, model.blocks[0].ltm, model.blocks[0].stm
    H, d = cfg.n_head, cfg.head_dim
    q = (xs @ stm.q.weight.numpy().T).reshape(*xs.shape[:2], H, d)
    K = (b1 @ ltm.key.weight.numpy().T).reshape(*b1.shape[:2], H, d)
    s = np.einsum("bnhd,bjhd->bnhj", q, K) / np.sqrt(d)
    mu = 1 / (1 + np.exp(-(s @ ltm.w_mu.numpy())))
    sigma2 = np.maximum(np.log1p(np.exp(s @ ltm.w_sigma.numpy())), cfg.sigma2_min)
    edges = np.linspace(0, 1, cfg.hist_bins + 1)
    edges[0], edges[-1] = -1e-6, 1 + 1e-6
    cdf = 0.5 * (1 + erf((edges - mu[..., None]) / np.sqrt(2 * sigma2[..., None])))
    return np.diff(cdf, axis=-1).sum((1, 2))


@pytest.mark.parametrize("sticky", [0, 1])
@torch.no_grad()
def test_layer0_memory_follows_the_numpy_oracle(sticky):
    """Layer 0's B after the first update is the ridge fit G^T X of the first L evicted inputs; after the second,
    the update of §4.3 of the next L, sticky at the quantiles of the histogram of the L queries that read the first
    memory (§4.4)."""
    model = f64_model(seed=12, sticky=sticky)
    cfg = model.config
    exact = np_constants(cfg.num_basis, L, cfg.num_samples, cfg.tau, cfg.ridge, cfg.sigmas, bool(cfg.code_quirks))
    consts = {name: getattr(model, f"ltm_{name}").numpy() for name in exact}  # stored as fp32 (§4.9)
    for name, value in exact.items():
        np.testing.assert_allclose(consts[name], value, rtol=2 ** -23, atol=0, err_msg=name)
    ids = ids_of((2, W + 2 * L), 13)
    xs = layer0_inputs(model, ids)
    _, first = model(ids[:, :W + L], fresh(model, 2))
    fit = np_ltm_update(consts | {"B_past": np.zeros((2, cfg.num_basis, cfg.d_model)), "X_new": xs[:, :L],
                                  "mode": [1, 1], "hist": np.zeros((2, cfg.hist_bins))}, sticky)
    np.testing.assert_allclose(first["0.ltm_b"].numpy(), fit, atol=1e-10, rtol=1e-8)
    _, second = model(ids, fresh(model, 2))
    hist = np_histogram(model, xs[:, W + L:], fit)
    update = np_ltm_update(consts | {"B_past": fit, "X_new": xs[:, L:2 * L], "mode": [2, 2], "hist": hist}, sticky)
    np.testing.assert_allclose(second["0.ltm_b"].numpy(), update, atol=1e-10, rtol=1e-8)
    if sticky:  # the second memory differs from the non-sticky one
        plain = np_ltm_update(consts | {"B_past": fit, "X_new": xs[:, L:2 * L], "mode": [2, 2], "hist": hist}, 0)
        assert np.abs(update - plain).max() > 1e-3
