/*
 * The arithmetic of rrwkv::MatMulW4 (plugins/matmul_w4/README.md): y = x @ W for a weight W [K, N] stored as
 * symmetric int4 with one fp32 scale per (block of `blockSize` rows, column). The single source for the CUDA kernel
 * (matmulW4Kernel.cuh) and the CPU kernels (matmulW4Cpu.cc); the names follow export/ops/matmul_w4.py
 * (naive_matmul_w4), which does the same integer arithmetic in PyTorch.
 *
 * Activations are those of MatMulW8, bit for bit: the row quantisation is matmulW8Math.h's (w8MaxAbsStep,
 * w8RowScale, w8QuantizeActivation; the CPU path calls matmulW8QuantizeRowsCpu itself), as are the block
 * accumulation (w8AccumulateBlock: one fmaf per block, in block order) and the final scale (w8Finish). Only the
 * weight format differs: a block's dot product is the exact int32 sum of int16 x int4 products, so every kernel
 * that follows these functions produces the same bits whatever its loop order or vector width.
 *
 * Packed layout: one row pair p of one group of 64 output columns is 64 bytes = 32 little-endian 16-bit words;
 * word l = 2c + i (c = 0..15, i = 0..1) holds, in its nibble t (bits 4t..4t+3, t = 0..3), q[2p + i, 64g + 16t + c]
 * as a 4-bit two's complement value in [-8, 7]. So one 64-byte load, shifted left by 12 - 4t and arithmetically
 * right by 12 per 16-bit lane, is vector t: the 16 columns 16t..16t+15 as (row 2p, row 2p + 1) int16 pairs, the
 * operand layout of vpdpwssd / vpmaddwd, with no shuffle.
 *   w     int8 [G, P, 64]: byte w4WeightByte(c, i, t) of pair p holds that nibble; G = ceil(N / 64), P = Kpad / 2
 *   scale fp32 [G, NB, 64]: scale[g, b, j] for rows [b * blockSize, (b + 1) * blockSize) of column 64g + j
 * with NB = ceil(K / blockSize), Kpad = NB * blockSize; padded rows and columns hold q = 0.
 */
#ifndef RRWKV_MATMUL_W4_MATH_H
#define RRWKV_MATMUL_W4_MATH_H

#include "common/hostdevice.h"
#include "matmul_w8/matmulW8Math.h"

#include <cstdint>

namespace rrwkv
{

constexpr int32_t kW4GroupCols = 64;             // output columns per packed group (4 AVX-512 int32 vectors)
constexpr int32_t kW4PairBytes = kW4GroupCols;   // one row pair of a group: 128 nibbles
constexpr int32_t kW4MaxBlock = kW8MaxBlock;     // |q| <= 8 < 128: a block's int32 sum cannot overflow (W8's bound)
constexpr int32_t kW4MaxK = kW8MaxK;
constexpr int32_t kW4MaxN = kW8MaxN;

// Byte of a row pair holding the nibble of (column c of vector t, row i of the pair), and which nibble (t & 1).
RRWKV_HD inline int32_t w4WeightByte(int32_t c, int32_t i, int32_t t)
{
    return 2 * (2 * c + i) + (t >> 1);
}

// q[k, n] from the packed weight: the nibble sign-extended from 4 bits.
RRWKV_HD inline int32_t w4Weight(int8_t const* w, int32_t P, int32_t k, int32_t n)
{
    int32_t const g = n / kW4GroupCols, j = n % kW4GroupCols, t = j / 16, c = j % 16;
    auto const byte = static_cast<uint8_t>(
        w[(static_cast<int64_t>(g) * P + k / 2) * kW4PairBytes + w4WeightByte(c, k & 1, t)]);
    int32_t const nibble = (byte >> (4 * (t & 1))) & 0xF;
    return nibble >= 8 ? nibble - 16 : nibble;
}

// Column n's sum over the blocks for one quantised row xr [Kpad]: the scalar loop every kernel's result equals.
RRWKV_HD inline float w4ColumnSum(
    int16_t const* xr, int8_t const* w, float const* scale, int32_t Kpad, int32_t blockSize, int32_t n)
{
    int32_t const P = Kpad / 2, NB = Kpad / blockSize;
    float sum = 0.0f;
    for (int32_t b = 0; b < NB; ++b)
    {
        int32_t dot = 0;
        for (int32_t k = b * blockSize; k < (b + 1) * blockSize; ++k)
        {
            dot += static_cast<int32_t>(xr[k]) * w4Weight(w, P, k, n);
        }
        sum = w8AccumulateBlock(sum, dot, scale[w8ScaleIndex(NB, b, n)]);
    }
    return sum;
}

} // namespace rrwkv

#endif // RRWKV_MATMUL_W4_MATH_H
