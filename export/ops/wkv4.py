"""rrwkv::WKV4 (ARCHITECTURES.md §1.3, §1.8): the RWKV-4 WKV recurrence with explicit (aa, bb, pp) state.

The pure-PyTorch reference `naive_wkv4` is the oracle of the CPU and CUDA kernels in plugins/wkv4/,
and backs the torch custom op that the exporter turns into ONE `rrwkv::WKV4` node.
"""
from __future__ import annotations

import torch
from torch import Tensor


def wkv4_step(w: Tensor, u: Tensor, k_t: Tensor, v_t: Tensor, aa: Tensor, bb: Tensor, pp: Tensor
              ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One token of the numerically stable recurrence, exactly as [PIP] att_one does it.

    Args: w, u [C] (w already -exp(time_decay)); k_t, v_t, aa, bb, pp [B, C], all in the compute dtype.
    Returns: wkv_t [B, C] and the new aa, bb, pp [B, C].
    """
    ww = u + k_t
    p = torch.maximum(pp, ww)
    e1 = torch.exp(pp - p)
    e2 = torch.exp(ww - p)
    wkv = (e1 * aa + e2 * v_t) / (e1 * bb + e2)
    ww = w + pp
    p = torch.maximum(ww, k_t)
    e1 = torch.exp(ww - p)
    e2 = torch.exp(k_t - p)
    return wkv, e1 * aa + e2 * v_t, e1 * bb + e2, p


def naive_wkv4(w: Tensor, u: Tensor, k: Tensor, v: Tensor, aa: Tensor, bb: Tensor, pp: Tensor
               ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Sequential WKV over T tokens.

    Args: w, u [C] f32; k, v [B, T, C] (f32, f16 or f64); aa, bb, pp [B, C] (f32 or f64).
    Returns: y [B, T, C] in k's dtype; aa', bb', pp' [B, C] in the state dtype.
    Arithmetic runs in the state dtype (f32 for f16 inputs, f64 when the state is f64).
    """
    dt, out_dtype = aa.dtype, k.dtype
    w, u, k, v = w.to(dt), u.to(dt), k.to(dt), v.to(dt)
    ys = []
    for t in range(k.shape[1]):
        y_t, aa, bb, pp = wkv4_step(w, u, k[:, t], v[:, t], aa, bb, pp)
        ys.append(y_t)
    y = torch.stack(ys, dim=1) if ys else k.new_zeros(k.shape)
    return y.to(out_dtype), aa, bb, pp
