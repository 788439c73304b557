"""∞-former reference model (docs/families/inftyformer.md §4.11): a pre-LN decoder-only Transformer whose attention
is a sliding window of W positions (ring buffers) plus the long-term memory (LTM) term, with a sequence form and a
step form.

Sequence form (`forward`): one call takes T <= min(L, W) tokens per sequence (`config.max_call_tokens`; longer
inputs are split into calls), so a call holds at most one LTM update and writes distinct ring slots; everything that depends on where each sequence stands
is an index tensor of the call's `CallPlan`, the same for every layer, so the traced graph has no branch. The ring
buffers and the pending buffer are written by scatters of the call's T entries (never rebuilt). The LTM
term goes through ONE rrwkv::LTMUpdate node per layer, called at every call with a per-sequence mode (KEEP when
no update is due), and rrwkv::ContinuousGaussianAttention, read against the old and the new coefficients B in the
associated form of §4.11.2 (s = B (W^K_h q_h), ctx = W^V_h (B^T r)): K and V are never materialised.

Step form (`step`): one token per sequence, written per sequence with Python integers from the per-token rules
of §4.5/§4.11.4, with K = B W^K and V = B W^V formed explicitly.

Both forms run in the model's dtype; B, the pending buffer, the histogram and the LTM constants are fp32 (float64
in a float64 model), LayerNorms compute in fp32, fp16 logits are returned as fp32.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rrwkv_trt.core.families.inftyformer import InftyformerConfig
from rrwkv_trt.core.state import StateSpec

from ..ops.continuous_gaussian_attention import continuous_gaussian_attention
from ..ops.ltm_update import ltm_constants, ltm_update
from .inftyformer_plan import CallPlan, call_plan, histogram_edges, histogram_mass, ring_positions

State = dict[str, Tensor]
LN_EPS = 1e-5
ALIBI_EXPONENT = 8.0  # ALiBi's slopes 2^(-8 h / H), h = 1..H (§4.11.1)


def alibi_slopes(n_head: int) -> Tensor:
    return torch.tensor([2.0 ** (-ALIBI_EXPONENT * (h + 1) / n_head) for h in range(n_head)], dtype=torch.float64)


class LayerNorm(nn.LayerNorm):
    """nn.LayerNorm computed in fp32 (float64 in a float64 model) and returned in `out_dtype`."""

    def forward(self, x: Tensor, out_dtype: torch.dtype) -> Tensor:
        dt = torch.promote_types(x.dtype, torch.float32)
        return F.layer_norm(x.to(dt), self.normalized_shape, self.weight.to(dt), self.bias.to(dt),
                            self.eps).to(out_dtype)


class ShortTermAttention(nn.Module):
    """Causal softmax attention over the W positions before each query and the query itself, ALiBi-biased."""

    def __init__(self, cfg: InftyformerConfig):
        super().__init__()
        e = cfg.d_model
        self.heads, self.head_dim = cfg.n_head, cfg.head_dim
        self.q, self.k, self.v, self.o = (nn.Linear(e, e, bias=False) for _ in range(4))

    def qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x [..., e] -> q, k, v [..., H, d]."""
        return tuple(p(x).unflatten(-1, (self.heads, self.head_dim)) for p in (self.q, self.k, self.v))

    def attend(self, q: Tensor, parts: list[tuple[Tensor, Tensor]], rel: Tensor, visible: Tensor,
               slopes: Tensor) -> Tensor:
        """q [B, H, T, d]; parts: (K, V) pairs [B, H, S_i, d], scored as one key sequence of length S = Σ S_i (the
        ring and the call are never concatenated); rel (query - key position), visible [B, T, S] -> [B, H, T, d]."""
        dt = torch.promote_types(q.dtype, torch.float32)
        scores = torch.cat([q.to(dt) @ K.to(dt).transpose(-1, -2) for K, _ in parts], -1) * self.head_dim ** -0.5
        scores = scores - slopes.to(dt)[:, None, None] * rel[:, None].to(dt)
        probs = scores.masked_fill(~visible[:, None], float("-inf")).softmax(-1)
        out, start = 0, 0
        for K, V in parts:
            out = out + probs[..., start:start + K.shape[2]] @ V.to(dt)
            start += K.shape[2]
        return out.to(q.dtype)


