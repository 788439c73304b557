"""Long-context numerics of rrwkv::WKV4 / rrwkv::WKV4Medium (issue 4), shared by tests/plugins/test_long_context.py
(20,000 tokens, `make test`) and scripts/long_context.py (100,000 tokens).

- `wkv_f64`: the float64 reference, the (aa, bb, pp) recurrence of docs/families/rwkv4.md §1.3 /
  docs/families/rrwkv.md §2.3 vectorised over (B, C) in numpy (a Python loop over T; about 20 us per token at
  B*C = 256, so 100,000 tokens take seconds where naive_wkv4 in float64 takes minutes). `formula_f64` is an independent
  O(T^2) oracle for it: the WKV definition as a log-sum-exp over every item ever added (incoming state, tokens,
  mediums) with its decay count.
- `adversarial_inputs`: channels partitioned into numeric regimes (`REGIMES`): exp(u + k) beyond fp32's 88.7,
  decays w = -exp(time_decay) near 1 (|w| ~ 1e-6) and near 0 (|w| >= 1e3), keys near fp16's largest magnitude.
- `long_context_errors`: y and the final state of a backend against the float64 reference, scale-free (see there).

Tolerances: plugins/wkv4{,_medium}/spec.yaml entries long_context_fp32 / long_context_fp16 (read via helpers).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from helpers import assert_close, tolerance

# Channel c belongs to regime REGIMES[c % len(REGIMES)].
REGIMES = (
    "typical",     # time_decay ~ U(-3, 1) (w from -0.05 to -2.7), u ~ N(0, 1), k ~ N(0, 1.5^2)
    "big_uk",      # u ~ U(40, 60), k ~ U(-20, 60): u + k up to 120, exp overflows fp32 (88.7)
    "slow",        # time_decay ~ U(-14, -13): w ~ -1e-6 (decay factor 1 - 1e-6), k ~ N(0, 1.5^2)
    "slow_big_k",  # slow decay with u ~ U(40, 60), k ~ U(-20, 60): pp ~ 60, where |w| < ulp(pp) / 2 in fp32
    "fast",        # time_decay ~ U(6.9, 20): w from -1e3 to -4.9e8 (decay factor e^-1000 = 0)
    "spikes",      # k ~ N(0, 1) with 0.1% spikes to +-60000 (+-65504 in fp16: its largest finite value)
)
BIG_V = 1000.0  # value scale of the big_uk and spikes channels ("v large-ish"); 1 elsewhere
MEDIUM_OFF = -1e30  # k_m of a medium switched off (β = -1e30)


def regime_of_channels(C: int) -> np.ndarray:
    """[C] regime index of every channel."""
    return np.arange(C) % len(REGIMES)


def adversarial_inputs(B: int, T: int, C: int, dtype=np.float32, seed: int = 0, s: int | None = None,
                       pos0: list[int] | None = None, spike_rate: float = 1e-3) -> dict[str, np.ndarray]:
    """Op inputs with every regime of `REGIMES` (channel c in regime c % 6); numpy, C-contiguous.

    w, u [C] f32; k, v [B, T, C] in `dtype` (f32 or f16); aa, bb, pp [B, C] f32: sequence 0 starts from the
    initial state (0, 0, -1e30), the others from a random state with pp up to 60. With `s`: also k_m, v_m
    [B, ceil(T/s), C] f32 (10% of the mediums switched off with k_m = -1e30, the rest at keys ~ N(-1, 1.5^2), or
    U(0, 60) in the big-key regimes) and pos0 [B] int64 (default: 0, 5, 10, ...). `spike_rate`: the fraction of
    spike-regime keys that spike.
    """
    rng = np.random.default_rng(seed)
    reg = regime_of_channels(C)
    big_k = np.isin(reg, [REGIMES.index("big_uk"), REGIMES.index("slow_big_k")])
    td = rng.uniform(-3, 1, C)
    td = np.where(np.isin(reg, [REGIMES.index("slow"), REGIMES.index("slow_big_k")]), rng.uniform(-14, -13, C), td)
    td = np.where(reg == REGIMES.index("fast"), rng.uniform(6.9, 20, C), td)
    w = -np.exp(td)
    u = np.where(big_k, rng.uniform(40, 60, C), rng.standard_normal(C))
    k = 1.5 * rng.standard_normal((B, T, C))
    k = np.where(big_k, rng.uniform(-20, 60, (B, T, C)), k)
    spikes = reg == REGIMES.index("spikes")
    peak = 65504.0 if np.dtype(dtype) == np.float16 else 60000.0
    spike_at = (rng.random((B, T, C)) < spike_rate) & spikes
    k = np.where(spikes, rng.standard_normal((B, T, C)), k)
    k = np.where(spike_at, peak * rng.choice([-1.0, 1.0], (B, T, C)), k)
    vscale = np.where(np.isin(reg, [REGIMES.index("big_uk"), REGIMES.index("spikes")]), BIG_V, 1.0)
    v = rng.standard_normal((B, T, C)) * vscale
    aa = rng.standard_normal((B, C)) * vscale
    bb = rng.uniform(0.1, 2.0, (B, C))
    pp = rng.uniform(0, 60, (B, C))
    aa[0], bb[0], pp[0] = 0.0, 0.0, -1e30
    x = {"w": w, "u": u, "k": k, "v": v, "aa": aa, "bb": bb, "pp": pp}
    x = {n: np.ascontiguousarray(a, np.float32) for n, a in x.items()}
    x["k"], x["v"] = x["k"].astype(dtype), x["v"].astype(dtype)
    if s is None:
        return x
    M = max(1, math.ceil(T / s))
    k_m = np.where(big_k, rng.uniform(0, 60, (B, M, C)), 1.5 * rng.standard_normal((B, M, C)) - 1)
    k_m = np.where(rng.random((B, M, C)) < 0.1, MEDIUM_OFF, k_m)
    x["k_m"] = np.ascontiguousarray(k_m, np.float32)
    x["v_m"] = np.ascontiguousarray(rng.standard_normal((B, M, C)) * vscale, np.float32)
    x["pos0"] = np.asarray(pos0 if pos0 is not None else [5 * b for b in range(B)], np.int64)
    return x


def value_scale(x: dict[str, np.ndarray]) -> np.ndarray:
    """[C] max |v| (and |v_m|, |incoming aa / bb|) per channel: y and aa/bb are weighted means of these values."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean0 = np.where(x["bb"] > 0, np.abs(x["aa"].astype(np.float64) / x["bb"]), 0.0)
    parts = [np.abs(x["v"]).max(axis=(0, 1)).astype(np.float64), mean0.max(axis=0)]
    if "v_m" in x:
        parts.append(np.abs(x["v_m"]).max(axis=(0, 1)).astype(np.float64))
    return np.maximum(np.max(parts, axis=0), 1e-30)


