"""Where each token of one ∞-former call reads and writes (docs/families/inftyformer.md §4.11.4), as index tensors.

A call feeds T tokens per sequence starting at the sequence's position p0 (the `pos` slot; sequences of a batch may
stand at different positions). Token i is at position p_i = p0 + i. Its query sees the positions p_i - W .. p_i
(the ring buffers hold p0 - W .. p0 - 1 before the call, slot s the latest position ≡ s mod W); after its query it
evicts position p_i - W (when p_i >= W) into the pending list, and the LTM is updated as soon as the list holds L
vectors. With T <= L a call holds at most one update, so every index below is a closed form of (p0, i) and the
graph has no branch.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from rrwkv_trt.core.families.inftyformer import InftyformerConfig

KEEP, FIT, UPDATE = 0, 1, 2  # rrwkv::LTMUpdate's per-sequence modes (plugins/ltm_update/README.md)
HIST_EDGE_SLACK = 1e-6  # §4.4: the histogram's outer edges are moved out to -1e-6 and 1 + 1e-6


class CallPlan(NamedTuple):
    """Index tensors of one call, shared by every layer. Shapes: B sequences, T tokens, W window, L segment."""

    rel: Tensor  # [B, T, W+T] int64: query position - key position; keys are the ring slots, then the call
    visible: Tensor  # [B, T, W+T] bool: the key exists (position >= 0) and is in the query's window
    ring_src: Tensor  # [B, W]: each ring slot's content after the call, as an index into [ring; call]
    evict_src: Tensor | None  # [B, T]: the vector token i evicts (position p_i - W), an index into [ring; call]
    list_src: Tensor | None  # [B, 2L]: the pending list (the pending buffer, then the call's evictions), as an
    #                          index into [pending (L); evictions (T)]; entries past its length are don't-cares
    pending_src: Tensor | None  # [B, L]: the pending buffer after the call, as an index into the list
    pending_valid: Tensor | None  # [B, L] bool: that entry exists (the rest of the buffer is zeroed)
    mode: Tensor | None  # [B] int64: KEEP, FIT (first update) or UPDATE
    update: Tensor | None  # [B] bool: the list reaches L vectors in this call
    uses_new: Tensor | None  # [B, T] bool: the token's query comes after this call's update
    sees_ltm: Tensor | None  # [B, T] bool: at least one update precedes the token's query
    counts_old: Tensor | None  # [B, T] bool: the token reads the old B (sticky: its masses go into the update's
    #                            histogram)


def ring_positions(pos: Tensor, W: int) -> Tensor:
    """The position each ring slot s holds before a token at `pos` ([...]): the latest q <= pos - 1 with q ≡ s
    (mod W); negative where no such position exists yet. Returns [..., W]."""
    s = torch.arange(W, device=pos.device)
    return pos[..., None] - 1 - torch.remainder(pos[..., None] - 1 - s, W)


def call_plan(pos: Tensor, T: int, cfg: InftyformerConfig) -> CallPlan:
    """The plan of a call of T tokens (T <= cfg.max_call_tokens) from positions pos [B] int64."""
    W = cfg.window
    i = torch.arange(T, device=pos.device)
    p0 = pos[:, None]
    p = p0 + i                                                         # [B, T]
    key_pos = torch.cat([ring_positions(pos, W), p], 1)                # [B, W+T]
    rel = p[:, :, None] - key_pos[:, None, :]
    visible = (key_pos[:, None, :] >= 0) & (rel >= 0) & (rel <= W)
    p_end = p0 + (T - 1)
    latest = p_end - torch.remainder(p_end - torch.arange(W, device=pos.device), W)  # [B, W]
    ring_src = torch.where(latest >= p0, W + latest - p0, torch.arange(W, device=pos.device))
    if not cfg.use_ltm:
        return CallPlan(rel, visible, ring_src, *(None,) * 9)
    return CallPlan(rel, visible, ring_src, *_ltm_plan(pos, i, T, cfg))


def _ltm_plan(pos: Tensor, i: Tensor, T: int, cfg: InftyformerConfig) -> tuple[Tensor, ...]:
    W, L = cfg.window, cfg.segment_len
    p0 = pos[:, None]
    evict_src = torch.where(i < W, torch.remainder(p0 + i, W), i)     # ring slot of p_i - W, or call entry i - W
    first = torch.clamp(W - pos, min=0)                                # [B] the first token that evicts
    n = torch.remainder(torch.clamp(pos - W, min=0), L)                # [B] pending vectors before the call
    total = n + torch.clamp(T - first, min=0)                          # [B] ... and after its evictions
    update = total >= L
    c = torch.arange(2 * L, device=pos.device)
    list_src = torch.where(c < n[:, None], c, L + first[:, None] + c - n[:, None]).clamp(max=L + T - 1)
    pending_src = torch.arange(L, device=pos.device) + torch.where(update, L, 0)[:, None]
    pending_valid = pending_src < total[:, None]
    had_ltm = pos - W >= L                                             # [B] an update happened before the call
    mode = torch.where(update, torch.where(had_ltm, UPDATE, FIT), KEEP)
    uses_new = n[:, None] + torch.clamp(i - first[:, None], min=0) >= L
    sees_ltm = had_ltm[:, None] | uses_new
    counts_old = had_ltm[:, None] & ~uses_new
    return evict_src, list_src, pending_src, pending_valid, mode, update, uses_new, sees_ltm, counts_old


def histogram_edges(bins: int) -> Tensor:
    """The sticky histogram's bin edges [bins + 1] over [0, 1], the outer two moved out by HIST_EDGE_SLACK (§4.4)."""
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)
    edges[0], edges[-1] = -HIST_EDGE_SLACK, 1.0 + HIST_EDGE_SLACK
    return edges


def histogram_mass(mu: Tensor, sigma2: Tensor, edges: Tensor) -> Tensor:
    """The mass of N(mu, sigma2) in each bin: Φ((hi - μ)/σ) - Φ((lo - μ)/σ). mu, sigma2 [...] -> [..., NB]."""
    z = (edges.to(mu.dtype) - mu[..., None]) / torch.sqrt(sigma2)[..., None]
    cdf = 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))
    return cdf[..., 1:] - cdf[..., :-1]
