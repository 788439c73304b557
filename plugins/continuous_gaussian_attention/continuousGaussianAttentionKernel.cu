/*
 * rrwkv::ContinuousGaussianAttention CUDA launcher (the API of continuousGaussianAttentionKernel.h) over the kernel of
 * continuousGaussianAttentionKernel.cuh, explicitly instantiated for float and __half I/O.
 */
#include "continuous_gaussian_attention/continuousGaussianAttentionKernel.cuh"
#include "continuous_gaussian_attention/continuousGaussianAttentionKernel.h"

namespace rrwkv
{

template <typename T>
cudaError_t continuousGaussianAttentionForward(cudaStream_t stream, int32_t B, int32_t H, int32_t T_, int32_t N,
    int32_t d, float sigma2Min, float scale, T const* q, T const* K, T const* V, float const* wMu, float const* wSigma,
    float const* basisMu, float const* basisSigma, T* ctx, float* mu, float* sigma2)
{
    return continuousGaussianAttentionForwardLaunch<T>(
        stream, B, H, T_, N, d, sigma2Min, scale, q, K, V, wMu, wSigma, basisMu, basisSigma, ctx, mu, sigma2);
}

template cudaError_t continuousGaussianAttentionForward<float>(cudaStream_t, int32_t, int32_t, int32_t, int32_t,
    int32_t, float, float, float const*, float const*, float const*, float const*, float const*, float const*,
    float const*, float*, float*, float*);
template cudaError_t continuousGaussianAttentionForward<__half>(cudaStream_t, int32_t, int32_t, int32_t, int32_t,
    int32_t, float, float, __half const*, __half const*, __half const*, float const*, float const*, float const*,
    float const*, __half*, float*, float*);

} // namespace rrwkv
