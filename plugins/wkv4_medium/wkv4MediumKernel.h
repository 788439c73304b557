/*
 * CUDA launcher for rrwkv::WKV4Medium (docs/families/rrwkv.md §2.6).
 * One thread per (b, c) loops over time; state and arithmetic are fp32, k/v/y are T (float or __half).
 * Knows nothing of TensorRT or ONNX Runtime. All pointers are device pointers, dense row-major:
 *   k, v, y [B, T, C]; kM, vM [B, M, C]; w, u [C]; aa, bb, pp [B, C]; pos0 [B] (int64).
 * In/out state buffers may alias (in place), k/v/y may not.
 */
#ifndef RRWKV_WKV4_MEDIUM_KERNEL_H
#define RRWKV_WKV4_MEDIUM_KERNEL_H

#include <cstdint>
#include <cuda_runtime_api.h>

namespace rrwkv
{

// Medium row r of sequence b is merged after that sequence's r-th token t with (pos0[b] + t + 1) % s == 0.
template <typename T>
cudaError_t wkv4MediumForward(cudaStream_t stream, int32_t B, int32_t T_, int32_t C, int32_t M, int32_t s,
    int32_t mediumDecays, float const* w, float const* u, T const* k, T const* v, float const* kM, float const* vM,
    float const* aaIn, float const* bbIn, float const* ppIn, int64_t const* pos0, T* y, float* aaOut, float* bbOut,
    float* ppOut);

} // namespace rrwkv

#endif // RRWKV_WKV4_MEDIUM_KERNEL_H
