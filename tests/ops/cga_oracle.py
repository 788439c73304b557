"""ContinuousGaussianAttention oracles (docs/families/inftyformer.md §4.10), all float64 numpy, written from the docs
and not from export/ops/continuous_gaussian_attention.py:
- `basis()` / `cga_inputs()`: the code's Gaussian basis (centres linspace(0, 1, N/2) x widths) and seeded inputs;
- `cga_numpy()`: the whole op;
- `quadrature_overlap()`: ∫ N(t; mu, sigma2) psi_j(t) dt by a composite trapezoid rule (no scipy in the venv);
- `continuous_softmax_r()`: [INF]'s ContinuousSoftmaxFunction.forward rebuilt from its formulas: theta =
  (mu / sigma2, -1 / (2 sigma2)) back to (mu, sigma2), then GaussianBasisFunctions.integrate_psi_gaussian;
- `run_cga_function()`: a one-node model with the FunctionProto attached, in stock ORT.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto
from onnx import helper as oh

from rrwkv_trt.export.ops import attach_functions, register_schemas

CGA_INPUTS = ("q", "K", "V", "w_mu", "w_sigma", "basis_mu", "basis_sigma")
CGA_OUTPUTS = ("ctx", "mu", "sigma2")
SORTING_SIGMAS, GPT2_SIGMAS = (0.01, 0.05), (0.005, 0.01)
_SHAPES = {"q": ["B", "H", "T", "d"], "K": ["B", "H", "N", "d"], "V": ["B", "H", "N", "d"], "w_mu": ["N"],
           "w_sigma": ["N"], "basis_mu": ["N"], "basis_sigma": ["N"], "ctx": ["B", "H", "T", "d"],
           "mu": ["B", "H", "T"], "sigma2": ["B", "H", "T"]}
_ONNX = {torch.float32: TensorProto.FLOAT, torch.float16: TensorProto.FLOAT16}


def basis(N: int, sigmas=SORTING_SIGMAS) -> tuple[np.ndarray, np.ndarray]:
    """[INF] long_term_attention.py: meshgrid(linspace(0, 1, N/2), sigmas), flattened width-major; for an odd N the
    first N of the basis of N + 1. Returns (basis_mu, basis_sigma) [N] float64."""
    half = (N + 1) // 2
    centres = np.linspace(0.0, 1.0, half) if half > 1 else np.array([0.5])
    mu = np.concatenate([centres] * len(sigmas))[:N]
    sigma = np.concatenate([np.full(half, s) for s in sigmas])[:N]
    return mu, sigma


def cga_inputs(B: int, H: int, T: int, N: int, d: int, dtype=torch.float32, seed: int = 0, sigmas=SORTING_SIGMAS,
               w_scale: float = 1.0, param_dtype=torch.float32) -> dict[str, torch.Tensor]:
    """q [B, H, T, d], K, V [B, H, N, d] randn in `dtype`; w_mu, w_sigma ~ w_scale U(-N^-0.5, N^-0.5) (nn.Linear's
    init); the code's basis with `sigmas`; parameters in `param_dtype`."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    u = lambda n: (2 * torch.rand(n, generator=g, dtype=torch.float64) - 1) / math.sqrt(n)  # noqa: E731
    bm, bs = basis(N, sigmas)
    x = {"q": r(B, H, T, d).to(dtype), "K": r(B, H, N, d).to(dtype), "V": r(B, H, N, d).to(dtype),
         "w_mu": (w_scale * u(N)), "w_sigma": (w_scale * u(N)), "basis_mu": torch.from_numpy(bm),
         "basis_sigma": torch.from_numpy(bs)}
    return {n: t.to(param_dtype) if n.startswith(("w_", "basis_")) else t for n, t in x.items()}


