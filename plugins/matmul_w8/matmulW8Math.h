/*
 * The arithmetic of rrwkv::MatMulW8 (plugins/matmul_w8/README.md): y = x @ W for a weight W [K, N] stored as
 * symmetric int8 with one fp32 scale per (block of `blockSize` rows, column). The single source for the CUDA kernel
 * (matmulW8Kernel.cuh) and the CPU kernels (matmulW8Cpu.cc, scalar and AVX-512); the names follow
 * export/ops/matmul_w8.py (naive_matmul_w8), which does the same integer arithmetic in PyTorch.
 *
 * Each row of x is quantised to int16 with one scale (max |x| / 32767, round half to even), the dot products of a
 * block are exact int32 sums of int16 x int8 products, and the fp32 result accumulates the blocks in order with one
 * fused multiply-add each: the integer part is associative, so every kernel that follows these functions produces
 * the same bits whatever its loop order or vector width.
 *
 * Packed layout (group = kW8GroupCols output columns, pair = 2 consecutive rows k):
 *   w     int8 [G, P, 64, 2]: w[g, p, j, i] = q[k = 2p + i, n = 64g + j]; G = ceil(N / 64), P = Kpad / 2
 *   scale fp32 [G, NB, 64]:   scale[g, b, j] for rows [b * blockSize, (b + 1) * blockSize) of column 64g + j
 * with NB = ceil(K / blockSize), Kpad = NB * blockSize; padded rows and columns hold q = 0.
 */
#ifndef RRWKV_MATMUL_W8_MATH_H
#define RRWKV_MATMUL_W8_MATH_H

#include "common/hostdevice.h"

#include <cmath>
#include <cstdint>

namespace rrwkv
{

constexpr int32_t kW8GroupCols = 64;   // output columns per packed group (4 AVX-512 int32 vectors)
constexpr int32_t kW8ActMax = 32767;   // int16 activation range [-32767, 32767]
constexpr int32_t kW8MaxBlock = 256;   // 256 * 128 * 32767 < 2^31: a block's int32 sum cannot overflow

// The largest sizes every kernel takes (the CPU callers check them with matmulW8SizeError, matmulW8Cpu.h; the CUDA
// launcher refuses larger ones): K and Kpad <= 2^30 keep the int32 column loops and their steps in range, and
// N <= kW8MaxN (the largest multiple of 64 below 2^31) keeps 64 G = the padded columns an int32.
constexpr int32_t kW8MaxK = 1 << 30;
constexpr int32_t kW8MaxN = 0x7FFFFFC0;

// Blocks along K and column groups along N, for any K, N in [0, 2^31) and blockSize >= 1: computed in 64 bits (K + 255
// or N + 63 would overflow int32 near 2^31), and the quotients fit int32.
RRWKV_HD inline int32_t w8BlockCount(int32_t K, int32_t blockSize)
{
    return static_cast<int32_t>((static_cast<int64_t>(K) + blockSize - 1) / blockSize);
}

RRWKV_HD inline int32_t w8GroupCount(int32_t N)
{
    return static_cast<int32_t>((static_cast<int64_t>(N) + kW8GroupCols - 1) / kW8GroupCols);
}

// The padded K = NB * blockSize, in 64 bits (it exceeds 2^31 - 1 for K near it).
RRWKV_HD inline int64_t w8PaddedK(int32_t K, int32_t blockSize)
{
    return static_cast<int64_t>(w8BlockCount(K, blockSize)) * blockSize;
}

// Correctly rounded division on both sides (nvcc's --use_fast_math would otherwise approximate `/`).
RRWKV_HD inline float w8DivRn(float a, float b)
{
#if defined(__CUDA_ARCH__)
    return __fdiv_rn(a, b);
#else
    return a / b;
#endif
}

// One step of a row's max |x| that keeps a NaN once seen (fmaxf would drop it).
RRWKV_HD inline float w8MaxAbsStep(float maxAbs, float x)
{
    float const a = fabsf(x);
    return (a > maxAbs || a != a) ? a : maxAbs;
}

// A row's quantisation from its max |x| (start the max at 0): x ~= xq * xScale with xq = rint(x * inv).
// maxAbs == 0 gives inv = 0 (every xq = 0) and xScale = 0; a NaN or infinite maxAbs gives inv = 0 and
// xScale = NaN, so the row's outputs are NaN.
RRWKV_HD inline void w8RowScale(float maxAbs, float& inv, float& xScale)
{
    if (!(maxAbs <= 3.402823466e38f))
    {
        inv = 0.0f;
        xScale = nanf("");
        return;
    }
    inv = maxAbs > 0.0f ? w8DivRn(static_cast<float>(kW8ActMax), maxAbs) : 0.0f;
    xScale = w8DivRn(maxAbs, static_cast<float>(kW8ActMax));
}

// |x * inv| <= 32767 (up to one rounding of the product, which rint cannot push past 32767). A NaN product (a
// non-finite row, whose inv is 0) gives 0, as the AVX-512 and CUDA conversions do, instead of an undefined cast.
RRWKV_HD inline int16_t w8QuantizeActivation(float x, float inv)
{
    float const scaled = x * inv;
    return scaled == scaled ? static_cast<int16_t>(rintf(scaled)) : int16_t{0};
}

// Offsets of q[k, n] in `w` and of the scale of (block b, column n) in `scale`.
RRWKV_HD inline int64_t w8WeightIndex(int32_t P, int32_t k, int32_t n)
{
    int64_t const g = n / kW8GroupCols, j = n % kW8GroupCols;
    return ((g * P + k / 2) * kW8GroupCols + j) * 2 + (k & 1);
}

RRWKV_HD inline int64_t w8ScaleIndex(int32_t NB, int32_t b, int32_t n)
{
    int64_t const g = n / kW8GroupCols, j = n % kW8GroupCols;
    return (g * NB + b) * kW8GroupCols + j;
}

// One block's contribution: the exact int32 dot product times the column's block scale, fused into the sum.
RRWKV_HD inline float w8AccumulateBlock(float sum, int32_t blockDot, float blockScale)
{
    return fmaf(static_cast<float>(blockDot), blockScale, sum);
}

// Column n's sum over the blocks for one quantised row xr [Kpad]: the scalar loop every kernel's result equals.
RRWKV_HD inline float w8ColumnSum(
    int16_t const* xr, int8_t const* w, float const* scale, int32_t Kpad, int32_t blockSize, int32_t n)
{
    int32_t const P = Kpad / 2, NB = Kpad / blockSize;
    float sum = 0.0f;
    for (int32_t b = 0; b < NB; ++b)
    {
        int32_t dot = 0;
        for (int32_t k = b * blockSize; k < (b + 1) * blockSize; ++k)
        {
            dot += static_cast<int32_t>(xr[k]) * static_cast<int32_t>(w[w8WeightIndex(P, k, n)]);
        }
        sum = w8AccumulateBlock(sum, dot, scale[w8ScaleIndex(NB, b, n)]);
    }
    return sum;
}

// The output: the blocks' sum times the row's activation scale.
RRWKV_HD inline float w8Finish(float sum, float xScale)
{
    return sum * xScale;
}

} // namespace rrwkv

#endif // RRWKV_MATMUL_W8_MATH_H
