"""RWKV-4 reference model (docs/families/rwkv4.md §1) with a sequence (prefill) form and a step form.

Parameters hold the *converted* checkpoint form (export/checkpoint.py applies the one-time
transforms): `att.time_decay` is already w = -exp(raw), `time_mix_*` are [C], ln0 is folded
into `emb.weight`. State is a dict keyed by StateTensor.key ("3.att_aa", "pos"; the config's state slots); each
block sees and returns only its own layer's slots, keyed by slot name.

Both forms run in the model's dtype; fp32 slots stay fp32 unless the whole model is float64.
An fp16 model (export/precision.py) keeps its LayerNorms, the WKV and medium parameters and all fp32 state
slots in fp32: LayerNorm computes in its weights' dtype and returns the activation dtype, k and v enter the
WKV op in the activation dtype (the op computes in fp32), the residual stream runs in `residual_dtype` (or is
halved after every `rescale_layer`-th block), and fp16 logits are returned as fp32.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rrwkv_trt.core.families.rwkv4 import Rwkv4Config
from rrwkv_trt.core.state import StateSpec

from ..ops.wkv4 import wkv4, wkv4_step

State = dict[str, Tensor]
LN_EPS = 1e-5


def layer_norm(x: Tensor, ln: nn.LayerNorm, out_dtype: torch.dtype) -> Tensor:
    """LayerNorm computed in the dtype of its weights (fp32 in fp16 models), returned in `out_dtype`."""
    return F.layer_norm(x.to(ln.weight.dtype), (x.shape[-1],), ln.weight, ln.bias, LN_EPS).to(out_dtype)


def lerp_shift(sx: Tensor, delta: Tensor, mix: Tensor) -> Tensor:
    """Token-shift mix xx * mu + sx * (1 - mu), written sx + (xx - sx) * mu with delta = xx - sx computed once for
    a layer's mixes: two nodes per mix after one Sub instead of three (the exported decode step runs ~40 nodes a
    layer, each with a fixed cost); the same value up to rounding."""
    return sx + delta * mix


def shift(xx: Tensor, prev: Tensor) -> Tensor:
    """[B, T, C] -> the previous token's vector per position; `prev` [B, C] precedes token 0."""
    return torch.cat([prev[:, None].to(xx.dtype), xx[:, :-1]], dim=1)


