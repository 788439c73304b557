/*
 * rrwkv::WKV4Medium CUDA launcher (the API of wkv4MediumKernel.h) over the kernel of wkv4MediumKernel.cuh,
 * explicitly instantiated for float and __half I/O.
 */
#include "wkv4_medium/wkv4MediumKernel.cuh"
#include "wkv4_medium/wkv4MediumKernel.h"

namespace rrwkv
{

template <typename T>
cudaError_t wkv4MediumForward(cudaStream_t stream, int32_t B, int32_t T_, int32_t C, int32_t M, int32_t s,
    int32_t mediumDecays, float const* w, float const* u, T const* k, T const* v, float const* kM, float const* vM,
    float const* aaIn, float const* bbIn, float const* ppIn, int64_t const* pos0, T* y, float* aaOut, float* bbOut,
    float* ppOut)
{
    return wkv4MediumForwardLaunch<T>(stream, B, T_, C, M, s, mediumDecays, w, u, k, v, kM, vM, aaIn, bbIn, ppIn,
        pos0, y, aaOut, bbOut, ppOut);
}

template cudaError_t wkv4MediumForward<float>(cudaStream_t, int32_t, int32_t, int32_t, int32_t, int32_t, int32_t,
    float const*, float const*, float const*, float const*, float const*, float const*, float const*, float const*,
    float const*, int64_t const*, float*, float*, float*, float*);
template cudaError_t wkv4MediumForward<__half>(cudaStream_t, int32_t, int32_t, int32_t, int32_t, int32_t, int32_t,
    float const*, float const*, __half const*, __half const*, float const*, float const*, float const*, float const*,
    float const*, int64_t const*, __half*, float*, float*, float*);

} // namespace rrwkv