class LongTermMemory(nn.Module):
    """The LTM's projections (§4.1): K = B W^K, V = B W^V per head, the density's affine maps w_mu, w_sigma, and
    the output projection W^O."""

    def __init__(self, cfg: InftyformerConfig):
        super().__init__()
        e, N = cfg.d_model, cfg.num_basis
        self.heads, self.head_dim = cfg.n_head, cfg.head_dim
        self.key, self.value, self.out = (nn.Linear(e, e, bias=False) for _ in range(3))
        bound = N ** -0.5  # nn.Linear(N, 1)'s init, as the reference code's mu and sigma layers
        self.w_mu = nn.Parameter(torch.empty(N).uniform_(-bound, bound))
        self.w_sigma = nn.Parameter(torch.empty(N).uniform_(-bound, bound))

    def per_head(self, weight: Tensor) -> Tensor:
        """A projection's weight [e, e] as [H, d, e]: head h's output rows."""
        return weight.unflatten(0, (self.heads, self.head_dim))


class Block(nn.Module):
    def __init__(self, cfg: InftyformerConfig):
        super().__init__()
        self.ln1 = LayerNorm(cfg.d_model, eps=LN_EPS)
        self.stm = ShortTermAttention(cfg)
        self.ltm = LongTermMemory(cfg) if cfg.use_ltm else None
        self.ln2 = LayerNorm(cfg.d_model, eps=LN_EPS)
        self.mlp = nn.Sequential()
        self.mlp.fc = nn.Linear(cfg.d_model, cfg.d_ff)
        self.mlp.act = nn.GELU()
        self.mlp.proj = nn.Linear(cfg.d_ff, cfg.d_model)

    def mlp_residual(self, x: Tensor, act: torch.dtype) -> Tensor:
        return x + self.mlp(self.ln2(x, act))


