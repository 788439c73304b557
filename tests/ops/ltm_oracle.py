"""Independent float64 numpy oracle of rrwkv::LTMUpdate (docs/families/inftyformer.md §4.1, §4.3, §4.4, §4.8.2),
written from the spec, not from export/ops/ltm_update.py, plus seeded inputs and a runner of the FunctionProto.

- `np_basis`, `np_constants`: the ∞-former basis and the ridge fits G, G_inf, S_samp (explicit inverse, grids from
  their spacing formulas);
- `np_quantile_positions`: the inverse CDF by np.searchsorted on the cumulative histogram;
- `np_ltm_update`: the update itself, per row by mode (0 keep, 1 first fit, 2 update);
- `ltm_inputs`: inputs in torch (f32 or f64) from the GPT-2 or sorting constants; `poison_unread`: NaN wherever a
  row's mode must not read; `run_ltm_function`: the body in ORT.
"""
from __future__ import annotations

import functools

import numpy as np
import onnxruntime as ort
import torch
from onnx import TensorProto, helper

from rrwkv_trt.export.ops import PLUGIN_ATTRS, register_schemas
from rrwkv_trt.export.ops.ltm_update import ltm_constants, ltm_update_function

LTM_INPUTS = ("B_past", "X_new", "mode", "G", "G_inf", "S_samp", "hist", "basis_mu", "basis_sigma")
SETUPS = {"gpt2": ((0.005, 0.01), 0.5, 0.5), "sorting": ((0.01, 0.05), 1.0, 0.75)}  # widths, ridge λ, τ


def np_basis(N: int, sigmas) -> tuple[np.ndarray, np.ndarray]:
    half = (N + 1) // 2
    mu = np.tile(np.linspace(0, 1, half) if half > 1 else np.array([0.5]), len(sigmas))[:N]
    sigma = np.repeat(np.asarray(sigmas, dtype=np.float64), half)[:N]
    return mu, sigma


