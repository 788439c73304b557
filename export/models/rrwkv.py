"""RRWKV-R1 reference model (docs/families/rrwkv.md §2): RWKV-4 plus mediums every s tokens.

Each layer squeezes its LN1 (time-mix) and LN2 (channel-mix) outputs of a window into a medium
with carry (m_j = Σ W_s[slot] ⊙ xx + λ ⊙ m_{j-1}); the time-mix merges the projected medium into
the WKV state when its window closes, and both sub-blocks gate their output with 1 + tanh(m W_e^T)
of the latest medium closed strictly before the token. At W_ea = W_ef = 0 and β = -1e30 the model
is RWKV-4 bit for bit.

Project decision (the spec leaves the ONNX form of the chain open between a Scan and any
equivalent): the sequence form evaluates the medium chain m_r = c_r + λ m_{r-1} in closed form,
m_r = Σ_{j≤r} λ^{r-j} c_j + λ^{r+1} m_in, as one [M, M, C] weighted sum (M = ceil(T/s) windows),
so the traced graph holds no loop besides the WKV op. Its cost grows as (T/s)^2 · C; prompts far
beyond a few thousand tokens should be prefilled in chunks (state carries across chunks exactly).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rrwkv_trt.core.families.rrwkv import RrwkvConfig

from ..ops.wkv4 import wkv4_step
from ..ops.wkv4_medium import medium_merge, wkv4_medium
from .rwkv4 import Block, ChannelMix, Rwkv4Model, State, TimeMix, shift

MEDIUM_KEY_BIAS_OFF = -1e30  # β at which an inserted medium has zero weight


@dataclass
class Windows:
    """Window bookkeeping of one sequence-form call, shared by all layers. M = ceil(T/s)."""

    pos0: Tensor  # [B] int64, position of the call's first token
    slot: Tensor  # [B, T] int64, (pos0 + t) % s
    member: Tensor  # [B, M+1, T] 0/1: token t lies in relative window r (row M: trailing window)
    before: Tensor  # [B, T] int64, windows closed in this call strictly before token t
    n_closes: Tensor  # [B] int64, windows closing in this call
    m_max: int


def call_windows(pos0: Tensor, seq_len: int, s: int) -> Windows:
    t = torch.arange(seq_len, device=pos0.device)
    pos = pos0[:, None] + t[None]  # [B, T]
    rel = pos // s - (pos0 // s)[:, None]  # relative window of each token = closes before it
    m_max = (seq_len + s - 1) // s
    rows = torch.arange(m_max + 1, device=pos0.device)
    member = (rel[:, None, :] == rows[None, :, None]).to(torch.float32)
    n_closes = (pos0 + seq_len) // s - pos0 // s
    return Windows(pos0, pos % s, member, rel, n_closes, m_max)


def gather_rows(x: Tensor, idx: Tensor) -> Tensor:
    """x [B, R, C], idx [B, ...] -> x[b, idx[b, ...]] of shape [B, ..., C]."""
    flat = idx.reshape(idx.shape[0], -1)
    out = torch.gather(x, 1, flat[:, :, None].expand(-1, -1, x.shape[-1]))
    return out.reshape(*idx.shape, x.shape[-1])


def medium_chain(win: Windows, squeeze: Tensor, carry: Tensor, xx: Tensor, macc: Tensor, m_in: Tensor
                 ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Window sums and the carried medium chain of one sub-block (§2.4 steps 2-4).

    Args: squeeze [s, C]; carry [C]; xx [B, T, C]; macc, m_in [B, C] (state dtype).
    Returns: mediums [B, M, C] (row r = r-th close; rows past n_closes are unused),
      the medium each token sees [B, T, C], and the outgoing macc and m [B, C].
    """
    dt = m_in.dtype
    c = win.member.to(dt) @ (squeeze.to(dt)[win.slot] * xx.to(dt))  # [B, M+1, C]
    c = torch.cat([c[:, :1] + macc[:, None], c[:, 1:]], dim=1)
    r = torch.arange(win.m_max, device=xx.device)
    lag = r[:, None] - r[None, :]  # [M, M]
    lam = carry.to(dt)
    powers = lam ** lag.clamp(min=0)[:, :, None].to(dt) * (lag >= 0)[:, :, None].to(dt)  # [M, M, C]
    mediums = torch.einsum("rjc,bjc->brc", powers, c[:, :win.m_max])
    mediums = mediums + lam ** (r + 1)[:, None].to(dt) * m_in[:, None]
    chain = torch.cat([m_in[:, None], mediums], dim=1)  # [B, M+1, C]; row 0 = incoming medium
    return mediums, gather_rows(chain, win.before), gather_rows(c, win.n_closes), gather_rows(chain, win.n_closes)


def excite(m: Tensor, weight: Tensor, dtype: torch.dtype) -> Tensor:
    """1 + tanh(m W_e^T): 1 at the zero init."""
    return 1 + torch.tanh(F.linear(m.to(dtype), weight.to(dtype)))


