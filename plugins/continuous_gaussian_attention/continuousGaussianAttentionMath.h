/*
 * The arithmetic of rrwkv::ContinuousGaussianAttention (docs/families/inftyformer.md §4.1, §4.8.1, §4.9): the single
 * source for the CUDA kernel (continuousGaussianAttentionKernel.cuh) and the CPU kernel
 * (continuousGaussianAttentionCpu.cc). Everything is fp32; the names follow export/ops/continuous_gaussian_attention.py
 * (s, x_mu, x_sigma, mu, sigma2, var, diff, r, ctx). Plain expf / log1pf / sqrtf: no fast-math dependency.
 *
 * Per query row (b, h, t):  s_j = scale K_j·q;  x_mu = w_mu·s, x_sigma = w_sigma·s;  mu = sigmoid(x_mu);
 *   sigma2 = max(softplus(x_sigma), sigma2_min);  r_j = exp(-(mu - mu_j)² / (2 var_j)) / sqrt(2 pi var_j) with
 *   var_j = sigma_j² + sigma2;  ctx = sum_j r_j V_j.  (mu, sigma2) are used directly, never theta = mu / sigma2.
 * Both kernels split each score's sum over k into kCGA_SCORE_PARTS strided partial sums (k mod 16) combined by the
 * halving tree of cgaScoreReduce, and the sums over j into kCGA_LANES strided partial sums (j mod 32, the CUDA
 * kernel's lanes) added in lane order, so they agree to the bit where the compiler does not contract a * b + c into
 * an FMA.
 */
#ifndef RRWKV_CONTINUOUS_GAUSSIAN_ATTENTION_MATH_H
#define RRWKV_CONTINUOUS_GAUSSIAN_ATTENTION_MATH_H

#include "common/hostdevice.h"

#include <cmath>
#include <cstdint>

namespace rrwkv
{

constexpr int32_t kCGA_LANES = 32;       // partial sums of the two dots over j (a warp's lanes)
constexpr int32_t kCGA_SCORE_PARTS = 16; // partial sums of a score over k (one AVX-512 vector of K_j, q)
constexpr float kCGA_TWO_PI = 6.283185307179586F;

// One term of the score dot product over the head dim: acc + K[j][k] q[k], into partial sum k mod kCGA_SCORE_PARTS
// (each partial sum takes its k in increasing order).
RRWKV_HD inline float cgaScoreDot(float acc, float kk, float qk)
{
    return acc + kk * qk;
}

// K_j·q from its partial sums p[u] (k = u mod 16), by halves: a_u = p_u + p_{u+8}, b_u = a_u + a_{u+4},
// c_u = b_u + b_{u+2}, dot = c_0 + c_1. The order a SIMD kernel reduces 16 vectors of partial sums in (one vector of
// dots, no lane-by-lane loop): the CPU kernel's AVX-512 and AVX2 paths shuffle to exactly these pairs.
RRWKV_HD inline float cgaScoreReduce(float const (&p)[kCGA_SCORE_PARTS])
{
    float a[8];
    float b[4];
    for (int32_t u = 0; u < 8; ++u)
    {
        a[u] = p[u] + p[u + 8];
    }
    for (int32_t u = 0; u < 4; ++u)
    {
        b[u] = a[u] + a[u + 4];
    }
    float const c0 = b[0] + b[2];
    float const c1 = b[1] + b[3];
    return c0 + c1;
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

// expf(x) rounds to +0 exactly for x below this float (e^x < 2^-150, half the smallest subnormal; at the bound itself
// it is 2^-149). Most r_j underflow (|mu - mu_j| past a few widths), and libm's underflow path is slow (it sets
// errno): cgaExp decides those without the call and returns the same bits (checked against glibc for every float
// below -80).
constexpr float kCGA_EXP_ZERO_BELOW = -0x1.9fe368p6F; // -103.972076

// expf(x), the underflow to +0 decided by one comparison (NaN goes to expf).
RRWKV_HD inline float cgaExp(float x)
{
    return x < kCGA_EXP_ZERO_BELOW ? 0.F : expf(x);
}

// var_j = sigma_j² + sigma2.
RRWKV_HD inline float cgaVar(float sigma2, float basisSigma)
{
    return basisSigma * basisSigma + sigma2;
}

// The exponent of r_j: -(mu - mu_j)² / (2 var_j).
RRWKV_HD inline float cgaRExponent(float mu, float basisMu, float var)
{
    float const diff = mu - basisMu;
    return -(diff * diff) / (2.F * var);
}

// The normaliser of r_j: sqrt(2 pi var_j).
RRWKV_HD inline float cgaRNorm(float var)
{
    return sqrtf(kCGA_TWO_PI * var);
}

// r_j = N(mu; mu_j, sigma_j² + sigma2) = E_{t ~ N(mu, sigma2)}[psi_j(t)]; underflows to 0 far from mu_j (harmless).
// The CPU kernel's SIMD paths compute the exponent, the normaliser and the quotient a vector at a time (IEEE mul,
// add, div and sqrt round the same in every lane) and cgaExp per element.
RRWKV_HD inline float cgaR(float mu, float sigma2, float basisMu, float basisSigma)
{
    float const var = cgaVar(sigma2, basisSigma);
    return cgaExp(cgaRExponent(mu, basisMu, var)) / cgaRNorm(var);
}

// One term of ctx[c] = sum_j r_j V[j][c]: acc + r_j V[j][c], in fp32 (r_j reaches ~80, N = 512 terms: §4.9).
RRWKV_HD inline float cgaCtxAdd(float acc, float r, float v)
{
    return acc + r * v;
}

} // namespace rrwkv

#endif // RRWKV_CONTINUOUS_GAUSSIAN_ATTENTION_MATH_H
