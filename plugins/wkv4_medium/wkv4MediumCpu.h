/*
 * CPU kernels for rrwkv::WKV4Medium: the same arguments as the CUDA launchers of wkv4MediumKernel.h minus the
 * stream, on host pointers (dense row-major: k, v, y [B, T, C]; kM, vM [B, M, C]; w, u [C]; aa, bb, pp [B, C];
 * pos0 [B]). T is float or HostHalf (IEEE fp16 bits); state and arithmetic are fp32. In/out state buffers may
 * alias (in place); k/v/y may not. No ONNX Runtime or CUDA dependency.
 *
 * The slices are WKV4's (wkv4/wkv4Cpu.h): [sliceBegin, sliceEnd) of wkv4CpuSliceCount(B, C), all by default.
 */
#ifndef RRWKV_WKV4_MEDIUM_CPU_H
#define RRWKV_WKV4_MEDIUM_CPU_H

#include "common/hostHalf.h"
#include "wkv4/wkv4Cpu.h"

#include <cstdint>

namespace rrwkv
{

// Medium row r of sequence b is merged after that sequence's r-th token t with (pos0[b] + t + 1) % s == 0
// (rows past M - 1 clamp to M - 1). Requires M >= 1, s >= 1, mediumDecays in {0, 1} (the caller validates).
template <typename T>
void wkv4MediumForwardCpu(int32_t B, int32_t T_, int32_t C, int32_t M, int32_t s, int32_t mediumDecays,
    float const* w, float const* u, T const* k, T const* v, float const* kM, float const* vM, float const* aaIn,
    float const* bbIn, float const* ppIn, int64_t const* pos0, T* y, float* aaOut, float* bbOut, float* ppOut,
    int64_t sliceBegin = 0, int64_t sliceEnd = -1);

} // namespace rrwkv

#endif // RRWKV_WKV4_MEDIUM_CPU_H
