/*
 * rrwkv::WKV4 CUDA launcher (the API of wkv4Kernel.h) over the kernel of wkv4Kernel.cuh, explicitly instantiated
 * for float and __half I/O.
 */
#include "wkv4/wkv4Kernel.cuh"
#include "wkv4/wkv4Kernel.h"

namespace rrwkv
{

template <typename T>
cudaError_t wkv4Forward(cudaStream_t stream, int32_t B, int32_t T_, int32_t C, float const* w, float const* u,
    T const* k, T const* v, float const* aaIn, float const* bbIn, float const* ppIn, T* y, float* aaOut, float* bbOut,
    float* ppOut)
{
    return wkv4ForwardLaunch<T>(stream, B, T_, C, w, u, k, v, aaIn, bbIn, ppIn, y, aaOut, bbOut, ppOut);
}

template cudaError_t wkv4Forward<float>(cudaStream_t, int32_t, int32_t, int32_t, float const*, float const*,
    float const*, float const*, float const*, float const*, float const*, float*, float*, float*, float*);
template cudaError_t wkv4Forward<__half>(cudaStream_t, int32_t, int32_t, int32_t, float const*, float const*,
    __half const*, __half const*, float const*, float const*, float const*, __half*, float*, float*, float*);

} // namespace rrwkv
