/*
 * CPU kernels for rrwkv::MatMulWF16 over matmulWF16Math.h, on host pointers, no ONNX Runtime or CUDA dependency.
 * One pass, split into slices that a caller can spread over a thread pool ([sliceBegin, sliceEnd); the defaults run
 * them all): slice = (block of kWF16_CPU_ROWS rows, one group of 64 columns), so a single row (decode) still spreads
 * over the column groups. The weights are read in place: nothing is repacked or converted ahead of the call.
 * The kernels pick, at run time, the best path this CPU has up to `maxIsa` (common/cpuIsa.h): CpuIsa::kAvx512
 * (vcvtph2ps + FMA, software prefetch of the weight stream; needs AVX512F alone, the level adds BW and VL),
 * CpuIsa::kAvx2 (AVX2 + F16C + FMA), or portable C++ (tests lower `maxIsa` to run each). All give identical bits
 * (matmulWF16Math.h: one fmaf per k in order, per output).
 */
#ifndef RRWKV_MATMUL_WF16_CPU_H
#define RRWKV_MATMUL_WF16_CPU_H

#include "common/cpuIsa.h"

#include <cstdint>
#include <string>

namespace rrwkv
{

constexpr int32_t kWF16_CPU_ROWS = 64;

// Why x [M, K] @ W [K, N] cannot run on these kernels ("K = 2147483647 (input features) is outside ..."), or "" when
// it can: 0 <= K <= kWF16MaxK, 1 <= N <= kWF16MaxN, 0 <= M < 2^31 (matmulWF16Math.h). Every caller checks it before
// any size arithmetic; the kernels below assume it.
std::string matmulWF16SizeError(int64_t M, int64_t K, int64_t N);

// Slice s (0 <= s < matmulWF16CpuSliceCount(M, N)): column group g, rows [r0, r1).
struct WF16CpuSlice
{
    int32_t g;
    int32_t r0;
    int32_t r1;
};
WF16CpuSlice matmulWF16CpuSlice(int64_t s, int32_t M, int32_t N);

// ceil(M / kWF16_CPU_ROWS) * ceil(N / 64) slices.
int64_t matmulWF16CpuSliceCount(int32_t M, int32_t N);

// y [M, N] from x [M, K] fp32 and w fp16 bits [G, K, 64] (matmulWF16Math.h); the caller validated the sizes.
void matmulWF16ForwardCpu(int32_t M, int32_t K, int32_t N, float const* x, uint16_t const* w, float* y,
    CpuIsa maxIsa = CpuIsa::kAvx512, int64_t sliceBegin = 0, int64_t sliceEnd = -1);

} // namespace rrwkv

#endif // RRWKV_MATMUL_WF16_CPU_H