class InftyformerModel(nn.Module):
    """Embedding, blocks, final LayerNorm, head (no bias). The LTM constants (G, G_inf, S_samp, the basis, §4.8.2)
    are fp32 buffers computed from the config, not checkpoint entries."""

    def __init__(self, cfg: InftyformerConfig):
        super().__init__()
        self.config = cfg
        self.residual_dtype: torch.dtype | None = None  # None: the activation dtype (export/precision.py)
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = LayerNorm(cfg.d_model, eps=LN_EPS)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.register_buffer("alibi", alibi_slopes(cfg.n_head).float(), persistent=False)
        if cfg.use_ltm:
            consts = ltm_constants(cfg.num_basis, cfg.segment_len, cfg.num_samples, cfg.tau, cfg.ridge, cfg.sigmas,
                                   code_quirks=bool(cfg.code_quirks))
            for name, value in consts.items():
                self.register_buffer(f"ltm_{name}", torch.from_numpy(value).float(), persistent=False)
            self.register_buffer("hist_edges", histogram_edges(cfg.hist_bins).float(), persistent=False)

    @property
    def activation_dtype(self) -> torch.dtype:
        return self.head.weight.dtype

    def state_spec(self) -> StateSpec:
        return self.config.state_spec("float16" if self.activation_dtype == torch.float16 else "float32")

    def init_state(self, batch: int, dtype: torch.dtype = torch.float32) -> State:
        """Fresh state from the spec keyed by StateTensor.key; float64 makes the float slots float64 (tests)."""
        spec = self.state_spec()
        return {t.key: torch.full(spec.concrete_shape(t.slot, batch), t.slot.init,
                                  dtype=dtype if dtype == torch.float64 and t.slot.dtype != "int64"
                                  else getattr(torch, t.slot.dtype)) for t in spec.tensors()}

    # --- sequence form ------------------------------------------------------------------------------------------------

    def forward(self, input_ids: Tensor, state: State) -> tuple[Tensor, State]:
        """Sequence form. input_ids [B, T] int64 -> logits [B, T, V] and the new state. The traced graph is one call
        (T <= max_call_tokens, the backends split longer inputs); in eager mode a longer input is split here."""
        limit = self.config.max_call_tokens
        if torch.compiler.is_exporting() or input_ids.shape[1] <= limit:
            return self._call(input_ids, state)
        outputs = []
        for chunk in input_ids.split(limit, dim=1):
            logits, state = self._call(chunk, state)
            outputs.append(logits)
        return torch.cat(outputs, 1), state

    def _call(self, input_ids: Tensor, state: State) -> tuple[Tensor, State]:
        cfg = self.config
        act = self.activation_dtype
        plan = call_plan(state["pos"], input_ids.shape[1], cfg)
        x = self.embed(input_ids)
        if self.residual_dtype is not None:
            x = x.to(self.residual_dtype)
        new: State = {"pos": state["pos"] + input_ids.shape[1]}
        for i, block in enumerate(self.blocks):
            layer = {k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(f"{i}.")}
            out, layer = self._block_call(block, block.ln1(x, act), layer, plan)
            x = block.mlp_residual(x + out, act)
            new |= {f"{i}.{k}": v for k, v in layer.items()}
        logits = self.head(self.ln_f(x, act))
        return (logits.float() if logits.dtype == torch.float16 else logits), new

    def _block_call(self, block: Block, xn: Tensor, layer: State, plan: CallPlan) -> tuple[Tensor, State]:
        """One layer's attention over a call: xn [B, T, e] (ln1 output) -> out [B, T, e] and the layer's state."""
        stm = block.stm
        q, k, v = (t.transpose(1, 2) for t in stm.qkv(xn))                     # [B, H, T, d]
        ring_k, ring_v = layer["stm_k"], layer["stm_v"]                          # [B, H, W, d]
        out = stm.attend(q, [(ring_k, ring_v), (k, v)], plan.rel, plan.visible, self.alibi)
        slot = plan.ring_slot[:, None, :, None].expand(-1, stm.heads, -1, stm.head_dim)
        new = {"stm_k": ring_k.scatter(2, slot, k), "stm_v": ring_v.scatter(2, slot, v)}
        out = stm.o(out.transpose(1, 2).flatten(2))                              # [B, T, e]
        if block.ltm is None:
            return out, new
        ltm_out, ltm_state = self._ltm_call(block.ltm, q, xn, layer, plan)
        return out + ltm_out, new | ltm_state

    def _ltm_call(self, ltm: LongTermMemory, q: Tensor, xn: Tensor, layer: State, plan: CallPlan
                  ) -> tuple[Tensor, State]:
        """§4.11.4: evict into the pending buffer, read the old B, update B where a segment filled, read the new B.
        q [B, H, T, d], xn [B, T, e] -> LTM output [B, T, e] and stm_x, ltm_b, pending (and hist)."""
        cfg = self.config
        B, T, e = xn.shape
        slot = plan.ring_slot[..., None].expand(-1, -1, e)
        evicted = layer["stm_x"].gather(1, slot).to(layer["pending"].dtype)      # positions p_i - W [B, T, e]
        pending = layer["pending"].scatter(1, plan.pending_slot[..., None].expand(-1, -1, e), evicted)
        x_new = torch.where(plan.keep_old[..., None], layer["pending"], pending)  # the segment the update fits

        qk = torch.einsum("bhtd,hde->bhte", q, ltm.per_head(ltm.key.weight)).reshape(B, 1, -1, e)  # [B, 1, H*T, e]
        b_old = layer["ltm_b"]
        ctx_old, mu_old, s2_old = self._read(ltm, qk, b_old)
        hist_in = layer.get("hist")
        hist = None if hist_in is None else hist_in + self._mass(mu_old, s2_old, plan.counts_old, T)
        b_new = ltm_update(b_old, x_new, plan.mode, self.ltm_G, self.ltm_G_inf, self.ltm_S_samp,
                           hist if hist is not None else b_old.new_zeros(B, cfg.hist_bins), self.ltm_basis_mu,
                           self.ltm_basis_sigma, cfg.sticky)
        ctx_new, mu_new, s2_new = self._read(ltm, qk, b_new)

        uses_new = plan.uses_new[:, None, :, None]                                # [B, 1, T, 1]
        z = torch.where(uses_new, ctx_new.reshape(B, -1, T, e), ctx_old.reshape(B, -1, T, e))
        z = z * plan.sees_ltm[:, None, :, None].to(z.dtype)                        # [B, H, T, e]
        ctx = torch.einsum("bhte,hde->bthd", z, ltm.per_head(ltm.value.weight)).flatten(2)
        state = {"stm_x": layer["stm_x"].scatter(1, slot, xn), "ltm_b": b_new, "pending": pending}
        if hist is not None:
            fresh = self._mass(mu_new, s2_new, plan.uses_new, T)
            state["hist"] = torch.where(plan.update[:, None], fresh, hist)
        return ltm.out(ctx), state

    def _read(self, ltm: LongTermMemory, qk: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Continuous attention of the queries qk [B, 1, H*T, e] against the signal B [B, N, e] (as keys and values):
        ctx [B, 1, H*T, e] (= B^T r per query), mu and sigma2 [B, 1, H*T]."""
        mem = b.to(qk.dtype)[:, None]
        return continuous_gaussian_attention(qk, mem, mem, ltm.w_mu, ltm.w_sigma, self.ltm_basis_mu,
                                             self.ltm_basis_sigma, self.config.sigma2_min, self.config.head_dim ** -0.5)

    def _mass(self, mu: Tensor, sigma2: Tensor, counted: Tensor, T: int) -> Tensor:
        """The sticky histogram's bin masses (§4.4) summed over heads and the `counted` [B, T] tokens -> [B, NB]."""
        B = mu.shape[0]
        mass = histogram_mass(mu.reshape(B, -1, T), sigma2.reshape(B, -1, T), self.hist_edges)  # [B, H, T, NB]
        return (mass * counted[:, None, :, None].to(mass.dtype)).sum((1, 2))

    # --- step form ----------------------------------------------------------------------------------------------------

    def step(self, token: Tensor, state: State) -> tuple[Tensor, State]:
        """Step form. token [B] int64 -> logits [B, V] and the new state, one sequence at a time (§4.11.4)."""
        act = self.activation_dtype
        x = self.embed(token)
        if self.residual_dtype is not None:
            x = x.to(self.residual_dtype)
        new = {k: v.clone() for k, v in state.items()}
        for i, block in enumerate(self.blocks):
            out = torch.stack([self._block_step(block, i, block.ln1(x[b], act), new, b) for b in range(x.shape[0])])
            x = block.mlp_residual(x + out, act)
        new["pos"] = state["pos"] + 1
        logits = self.head(self.ln_f(x, act))
        return (logits.float() if logits.dtype == torch.float16 else logits), new

    def _block_step(self, block: Block, i: int, xn: Tensor, state: State, b: int) -> Tensor:
        """Sequence b's token at position p: attend, read the LTM, evict position p - W, write slot p mod W.
        Updates `state` (this layer's slots of row b) in place; returns the attention output [e]."""
        cfg, stm = self.config, block.stm
        p, W = int(state["pos"][b]), cfg.window
        q, k, v = stm.qkv(xn)                                                      # [H, d]
        ring_pos = ring_positions(torch.tensor(p), W).tolist()
        slots = [s for s in range(W) if ring_pos[s] >= 0]
        kpos = [*(ring_pos[s] for s in slots), p]
        K = torch.cat([state[f"{i}.stm_k"][b][:, slots], k[:, None]], 1)           # [H, S, d]
        V = torch.cat([state[f"{i}.stm_v"][b][:, slots], v[:, None]], 1)
        rel = torch.tensor([[[p - kp for kp in kpos]]])                             # [1, 1, S]
        out = stm.attend(q[None, :, None], [(K[None], V[None])], rel, rel >= 0, self.alibi)[0, :, 0]
        out = stm.o(out.flatten())
        if block.ltm is not None:
            out = out + self._ltm_step(block.ltm, i, q, xn, state, b, p)
        for slot, value in (("stm_k", k), ("stm_v", v)):
            state[f"{i}.{slot}"][b][:, p % W] = value
        if block.ltm is not None:
            state[f"{i}.stm_x"][b][p % W] = xn
        return out

    def _ltm_step(self, ltm: LongTermMemory, i: int, q: Tensor, xn: Tensor, state: State, b: int, p: int) -> Tensor:
        """The LTM term of the token at position p of sequence b, then its eviction and, when the pending buffer
        fills, the update (§4.5): K = B W^K, V = B W^V explicitly, one query per head."""
        cfg = self.config
        W, L = cfg.window, cfg.segment_len
        B = state[f"{i}.ltm_b"][b]                                                   # [N, e]
        out = torch.zeros_like(xn)
        has_ltm = p - W >= L
        if has_ltm:
            K = (B @ ltm.key.weight.to(B.dtype).T).unflatten(-1, (cfg.n_head, cfg.head_dim)).transpose(0, 1)
            V = (B @ ltm.value.weight.to(B.dtype).T).unflatten(-1, (cfg.n_head, cfg.head_dim)).transpose(0, 1)
            ctx, mu, sigma2 = continuous_gaussian_attention(
                q[None, :, None], K[None].to(q.dtype), V[None].to(q.dtype), ltm.w_mu, ltm.w_sigma,
                self.ltm_basis_mu, self.ltm_basis_sigma, cfg.sigma2_min, cfg.head_dim ** -0.5)
            out = ltm.out(ctx[0, :, 0].flatten())
            if cfg.sticky:
                state[f"{i}.hist"][b] += histogram_mass(mu[0], sigma2[0], self.hist_edges).sum((0, 1))
        if p >= W:
            n = (p - W) % L
            state[f"{i}.pending"][b][n] = state[f"{i}.stm_x"][b][p % W]
            if n == L - 1:
                hist = state[f"{i}.hist"][b] if cfg.sticky else B.new_zeros(cfg.hist_bins)
                mode = torch.tensor([2 if has_ltm else 1])
                state[f"{i}.ltm_b"][b] = ltm_update(
                    B[None], state[f"{i}.pending"][b][None], mode, self.ltm_G, self.ltm_G_inf, self.ltm_S_samp,
                    hist[None], self.ltm_basis_mu, self.ltm_basis_sigma, cfg.sticky)[0]
                if cfg.sticky:
                    state[f"{i}.hist"][b].zero_()
        return out