def np_psi(t, mu, sigma) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    return np.exp(-0.5 * ((t[..., None] - mu) / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma)


def _fit(P: int, shift: float, count: int, crop: int, ridge: float, mu, sigma) -> np.ndarray:
    step = (2.0 - 2 * shift) / (count - 1)
    pos = -0.5 + shift + step * np.arange(count)
    F = np_psi(pos, mu, sigma).T                                   # [N, count]
    G = F.T @ np.linalg.inv(F @ F.T + ridge * np.eye(len(mu)))     # [count, N]
    return G[crop:crop + P]


def np_constants(N: int, L: int, M: int, tau: float, ridge: float, sigmas, quirks: bool = True) -> dict:
    mu, sigma = np_basis(N, sigmas)

    def grid(P: int, even_shift: float):
        return (1.0 / P, 2 * P - 1, (P - 1) // 2) if P % 2 else (even_shift, 2 * P, P // 2)

    G = _fit(L, *grid(L, 1 / (2 * L)), ridge, mu, sigma)
    P = M + L
    G_inf = _fit(P, *grid(P, 1 / (2 * L + M) if quirks else 1 / (2 * P)), ridge, mu, sigma)
    t = tau * np.arange(1, M + 1) / M
    return {"G": G, "G_inf": G_inf, "S_samp": np_psi(t / tau, mu, sigma), "basis_mu": mu, "basis_sigma": sigma}


def np_quantile_positions(hist: np.ndarray, M: int) -> np.ndarray:
    """[B, M]: left edge of the bin where the CDF first reaches (m + 0.5)/M; empty histograms as uniform."""
    hist = np.asarray(hist, dtype=np.float64)
    NB = hist.shape[-1]
    out = np.empty((hist.shape[0], M))
    for b, h in enumerate(hist):
        if not h.sum() > 0:
            h = np.ones(NB)
        cdf = np.cumsum(h) / np.sum(h)
        k = np.searchsorted(cdf, (np.arange(M) + 0.5) / M, side="left")
        out[b] = np.minimum(k, NB - 1) / NB
    return out


def np_ltm_update(x: dict, sticky: int) -> np.ndarray:
    """Row b by mode[b]: 0 B_past[b]; 1 G^T X_new[b]; 2 G_inf^T [S B_past[b]; X_new[b]]; each row reads only what its
    mode needs."""
    x = {k: np.asarray(v, dtype=np.int64 if k == "mode" else np.float64) for k, v in x.items()}
    M = x["S_samp"].shape[0]
    out = np.empty_like(x["B_past"])
    for b, mode in enumerate(x["mode"]):
        if mode == 0:
            out[b] = x["B_past"][b]
        elif mode == 1:
            out[b] = x["G"].T @ x["X_new"][b]
        elif mode == 2:
            S = x["S_samp"]
            if sticky:
                S = np_psi(np_quantile_positions(x["hist"][b:b + 1], M)[0], x["basis_mu"], x["basis_sigma"])
            X = np.concatenate([S @ x["B_past"][b], x["X_new"][b]], axis=0)
            out[b] = x["G_inf"].T @ X
        else:
            raise ValueError(f"np_ltm_update: mode {mode} in row {b}")
    return out


def ltm_inputs(B: int, N: int, e: int, L: int, M: int, NB: int = 128, setup: str = "gpt2", seed: int = 0,
               dtype=torch.float32, mode=None, hist_kind: str = "peaked") -> dict[str, torch.Tensor]:
    """X_new ~ N(0, 1); B_past a first fit G^T X of another random X (a realistic memory); mode cycling 2, 1, 0, 2, ...
    (update, first fit, keep) unless given; hist a mixture of Gaussian bumps ("peaked"), uniform random ("random"), or
    integers with an odd total ("integer": no quantile ties in fp32); constants from ltm_constants in float64, then
    `dtype`."""
    sigmas, ridge, tau = SETUPS[setup]
    c = ltm_constants(N, L, M, tau, ridge, sigmas)
    rng = np.random.default_rng(seed)
    X_new = rng.standard_normal((B, L, e))
    B_past = np.einsum("ln,ble->bne", c["G"], rng.standard_normal((B, L, e)))
    if mode is None:
        mode = [2 - b % 3 for b in range(B)]
    centres = (np.arange(NB) + 0.5) / NB
    if hist_kind == "peaked":
        hist = sum(rng.uniform(0.2, 1) * np.exp(-0.5 * ((centres - rng.uniform()) / rng.uniform(0.02, 0.2)) ** 2)
                   for _ in range(3)) * np.ones((B, 1)) + 1e-3 * rng.uniform(size=(B, NB))
    elif hist_kind == "random":
        hist = rng.uniform(size=(B, NB))
    else:
        hist = rng.integers(0, 4, size=(B, NB)).astype(np.float64)
        for h in hist:
            if h.sum() % 2 == 0:
                h[0] += 1
    t = lambda a: torch.tensor(a, dtype=dtype)  # noqa: E731
    return {"B_past": t(B_past), "X_new": t(X_new), "mode": torch.tensor(mode, dtype=torch.int64),
            "G": t(c["G"]), "G_inf": t(c["G_inf"]), "S_samp": t(c["S_samp"]), "hist": t(hist),
            "basis_mu": t(c["basis_mu"]), "basis_sigma": t(c["basis_sigma"])}


BATCHED = ("B_past", "X_new", "mode", "hist")  # the inputs with a row per sequence


def poison_unread(x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A copy of x with NaN in what each row's mode must not read: X_new and hist of KEEP rows (0), B_past and hist of
    FIRST FIT rows (1)."""
    x = {k: v.clone() for k, v in x.items()}
    keep, fit = x["mode"] == 0, x["mode"] == 1
    x["X_new"][keep] = float("nan")
    x["hist"][keep | fit] = float("nan")
    x["B_past"][fit] = float("nan")
    return x


def row_inputs(x: dict[str, torch.Tensor], b: int) -> dict[str, torch.Tensor]:
    """Sequence b of x alone (B = 1)."""
    return {k: v[b:b + 1] if k in BATCHED else v for k, v in x.items()}


@functools.cache
def _session(sticky: int | None, opset: int = 18) -> ort.InferenceSession:
    register_schemas()
    dims = {"B_past": ["B", "N", "e"], "X_new": ["B", "L", "e"], "mode": ["B"], "G": ["L", "N"],
            "G_inf": ["P", "N"], "S_samp": ["M", "N"], "hist": ["B", "NB"], "basis_mu": ["N"], "basis_sigma": ["N"]}
    ins = [helper.make_tensor_value_info(n, TensorProto.INT64 if n == "mode" else TensorProto.FLOAT, dims[n])
           for n in LTM_INPUTS]
    attrs = {} if sticky is None else {"sticky": sticky}
    node = helper.make_node("LTMUpdate", list(LTM_INPUTS), ["B_new"], domain="rrwkv", **attrs, **PLUGIN_ATTRS)
    graph = helper.make_graph([node], "ltm", ins, [helper.make_tensor_value_info("B_new", TensorProto.FLOAT,
                                                                                  ["B", "N", "e"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("rrwkv", 1)],
                              functions=[ltm_update_function(opset)])
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def run_ltm_function(x: dict[str, torch.Tensor], sticky: int | None, opset: int = 18) -> np.ndarray:
    """The FunctionProto in stock ORT; sticky None leaves the attribute off (its default 0)."""
    return _session(sticky, opset).run(None, {n: x[n].numpy() for n in LTM_INPUTS})[0]
