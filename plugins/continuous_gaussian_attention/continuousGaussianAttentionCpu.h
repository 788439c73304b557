/*
 * CPU kernel for rrwkv::ContinuousGaussianAttention over continuousGaussianAttentionMath.h: the same arguments as the
 * CUDA launcher of continuousGaussianAttentionKernel.h minus the stream, on host pointers (dense row-major:
 * q, ctx [B, H, T, d]; K, V [B, H, N, d]; w_mu, w_sigma, basis_mu, basis_sigma [N]; mu, sigma2 [B, H, T]). T is float
 * or HostHalf (IEEE fp16 bits) for q, K, V and ctx; the rest and all arithmetic are fp32. No ONNX Runtime or CUDA
 * dependency.
 *
 * Three phases, each split into slices that a caller can spread over a thread pool ([sliceBegin, sliceEnd); the
 * defaults run them all), over one fp32 scratch w [B, H, T, N]:
 *   1. continuousGaussianAttentionScoresCpu: w[b, h, t, j] = s_j = scale K_j·q_t for every t; slice = (b, h, block of
 *      kCGA_CPU_KEYS keys j), so each key serves all T query rows of its head, a few rows per load;
 *   2. continuousGaussianAttentionWeightsCpu: per query row, mu and sigma2 from its scores, then w[.., j] = r_j in
 *      place; slice = one row;
 *   3. continuousGaussianAttentionContextCpu: ctx = sum_j r_j V_j; slice = (b, h, block of kCGA_CPU_COLS columns),
 *      so a block of V is read once for all T query rows of its head.
 * Each picks, at run time, the best path this CPU has up to `maxIsa` (common/cpuIsa.h): CpuIsa::kAvx512 (F, BW, VL),
 * CpuIsa::kAvx2 (needs AVX2 + F16C, no FMA; the level adds FMA) or portable C++ (tests lower `maxIsa` to run each).
 * Every path adds the same terms in the same order with the same rounding (continuousGaussianAttentionMath.h; no FMA;
 * libm expf through cgaExp), so all return the same bits, and the same bits as the CUDA kernel built for the CPU
 * under plugins/tests/cudaEmulation.h.
 */
#ifndef RRWKV_CONTINUOUS_GAUSSIAN_ATTENTION_CPU_H
#define RRWKV_CONTINUOUS_GAUSSIAN_ATTENTION_CPU_H

#include "common/cpuIsa.h"
#include "common/hostHalf.h"

#include <cstdint>

namespace rrwkv
{

constexpr int32_t kCGA_CPU_KEYS = 32; // keys per phase-1 slice
constexpr int32_t kCGA_CPU_COLS = 64; // ctx columns per phase-3 slice

// Phase 1: B * H * ceil(N / kCGA_CPU_KEYS) slices (0 when any is <= 0).
int64_t continuousGaussianAttentionCpuScoreSliceCount(int32_t B, int32_t H, int32_t N);

// Phase 2: B * H * T slices, one per query row (0 when any is <= 0).
int64_t continuousGaussianAttentionCpuRowCount(int32_t B, int32_t H, int32_t T_);

// Phase 3: B * H * ceil(d / kCGA_CPU_COLS) slices (0 when any is <= 0).
int64_t continuousGaussianAttentionCpuContextSliceCount(int32_t B, int32_t H, int32_t d);

// Phase 1: w = the scores of the slices' blocks of keys, for all T rows.
template <typename T>
void continuousGaussianAttentionScoresCpu(int32_t B, int32_t H, int32_t T_, int32_t N, int32_t d, float scale,
    T const* q, T const* K, float* w, CpuIsa maxIsa = CpuIsa::kAvx512, int64_t sliceBegin = 0, int64_t sliceEnd = -1);

// Phase 2: mu, sigma2 of the rows [rowBegin, rowEnd), and their scores in w replaced by r; sigma2Min finite, > 0.
void continuousGaussianAttentionWeightsCpu(int32_t B, int32_t H, int32_t T_, int32_t N, float sigma2Min,
    float const* wMu, float const* wSigma, float const* basisMu, float const* basisSigma, float* w, float* mu,
    float* sigma2, CpuIsa maxIsa = CpuIsa::kAvx512, int64_t rowBegin = 0, int64_t rowEnd = -1);

// Phase 3: the slices' columns of ctx, for all T rows, from r in w.
template <typename T>
void continuousGaussianAttentionContextCpu(int32_t B, int32_t H, int32_t T_, int32_t N, int32_t d, T const* V,
    float const* w, T* ctx, CpuIsa maxIsa = CpuIsa::kAvx512, int64_t sliceBegin = 0, int64_t sliceEnd = -1);

// The three phases over everything, with their own scratch; sigma2Min and scale finite and > 0 (the caller
// validates).
template <typename T>
void continuousGaussianAttentionForwardCpu(int32_t B, int32_t H, int32_t T_, int32_t N, int32_t d, float sigma2Min,
    float scale, T const* q, T const* K, T const* V, float const* wMu, float const* wSigma, float const* basisMu,
    float const* basisSigma, T* ctx, float* mu, float* sigma2, CpuIsa maxIsa = CpuIsa::kAvx512);

} // namespace rrwkv

#endif // RRWKV_CONTINUOUS_GAUSSIAN_ATTENTION_CPU_H
