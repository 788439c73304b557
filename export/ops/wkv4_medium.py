"""rrwkv::WKV4Medium (ARCHITECTURES.md §2.3-§2.6): WKV4 plus a medium merged into the state
after every token whose global position closes a window ((pos0 + t + 1) % s == 0).

k_m, v_m [B, Mmax, C] hold the mediums closing in this call in close order: row r is sequence b's
r-th close. Rows past a sequence's last close are ignored.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .wkv4 import wkv4_step


def medium_merge(w: Tensor, aa: Tensor, bb: Tensor, pp: Tensor, k_m: Tensor, v_m: Tensor,
                 medium_decays: int) -> tuple[Tensor, Tensor, Tensor]:
    """Insert one medium (k_m, v_m [B, C]) into the state.

    medium_decays=0 inserts without consuming a time slot (no extra decay, §2.3), so at
    k_m = -1e30 the state is unchanged bit for bit once pp is finite. medium_decays=1 (§2.8.1)
    lets the medium occupy a time slot: the state decays by w once, like a token update.
    """
    base = pp + w if medium_decays else pp
    p = torch.maximum(base, k_m)
    e1 = torch.exp(base - p)
    e2 = torch.exp(k_m - p)
    return e1 * aa + e2 * v_m, e1 * bb + e2, p


def naive_wkv4_medium(w: Tensor, u: Tensor, k: Tensor, v: Tensor, k_m: Tensor, v_m: Tensor,
                      aa: Tensor, bb: Tensor, pp: Tensor, pos0: Tensor, s: int, medium_decays: int = 0
                      ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Sequential WKV4Medium over T tokens.

    Args: w, u [C]; k, v [B, T, C]; k_m, v_m [B, Mmax, C]; aa, bb, pp [B, C]; pos0 [B] int64;
      s the medium interval; medium_decays 0 or 1.
    Returns: y [B, T, C] in k's dtype; aa', bb', pp' [B, C].
    """
    dt, out_dtype = aa.dtype, k.dtype
    w, u, k, v, k_m, v_m = (x.to(dt) for x in (w, u, k, v, k_m, v_m))
    B, T, _ = k.shape
    row = torch.zeros(B, dtype=torch.long, device=k.device)  # next medium row per sequence
    batch_idx = torch.arange(B, device=k.device)
    ys = []
    for t in range(T):
        y_t, aa, bb, pp = wkv4_step(w, u, k[:, t], v[:, t], aa, bb, pp)
        ys.append(y_t)
        closes = (pos0 + t + 1) % s == 0  # [B]
        if bool(closes.any()):
            r = row.clamp(max=k_m.shape[1] - 1)
            naa, nbb, npp = medium_merge(w, aa, bb, pp, k_m[batch_idx, r], v_m[batch_idx, r], medium_decays)
            c = closes[:, None]
            aa, bb, pp = torch.where(c, naa, aa), torch.where(c, nbb, bb), torch.where(c, npp, pp)
            row = row + closes.long()
    y = torch.stack(ys, dim=1) if ys else k.new_zeros(k.shape)
    return y.to(out_dtype), aa, bb, pp
