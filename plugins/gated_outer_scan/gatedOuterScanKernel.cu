/*
 * rrwkv::GatedOuterScan CUDA launcher (the API of gatedOuterScanKernel.h) over the kernels of gatedOuterScanKernel.cuh,
 * explicitly instantiated for float and __half I/O.
 */
#include "gated_outer_scan/gatedOuterScanKernel.cuh"
#include "gated_outer_scan/gatedOuterScanKernel.h"

namespace rrwkv
{

template <typename T>
cudaError_t gatedOuterScanForward(cudaStream_t stream, int32_t B, int32_t T_, int32_t H, int32_t K, int32_t V,
    float scale, T const* q, T const* f, float const* lb, T const* v, float const* S0, T* o, float* Sout)
{
    return gatedOuterScanForwardLaunch<T>(stream, B, T_, H, K, V, scale, q, f, lb, v, S0, o, Sout);
}

template cudaError_t gatedOuterScanForward<float>(cudaStream_t, int32_t, int32_t, int32_t, int32_t, int32_t, float,
    float const*, float const*, float const*, float const*, float const*, float*, float*);
template cudaError_t gatedOuterScanForward<__half>(cudaStream_t, int32_t, int32_t, int32_t, int32_t, int32_t, float,
    __half const*, __half const*, float const*, __half const*, float const*, __half*, float*);

} // namespace rrwkv
