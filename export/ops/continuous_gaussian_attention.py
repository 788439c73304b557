"""rrwkv::ContinuousGaussianAttention (docs/families/inftyformer.md §4.1, §4.8.1): the ∞-former's continuous
attention over a long-term memory of N Gaussian basis functions, for every query row (b, h, t) at once.

Per row, in fp32 (float64 in tests):  s_j = scale K_j·q;  μ = sigmoid(w_mu·s);  σ² = max(softplus(w_sigma·s),
sigma2_min);  r_j = N(μ; basis_mu_j, basis_sigma_j² + σ²);  ctx = Σ_j r_j V_j. The op works with (μ, σ²) directly,
never with the code's θ = (μ/σ², -1/(2σ²)) (§4.9). basis_sigma holds the widths σ_j (standard deviations, as
GaussianBasisFunctions(mu, sigma) stores them), squared inside the op.

`naive_continuous_gaussian_attention` is the reference, the oracle of the CPU and CUDA kernels in
plugins/continuous_gaussian_attention/. The torch custom op `rrwkv::continuous_gaussian_attention` (public wrapper
`continuous_gaussian_attention`) runs it eagerly and becomes ONE `rrwkv::ContinuousGaussianAttention` node at export
(translation `continuous_gaussian_attention_onnx`); `continuous_gaussian_attention_function` builds the model-local
FunctionProto.
"""
from __future__ import annotations

import math

import torch
from onnx import FunctionProto, TensorProto, defs
from onnx import helper as oh
from torch import Tensor

from rrwkv_trt.core.ops import DOMAIN, DOMAIN_VERSION

from .onnx_schemas import ACT, FLOAT, PLUGIN_ATTRS, F, S, plugin_attributes, rrwkv_opset
from .registry import OpDefinition
from .wkv4 import fresh_outputs

PARAM_DTYPES = (torch.float32, torch.float64)
INPUT_NAMES = ("q", "K", "V", "w_mu", "w_sigma", "basis_mu", "basis_sigma")
OUTPUT_NAMES = ("ctx", "mu", "sigma2")


