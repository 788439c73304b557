/*
 * CPU kernel for rrwkv::GatedOuterScan over gatedOuterScanMath.h: the same arguments as the CUDA launcher of
 * gatedOuterScanKernel.h minus the stream, on host pointers (dense row-major: q, f [B, T, H, K]; lb [H, K];
 * v, o [B, T, H, V]; S0, S_out [B, H, K, V]). T is float or HostHalf (IEEE fp16 bits); state and arithmetic are fp32.
 * S0 and S_out may alias (in place); q/f/v/o may not. No ONNX Runtime or CUDA dependency.
 *
 * The work splits into B * H independent slices, one per (b, h), so a caller can spread them over a thread pool: the
 * last two arguments select slices [sliceBegin, sliceEnd) of gatedOuterScanCpuSliceCount(B, H); the defaults run them
 * all. A slice keeps its head's state [K, V] in a local fp32 buffer while it walks T (the per-token recurrence).
 */
#ifndef RRWKV_GATED_OUTER_SCAN_CPU_H
#define RRWKV_GATED_OUTER_SCAN_CPU_H

#include "common/hostHalf.h"

#include <cstdint>

namespace rrwkv
{

// Number of slices: B * H (0 when either is 0).
int64_t gatedOuterScanCpuSliceCount(int32_t B, int32_t H);

// scale > 0 and finite (the caller validates). T_ = 0 copies the state.
template <typename T>
void gatedOuterScanForwardCpu(int32_t B, int32_t T_, int32_t H, int32_t K, int32_t V, float scale, T const* q,
    T const* f, float const* lb, T const* v, float const* S0, T* o, float* Sout, int64_t sliceBegin = 0,
    int64_t sliceEnd = -1);

} // namespace rrwkv

#endif // RRWKV_GATED_OUTER_SCAN_CPU_H