def closes_mask(pos0, T: int, s: int) -> np.ndarray:
    """[B, T] bool: token t of sequence b closes a window ((pos0 + t + 1) % s == 0)."""
    return (np.asarray(pos0, np.int64)[:, None] + np.arange(T)[None] + 1) % s == 0


def wkv_f64(w, u, k, v, aa, bb, pp, k_m=None, v_m=None, pos0=None, s: int = 0, medium_decays: int = 0
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """WKV4 (k_m None) or WKV4Medium in float64: the recurrence of naive_wkv4 / naive_wkv4_medium, same arguments.

    Returns y [B, T, C] and aa', bb', pp' [B, C], all float64. Inputs of any float dtype are converted exactly.
    """
    f64 = lambda a: np.asarray(a, np.float64)  # noqa: E731
    w, u, aa, bb, pp = f64(w), f64(u), f64(aa).copy(), f64(bb).copy(), f64(pp).copy()
    k, v = np.asarray(k), np.asarray(v)
    B, T, C = k.shape
    y = np.empty((B, T, C), np.float64)
    medium = k_m is not None
    if medium:
        k_m, v_m = f64(k_m), f64(v_m)
        closes = closes_mask(pos0, T, s)
        row = np.zeros(B, np.int64)
        bidx = np.arange(B)
        wm = w if medium_decays else 0.0
    p, e1, e2, t1, t2 = (np.empty((B, C)) for _ in range(5))
    for t in range(T):
        kt, vt = f64(k[:, t]), f64(v[:, t])
        np.add(u, kt, out=t1)                       # ww = u + k
        np.maximum(pp, t1, out=p)
        np.exp(np.subtract(pp, p, out=e1), out=e1)
        np.exp(np.subtract(t1, p, out=e2), out=e2)
        np.divide(e1 * aa + e2 * vt, np.add(e1 * bb, e2, out=t2), out=y[:, t])
        np.add(w, pp, out=t1)                       # ww = w + pp
        np.maximum(t1, kt, out=pp)
        np.exp(np.subtract(t1, pp, out=e1), out=e1)
        np.exp(np.subtract(kt, pp, out=e2), out=e2)
        aa *= e1
        aa += e2 * vt
        bb *= e1
        bb += e2
        if medium and closes[:, t].any():
            c = closes[:, t]
            r = np.minimum(row, k_m.shape[1] - 1)
            km, vm = k_m[bidx, r], v_m[bidx, r]
            base = pp + wm
            pm = np.maximum(base, km)
            f1, f2 = np.exp(base - pm), np.exp(km - pm)
            cc = c[:, None]
            aa = np.where(cc, f1 * aa + f2 * vm, aa)
            bb = np.where(cc, f1 * bb + f2, bb)
            pp = np.where(cc, pm, pp)
            row += c
    return y, aa, bb, pp


def formula_f64(w, u, k, v, aa, bb, pp, k_m=None, v_m=None, pos0=None, s: int = 0, medium_decays: int = 0
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The WKV definition in float64 without the (aa, bb, pp) recurrence: O(T^2), for short T.

    Every item (the incoming state with key pp and values (aa, bb); token t with key k_t and values (v_t, 1); a
    medium with key k_m and values (v_m, 1)) weighs exp(key + w * decays applied since it was added); a token
    update applies one decay to what is already there, a merge none (medium_decays=0) or one (=1). y_t is the
    weighted mean of the items plus the current token at key u + k_t, as a log-sum-exp (no overflow).
    Returns y [B, T, C] and the final state's invariants (aa/bb, pp + ln bb) [B, C].
    """
    f64 = lambda a: np.asarray(a, np.float64)  # noqa: E731
    w, u, k, v = f64(w), f64(u), f64(k), f64(v)
    B, T, C = k.shape
    closes = closes_mask(pos0, T, s) if k_m is not None else np.zeros((B, T), bool)
    y = np.empty((B, T, C))
    mean, logden = np.empty((B, C)), np.empty((B, C))

    def combine(keys, added, nums, dens, decays, extra=None):
        lw = np.stack(keys) + w * (decays - np.asarray(added, np.float64))[:, None]  # [n, C]
        nums, dens = np.stack(nums), np.stack(dens)
        if extra is not None:
            lw, nums, dens = (np.concatenate([a, b[None]]) for a, b in zip((lw, nums, dens), extra))
        lw = np.where((nums == 0) & (dens == 0), -np.inf, lw)  # an empty incoming state weighs nothing
        top = lw.max(axis=0)
        e = np.exp(lw - top)
        num, den = (e * nums).sum(axis=0), (e * dens).sum(axis=0)
        return num / den, top + np.log(den)

    for b in range(B):
        keys, added, nums, dens = [f64(pp[b])], [0], [f64(aa[b])], [f64(bb[b])]
        decays, row = 0, 0
        for t in range(T):
            y[b, t] = combine(keys, added, nums, dens, decays, (u + k[b, t], v[b, t], np.ones(C)))[0]
            decays += 1
            keys.append(k[b, t]), added.append(decays), nums.append(v[b, t]), dens.append(np.ones(C))
            if closes[b, t]:
                decays += medium_decays
                r = min(row, k_m.shape[1] - 1)
                keys.append(f64(k_m[b, r])), added.append(decays), nums.append(f64(v_m[b, r]))
                dens.append(np.ones(C))
                row += 1
        mean[b], logden[b] = combine(keys, added, nums, dens, decays)
    return y, mean, logden


def state_invariants(aa, bb, pp) -> tuple[np.ndarray, np.ndarray]:
    """(aa / bb, pp + ln bb) in float64: the state up to its free scale ((aa, bb, pp) ~ (aa e^c, bb e^c, pp - c)).
    aa / bb is the weighted mean of the values absorbed so far; pp + ln bb the log of the total weight."""
    aa, bb, pp = (np.asarray(a, np.float64) for a in (aa, bb, pp))
    with np.errstate(divide="ignore", invalid="ignore"):
        return aa / bb, pp + np.log(bb)


# Regime groups, each with its own tolerance entries (plugins/<op>/spec.yaml):
# - "steady" (long_context_fp32 / _fp16): |w| >> ulp(pp), so a token's log-weight error stays ~ ulp(pp) / |w| and
#   does not grow with T.
# - "drift" (long_context_drift_fp32 / _fp16): fp32 `w + pp` rounds by up to ulp(pp) / 2 per token, which is
#   comparable to |w| (|w| ~ 1e-6 is lost entirely once |pp| >= 32, where ulp / 2 = 1.9e-6) or large in absolute
#   terms (|pp| ~ 6e4 after a key spike: ulp / 2 = 2e-3). An n-token-old item's log-weight is then off by up to
#   n * ulp(pp) / 2, so these errors grow with T (linearly for the slow decays). This is the fp32 (aa, bb, pp) state
#   format of [PIP] itself (naive_wkv4 in fp32, both kernels and the function body alike), not a kernel defect.
GROUPS = {"steady": ("typical", "big_uk", "fast"), "drift": ("slow", "slow_big_k", "spikes")}


def group_key(group: str, dtype: str) -> str:
    """The spec tolerance entry of a regime group at an input dtype ("fp32" / "fp16")."""
    return f"long_context_{dtype}" if group == "steady" else f"long_context_drift_{dtype}"


def group_channels(group: str, C: int) -> np.ndarray:
    """[C] bool: the channels of a regime group."""
    return np.isin(regime_of_channels(C), [REGIMES.index(r) for r in GROUPS[group]])


def invariants(out) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, aa/bb, pp + ln bb) of op outputs (y, aa', bb', pp'); a 3-tuple is taken to be these already."""
    if len(out) == 3:
        return tuple(np.asarray(a, np.float64) for a in out)
    return (np.asarray(out[0], np.float64), *state_invariants(*out[1:]))


def _scaled(x: dict, ref, out, channels=None):
    """((y_ref, y) / V, (aa/bb of ref, of out) / V, (pp + ln bb of ref, of out)), restricted to `channels`."""
    V = value_scale(x)
    (y_ref, m_ref, l_ref), (y, m, lo) = invariants(ref), invariants(out)
    pairs = ((y_ref / V, y / V), (m_ref / V, m / V), (l_ref, lo))
    if channels is None:
        return pairs
    return tuple((a[..., channels], b[..., channels]) for a, b in pairs)


@dataclass
class Errors:
    """Scale-free errors of one backend against the float64 reference (float64 numbers), over some channels.

    y, mean: max |out - ref| / V_c (V_c = `value_scale` of the channel) of y and of the state's aa / bb; logden:
    max |out - ref| of pp + ln bb (the log of the state's total weight). y also per regime, and as a relative
    RMS ||y - y_ref|| / ||y_ref|| (unscaled).
    """
    finite: bool
    y_max: float
    mean_max: float
    logden_max: float
    y_rel_rms: float
    y_by_regime: dict[str, float]

    def row(self) -> dict:
        return {"finite": self.finite, "y_max_err": self.y_max, "state_mean_max_err": self.mean_max,
                "state_logden_max_err": self.logden_max, "y_rel_rms": self.y_rel_rms,
                "y_max_err_by_regime": self.y_by_regime}


def long_context_errors(x: dict, ref, out, channels=None) -> Errors:
    """Errors of `out` = (y, aa', bb', pp') against `ref` (wkv_f64's outputs) for inputs `x`."""
    C = np.asarray(out[0]).shape[-1]
    channels = np.ones(C, bool) if channels is None else channels
    finite = all(bool(np.isfinite(np.asarray(o)[..., channels]).all()) for o in out)
    (y_ref, y), (m_ref, m), (l_ref, lo) = _scaled(x, ref, out)
    dy = np.abs(y - y_ref)
    reg = regime_of_channels(C)
    by_regime = {name: float(dy[..., (reg == i) & channels].max()) for i, name in enumerate(REGIMES)
                 if ((reg == i) & channels).any()}
    y0, y1 = (np.asarray(a, np.float64)[..., channels] for a in (ref[0], out[0]))
    rel_rms = float(np.sqrt(np.mean((y1 - y0) ** 2)) / max(np.sqrt(np.mean(y0 ** 2)), 1e-300))
    return Errors(finite, float(dy[..., channels].max()), float(np.abs(m - m_ref)[..., channels].max()),
                  float(np.abs(lo - l_ref)[..., channels].max()), rel_rms, by_regime)


def assert_long_context_close(op: str, key: str, x: dict, ref, out, channels=None) -> None:
    """Every output finite; over `channels` (default all), y / V_c, the state's aa / bb / V_c and pp + ln bb
    within the plugins/<op>/spec.yaml entry `key` (outputs y, state_mean, state_logden), as atol + rtol * |ref|.
    ref, out: op outputs (y, aa', bb', pp') or their `invariants`."""
    for name, o in zip(("y", "aa_out", "bb_out", "pp_out") if len(out) == 4 else ("y", "aa/bb", "pp+ln bb"), out):
        n_bad = int((~np.isfinite(np.asarray(o))).sum())
        assert n_bad == 0, f"{op}/{key}/{name}: {n_bad} non-finite elements"
    for name, (r, o) in zip(("y", "state_mean", "state_logden"), _scaled(x, ref, out, channels)):
        atol, rtol = tolerance(op, key, name)
        assert_close(f"{op}/{key}/{name}", r, o, atol, rtol)


# ------------------------------------------------------------------------------------------------------- model level
def torch_f64_run(model, ids: np.ndarray, chunk: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """An RRWKV PyTorch model in float64, prefilled in chunks of `chunk` tokens from the initial state, its WKV op
    replaced by `wkv_f64` (naive_wkv4_medium would take minutes in float64). The model itself is left as it was.

    Args: model (float32, families.build_model); ids [B, T] int64.
    Returns: logits [B, T, V] float64 and the final state {state_in.* name: float64 / int64 array}.
    """
    import copy

    import torch

    from rrwkv_trt.export.models.rrwkv import MediumTimeMix

    def wkv(w, u, k, v, k_m, v_m, aa, bb, pp, pos0, s, medium_decays):
        outs = wkv_f64(*(t.numpy() for t in (w, u, k, v, aa, bb, pp)), k_m=k_m.numpy(), v_m=v_m.numpy(),
                       pos0=pos0.numpy(), s=s, medium_decays=medium_decays)
        return tuple(torch.from_numpy(o) for o in outs)

    model = copy.deepcopy(model).double()
    for m in model.modules():
        if isinstance(m, MediumTimeMix):
            m.wkv_fn = wkv
    state = model.init_state(ids.shape[0], torch.float64)
    logits = np.empty((*ids.shape, model.config.vocab_size), np.float64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small float64 ops: threads only contend (100x slower einsum on a busy 2-core host)
    try:
        with torch.no_grad():
            for c0 in range(0, ids.shape[1], chunk):
                out, state = model(torch.from_numpy(np.ascontiguousarray(ids[:, c0:c0 + chunk])), state)
                logits[:, c0:c0 + chunk] = out.numpy()
    finally:
        torch.set_num_threads(threads)
    return logits, {f"state_in.{k}": v.numpy() for k, v in state.items()}


def run_chunked(session, ids: np.ndarray, chunks: int | list[int], state=None, keep_state_at=()):
    """Prefill `ids` [B, T] through a runtime session in calls of `chunks` tokens (an int, or the list of sizes).

    Returns logits [B, T, V] float32, the final state, and {t: state after the first t tokens} for every t in
    `keep_state_at` that is a call boundary.
    """
    T = ids.shape[1]
    sizes = chunks if isinstance(chunks, list) else [chunks] * -(-T // chunks)
    logits = np.empty((*ids.shape, session.vocab_size), np.float32)
    kept, c0 = {}, 0
    for n in sizes:
        c1 = min(c0 + n, T)
        out, state = session.run(ids[:, c0:c1], state)
        logits[:, c0:c1] = out
        c0 = c1
        if c0 in keep_state_at:
            kept[c0] = state
        if c0 == T:
            break
    assert c0 == T, f"chunk sizes {sizes} cover {c0} of {T} tokens"
    return logits, state, kept


def run_stepwise(session, ids: np.ndarray, state=None):
    """Decode `ids` [B, T] one token per step (the session's decode path). Returns logits [B, T, V], final state."""
    session.start_decode(session.initial_state(ids.shape[0]) if state is None else state)
    logits = np.empty((*ids.shape, session.vocab_size), np.float32)
    for t in range(ids.shape[1]):
        logits[:, t] = session.step(ids[:, t])
    return logits, session.decode_state()


def model_state_errors(ref: dict, out: dict) -> dict[str, float]:
    """Max errors over a model's state: every layer's WKV state as invariants (aa/bb, pp + ln bb), every other
    float slot (att_xx, ffn_xx, macc, m) directly; `pos` must be equal."""
    errs = {"aa/bb": 0.0, "pp+ln(bb)": 0.0, "other slots": 0.0}
    for name, r in ref.items():
        r, o = np.asarray(r), np.asarray(out[name])
        if name.endswith("att_aa"):
            base = name[: -len("aa")]
            (m0, l0) = state_invariants(ref[base + "aa"], ref[base + "bb"], ref[base + "pp"])
            (m1, l1) = state_invariants(out[base + "aa"], out[base + "bb"], out[base + "pp"])
            errs["aa/bb"] = max(errs["aa/bb"], float(np.abs(m1 - m0).max()))
            errs["pp+ln(bb)"] = max(errs["pp+ln(bb)"], float(np.abs(l1 - l0).max()))
        elif r.dtype.kind != "f":
            assert np.array_equal(o, r), f"{name}: {o} != {r}"
        elif not name.endswith(("att_bb", "att_pp")):
            errs["other slots"] = max(errs["other slots"], float(np.abs(o.astype(np.float64) - r).max()))
    return errs


def all_finite(*arrays_or_states) -> bool:
    """True when every float array (or every float array of every state dict) is finite."""
    for a in arrays_or_states:
        for v in (a.values() if isinstance(a, dict) else [a]):
            v = np.asarray(v)
            if v.dtype.kind == "f" and not np.isfinite(v).all():
                return False
    return True


def assert_model_state_close(name: str, ref: dict, out: dict, state_tol: tuple[float, float],
                             logden_tol: tuple[float, float]) -> None:
    """A model's state: every layer's WKV state as invariants, aa/bb with `state_tol` (atol, rtol) and pp + ln bb
    with `logden_tol`; every other float slot directly with `state_tol`; `pos` must be equal."""
    for slot, r in ref.items():
        r, o = np.asarray(r), np.asarray(out[slot])
        if slot.endswith("att_aa"):
            base = slot[: -len("aa")]
            (m0, l0) = state_invariants(ref[base + "aa"], ref[base + "bb"], ref[base + "pp"])
            (m1, l1) = state_invariants(out[base + "aa"], out[base + "bb"], out[base + "pp"])
            assert_close(f"{name} {base}aa/bb", m0, m1, *state_tol)
            assert_close(f"{name} {base}pp+ln(bb)", l0, l1, *logden_tol)
        elif r.dtype.kind != "f":
            assert np.array_equal(o, r), f"{name} {slot}: {o} != {r}"
        elif not slot.endswith(("att_bb", "att_pp")):
            assert_close(f"{name} {slot}", r, o, *state_tol)
