"""HGRN2 reference model (docs/families/hgrn2.md §3), as fla writes it (fla/models/hgrn2, fla/layers/hgrn2.py),
with a sequence (prefill) form and a step form.

Parameters hold the *converted* checkpoint form (export/families/hgrn2.py): fla's `lower_bounds [L, D]` become each
layer's `attn.lower_bound [H, K]` (cumsum of the softmax, computed once in fp32 at conversion), RMSNorm weights are
named `gain` (so that an fp16 export can keep them fp32 by name), and a tied head is a copy of the embedding table.
State is a dict keyed by StateTensor.key ("3.recurrent_state"); each block sees and returns only its own layer's S.

Both forms run in the model's dtype; S stays fp32 unless the whole model is float64. An fp16 model
(export/precision.py) keeps its RMSNorm gains, the lower bounds and S in fp32: every RMSNorm computes in fp32 (as
fla's kernels do) and returns the activation dtype, q, f and v enter the GatedOuterScan op in the activation dtype
(the op computes in fp32), the residual stream runs in `residual_dtype`, and fp16 logits are returned as fp32.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rrwkv_trt.core.families.hgrn2 import Hgrn2Config
from rrwkv_trt.core.state import StateSpec

from ..ops.gated_outer_scan import gated_outer_scan, gated_outer_step, hgrn2_log_gate

State = dict[str, Tensor]
# fla 0.6.0's HGRN2Attention normalises o with rms_norm_linear(o, g_norm.weight, ...) without passing an eps, so the
# function's default 1e-5 applies whatever norm_eps says (docs/families/hgrn2.md §3.2).
G_NORM_EPS = 1e-5


class RMSNorm(nn.Module):
    """x / sqrt(mean(x²) + eps) · gain, computed in fp32 (float64 in a float64 model), returned in `out_dtype`."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.gain = nn.Parameter(torch.ones(dim))  # fla's `weight`

    def forward(self, x: Tensor, out_dtype: torch.dtype) -> Tensor:
        dt = torch.promote_types(x.dtype, torch.float32)
        x = x.to(dt)
        normed = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        # normed · gain in this order: the last Mul before the head is where logits_from slices (head_input_op)
        return (normed * self.gain.to(dt)).to(out_dtype)


class Hgrn2Attention(nn.Module):
    """fla's HGRN2Attention (§3.2) without short convolutions; the recurrence is rrwkv::GatedOuterScan."""

    def __init__(self, cfg: Hgrn2Config):
        super().__init__()
        D, H, K, V = cfg.hidden_size, cfg.num_heads, cfg.head_k_dim, cfg.head_v_dim
        self.heads, self.k_dim, self.v_dim, self.scale = H, K, V, cfg.scale
        self.q_proj = nn.Linear(D, H * K, bias=False)
        self.f_proj = nn.Linear(D, H * K, bias=False)
        self.i_proj = nn.Linear(D, H * V, bias=False)
        self.lower_bound = nn.Parameter(torch.zeros(H, K))  # lb of this layer, in [0, 1); 0 in layer 0
        self.g_norm = RMSNorm(H * V, G_NORM_EPS)
        self.o_proj = nn.Linear(H * V, D, bias=False)

    def qfv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x [..., D] -> q = swish(x W_q^T), f = x W_f^T [..., H, K] and v = x W_i^T [..., H, V]."""
        lead = x.shape[:-1]
        q = F.silu(self.q_proj(x)).reshape(*lead, self.heads, self.k_dim)
        f = self.f_proj(x).reshape(*lead, self.heads, self.k_dim)
        v = self.i_proj(x).reshape(*lead, self.heads, self.v_dim)
        return q, f, v

    def output(self, o: Tensor, dtype: torch.dtype) -> Tensor:
        """o [..., H, V] -> o_proj(RMSNorm(concat heads))."""
        return self.o_proj(self.g_norm(o.flatten(-2), dtype))

    def forward(self, x: Tensor, S: Tensor) -> tuple[Tensor, Tensor]:
        """Sequence form. x [B, T, D] (attn_norm output), S [B, H, K, V] -> out [B, T, D], S'."""
        q, f, v = self.qfv(x)
        o, S = gated_outer_scan(q, f, self.lower_bound, v, S, self.scale)  # one rrwkv node per layer
        return self.output(o, x.dtype), S

    def step(self, x: Tensor, S: Tensor) -> tuple[Tensor, Tensor]:
        """Step form (§3.4). x [B, D], S [B, H, K, V] -> out [B, D], S'."""
        q, f, v = self.qfv(x)
        dt = S.dtype
        g = hgrn2_log_gate(f.to(dt), self.lower_bound.to(dt))
        o, S = gated_outer_step(q.to(dt), g, v.to(dt), S, self.scale)
        return self.output(o.to(x.dtype), x.dtype), S


