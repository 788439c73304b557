/*
 * CUDA launcher for rrwkv::GatedOuterScan (docs/families/hgrn2.md §3.7). One block per (b, h) and tile of up to 128
 * value columns (one block per (b, h) for V <= 128); each thread owns one column j of the head's state S [K, V], held
 * in registers across T, in fp32; q/f/v/o are T (float or __half). Knows nothing of TensorRT or ONNX Runtime. All
 * pointers are device pointers, dense row-major:
 *   q, f [B, T, H, K]; lb [H, K]; v, o [B, T, H, V]; S0, S_out [B, H, K, V].
 * S0 and S_out may alias (in place); q/f/v/o may not.
 */
#ifndef RRWKV_GATED_OUTER_SCAN_KERNEL_H
#define RRWKV_GATED_OUTER_SCAN_KERNEL_H

#include <cstdint>
#include <cuda_runtime_api.h>

namespace rrwkv
{

// scale must be finite and > 0, and the sizes >= 0 (cudaErrorInvalidValue otherwise); T_ = 0 copies the state.
template <typename T>
cudaError_t gatedOuterScanForward(cudaStream_t stream, int32_t B, int32_t T_, int32_t H, int32_t K, int32_t V,
    float scale, T const* q, T const* f, float const* lb, T const* v, float const* S0, T* o, float* Sout);

} // namespace rrwkv

#endif // RRWKV_GATED_OUTER_SCAN_KERNEL_H