class TimeMix(nn.Module):
    def __init__(self, cfg: Rwkv4Config):
        super().__init__()
        C, A = cfg.n_embd, cfg.dim_att
        self.time_decay = nn.Parameter(torch.full((A,), -1.0))  # w = -exp(raw time_decay), < 0
        self.time_first = nn.Parameter(torch.zeros(A))  # u, the bonus of the current token
        self.time_mix_k = nn.Parameter(torch.full((C,), 0.5))
        self.time_mix_v = nn.Parameter(torch.full((C,), 0.5))
        self.time_mix_r = nn.Parameter(torch.full((C,), 0.5))
        self.key = nn.Linear(C, A, bias=False)
        self.value = nn.Linear(C, A, bias=False)
        self.receptance = nn.Linear(C, A, bias=False)
        self.output = nn.Linear(A, C, bias=False)

    def rkv(self, xx: Tensor, sx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """r = σ(xr W_r^T), k, v, all in the activation dtype (the WKV op computes in fp32 whatever k's dtype)."""
        delta = xx - sx
        r = torch.sigmoid(self.receptance(lerp_shift(sx, delta, self.time_mix_r)))
        k = self.key(lerp_shift(sx, delta, self.time_mix_k))
        v = self.value(lerp_shift(sx, delta, self.time_mix_v))
        return r, k, v

    def forward(self, xx: Tensor, st: State, ctx: object = None) -> tuple[Tensor, State]:
        """Sequence form. xx [B, T, C] (LN1 output) -> out [B, T, C] and this layer's new att slots."""
        aa, bb, pp = st["att_aa"], st["att_bb"], st["att_pp"]
        r, k, v = self.rkv(xx, shift(xx, st["att_xx"]))
        y, aa, bb, pp = wkv4(self.time_decay.to(aa.dtype), self.time_first.to(aa.dtype), k, v, aa, bb, pp)
        out = self.output(r * y.to(r.dtype))
        return out, {"att_xx": xx[:, -1], "att_aa": aa, "att_bb": bb, "att_pp": pp}

    def step(self, xx: Tensor, st: State, ctx: object = None) -> tuple[Tensor, State]:
        """Step form (§1.3 per token). xx [B, C] -> out [B, C] and the new att slots."""
        aa, bb, pp = st["att_aa"], st["att_bb"], st["att_pp"]
        r, k, v = self.rkv(xx, st["att_xx"].to(xx.dtype))
        y, aa, bb, pp = wkv4_step(self.time_decay.to(aa.dtype), self.time_first.to(aa.dtype), k, v, aa, bb, pp)
        out = self.output(r * y.to(r.dtype))
        return out, {"att_xx": xx, "att_aa": aa, "att_bb": bb, "att_pp": pp}


class ChannelMix(nn.Module):
    def __init__(self, cfg: Rwkv4Config):
        super().__init__()
        C, F_ = cfg.n_embd, cfg.dim_ffn
        self.time_mix_k = nn.Parameter(torch.full((C,), 0.5))
        self.time_mix_r = nn.Parameter(torch.full((C,), 0.5))
        self.key = nn.Linear(C, F_, bias=False)
        self.receptance = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(F_, C, bias=False)

    def mix(self, xx: Tensor, sx: Tensor) -> tuple[Tensor, Tensor]:
        """Returns σ(xr W'_r^T) and relu(xk W'_k^T)^2 W'_v^T, both [.., C]."""
        delta = xx - sx
        r = torch.sigmoid(self.receptance(lerp_shift(sx, delta, self.time_mix_r)))
        k = torch.relu(self.key(lerp_shift(sx, delta, self.time_mix_k)))
        kv = self.value(k * k)  # a Mul: ONNX Runtime's Pow(x, 2) costs about 2.5 Muls
        return r, kv

    def forward(self, xx: Tensor, st: State, ctx: object = None) -> tuple[Tensor, State]:
        r, kv = self.mix(xx, shift(xx, st["ffn_xx"]))
        return r * kv, {"ffn_xx": xx[:, -1]}

    def step(self, xx: Tensor, st: State, ctx: object = None) -> tuple[Tensor, State]:
        r, kv = self.mix(xx, st["ffn_xx"].to(xx.dtype))
        return r * kv, {"ffn_xx": xx}


class Block(nn.Module):
    time_mix_cls = TimeMix
    channel_mix_cls = ChannelMix

    def __init__(self, cfg: Rwkv4Config, layer: int):
        super().__init__()
        self.layer = layer
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.att = self.time_mix_cls(cfg)
        self.ffn = self.channel_mix_cls(cfg)

    def forward(self, x: Tensor, st: State, new: State, step: bool, ctx: object = None) -> Tensor:
        """x [B, T, C] (or [B, C] when step); reads this layer's slots `st` ({slot: tensor}), writes its new
        slots into `new`.

        `ctx` carries per-call data a family shares across layers (RRWKV: window indices).
        """
        att = self.att.step if step else self.att
        ffn = self.ffn.step if step else self.ffn
        act = self.att.key.weight.dtype
        out, upd = att(layer_norm(x, self.ln1, act), st, ctx)
        x = x + out  # an fp32 residual stream promotes the fp16 sub-block output
        new.update(upd)
        out, upd = ffn(layer_norm(x, self.ln2, act), st, ctx)
        new.update(upd)
        return x + out


class Rwkv4Model(nn.Module):
    block_cls = Block

    def __init__(self, cfg: Rwkv4Config):
        super().__init__()
        self.config = cfg
        self.residual_dtype: torch.dtype | None = None  # None: the activation dtype (export/precision.py)
        self.rescale_layer = 0  # > 0: x is halved after every rescale_layer-th block (ChatRWKV RESCALE_LAYER)
        self.emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)  # ln0 folded in
        self.blocks = nn.ModuleList(self.block_cls(cfg, i) for i in range(cfg.n_layer))
        self.ln_out = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)

    @property
    def activation_dtype(self) -> torch.dtype:
        return self.head.weight.dtype

    def state_spec(self) -> StateSpec:
        return self.config.state_spec("float16" if self.activation_dtype == torch.float16 else "float32")

    def init_state(self, batch: int, dtype: torch.dtype = torch.float32) -> State:
        """Fresh state from the spec at the model's activation dtype, keyed by StateTensor.key ("3.att_aa",
        "pos"); float64 gives float64 everywhere (for exactness tests)."""
        state = {}
        spec = self.state_spec()
        for t in spec.tensors():
            dt = torch.int64 if t.slot.dtype == "int64" else (
                torch.float64 if dtype == torch.float64 else getattr(torch, t.slot.dtype))
            state[t.key] = torch.full(spec.concrete_shape(t.slot, batch), t.slot.init, dtype=dt)
        return state

    def forward(self, input_ids: Tensor, state: State) -> tuple[Tensor, State]:
        """Sequence form. input_ids [B, T] int64 -> logits [B, T, V] and the new state."""
        return self._run(self.emb(input_ids), state, step=False)

    def step(self, token: Tensor, state: State) -> tuple[Tensor, State]:
        """Step form. token [B] int64 -> logits [B, V] and the new state."""
        return self._run(self.emb(token), state, step=True)

    def _run(self, x: Tensor, state: State, step: bool) -> tuple[Tensor, State]:
        seq_len = 1 if step else x.shape[1]
        ctx = self.call_context(state, seq_len, step)
        if self.residual_dtype is not None:
            x = x.to(self.residual_dtype)
        tensors = self.state_spec().tensors()
        new: State = {}
        for i, block in enumerate(self.blocks):
            mine = {t.slot.name: state[t.key] for t in tensors if t.layer == i}
            updated: State = {}
            x = block(x, mine, updated, step, ctx)
            new.update({t.key: updated[t.slot.name] for t in tensors if t.layer == i})
            if self.rescale_layer and (i + 1) % self.rescale_layer == 0:
                x = x / 2
        self.finish_state(state, new, seq_len)
        logits = self.head(layer_norm(x, self.ln_out, self.activation_dtype))
        return (logits.float() if logits.dtype == torch.float16 else logits), new

    def call_context(self, state: State, seq_len: int, step: bool) -> object:
        """Per-call data shared by all layers; RWKV-4 needs none."""
        return None

    def finish_state(self, state: State, new: State, seq_len: int) -> None:
        """Sequence-level slots after all layers; RWKV-4 has none."""
