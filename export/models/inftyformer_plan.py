"""Where each token of one ∞-former call reads and writes (docs/families/inftyformer.md §4.11.4), as index tensors.

A call feeds T tokens per sequence starting at the sequence's position p0 (the `pos` slot; sequences of a batch may
stand at different positions). Token i is at position p_i = p0 + i. Its query sees the positions p_i - W .. p_i
(the ring buffers hold p0 - W .. p0 - 1 before the call, slot s the latest position ≡ s mod W); after its query it
evicts position p_i - W (when p_i >= W) into the pending buffer, and the LTM is updated as soon as the buffer holds
L vectors. With T <= min(L, W) (`max_call_tokens`) a call holds at most one update, the positions it writes into
the ring are distinct and the ones it evicts are all in the ring before it, so every index below is a closed form
of (p0, i) and the graph has no branch.
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
    ring_slot: Tensor  # [B, T]: the ring slot of token i, p_i mod W: where it is written, and where the position
    #                    it evicts, p_i - W, is read from
    pending_slot: Tensor | None  # [B, T]: where token i's eviction goes in the pending buffer, (p_i - W) mod L
    keep_old: Tensor | None  # [B, L] bool: pending slots this call refills for the next segment after an update
    mode: Tensor | None  # [B] int64: KEEP, FIT (first update) or UPDATE
    update: Tensor | None  # [B] bool: the pending buffer fills in this call
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
    """The plan of a call of T <= cfg.max_call_tokens tokens from positions pos [B] int64."""
    W = cfg.window
    i = torch.arange(T, device=pos.device)
    p = pos[:, None] + i                                               # [B, T]
    ring_pos = ring_positions(pos, W)                                  # [B, W]
    rel_ring = p[:, :, None] - ring_pos[:, None, :]                    # [B, T, W], >= 1
    rel_call = (i[:, None] - i[None, :]).expand(pos.shape[0], T, T)    # [B, T, T]
    rel = torch.cat([rel_ring, rel_call], 2)
    visible = torch.cat([(ring_pos[:, None, :] >= 0) & (rel_ring <= W), rel_call >= 0], 2)  # T <= W: in window
    ring_slot = torch.remainder(p, W)
    if not cfg.use_ltm:
        return CallPlan(rel, visible, ring_slot, *(None,) * (len(CallPlan._fields) - 3))
    return CallPlan(rel, visible, ring_slot, *_ltm_plan(pos, p, i, T, cfg))


def _ltm_plan(pos: Tensor, p: Tensor, i: Tensor, T: int, cfg: InftyformerConfig) -> tuple[Tensor, ...]:
    """The pending buffer is a ring over eviction numbers j = p - W (slot j mod L): an update consumes slots
    0..L-1 of one segment, and evictions after it in the same call refill slots 0..k-1 for the next (T <= L keeps
    them from reaching the slots still unread); before the first eviction every slot is still zero."""
    W, L = cfg.window, cfg.segment_len
    pending_slot = torch.remainder(p - W, L)
    first = torch.clamp(W - pos, min=0)                                # [B] the first token that evicts
    n = torch.remainder(torch.clamp(pos - W, min=0), L)                # [B] pending vectors before the call
    total = n + torch.clamp(T - first, min=0)                          # [B] ... and after its evictions
    update = total >= L
    keep_old = torch.arange(L, device=pos.device) < torch.clamp(total - L, min=0)[:, None]
    had_ltm = pos - W >= L                                             # [B] an update happened before the call
    mode = torch.where(update, torch.where(had_ltm, UPDATE, FIT), KEEP)
    uses_new = n[:, None] + torch.clamp(i - first[:, None], min=0) >= L
    sees_ltm = had_ltm[:, None] | uses_new
    counts_old = had_ltm[:, None] & ~uses_new
    return pending_slot, keep_old, mode, update, uses_new, sees_ltm, counts_old


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