def softplus(x: Tensor) -> Tensor:
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow, full relative precision for x << 0, and exact for
    x >> 0 (torch's softplus returns x itself past its threshold 20, 2e-9 off)."""
    return torch.clamp(x, min=0) + torch.log1p(torch.exp(-x.abs()))


def gaussian_overlap(mu: Tensor, sigma2: Tensor, basis_mu: Tensor, basis_sigma: Tensor) -> Tensor:
    """r_j = E_{t~N(mu, sigma2)}[N(t; basis_mu_j, basis_sigma_j²)] = N(mu; basis_mu_j, basis_sigma_j² + sigma2).

    Args: mu, sigma2 [...] (sigma2 > 0); basis_mu, basis_sigma [N]. Returns r [..., N].
    """
    var = basis_sigma * basis_sigma + sigma2[..., None]          # [..., N]
    diff = mu[..., None] - basis_mu
    return torch.exp(-(diff * diff) / (2 * var)) / torch.sqrt(2 * math.pi * var)


def naive_continuous_gaussian_attention(q: Tensor, K: Tensor, V: Tensor, w_mu: Tensor, w_sigma: Tensor,
                                        basis_mu: Tensor, basis_sigma: Tensor, sigma2_min: float, scale: float
                                        ) -> tuple[Tensor, Tensor, Tensor]:
    """ContinuousGaussianAttention, step by step like continuousGaussianAttentionMath.h.

    Args: q [B, H, T, d]; K, V [B, H, N, d] (f32, f16 or f64, one dtype); w_mu, w_sigma, basis_mu, basis_sigma [N]
      (f32, or f64 in tests); sigma2_min > 0 (σ² floor), scale > 0 (d^-0.5 in the reference code).
    Returns: ctx [B, H, T, d] in q's dtype; mu, sigma2 [B, H, T] in the parameters' dtype. Arithmetic runs in the
    parameters' dtype (f32 for f16 inputs, f64 when the parameters are f64).
    """
    dt, out_dtype = w_mu.dtype, q.dtype
    q, K, V = q.to(dt), K.to(dt), V.to(dt)
    s = scale * torch.einsum("bhtd,bhnd->bhtn", q, K)              # [B, H, T, N]
    x_mu = (s * w_mu).sum(-1)                                       # [B, H, T]
    x_sigma = (s * w_sigma).sum(-1)
    mu = torch.sigmoid(x_mu)
    sigma2 = torch.clamp(softplus(x_sigma), min=sigma2_min)
    r = gaussian_overlap(mu, sigma2, basis_mu.to(dt), basis_sigma.to(dt))  # [B, H, T, N]
    ctx = torch.einsum("bhtn,bhnd->bhtd", r, V)
    return ctx.to(out_dtype), mu, sigma2


def _check_args(q: Tensor, K: Tensor, V: Tensor, w_mu: Tensor, w_sigma: Tensor, basis_mu: Tensor,
                basis_sigma: Tensor, sigma2_min: float, scale: float) -> None:
    name = "continuous_gaussian_attention"
    if q.dim() != 4:
        raise ValueError(f"{name}: q must be [B, H, T, d]; got {tuple(q.shape)}")
    B, H, _, d = q.shape
    for n, x in (("K", K), ("V", V)):
        if x.dim() != 4 or tuple(x.shape[:2]) != (B, H) or x.shape[3] != d or x.shape != K.shape:
            raise ValueError(f"{name}: K and V must both be [B, H, N, d] = [{B}, {H}, N, {d}]; got K "
                             f"{tuple(K.shape)}, V {tuple(V.shape)}")
    N = K.shape[2]
    for n, x in (("w_mu", w_mu), ("w_sigma", w_sigma), ("basis_mu", basis_mu), ("basis_sigma", basis_sigma)):
        if tuple(x.shape) != (N,):
            raise ValueError(f"{name}: {n} must be [N] = [{N}]; got {tuple(x.shape)}")
    for n, v in (("sigma2_min", sigma2_min), ("scale", scale)):
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name}: {n} must be finite and > 0; got {v}")
    params = (w_mu.dtype, w_sigma.dtype, basis_mu.dtype, basis_sigma.dtype)
    if K.dtype != q.dtype or V.dtype != q.dtype or len(set(params)) != 1 or params[0] not in PARAM_DTYPES:
        raise ValueError(f"{name}: q, K and V must share one dtype, and w_mu, w_sigma, basis_mu, basis_sigma be "
                         f"float32 (float64 in tests); got q {q.dtype}, K {K.dtype}, V {V.dtype}, parameters "
                         f"{[str(p) for p in params]}")


@torch.library.custom_op("rrwkv::continuous_gaussian_attention", mutates_args=())
def _cga_op(q: Tensor, K: Tensor, V: Tensor, w_mu: Tensor, w_sigma: Tensor, basis_mu: Tensor, basis_sigma: Tensor,
            sigma2_min: float, scale: float) -> tuple[Tensor, Tensor, Tensor]:
    args = (q, K, V, w_mu, w_sigma, basis_mu, basis_sigma)
    _check_args(*args, sigma2_min, scale)
    return fresh_outputs(naive_continuous_gaussian_attention(*args, sigma2_min, scale), args)


@_cga_op.register_fake
def _(q, K, V, w_mu, w_sigma, basis_mu, basis_sigma, sigma2_min, scale):
    _check_args(q, K, V, w_mu, w_sigma, basis_mu, basis_sigma, sigma2_min, scale)
    rows = q.shape[:3]
    return q.new_empty(q.shape), w_mu.new_empty(rows), w_mu.new_empty(rows)


def continuous_gaussian_attention(q: Tensor, K: Tensor, V: Tensor, w_mu: Tensor, w_sigma: Tensor, basis_mu: Tensor,
                                  basis_sigma: Tensor, sigma2_min: float, scale: float
                                  ) -> tuple[Tensor, Tensor, Tensor]:
    """torch.ops.rrwkv.continuous_gaussian_attention: the reference eagerly, ONE rrwkv::ContinuousGaussianAttention
    node at export.

    Args: q [B, H, T, d], K, V [B, H, N, d] (f32/f16, one dtype); w_mu, w_sigma, basis_mu, basis_sigma [N] f32
      (basis_sigma: the widths σ_j); sigma2_min and scale (both > 0) become node attributes.
    Returns: ctx [B, H, T, d] in q's dtype; mu, sigma2 [B, H, T] f32 (new tensors).
    """
    return torch.ops.rrwkv.continuous_gaussian_attention(q, K, V, w_mu, w_sigma, basis_mu, basis_sigma,
                                                         float(sigma2_min), float(scale))


