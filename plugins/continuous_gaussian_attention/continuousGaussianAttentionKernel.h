/*
 * CUDA launcher for rrwkv::ContinuousGaussianAttention (docs/families/inftyformer.md §4.8.1). One warp per query row
 * (b, h, t), kCGA_WARPS rows per block: lanes over the N basis functions for the scores and the two dots, then over
 * the d columns for ctx; fp32 arithmetic, q/K/V/ctx T (float or __half). Knows nothing of TensorRT or ONNX Runtime.
 * All pointers are device pointers, dense row-major:
 *   q, ctx [B, H, T, d]; K, V [B, H, N, d]; w_mu, w_sigma, basis_mu, basis_sigma [N]; mu, sigma2 [B, H, T].
 */
#ifndef RRWKV_CONTINUOUS_GAUSSIAN_ATTENTION_KERNEL_H
#define RRWKV_CONTINUOUS_GAUSSIAN_ATTENTION_KERNEL_H

#include <cstdint>
#include <cuda_runtime_api.h>

namespace rrwkv
{

// sigma2Min and scale must be finite and > 0, and the sizes >= 0 (cudaErrorInvalidValue otherwise); no rows (B, H or
// T = 0) launches nothing.
template <typename T>
cudaError_t continuousGaussianAttentionForward(cudaStream_t stream, int32_t B, int32_t H, int32_t T_, int32_t N,
    int32_t d, float sigma2Min, float scale, T const* q, T const* K, T const* V, float const* wMu, float const* wSigma,
    float const* basisMu, float const* basisSigma, T* ctx, float* mu, float* sigma2);

} // namespace rrwkv

#endif // RRWKV_CONTINUOUS_GAUSSIAN_ATTENTION_KERNEL_H
