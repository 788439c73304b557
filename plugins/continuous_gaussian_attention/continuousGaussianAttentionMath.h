/*
 * The arithmetic of rrwkv::ContinuousGaussianAttention (docs/families/inftyformer.md §4.1, §4.8.1, §4.9): the single
 * source for the CUDA kernel (continuousGaussianAttentionKernel.cuh) and the CPU kernel
 * (continuousGaussianAttentionCpu.cc). Everything is fp32; the names follow export/ops/continuous_gaussian_attention.py
 * (s, x_mu, x_sigma, mu, sigma2, var, diff, r, ctx). Plain expf / log1pf / sqrtf: no fast-math dependency.
 *
 * Per query row (b, h, t):  s_j = scale K_j·q;  x_mu = w_mu·s, x_sigma = w_sigma·s;  mu = sigmoid(x_mu);
 *   sigma2 = max(softplus(x_sigma), sigma2_min);  r_j = exp(-(mu - mu_j)² / (2 var_j)) / sqrt(2 pi var_j) with
 *   var_j = sigma_j² + sigma2;  ctx = sum_j r_j V_j.  (mu, sigma2) are used directly, never theta = mu / sigma2.
 * Both kernels split the sums over j into kCGA_LANES strided partial sums (j mod 32, the CUDA kernel's lanes) and add
 * them in lane order, so they agree to the bit where the compiler does not contract a * b + c into an FMA.
 */
#ifndef RRWKV_CONTINUOUS_GAUSSIAN_ATTENTION_MATH_H
#define RRWKV_CONTINUOUS_GAUSSIAN_ATTENTION_MATH_H

#include "common/hostdevice.h"

#include <cmath>
#include <cstdint>

namespace rrwkv
{

constexpr int32_t kCGA_LANES = 32;              // partial sums of the two dots over j (a warp's lanes)
constexpr float kCGA_TWO_PI = 6.283185307179586F;

// One term of the score dot product over the head dim: acc + K[j][k] q[k].
RRWKV_HD inline float cgaScoreDot(float acc, float kk, float qk)
{
    return acc + kk * qk;
}

// s_j = scale * (K_j·q): the scale is applied to the finished dot, as in the reference.
RRWKV_HD inline float cgaScore(float scale, float dot)
{
    return scale * dot;
}

// One term of x_mu = w_mu·s or x_sigma = w_sigma·s: acc + w_j s_j.
RRWKV_HD inline float cgaDotAdd(float acc, float w, float s)
{
    return acc + w * s;
}

// mu = sigmoid(x_mu) from one exp(-|x|): no overflow, full relative precision near 0 and 1.
RRWKV_HD inline float cgaMu(float xMu)
{
    float const e = expf(-fabsf(xMu));
    float const big = 1.F / (1.F + e); // sigmoid(|x|)
    return xMu >= 0.F ? big : e * big;
}

// softplus(x) = max(x, 0) + log1p(exp(-|x|)): no overflow for large x, full relative precision for x << 0.
RRWKV_HD inline float cgaSoftplus(float x)
{
    return fmaxf(x, 0.F) + log1pf(expf(-fabsf(x)));
}

// sigma2 = max(softplus(x_sigma), sigma2_min): clamped before anything divides by it (§4.9).
RRWKV_HD inline float cgaSigma2(float xSigma, float sigma2Min)
{
    return fmaxf(cgaSoftplus(xSigma), sigma2Min);
}

// r_j = N(mu; mu_j, sigma_j² + sigma2) = E_{t ~ N(mu, sigma2)}[psi_j(t)]; underflows to 0 far from mu_j (harmless).
RRWKV_HD inline float cgaR(float mu, float sigma2, float basisMu, float basisSigma)
{
    float const var = basisSigma * basisSigma + sigma2;
    float const diff = mu - basisMu;
    return expf(-(diff * diff) / (2.F * var)) / sqrtf(kCGA_TWO_PI * var);
}

// One term of ctx[c] = sum_j r_j V[j][c]: acc + r_j V[j][c], in fp32 (r_j reaches ~80, N = 512 terms: §4.9).
RRWKV_HD inline float cgaCtxAdd(float acc, float r, float v)
{
    return acc + r * v;
}

} // namespace rrwkv

#endif // RRWKV_CONTINUOUS_GAUSSIAN_ATTENTION_MATH_H
