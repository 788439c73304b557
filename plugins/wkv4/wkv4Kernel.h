/*
 * CUDA launcher for rrwkv::WKV4 (docs/families/rwkv4.md §1.8).
 * One thread per (b, c) loops over time; state and arithmetic are fp32, k/v/y are T (float or __half).
 * Knows nothing of TensorRT or ONNX Runtime. All pointers are device pointers, dense row-major:
 *   k, v, y [B, T, C]; w, u [C]; aa, bb, pp [B, C].
 * In/out state buffers may alias (in place), k/v/y may not.
 */
#ifndef RRWKV_WKV4_KERNEL_H
#define RRWKV_WKV4_KERNEL_H

#include <cstdint>
#include <cuda_runtime_api.h>

namespace rrwkv
{

template <typename T>
cudaError_t wkv4Forward(cudaStream_t stream, int32_t B, int32_t T_, int32_t C, float const* w, float const* u,
    T const* k, T const* v, float const* aaIn, float const* bbIn, float const* ppIn, T* y, float* aaOut, float* bbOut,
    float* ppOut);

} // namespace rrwkv

#endif // RRWKV_WKV4_KERNEL_H
