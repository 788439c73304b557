/*
 * The arithmetic of rrwkv::MatMulWF16 (plugins/matmul_wf16/README.md): y = x @ W for a weight W [K, N] stored as
 * IEEE fp16, activations and accumulation fp32. The single source for the CUDA kernel (matmulWF16Kernel.cuh) and the
 * CPU kernels (matmulWF16Cpu.cc: portable, AVX2 + F16C + FMA, AVX-512); the names follow export/ops/matmul_wf16.py
 * (naive_matmul_wf16), which does the same arithmetic in PyTorch.
 *
 * The summation order is fixed: every output y[r, n] is ONE fp32 accumulator that starts at +0 and takes one fused
 * multiply-add per row k of W, in order k = 0, 1, ..., K - 1, of x[r, k] and the exact fp32 value of the fp16 weight.
 * A SIMD kernel gives each column its own lane and walks k in order, so every vector width (1, 8 or 16 columns) and
 * every row tiling produces the same bits.
 *
 * Packed layout (group = kWF16GroupCols output columns): w fp16 [G, K, 64], w[g, k, j] = W[k, 64g + j],
 * G = ceil(N / 64); one row k of a group is 128 contiguous bytes, the unit of the CPU kernels' inner loop; padded
 * columns hold 0.
 */
#ifndef RRWKV_MATMUL_WF16_MATH_H
#define RRWKV_MATMUL_WF16_MATH_H

#include "common/hostdevice.h"

#include <cmath>
#include <cstdint>
#include <cstring>

namespace rrwkv
{

constexpr int32_t kWF16GroupCols = 64; // output columns per packed group (4 AVX-512 fp32 vectors)

// The largest sizes every kernel takes (the CPU callers check them with matmulWF16SizeError, the CUDA launcher
// refuses larger ones): K <= 2^30 and N <= the largest multiple of 64 below 2^31 keep the int32 loops and the
// padded columns 64 G in range; offsets into w are computed in 64 bits.
constexpr int32_t kWF16MaxK = 1 << 30;
constexpr int32_t kWF16MaxN = 0x7FFFFFC0;

// Column groups along N, for any N in [0, 2^31): in 64 bits (N + 63 would overflow int32 near 2^31).
RRWKV_HD inline int32_t wf16GroupCount(int32_t N)
{
    return static_cast<int32_t>((static_cast<int64_t>(N) + kWF16GroupCols - 1) / kWF16GroupCols);
}

// The exact fp32 value of an fp16 weight (bits h), in integer operations only: a subnormal half is its integer
// mantissa times 2^-24 (exact, and a normal float), so no step reads a denormal float (which DAZ would zero).
RRWKV_HD inline float wf16ToFloat(uint16_t h)
{
    uint32_t const sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t const exponent = (h >> 10) & 0x1Fu;
    uint32_t const mantissa = h & 0x3FFu;
    float magnitude;
    if (exponent == 0)
    {
        magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f; // 2^-24; 0 for +-0
    }
    else
    {
        // 112 = 127 - 15 rebiases a normal; 0x1F (inf, NaN) becomes 0xFF with the payload kept
        uint32_t const bits = ((exponent == 0x1Fu ? 0xFFu : exponent + 112u) << 23) | (mantissa << 13);
        memcpy(&magnitude, &bits, sizeof(magnitude));
    }
    uint32_t bits;
    memcpy(&bits, &magnitude, sizeof(bits));
    bits |= sign;
    float value;
    memcpy(&value, &bits, sizeof(value));
    return value;
}

// Offset of W[k, n] in `w`.
RRWKV_HD inline int64_t wf16WeightIndex(int32_t K, int32_t k, int32_t n)
{
    int64_t const g = n / kWF16GroupCols, j = n % kWF16GroupCols;
    return (g * K + k) * kWF16GroupCols + j;
}

// One step of an output's sum: the product of the activation and the weight, fused into the accumulator.
RRWKV_HD inline float wf16Accumulate(float sum, float x, float weight)
{
    return fmaf(x, weight, sum);
}

// y[r, n] for one row xr [K]: the scalar loop every kernel's result equals.
RRWKV_HD inline float wf16ColumnSum(float const* xr, uint16_t const* w, int32_t K, int32_t n)
{
    float sum = 0.0f;
    for (int32_t k = 0; k < K; ++k)
    {
        sum = wf16Accumulate(sum, xr[k], wf16ToFloat(w[wf16WeightIndex(K, k, n)]));
    }
    return sum;
}

} // namespace rrwkv

#endif // RRWKV_MATMUL_WF16_MATH_H