def continuous_gaussian_attention_onnx(q, K, V, w_mu, w_sigma, basis_mu, basis_sigma, sigma2_min: float,
                                       scale: float):
    """custom_translation_table entry: torch.ops.rrwkv.continuous_gaussian_attention -> one
    rrwkv::ContinuousGaussianAttention node."""
    return rrwkv_opset().ContinuousGaussianAttention(q, K, V, w_mu, w_sigma, basis_mu, basis_sigma,
                                                     sigma2_min=float(sigma2_min), scale=float(scale),
                                                     **PLUGIN_ATTRS)


def _attribute_constant(output: str, attribute: str):
    node = oh.make_node("Constant", [], [output])
    node.attribute.append(oh.make_attribute_ref("value_float", oh.AttributeProto.FLOAT, ref_attr_name=attribute))
    return node


def continuous_gaussian_attention_function(opset: int = 18) -> FunctionProto:
    """rrwkv::ContinuousGaussianAttention as a model-local FunctionProto in standard ONNX ops (stock ORT runs it).

    q, K, V are cast to f32; s = scale q K^T by MatMul; the two dots by Mul + ReduceSum over N; Sigmoid; softplus as
    max(x, 0) + log1p(exp(-|x|)) with log1p(e) = log(u) e / (u - 1), u = 1 + e (exact to a few ulps where 1 + e
    rounds; ONNX has no log1p); Max with sigma2_min; the Gaussian by Exp/Sqrt/Div; ctx = r V by MatMul, cast back to
    q's dtype. sigma2_min and scale reach the body through attribute references.
    """
    if opset < 13:
        raise ValueError(f"ContinuousGaussianAttention's function body needs default-domain opset >= 13 "
                         f"(ReduceSum and Squeeze with axes as an input); the model imports {opset}")
    n = oh.make_node
    const = lambda name, dtype, dims, vals: n("Constant", [], [name], value=oh.make_tensor(name, dtype, dims, vals))  # noqa: E731,E501
    f32 = TensorProto.FLOAT
    nodes = [
        _attribute_constant("scale_f", "scale"), _attribute_constant("s2min", "sigma2_min"),
        const("zero", f32, [], [0.0]), const("one", f32, [], [1.0]), const("two", f32, [], [2.0]),
        const("two_pi", f32, [], [2 * math.pi]), const("ax_last", TensorProto.INT64, [1], [-1]),
        n("Cast", ["q"], ["q_f"], to=f32), n("Cast", ["K"], ["K_f"], to=f32), n("Cast", ["V"], ["V_f"], to=f32),
        # s = scale q K^T [B, H, T, N]
        n("Transpose", ["K_f"], ["K_t"], perm=[0, 1, 3, 2]), n("MatMul", ["q_f", "K_t"], ["qK"]),
        n("Mul", ["qK", "scale_f"], ["s"]),
        # x_mu, x_sigma [B, H, T, 1]
        n("Mul", ["s", "w_mu"], ["s_mu"]), n("ReduceSum", ["s_mu", "ax_last"], ["x_mu"], keepdims=1),
        n("Mul", ["s", "w_sigma"], ["s_sig"]), n("ReduceSum", ["s_sig", "ax_last"], ["x_sigma"], keepdims=1),
        n("Sigmoid", ["x_mu"], ["mu_k"]),
        # softplus(x) = max(x, 0) + log1p(exp(-|x|))
        n("Max", ["x_sigma", "zero"], ["sp_pos"]), n("Abs", ["x_sigma"], ["sp_abs"]), n("Neg", ["sp_abs"], ["sp_nabs"]),
        n("Exp", ["sp_nabs"], ["sp_e"]), n("Add", ["one", "sp_e"], ["sp_u"]), n("Sub", ["sp_u", "one"], ["sp_um1"]),
        n("Log", ["sp_u"], ["sp_lu"]), n("Mul", ["sp_lu", "sp_e"], ["sp_num"]),
        n("Div", ["sp_num", "sp_um1"], ["sp_ratio"]), n("Equal", ["sp_um1", "zero"], ["sp_tiny"]),
        n("Where", ["sp_tiny", "sp_e", "sp_ratio"], ["sp_l1p"]), n("Add", ["sp_pos", "sp_l1p"], ["softplus"]),
        n("Max", ["softplus", "s2min"], ["sigma2_k"]),
        # r_j = exp(-(mu - mu_j)^2 / (2 var_j)) / sqrt(2 pi var_j), var_j = sigma_j^2 + sigma2  [B, H, T, N]
        n("Mul", ["basis_sigma", "basis_sigma"], ["bs2"]), n("Add", ["bs2", "sigma2_k"], ["var"]),
        n("Sub", ["mu_k", "basis_mu"], ["diff"]), n("Mul", ["diff", "diff"], ["diff2"]),
        n("Mul", ["two", "var"], ["var2"]), n("Div", ["diff2", "var2"], ["z"]), n("Neg", ["z"], ["nz"]),
        n("Exp", ["nz"], ["gauss"]), n("Mul", ["two_pi", "var"], ["var2pi"]), n("Sqrt", ["var2pi"], ["norm"]),
        n("Div", ["gauss", "norm"], ["r"]),
        n("MatMul", ["r", "V_f"], ["ctx_f"]), n("CastLike", ["ctx_f", "q"], ["ctx"]),
        n("Squeeze", ["mu_k", "ax_last"], ["mu"]), n("Squeeze", ["sigma2_k", "ax_last"], ["sigma2"]),
    ]
    return oh.make_function(DOMAIN, "ContinuousGaussianAttention", list(INPUT_NAMES), list(OUTPUT_NAMES), nodes,
                            opset_imports=[oh.make_opsetid("", opset)],
                            attributes=["sigma2_min", "scale", *PLUGIN_ATTRS],
                            doc_string=continuous_gaussian_attention_function.__doc__.split("\n")[0])