class SwiGLU(nn.Module):
    """fla's GatedMLP with hidden_act swish: down(swish(gate(x)) ⊙ up(x))."""

    def __init__(self, cfg: Hgrn2Config):
        super().__init__()
        D, I = cfg.hidden_size, cfg.intermediate_size  # noqa: E741
        self.gate_proj = nn.Linear(D, I, bias=False)
        self.up_proj = nn.Linear(D, I, bias=False)
        self.down_proj = nn.Linear(I, D, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Hgrn2Block(nn.Module):
    def __init__(self, cfg: Hgrn2Config):
        super().__init__()
        self.attn_norm = RMSNorm(cfg.hidden_size, cfg.norm_eps)
        self.attn = Hgrn2Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.hidden_size, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)

    def forward(self, x: Tensor, S: Tensor, step: bool) -> tuple[Tensor, Tensor]:
        """x [B, T, D] (or [B, D] when step), S [B, H, K, V] -> x after the block, S'."""
        act = self.attn.q_proj.weight.dtype
        attn = self.attn.step if step else self.attn
        out, S = attn(self.attn_norm(x, act), S)
        x = x + out  # an fp32 residual stream promotes the fp16 sub-block output
        return x + self.mlp(self.mlp_norm(x, act)), S


class Hgrn2Model(nn.Module):
    """fla's HGRN2ForCausalLM: embeddings, blocks, final RMSNorm, lm_head (no bias)."""

    def __init__(self, cfg: Hgrn2Config):
        super().__init__()
        self.config = cfg
        self.residual_dtype: torch.dtype | None = None  # None: the activation dtype (export/precision.py)
        self.embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(Hgrn2Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.hidden_size, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

    @property
    def activation_dtype(self) -> torch.dtype:
        return self.lm_head.weight.dtype

    def state_spec(self) -> StateSpec:
        return self.config.state_spec("float16" if self.activation_dtype == torch.float16 else "float32")

    def init_state(self, batch: int, dtype: torch.dtype = torch.float32) -> State:
        """Fresh state from the spec, keyed by StateTensor.key ("0.recurrent_state"); float64 gives float64 (for
        exactness tests)."""
        spec = self.state_spec()
        return {t.key: torch.full(spec.concrete_shape(t.slot, batch), t.slot.init,
                                  dtype=torch.float64 if dtype == torch.float64 else getattr(torch, t.slot.dtype))
                for t in spec.tensors()}

    def forward(self, input_ids: Tensor, state: State) -> tuple[Tensor, State]:
        """Sequence form. input_ids [B, T] int64 -> logits [B, T, V] and the new state."""
        return self._run(self.embeddings(input_ids), state, step=False)

    def step(self, token: Tensor, state: State) -> tuple[Tensor, State]:
        """Step form. token [B] int64 -> logits [B, V] and the new state."""
        return self._run(self.embeddings(token), state, step=True)

    def _run(self, x: Tensor, state: State, step: bool) -> tuple[Tensor, State]:
        if self.residual_dtype is not None:
            x = x.to(self.residual_dtype)
        new: State = {}
        for t in self.state_spec().tensors():  # one slot per layer, in layer order
            x, new[t.key] = self.layers[t.layer](x, state[t.key], step)
        logits = self.lm_head(self.norm(x, self.activation_dtype))
        return (logits.float() if logits.dtype == torch.float16 else logits), new


def layer_lower_bounds(lower_bounds: Tensor) -> Tensor:
    """fla's lower bounds (§3.2): P [L, D] -> lb [L, D] = cumsum(softmax(P, 0), 0) - softmax(P, 0)[0], in fp32 as
    fla computes them (`softmax(0, dtype=torch.float)`). lb[0] is exactly 0; lb is non-decreasing over layers, < 1."""
    sm = lower_bounds.float().softmax(0)
    return sm.cumsum(0) - sm[0]
