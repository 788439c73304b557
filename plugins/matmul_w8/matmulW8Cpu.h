/*
 * CPU kernels for rrwkv::MatMulW8 over matmulW8Math.h, on host pointers, no ONNX Runtime or CUDA dependency.
 * Two passes, each split into slices that a caller can spread over a thread pool ([sliceBegin, sliceEnd); the
 * defaults run them all):
 *   1. matmulW8QuantizeRowsCpu: x [M, K] fp32 -> xq [M, Kpad] int16 (zero past K) and xScale [M];
 *      slice = one row.
 *   2. matmulW8ForwardCpu: y [M, N] = the blocks of xq . q, scaled; slice = (block of kW8_CPU_ROWS rows,
 *      one group of 64 columns), so a single row (decode) still spreads over the column groups.
 * Both pick, at run time, the best path this CPU has up to `maxIsa` (common/cpuIsa.h, by cpuIsaVnni()):
 * CpuIsa::kAvx512, AVX-512 VNNI (vpdpwssd on int16 x int16 pairs, software prefetch of the weight stream; needs
 * AVX512F/BW/DQ/VL + VNNI), CpuIsa::kAvx2 (vpmaddwd, the same pair sums; needs AVX2 + FMA, the level adds F16C)
 * or portable C++ (tests lower `maxIsa` to run each).
 * The two produce identical bits (matmulW8Math.h: exact int32 block sums, one fmaf per block in block order).
 */
#ifndef RRWKV_MATMUL_W8_CPU_H
#define RRWKV_MATMUL_W8_CPU_H

#include "common/cpuIsa.h"

#include <cstdint>
#include <string>

namespace rrwkv
{

constexpr int32_t kW8_CPU_ROWS = 64;

// Why x [M, K] @ W [K, N] in blocks of blockSize rows cannot run on these kernels ("K = 2147483647 (input features)
// exceeds ..."), or "" when it can: blockSize even in [2, kW8MaxBlock], 1 <= N <= kW8MaxN, 0 <= K and the padded
// K <= kW8MaxK, 0 <= M < 2^31 (matmulW8Math.h). Every caller checks it before any size arithmetic; the kernels
// below assume it.
std::string matmulW8SizeError(int64_t M, int64_t K, int64_t N, int64_t blockSize);

// Slice s of pass 2 (0 <= s < matmulW8CpuSliceCount(M, N)): column group g, rows [r0, r1).
struct W8CpuSlice
{
    int32_t g;
    int32_t r0;
    int32_t r1;
};
W8CpuSlice matmulW8CpuSlice(int64_t s, int32_t M, int32_t N);

// Pass 1: one slice per row (M slices).
void matmulW8QuantizeRowsCpu(int32_t M, int32_t K, int32_t Kpad, float const* x, int16_t* xq, float* xScale,
    CpuIsa maxIsa = CpuIsa::kAvx512, int64_t sliceBegin = 0, int64_t sliceEnd = -1);

// Pass 2: ceil(M / kW8_CPU_ROWS) * ceil(N / 64) slices.
int64_t matmulW8CpuSliceCount(int32_t M, int32_t N);

// y [M, N] from xq [M, Kpad], xScale [M], w int8 [G, Kpad / 2, 64, 2], scale fp32 [G, NB, 64];
// Kpad = NB * blockSize, blockSize even in [2, kW8MaxBlock] (the caller validates).
void matmulW8ForwardCpu(int32_t M, int32_t N, int32_t Kpad, int32_t blockSize, int16_t const* xq,
    float const* xScale, int8_t const* w, float const* scale, float* y, CpuIsa maxIsa = CpuIsa::kAvx512,
    int64_t sliceBegin = 0, int64_t sliceEnd = -1);

} // namespace rrwkv

#endif // RRWKV_MATMUL_W8_CPU_H
