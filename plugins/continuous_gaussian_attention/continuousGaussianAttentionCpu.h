/*
 * CPU kernel for rrwkv::ContinuousGaussianAttention over continuousGaussianAttentionMath.h: the same arguments as the
 * CUDA launcher of continuousGaussianAttentionKernel.h minus the stream, on host pointers (dense row-major:
 * q, ctx [B, H, T, d]; K, V [B, H, N, d]; w_mu, w_sigma, basis_mu, basis_sigma [N]; mu, sigma2 [B, H, T]). T is float
 * or HostHalf (IEEE fp16 bits) for q, K, V and ctx; the rest and all arithmetic are fp32. No ONNX Runtime or CUDA
 * dependency.
 *
 * The work splits into B * H * T independent query rows; the last two arguments select rows [rowBegin, rowEnd) of
 * continuousGaussianAttentionCpuRowCount(B, H, T), so a caller can spread them over a thread pool; the defaults run
 * them all.
 */
#ifndef RRWKV_CONTINUOUS_GAUSSIAN_ATTENTION_CPU_H
#define RRWKV_CONTINUOUS_GAUSSIAN_ATTENTION_CPU_H

#include "common/hostHalf.h"

#include <cstdint>

namespace rrwkv
{

// Number of query rows: B * H * T (0 when any is 0).
int64_t continuousGaussianAttentionCpuRowCount(int32_t B, int32_t H, int32_t T_);

// sigma2Min and scale finite and > 0 (the caller validates).
template <typename T>
void continuousGaussianAttentionForwardCpu(int32_t B, int32_t H, int32_t T_, int32_t N, int32_t d, float sigma2Min,
    float scale, T const* q, T const* K, T const* V, float const* wMu, float const* wSigma, float const* basisMu,
    float const* basisSigma, T* ctx, float* mu, float* sigma2, int64_t rowBegin = 0, int64_t rowEnd = -1);

} // namespace rrwkv

#endif // RRWKV_CONTINUOUS_GAUSSIAN_ATTENTION_CPU_H