class MediumTimeMix(TimeMix):
    # The sequence-form recurrence; training swaps in a differentiable parallel form (export/train.py).
    wkv_fn = staticmethod(wkv4_medium)

    def __init__(self, cfg: RrwkvConfig):
        super().__init__(cfg)
        C, A, s = cfg.n_embd, cfg.dim_att, cfg.medium_interval
        self.s, self.medium_decays = s, cfg.medium_decays
        self.medium_squeeze = nn.Parameter(torch.full((s, C), 1.0 / s))
        self.medium_carry = nn.Parameter(torch.zeros(C))
        self.medium_key = nn.Parameter(torch.zeros(A, C))
        self.medium_value = nn.Parameter(torch.zeros(A, C))
        self.medium_key_bias = nn.Parameter(torch.full((A,), MEDIUM_KEY_BIAS_OFF))
        self.medium_excite = nn.Parameter(torch.zeros(A, C))

    def project(self, m: Tensor) -> tuple[Tensor, Tensor]:
        """Medium -> (k_m, v_m) in the WKV space, in m's dtype."""
        return (F.linear(m, self.medium_key.to(m.dtype)) + self.medium_key_bias.to(m.dtype),
                F.linear(m, self.medium_value.to(m.dtype)))

    def forward(self, xx: Tensor, st: State, win: Windows) -> tuple[Tensor, State]:
        aa, bb, pp = st["att_aa"], st["att_bb"], st["att_pp"]
        mediums, seen, macc, m = medium_chain(win, self.medium_squeeze, self.medium_carry, xx,
                                              st["att_macc"], st["att_m"])
        k_m, v_m = self.project(mediums)
        r, k, v = self.rkv(xx, shift(xx, st["att_xx"]))
        y, aa, bb, pp = self.wkv_fn(self.time_decay.to(aa.dtype), self.time_first.to(aa.dtype), k, v, k_m, v_m,
                                    aa, bb, pp, win.pos0, self.s, self.medium_decays)
        out = self.output(r * excite(seen, self.medium_excite, r.dtype) * y.to(r.dtype))
        return out, {"att_xx": xx[:, -1], "att_aa": aa, "att_bb": bb, "att_pp": pp,
                     "att_macc": macc, "att_m": m}

    def step(self, xx: Tensor, st: State, slot: Tensor) -> tuple[Tensor, State]:
        """§2.3 for one token; slot [B] = pos % s."""
        aa, bb, pp = st["att_aa"], st["att_bb"], st["att_pp"]
        m_prev, macc = st["att_m"], st["att_macc"]
        w, u = self.time_decay.to(aa.dtype), self.time_first.to(aa.dtype)
        r, k, v = self.rkv(xx, st["att_xx"].to(xx.dtype))
        y, aa, bb, pp = wkv4_step(w, u, k, v, aa, bb, pp)
        out = self.output(r * excite(m_prev, self.medium_excite, r.dtype) * y.to(r.dtype))
        macc = macc + self.medium_squeeze.to(macc.dtype)[slot] * xx.to(macc.dtype)
        closes = (slot == self.s - 1)[:, None]
        m = macc + self.medium_carry.to(macc.dtype) * m_prev
        k_m, v_m = self.project(m)
        naa, nbb, npp = medium_merge(w, aa, bb, pp, k_m, v_m, self.medium_decays)
        return out, {"att_xx": xx, "att_aa": torch.where(closes, naa, aa),
                     "att_bb": torch.where(closes, nbb, bb), "att_pp": torch.where(closes, npp, pp),
                     "att_macc": torch.where(closes, torch.zeros_like(macc), macc),
                     "att_m": torch.where(closes, m, m_prev)}


class MediumChannelMix(ChannelMix):
    def __init__(self, cfg: RrwkvConfig):
        super().__init__(cfg)
        C, s = cfg.n_embd, cfg.medium_interval
        self.s = s
        self.medium_squeeze = nn.Parameter(torch.full((s, C), 1.0 / s))
        self.medium_carry = nn.Parameter(torch.zeros(C))
        self.medium_excite = nn.Parameter(torch.zeros(C, C))

    def forward(self, xx: Tensor, st: State, win: Windows) -> tuple[Tensor, State]:
        _, seen, macc, m = medium_chain(win, self.medium_squeeze, self.medium_carry, xx,
                                        st["ffn_macc"], st["ffn_m"])
        r, kv = self.mix(xx, shift(xx, st["ffn_xx"]))
        out = r * excite(seen, self.medium_excite, r.dtype) * kv
        return out, {"ffn_xx": xx[:, -1], "ffn_macc": macc, "ffn_m": m}

    def step(self, xx: Tensor, st: State, slot: Tensor) -> tuple[Tensor, State]:
        m_prev, macc = st["ffn_m"], st["ffn_macc"]
        r, kv = self.mix(xx, st["ffn_xx"].to(xx.dtype))
        out = r * excite(m_prev, self.medium_excite, r.dtype) * kv
        macc = macc + self.medium_squeeze.to(macc.dtype)[slot] * xx.to(macc.dtype)
        closes = (slot == self.s - 1)[:, None]
        m = macc + self.medium_carry.to(macc.dtype) * m_prev
        return out, {"ffn_xx": xx, "ffn_macc": torch.where(closes, torch.zeros_like(macc), macc),
                     "ffn_m": torch.where(closes, m, m_prev)}


class RrwkvBlock(Block):
    time_mix_cls = MediumTimeMix
    channel_mix_cls = MediumChannelMix


class RrwkvModel(Rwkv4Model):
    block_cls = RrwkvBlock

    def call_context(self, state: State, seq_len: int, step: bool) -> Tensor | Windows:
        s = self.config.medium_interval
        return state["pos"] % s if step else call_windows(state["pos"], seq_len, s)

    def finish_state(self, state: State, new: State, seq_len: int) -> None:
        new["pos"] = state["pos"] + seq_len
