"""rrwkv::LTMUpdate (docs/families/inftyformer.md §4.3, §4.4, §4.8.2): the ∞-former's unbounded long-term-memory
update, refitting the basis coefficients B [N, e] to the old signal contracted into [0, τ] plus the L new vectors.

Per sequence b, in fp32 (float64 in tests), by mode[b]:
  B_new[b] = B_past[b]                                                       (0 KEEP: a bit copy, nothing else read)
  B_new[b] = G^T X_new[b]                                                    (1 FIRST FIT: B_past not read)
  S = S_samp [M, N]                      (sticky = 0: ψ at the fixed old positions t_m/τ = m/M, precomputed)
  S = ψ(pos_b) [M, N]                    (sticky = 1: pos_b = the inverse-CDF quantiles of hist[b], §4.4)
  X_old = S B_past[b] [M, e];  X = [X_old; X_new[b]] [M+L, e];  B_new[b] = G_inf^T X      (2 UPDATE)
KEEP exists because the model calls the op at every token (§4.5) and only the rows whose pending buffer just filled
update. Any other mode is an error (ValueError here, an error status from the ORT op); the CUDA kernels, which cannot
report one per row, keep such a row.
Quantiles (sticky): cdf = cumsum(hist[b]) in bin order, total = cdf[NB-1]; u_m = (m + 0.5)/M, m = 0..M-1; the bin
is the smallest k with cdf[k] >= u_m total (clamped to NB-1) and the position its LEFT edge k/NB (the code's draw
inside the bin is always offset 0); a histogram with total <= 0 (or NaN) counts as uniform.

`ltm_constants` computes G, G_inf, S_samp (and the ∞-former basis) once in float64 from (N, L, M, τ, λ, widths)
per §4.1/§4.3, the model stores them as fp32. `naive_ltm_update` is the reference, the oracle of the CPU and CUDA
kernels in plugins/ltm_update/; the torch custom op `rrwkv::ltm_update` (wrapper `ltm_update`) runs it eagerly and
becomes ONE `rrwkv::LTMUpdate` node at export; `ltm_update_function` builds the model-local FunctionProto.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from onnx import FunctionProto, TensorProto, defs
from onnx import helper as oh
from torch import Tensor

from rrwkv_trt.core.ops import DOMAIN, DOMAIN_VERSION

from .onnx_schemas import FLOAT, PLUGIN_ATTRS, F, S, plugin_attributes, rrwkv_opset
from .registry import OpDefinition
from .wkv4 import fresh_outputs

PARAM_DTYPES = (torch.float32, torch.float64)
INPUT_NAMES = ("B_past", "X_new", "mode", "G", "G_inf", "S_samp", "hist", "basis_mu", "basis_sigma")
OUTPUT_NAMES = ("B_new",)
SORTING_SIGMAS, GPT2_SIGMAS = (0.01, 0.05), (0.005, 0.01)
HIST_BINS = 128  # §4.4: the reference code's histogram; the op takes any NB >= 1
SQRT_2PI = math.sqrt(2 * math.pi)
# mode [B] per sequence (§4.8.2): the same numbers in ltmUpdateMath.h
MODE_KEEP, MODE_FIT, MODE_UPDATE = 0, 1, 2
MODES_ALLOWED = "0 (keep), 1 (first fit) or 2 (update)"


# --- constants (float64, computed once; §4.1, §4.3, §4.9) -------------------------------------------------------------

def inftyformer_basis(N: int, sigmas=SORTING_SIGMAS) -> tuple[np.ndarray, np.ndarray]:
    """[INF] meshgrid(linspace(0, 1, N/2), sigmas) flattened width-major (centres c_0..c_{N/2-1} with sigmas[0], then
    with sigmas[1]); an odd N takes the first N of the basis of N + 1. Returns (basis_mu, basis_sigma) [N] float64;
    basis_sigma holds the widths σ_j (standard deviations)."""
    half = (N + 1) // 2
    centres = np.linspace(0.0, 1.0, half) if half > 1 else np.array([0.5])
    mu = np.concatenate([centres] * len(sigmas))[:N]
    sigma = np.concatenate([np.full(half, float(s)) for s in sigmas])[:N]
    return mu, sigma


def psi(t: np.ndarray, basis_mu: np.ndarray, basis_sigma: np.ndarray) -> np.ndarray:
    """ψ_j(t) = N(t; μ_j, σ_j²). Args: t [...]; basis [N]. Returns [..., N] float64."""
    t = np.asarray(t, dtype=np.float64)[..., None]
    return np.exp(-((t - basis_mu) ** 2) / (2 * basis_sigma ** 2)) / (basis_sigma * SQRT_2PI)


def padded_positions(length: int, quirk_shift_den: int | None = None) -> tuple[np.ndarray, int]:
    """The code's padded fit grid for `length` vectors: (positions, crop). Odd: 2 length - 1 points from -0.5 + 1/length
    to 1.5 - 1/length; even: 2 length points from -0.5 + shift to 1.5 - shift with shift = 1/(2 length), or
    1/quirk_shift_den (G_inf's branch uses 1/(2L + M), §4.3). The middle `length` rows are kept: crop rows from each
    side ((length-1)/2 odd, length/2 even; for the quirked grid the crop still assumes (M+L)/2, §4.3)."""
    if length % 2:
        shift = 1.0 / length
        return np.linspace(-0.5 + shift, 1.5 - shift, 2 * length - 1), (length - 1) // 2
    shift = 1.0 / (quirk_shift_den if quirk_shift_den else 2 * length)
    return np.linspace(-0.5 + shift, 1.5 - shift, 2 * length), length // 2


def ridge_G(positions: np.ndarray, crop: int, ridge: float, basis_mu: np.ndarray, basis_sigma: np.ndarray
            ) -> np.ndarray:
    """compute_G: F = ψ(positions)^T [N, P]; G = F^T (F F^T + λ I)^{-1} [P, N], rows [crop, P - crop) kept."""
    Fm = psi(positions, basis_mu, basis_sigma).T                    # [N, P]
    A = Fm @ Fm.T + ridge * np.eye(Fm.shape[0])
    G = np.linalg.solve(A, Fm).T                                     # F^T A^{-1} (A symmetric)
    return G[crop:G.shape[0] - crop]


def ltm_constants(N: int, L: int, M: int, tau: float, ridge: float, sigmas=SORTING_SIGMAS, code_quirks: bool = True
                  ) -> dict[str, np.ndarray]:
    """The LTMUpdate constants in float64 (store them as fp32, §4.9), per §4.1 / §4.3.

    Args: N basis functions, L new vectors per update, M = nb_samples, tau (0 < τ <= 1), ridge λ > 0, the two widths;
      code_quirks=True follows the code's G_inf grid for an even M + L (shift 1/(2L + M), crop (M+L)/2), False uses
      the exact midpoint grid (shift 1/(2(M+L))). An odd M + L has no quirk.
    Returns: {"G" [L, N], "G_inf" [M+L, N], "S_samp" [M, N], "basis_mu" [N], "basis_sigma" [N]}. S_samp[m-1] =
      ψ(t_m/τ), t_m = m τ/M (m = 1..M): τ cancels, S_samp[m-1] = ψ(m/M), as in the code.
    """
    if min(N, L, M) < 1 or not (0 < tau <= 1) or not ridge > 0:
        raise ValueError(f"ltm_constants: need N, L, M >= 1, 0 < tau <= 1, ridge > 0; got N={N}, L={L}, M={M}, "
                         f"tau={tau}, ridge={ridge}")
    bm, bs = inftyformer_basis(N, sigmas)
    G = ridge_G(*padded_positions(L), ridge, bm, bs)
    P = M + L
    G_inf = ridge_G(*padded_positions(P, 2 * L + M if code_quirks else None), ridge, bm, bs)
    t_m = np.arange(1, M + 1, dtype=np.float64) * tau / M
    S_samp = psi(t_m / tau, bm, bs)
    return {"G": G, "G_inf": G_inf, "S_samp": S_samp, "basis_mu": bm, "basis_sigma": bs}


# --- reference ----------------------------------------------------------------------------------------------------------

def quantile_positions(hist: Tensor, M: int) -> Tensor:
    """Sticky positions [B, M] (§4.4 RESOLUTION): the left edges k/NB of the bins holding the quantiles u_m = (m+0.5)/M
    of hist [B, NB] (>= 0), computed in hist's dtype like ltmUpdateMath.h: cdf by a sequential cumsum, total = its last
    entry, bin = #{k : cdf[k] < u_m total} clamped to NB-1; an empty (total <= 0) histogram counts as uniform."""
    NB = hist.shape[-1]
    dt = hist.dtype
    cdf = torch.cumsum(hist, dim=-1)                                       # [B, NB]
    total = cdf[..., -1:]                                                   # [B, 1]
    ok = total > 0
    uniform = torch.arange(1, NB + 1, dtype=dt)
    cdf = torch.where(ok, cdf, uniform)
    total = torch.where(ok, total, torch.tensor(float(NB), dtype=dt))
    u = (torch.arange(M, dtype=dt) + 0.5) / M                               # [M]
    target = u * total                                                      # [B, M]
    k = (cdf[..., None, :] < target[..., None]).sum(-1).clamp(max=NB - 1)  # [B, M]
    return k.to(dt) / NB


def psi_torch(t: Tensor, basis_mu: Tensor, basis_sigma: Tensor) -> Tensor:
    """ψ_j(t) = exp(-(t - μ_j)² / (2 σ_j²)) / (σ_j sqrt(2π)). t [...] -> [..., N]."""
    diff = t[..., None] - basis_mu
    return torch.exp(-(diff * diff) / (2 * basis_sigma * basis_sigma)) / (basis_sigma * SQRT_2PI)


def naive_ltm_update(B_past: Tensor, X_new: Tensor, mode: Tensor, G: Tensor, G_inf: Tensor, S_samp: Tensor,
                     hist: Tensor, basis_mu: Tensor, basis_sigma: Tensor, sticky: int = 0) -> Tensor:
    """LTMUpdate, step by step like ltmUpdateMath.h.

    Args: B_past [B, N, e]; X_new [B, L, e]; mode [B] int64 (0 keep, 1 first fit, 2 update); G [L, N];
      G_inf [M+L, N]; S_samp [M, N]; hist [B, NB] (>= 0; read only when sticky); basis_mu, basis_sigma [N] (read only
      when sticky); sticky 0 or 1. Floating inputs f32 (f64 in tests); arithmetic in G's dtype.
    Returns: B_new [B, N, e] in G's dtype. Only the rows a mode needs are read (KEEP: B_past; FIT: X_new; UPDATE:
      B_past, X_new and, when sticky, hist), so NaN elsewhere is harmless; no row that keeps costs a product.
    Raises: ValueError if a mode is not 0, 1 or 2.
    """
    bad = (mode < MODE_KEEP) | (mode > MODE_UPDATE)
    if bad.any():
        b = int(bad.nonzero()[0, 0])
        raise ValueError(f"ltm_update: mode must be {MODES_ALLOWED} in every row; row {b} holds {int(mode[b])}")
    dt = G.dtype
    B_new = B_past.to(dt, copy=True)                                        # KEEP rows: B_past bit for bit
    fit, upd = mode == MODE_FIT, mode == MODE_UPDATE
    if fit.any():
        B_new[fit] = G.to(dt).T @ X_new[fit].to(dt)
    if upd.any():
        M = S_samp.shape[0]
        if sticky:
            pos = quantile_positions(hist[upd].to(dt), M)                   # [U, M]
            S_b = psi_torch(pos, basis_mu.to(dt), basis_sigma.to(dt))       # [U, M, N]
        else:
            S_b = S_samp.to(dt)                                             # [M, N], broadcast over the U rows
        X_old = S_b @ B_past[upd].to(dt)                                    # [U, M, e]
        X = torch.cat([X_old, X_new[upd].to(dt)], dim=1)                    # [U, M+L, e]
        B_new[upd] = G_inf.to(dt).T @ X
    return B_new


def _check_args(B_past: Tensor, X_new: Tensor, mode: Tensor, G: Tensor, G_inf: Tensor, S_samp: Tensor,
                hist: Tensor, basis_mu: Tensor, basis_sigma: Tensor, sticky: int) -> None:
    name = "ltm_update"
    if B_past.dim() != 3 or X_new.dim() != 3:
        raise ValueError(f"{name}: B_past must be [B, N, e] and X_new [B, L, e]; got {tuple(B_past.shape)}, "
                         f"{tuple(X_new.shape)}")
    Bn, N, e = B_past.shape
    L = X_new.shape[1]
    if X_new.shape[0] != Bn or X_new.shape[2] != e:
        raise ValueError(f"{name}: X_new must be [B, L, e] = [{Bn}, L, {e}]; got {tuple(X_new.shape)}")
    if S_samp.dim() != 2 or S_samp.shape[1] != N:
        raise ValueError(f"{name}: S_samp must be [M, N] with N = {N}; got {tuple(S_samp.shape)}")
    M = S_samp.shape[0]
    for n, x, want in (("mode", mode, (Bn,)), ("G", G, (L, N)), ("G_inf", G_inf, (M + L, N)),
                       ("basis_mu", basis_mu, (N,)), ("basis_sigma", basis_sigma, (N,))):
        if tuple(x.shape) != want:
            raise ValueError(f"{name}: {n} must be {list(want)}; got {tuple(x.shape)}")
    if hist.dim() != 2 or hist.shape[0] != Bn or hist.shape[1] < 1:
        raise ValueError(f"{name}: hist must be [B, NB] = [{Bn}, NB >= 1]; got {tuple(hist.shape)}")
    if sticky not in (0, 1):
        raise ValueError(f"{name}: sticky must be 0 or 1; got {sticky}")
    if mode.dtype != torch.int64:
        raise ValueError(f"{name}: mode must be int64 ({MODES_ALLOWED}); got {mode.dtype}")
    floats = (B_past.dtype, X_new.dtype, G.dtype, G_inf.dtype, S_samp.dtype, hist.dtype, basis_mu.dtype,
              basis_sigma.dtype)
    if len(set(floats)) != 1 or floats[0] not in PARAM_DTYPES:
        raise ValueError(f"{name}: B_past, X_new, G, G_inf, S_samp, hist, basis_mu, basis_sigma must all be float32 "
                         f"(float64 in tests); got {[str(f) for f in floats]}")


@torch.library.custom_op("rrwkv::ltm_update", mutates_args=())
def _ltm_update_op(B_past: Tensor, X_new: Tensor, mode: Tensor, G: Tensor, G_inf: Tensor, S_samp: Tensor,
                   hist: Tensor, basis_mu: Tensor, basis_sigma: Tensor, sticky: int) -> Tensor:
    args = (B_past, X_new, mode, G, G_inf, S_samp, hist, basis_mu, basis_sigma)
    _check_args(*args, sticky)
    return fresh_outputs((naive_ltm_update(*args, sticky),), args)[0]


@_ltm_update_op.register_fake
def _(B_past, X_new, mode, G, G_inf, S_samp, hist, basis_mu, basis_sigma, sticky):
    _check_args(B_past, X_new, mode, G, G_inf, S_samp, hist, basis_mu, basis_sigma, sticky)
    return B_past.new_empty(B_past.shape)


def ltm_update(B_past: Tensor, X_new: Tensor, mode: Tensor, G: Tensor, G_inf: Tensor, S_samp: Tensor,
               hist: Tensor, basis_mu: Tensor, basis_sigma: Tensor, sticky: int = 0) -> Tensor:
    """torch.ops.rrwkv.ltm_update: the reference eagerly, ONE rrwkv::LTMUpdate node at export.

    Args: B_past [B, N, e], X_new [B, L, e] f32; mode [B] int64 (0 keep, 1 first fit, 2 update); G [L, N],
      G_inf [M+L, N], S_samp [M, N] f32 (ltm_constants); hist [B, NB] f32; basis_mu, basis_sigma [N] f32; sticky
      (0/1) becomes a node attribute.
    Returns: B_new [B, N, e] f32 (a new tensor).
    Raises: ValueError for invalid shapes, dtypes, sticky or mode values.
    """
    return torch.ops.rrwkv.ltm_update(B_past, X_new, mode, G, G_inf, S_samp, hist, basis_mu, basis_sigma,
                                      int(sticky))


def ltm_update_onnx(B_past, X_new, mode, G, G_inf, S_samp, hist, basis_mu, basis_sigma, sticky: int = 0):
    """custom_translation_table entry: torch.ops.rrwkv.ltm_update -> one rrwkv::LTMUpdate node."""
    return rrwkv_opset().LTMUpdate(B_past, X_new, mode, G, G_inf, S_samp, hist, basis_mu, basis_sigma,
                                   sticky=int(sticky), **PLUGIN_ATTRS)


def ltm_update_function(opset: int = 18) -> FunctionProto:
    """rrwkv::LTMUpdate as a model-local FunctionProto in standard ONNX ops (stock ORT runs it).

    The model calls the op at every token and most calls keep every row (§4.5), so the body is one If on
    ReduceMax(mode) > 0: its else-branch is B_past through Identity, and only its then-branch pays for the update.
    There both S variants are built and Where(sticky) picks one: the quantiles by CumSum, a Less count over the bins
    and Min(NB - 1), ψ by Exp/Div; then X_old = S B_past, Concat, the two MatMuls with Transpose(G_inf) and
    Transpose(G) over the whole batch, and per row Where(mode == 2) the update, Where(mode == 1) the first fit, else
    B_past. A row with another mode keeps B_past here (the body cannot raise). sticky reaches the body through an
    attribute reference (default 0), outside the If.
    """
    if opset < 13:
        raise ValueError(f"LTMUpdate's function body needs default-domain opset >= 13 (ReduceSum with axes as an "
                         f"input); the model imports {opset}")
    n = oh.make_node
    const = lambda name, dtype, dims, vals: n("Constant", [], [name], value=oh.make_tensor(name, dtype, dims, vals))  # noqa: E731,E501
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    sticky_node = n("Constant", [], ["sticky_i"])
    sticky_node.attribute.append(oh.make_attribute_ref("value_int", oh.AttributeProto.INT, ref_attr_name="sticky"))
    update = [  # the If's then-branch; it reads the function's inputs and sticky_b from the outer scope
        const("zero", f32, [], [0.0]), const("half", f32, [], [0.5]), const("one", f32, [], [1.0]),
        const("two", f32, [], [2.0]), const("sqrt2pi", f32, [], [SQRT_2PI]),
        const("ax_last", i64, [1], [-1]), const("ax_last_s", i64, [], [-1]), const("i_one", i64, [1], [1]),
        const("i_zero", i64, [1], [0]), const("i_big", i64, [1], [2 ** 62]), const("ax_mid", i64, [1], [1]),
        # the quantile positions pos [B, M]
        n("CumSum", ["hist", "ax_last_s"], ["cdf_h"]),
        n("Slice", ["cdf_h", "ax_last", "i_big", "ax_last"], ["total_h"]),          # [B, 1]
        n("Greater", ["total_h", "zero"], ["hist_ok"]),
        n("Shape", ["hist"], ["hist_shape"]), n("Slice", ["hist_shape", "i_one", "i_big"], ["nb_i"]),  # [1]
        n("Cast", ["nb_i"], ["nb_f1"], to=f32), n("Squeeze", ["nb_f1"], ["nb_f"]),
        n("Add", ["nb_f", "one"], ["nb_p1"]), n("Range", ["one", "nb_p1", "one"], ["uniform"]),  # [NB] = 1..NB
        n("Where", ["hist_ok", "cdf_h", "uniform"], ["cdf"]),
        n("Where", ["hist_ok", "total_h", "nb_f"], ["total"]),                     # [B, 1]
        n("Shape", ["S_samp"], ["s_shape"]), n("Slice", ["s_shape", "i_zero", "i_one"], ["m_i"]),
        n("Cast", ["m_i"], ["m_f1"], to=f32), n("Squeeze", ["m_f1"], ["m_f"]),
        n("Range", ["zero", "m_f", "one"], ["m_idx"]), n("Add", ["m_idx", "half"], ["m_half"]),
        n("Div", ["m_half", "m_f"], ["u"]),                                          # [M]
        n("Mul", ["u", "total"], ["target"]),                                        # [B, M]
        n("Unsqueeze", ["target", "ax_last"], ["target3"]),                          # [B, M, 1]
        n("Unsqueeze", ["cdf", "ax_mid"], ["cdf3"]),                                 # [B, 1, NB]
        n("Less", ["cdf3", "target3"], ["below"]), n("Cast", ["below"], ["below_f"], to=f32),
        n("ReduceSum", ["below_f", "ax_last"], ["count"], keepdims=0),               # [B, M]
        n("Sub", ["nb_f", "one"], ["nb_m1"]), n("Min", ["count", "nb_m1"], ["bin"]),
        n("Div", ["bin", "nb_f"], ["pos"]),
        # psi at pos [B, M, N]
        n("Unsqueeze", ["pos", "ax_last"], ["pos3"]), n("Sub", ["pos3", "basis_mu"], ["diff"]),
        n("Mul", ["diff", "diff"], ["diff2"]), n("Mul", ["basis_sigma", "basis_sigma"], ["bs2"]),
        n("Mul", ["two", "bs2"], ["bs2x2"]), n("Div", ["diff2", "bs2x2"], ["z"]), n("Neg", ["z"], ["nz"]),
        n("Exp", ["nz"], ["gauss"]), n("Mul", ["basis_sigma", "sqrt2pi"], ["norm"]),
        n("Div", ["gauss", "norm"], ["S_sticky"]),
        n("Where", ["sticky_b", "S_sticky", "S_samp"], ["S"]),                       # [B, M, N] or [M, N]
        # the update and the first fit of every row; Where copies, so NaN in a row another mode ignores stays there
        n("MatMul", ["S", "B_past"], ["X_old"]),                                     # [B, M, e]
        n("Concat", ["X_old", "X_new"], ["X"], axis=1),                              # [B, M+L, e]
        n("Transpose", ["G_inf"], ["G_inf_t"], perm=[1, 0]), n("MatMul", ["G_inf_t", "X"], ["B_upd"]),
        n("Transpose", ["G"], ["G_t"], perm=[1, 0]), n("MatMul", ["G_t", "X_new"], ["B_first"]),
        const("mode_fit", i64, [], [MODE_FIT]), const("mode_update", i64, [], [MODE_UPDATE]),
        const("shape_b11", i64, [3], [-1, 1, 1]),
        n("Equal", ["mode", "mode_fit"], ["is_fit"]), n("Reshape", ["is_fit", "shape_b11"], ["fit3"]),
        n("Equal", ["mode", "mode_update"], ["is_update"]), n("Reshape", ["is_update", "shape_b11"], ["update3"]),
        n("Where", ["fit3", "B_first", "B_past"], ["B_fit_or_keep"]),
        n("Where", ["update3", "B_upd", "B_fit_or_keep"], ["B_then"]),
    ]
    out = lambda name: oh.make_tensor_value_info(name, f32, None)  # noqa: E731
    nodes = [
        sticky_node, n("Cast", ["sticky_i"], ["sticky_b"], to=TensorProto.BOOL),
        const("mode_keep", i64, [], [MODE_KEEP]),
        n("ReduceMax", ["mode"], ["mode_max"], keepdims=0),  # over every axis; B = 0 gives INT64_MIN: keep
        n("Greater", ["mode_max", "mode_keep"], ["any_row_changes"]),
        n("If", ["any_row_changes"], ["B_new"],
          then_branch=oh.make_graph(update, "ltm_update_rows", [], [out("B_then")]),
          else_branch=oh.make_graph([n("Identity", ["B_past"], ["B_keep"])], "ltm_keep_all", [], [out("B_keep")])),
    ]
    return oh.make_function(DOMAIN, "LTMUpdate", list(INPUT_NAMES), list(OUTPUT_NAMES), nodes,
                            opset_imports=[oh.make_opsetid("", opset)], attributes=[*PLUGIN_ATTRS],
                            attribute_protos=[oh.make_attribute("sticky", 0)],
                            doc_string=ltm_update_function.__doc__.split("\n")[0])


def ltm_update_schema() -> defs.OpSchema:
    """rrwkv::LTMUpdate (docs/families/inftyformer.md §4.8.2): B_past [B,N,e], X_new [B,L,e] f32, mode [B] int64
    (0 keep, 1 first fit, 2 update), G [L,N], G_inf [M+L,N], S_samp [M,N], hist [B,NB], basis_mu, basis_sigma [N] f32
    -> B_new [B,N,e] f32; attribute sticky (INT 0/1, default 0)."""
    return S(
        "LTMUpdate", DOMAIN, DOMAIN_VERSION,
        "The ∞-former's unbounded memory update: the old continuous signal sampled at M positions (fixed, or the "
        "inverse-CDF quantiles of the attention histogram when sticky) and the L new vectors are refitted by the "
        "precomputed ridge regression G_inf (mode 2); a first segment fits X_new alone with G (mode 1); mode 0 keeps "
        "B_past, so a decoder can call the op at every token.",
        inputs=[F("B_past", FLOAT), F("X_new", FLOAT), F("mode", "tensor(int64)"), F("G", FLOAT),
                F("G_inf", FLOAT), F("S_samp", FLOAT), F("hist", FLOAT), F("basis_mu", FLOAT),
                F("basis_sigma", FLOAT)],
        outputs=[F("B_new", FLOAT)],
        attributes=[S.Attribute("sticky", oh.make_attribute("sticky", 0),
                                "1: sample the old signal at the quantiles of hist (sticky memories), 0: at the fixed "
                                "positions of S_samp"),
                    *plugin_attributes()])


OP = OpDefinition(schema=ltm_update_schema, function=ltm_update_function, reference=naive_ltm_update,
                  torch_op=torch.ops.rrwkv.ltm_update.default, translation=ltm_update_onnx)