def softplus(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def normal_pdf(x, mean, var):
    return np.exp(-((x - mean) ** 2) / (2 * var)) / np.sqrt(2 * np.pi * var)


def cga_numpy(x: dict, sigma2_min: float, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The whole op in float64 numpy, per §4.1: (ctx [B, H, T, d], mu, sigma2 [B, H, T])."""
    a = {n: np.asarray(t.double().numpy() if hasattr(t, "numpy") else t, np.float64) for n, t in x.items()}
    s = scale * np.matmul(a["q"], np.swapaxes(a["K"], -1, -2))         # [B, H, T, N]
    mu = 1.0 / (1.0 + np.exp(-(s @ a["w_mu"])))
    sigma2 = np.maximum(softplus(s @ a["w_sigma"]), sigma2_min)
    r = normal_pdf(mu[..., None], a["basis_mu"], a["basis_sigma"] ** 2 + sigma2[..., None])
    return np.matmul(r, a["V"]), mu, sigma2


def quadrature_overlap(mu: float, sigma2: float, basis_mu: float, basis_sigma: float, points: int = 20001) -> float:
    """∫ N(t; mu, sigma2) N(t; basis_mu, basis_sigma²) dt by the composite trapezoid rule over the interval where both
    densities are above e^-72 of their peaks (±12 standard deviations of each); 0 when those do not meet (the
    integral is then below 1e-31 of the larger peak)."""
    sd = math.sqrt(sigma2)
    lo, hi = max(mu - 12 * sd, basis_mu - 12 * basis_sigma), min(mu + 12 * sd, basis_mu + 12 * basis_sigma)
    if lo >= hi:
        return 0.0
    t = np.linspace(lo, hi, points)
    f = normal_pdf(t, mu, sigma2) * normal_pdf(t, basis_mu, basis_sigma ** 2)
    return float(np.trapezoid(f, t) if hasattr(np, "trapezoid") else np.trapz(f, t))


def continuous_softmax_r(mu: np.ndarray, sigma2: np.ndarray, basis_mu: np.ndarray, basis_sigma: np.ndarray
                         ) -> np.ndarray:
    """[INF] sorting/continuous_softmax.py + basis_functions.py, float64: the code hands theta = [mu/sigma2,
    -1/(2 sigma2)]; ContinuousSoftmaxFunction.forward recovers sigma = sqrt(-1/(2 theta_2)), mu = theta_1 sigma², and
    integrate_psi_gaussian(mu, sigma_sq) = phi((mu - mu_j) / sqrt(sigma_sq + sigma_j²)) / sqrt(sigma_sq + sigma_j²).
    mu, sigma2 [R]; returns r [R, N]."""
    theta = np.stack([mu / sigma2, -0.5 / sigma2], -1)
    sigma = np.sqrt(-0.5 / theta[:, 1])
    sigma_sq = (sigma ** 2)[:, None]
    mu_back = (theta[:, 0] * sigma ** 2)[:, None]
    denom = np.sqrt(sigma_sq + basis_sigma ** 2)
    z = (mu_back - basis_mu) / denom
    return np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi) / denom


def cga_model(act_dtype: torch.dtype, attrs: dict, opset: int = 18) -> onnx.ModelProto:
    """One rrwkv::ContinuousGaussianAttention node (symbolic dims) with its FunctionProto attached."""
    register_schemas()
    act = ("q", "K", "V", "ctx")
    vi = lambda n: oh.make_tensor_value_info(n, _ONNX[act_dtype] if n in act else TensorProto.FLOAT, _SHAPES[n])  # noqa: E731,E501
    node = oh.make_node("ContinuousGaussianAttention", list(CGA_INPUTS), list(CGA_OUTPUTS), domain="rrwkv", **attrs)
    graph = oh.make_graph([node], "one_cga", [vi(n) for n in CGA_INPUTS], [vi(n) for n in CGA_OUTPUTS])
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", opset), oh.make_opsetid("rrwkv", 1)],
                          ir_version=10)
    return attach_functions(model)


@functools.cache
def _session(act_dtype: torch.dtype, attrs: tuple) -> ort.InferenceSession:
    model = cga_model(act_dtype, dict(attrs))
    onnx.checker.check_model(model, full_check=True)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def run_cga_function(x: dict[str, torch.Tensor], **attrs) -> list[np.ndarray]:
    """The FunctionProto in stock ORT (attrs: sigma2_min, scale, optionally the plugin attributes)."""
    return _session(x["q"].dtype, tuple(sorted(attrs.items()))).run(None, {n: x[n].numpy() for n in CGA_INPUTS})
