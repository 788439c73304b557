/*
 * The arithmetic of rrwkv::LTMUpdate (docs/families/inftyformer.md §4.3, §4.4, §4.8.2, §4.9): the single source for
 * the CUDA kernels (ltmUpdateKernel.cuh) and the CPU kernel (ltmUpdateCpu.cc). Everything is fp32; the names follow
 * export/ops/ltm_update.py (cdf, total, target, bin, pos, psi, X_old, B_new). Plain expf: no fast-math dependency.
 *
 * Per sequence b, by mode[b] (ltmRowMode): KEEP B_new = B_past (a copy); FIT B_new = G^T X_new; UPDATE
 *   S = S_samp (sticky 0) or S[m][j] = psi_j(pos_m) (sticky 1), X_old = S B_past, B_new = G_inf^T [X_old; X_new].
 * Every dot product adds its terms one at a time in index order (j for X_old, k = 0..M+L-1 for B_new), in both
 * kernels, so they agree to the bit where the compiler does not contract a * b + c into an FMA.
 * Sticky positions: cdf = the running sum of hist in bin order, total = cdf[NB-1] (an empty histogram, total <= 0
 * or NaN, counts as uniform: cdf[k] = k + 1, total = NB); target_m = ((m + 0.5) / M) total; bin = #{k : cdf[k] <
 * target_m} clamped to NB - 1; pos_m = bin / NB, the bin's left edge.
 */
#ifndef RRWKV_LTM_UPDATE_MATH_H
#define RRWKV_LTM_UPDATE_MATH_H

#include "common/hostdevice.h"

#include <cmath>
#include <cstdint>

namespace rrwkv
{

constexpr float kLTM_SQRT_2PI = 2.5066282746310002F;

// The values of input mode [B] (export/ops/ltm_update.py MODE_*). KEEP is the common case: the model calls the op at
// every token and only a row whose pending buffer just filled refits (docs/families/inftyformer.md §4.5).
constexpr int32_t kLTM_KEEP = 0;   // B_new = B_past; nothing else of the row is read
constexpr int32_t kLTM_FIT = 1;    // first segment: B_new = G^T X_new; B_past is not read
constexpr int32_t kLTM_UPDATE = 2; // B_new = G_inf^T [S B_past; X_new]

// A row's mode as both kernels act on it: any value other than FIT or UPDATE keeps the row. The ORT op and the torch
// reference reject such values on the host; a CUDA kernel cannot report an error per row, and keeping the memory
// leaves B_new a valid signal instead of garbage.
RRWKV_HD inline int32_t ltmRowMode(int64_t mode)
{
    return mode == kLTM_FIT || mode == kLTM_UPDATE ? static_cast<int32_t>(mode) : kLTM_KEEP;
}

// One term of a dot product: acc + a x (X_old = S B_past, B_new = G_inf^T X, G^T X_new).
RRWKV_HD inline float ltmDotAdd(float acc, float a, float x)
{
    return acc + a * x;
}

// expf(x) rounds to +0 exactly for x below this float (e^x < 2^-150, half the smallest subnormal; at the bound itself
// it is 2^-149). Most psi_j(pos_m) underflow (pos_m a few widths from mu_j), and libm's underflow path is slow (it
// sets errno): ltmExp decides those without the call and returns the same bits (checked against glibc for every
// float below -80).
constexpr float kLTM_EXP_ZERO_BELOW = -0x1.9fe368p6F; // -103.972076

// expf(x), the underflow to +0 decided by one comparison (NaN goes to expf).
RRWKV_HD inline float ltmExp(float x)
{
    return x < kLTM_EXP_ZERO_BELOW ? 0.F : expf(x);
}

// The exponent of psi_j(t): -(t - mu_j)² / (2 sigma_j²).
RRWKV_HD inline float ltmPsiExponent(float t, float basisMu, float basisSigma)
{
    float const diff = t - basisMu;
    return -(diff * diff) / (2.F * basisSigma * basisSigma);
}

// The normaliser of psi_j: sigma_j sqrt(2 pi).
RRWKV_HD inline float ltmPsiNorm(float basisSigma)
{
    return basisSigma * kLTM_SQRT_2PI;
}

// psi_j(t) = N(t; mu_j, sigma_j²) = exp(-(t - mu_j)² / (2 sigma_j²)) / (sigma_j sqrt(2 pi)); sigma_j > 0 is the width.
// The CPU kernel's SIMD paths compute the exponent, the normaliser and the quotient a vector at a time (IEEE mul,
// sub and div round the same in every lane) and ltmExp per element.
RRWKV_HD inline float ltmPsi(float t, float basisMu, float basisSigma)
{
    return ltmExp(ltmPsiExponent(t, basisMu, basisSigma)) / ltmPsiNorm(basisSigma);
}

// The histogram's total (its last running sum), and whether it is usable (> 0; otherwise uniform).
RRWKV_HD inline float ltmHistTotal(float const* hist, int32_t nb)
{
    float cdf = 0.F;
    for (int32_t k = 0; k < nb; ++k)
    {
        cdf += hist[k];
    }
    return cdf;
}

// The quantile u_m total, u_m = (m + 0.5) / M.
RRWKV_HD inline float ltmQuantileTarget(int32_t m, int32_t M, float total)
{
    return ((static_cast<float>(m) + 0.5F) / static_cast<float>(M)) * total;
}

// The left edge of the bin holding quantile m of hist [nb]: #{k : cdf[k] < target} (clamped to nb - 1) / nb.
RRWKV_HD inline float ltmQuantilePosition(float const* hist, int32_t nb, int32_t m, int32_t M)
{
    float const total = ltmHistTotal(hist, nb);
    bool const uniform = !(total > 0.F);
    float const target = ltmQuantileTarget(m, M, uniform ? static_cast<float>(nb) : total);
    int32_t bin = 0;
    float cdf = 0.F;
    for (int32_t k = 0; k < nb; ++k)
    {
        cdf = uniform ? static_cast<float>(k + 1) : cdf + hist[k];
        bin += cdf < target ? 1 : 0;
    }
    bin = bin < nb - 1 ? bin : nb - 1;
    return static_cast<float>(bin) / static_cast<float>(nb);
}

} // namespace rrwkv

#endif // RRWKV_LTM_UPDATE_MATH_H