def continuous_gaussian_attention_schema() -> defs.OpSchema:
    """rrwkv::ContinuousGaussianAttention (docs/families/inftyformer.md §4.8.1): q [B,H,T,d], K, V [B,H,N,d],
    w_mu, w_sigma, basis_mu, basis_sigma [N] f32 -> ctx [B,H,T,d], mu, sigma2 [B,H,T] f32; attributes sigma2_min
    and scale (both required)."""
    return S(
        "ContinuousGaussianAttention", DOMAIN, DOMAIN_VERSION,
        "The ∞-former's continuous attention: per query row, a Gaussian density N(mu, sigma2) from two dot products "
        "of the scores scale K q, integrated in closed form against N Gaussian basis functions, weighting the rows "
        "of V.",
        inputs=[F("q", "T"), F("K", "T"), F("V", "T"), F("w_mu", FLOAT), F("w_sigma", FLOAT), F("basis_mu", FLOAT),
                F("basis_sigma", FLOAT)],
        outputs=[F("ctx", "T"), F("mu", FLOAT), F("sigma2", FLOAT)],
        type_constraints=[ACT],
        attributes=[S.Attribute("sigma2_min", S.AttrType.FLOAT, "floor of the variance (> 0): 1e-6 sorting, 1e-4 "
                                "GPT-2", required=True),
                    S.Attribute("scale", S.AttrType.FLOAT, "score scale (> 0): d^-0.5 in the reference code",
                                required=True),
                    *plugin_attributes()])


OP = OpDefinition(schema=continuous_gaussian_attention_schema, function=continuous_gaussian_attention_function,
                  reference=naive_continuous_gaussian_attention,
                  torch_op=torch.ops.rrwkv.continuous_gaussian_attention.default,
                  translation=continuous_gaussian_attention_onnx)
