/*
 * CPU kernels of matmulW4Cpu.h: a portable path that spells out matmulW4Math.h in the packed order, an AVX2 path
 * (vpmaddwd, 8 columns x one row pair per instruction) and an AVX-512 VNNI path (vpdpwssd, 16 columns), which
 * compute the same integers and therefore the same bits. The SIMD paths are compiled with target attributes and
 * chosen at run time, so the library loads on any x86-64 CPU.
 *
 * The packing (matmulW4Math.h) puts each nibble where a shift pair turns it into the int16 weight of the
 * (row 2p, row 2p + 1) pair that vpdpwssd multiplies with the broadcast activations: per 64-byte row pair of a group,
 * one load and 7 shifts feed 4 vpdpwssd per row, against MatMulW8's 4 sign extensions for twice the bytes. As for
 * MatMulW8, a software prefetch ahead of the packed stream keeps it near the memory's rate at one row.
 */
#include "matmul_w4/matmulW4Cpu.h"

#include "common/simdIntrinsics.h"
#include "matmul_w4/matmulW4Math.h"

#include <algorithm>

namespace rrwkv
{
namespace
{

// MatMulW8's distance in bytes of the packed stream (plugins/matmul_w8/README.md "Performance"): 64 row pairs ahead.
constexpr int32_t kPrefetchBytes = 4096;
constexpr int32_t kSimdRows = 4; // rows that share one load of the weights

// ---- scalar ----

// Rows [r0, r1) x the columns of group g, in the packed order (row pair outer, the 64 columns inner): the integer
// sums are those of w4ColumnSum.
void groupScalar(int32_t r0, int32_t r1, int32_t g, int32_t N, int32_t Kpad, int32_t blockSize,
    int16_t const* xq, float const* xScale, int8_t const* w, float const* scale, float* y)
{
    int32_t const P = Kpad / 2, NB = Kpad / blockSize, pairsPerBlock = blockSize / 2;
    int8_t const* wg = w + static_cast<int64_t>(g) * P * kW4PairBytes;
    float const* sg = scale + static_cast<int64_t>(g) * NB * kW4GroupCols;
    int32_t const cols = std::min(N - g * kW4GroupCols, kW4GroupCols);
    for (int32_t r = r0; r < r1; ++r)
    {
        int16_t const* xr = xq + static_cast<int64_t>(r) * Kpad;
        float sum[kW4GroupCols] = {};
        for (int32_t b = 0; b < NB; ++b)
        {
            int32_t dot[kW4GroupCols] = {};
            for (int32_t p = b * pairsPerBlock; p < (b + 1) * pairsPerBlock; ++p)
            {
                // The pair's 32 words (little-endian); word 2c + i holds row i of columns c, 16 + c, 32 + c, 48 + c in
                // its nibbles 0..3. The nibble is sign-extended by the SIMD paths' shift pair, which the compiler
                // vectorises over c (a byte-wise decode did not vectorise: 5x slower than MatMulW8's portable path).
                uint8_t const* wp = reinterpret_cast<uint8_t const*>(wg) + static_cast<int64_t>(p) * kW4PairBytes;
                int32_t const x0 = xr[2 * p], x1 = xr[2 * p + 1];
                for (int32_t t = 0; t < 4; ++t)
                {
                    for (int32_t c = 0; c < 16; ++c)
                    {
                        auto const w0 = static_cast<uint16_t>(wp[4 * c] | wp[4 * c + 1] << 8);
                        auto const w1 = static_cast<uint16_t>(wp[4 * c + 2] | wp[4 * c + 3] << 8);
                        int32_t const q0 = static_cast<int16_t>(static_cast<uint16_t>(w0 << (12 - 4 * t))) >> 12;
                        int32_t const q1 = static_cast<int16_t>(static_cast<uint16_t>(w1 << (12 - 4 * t))) >> 12;
                        dot[16 * t + c] += x0 * q0 + x1 * q1;
                    }
                }
            }
            for (int32_t j = 0; j < kW4GroupCols; ++j)
            {
                sum[j] = w8AccumulateBlock(sum[j], dot[j], sg[b * kW4GroupCols + j]);
            }
        }
        for (int32_t j = 0; j < cols; ++j)
        {
            y[static_cast<int64_t>(r) * N + g * kW4GroupCols + j] = w8Finish(sum[j], xScale[r]);
        }
    }
}

// ---- AVX2 + FMA ----

// Taken at CpuIsa::kAvx2, which also requires F16C (unused here).
#define RRWKV_W4_AVX2 __attribute__((target("avx2,fma")))

// Nibble t of every 16-bit word of v, sign-extended to int16 (t is a template argument: the shifts take immediates).
template <int T>
RRWKV_W4_AVX2 inline __m256i nibbleAvx2(__m256i v)
{
    return _mm256_srai_epi16(_mm256_slli_epi16(v, 12 - 4 * T), 12);
}

// R rows x the columns of vectors t in [T0, T0 + TV) of half h in [H0, H0 + HV) of group g. Half h of a row pair
// is its bytes 32h..32h+31, the words of c = 8h..8h+7; vector (h, t) is columns 16t + 8h .. 16t + 8h + 7 x 2 rows.
// R * HV * TV accumulators + the unpacked weights + 1 broadcast fit AVX2's 16 registers.
template <int R, int H0, int HV, int T0, int TV>
RRWKV_W4_AVX2 void tileAvx2(int32_t r0, int32_t g, int32_t N, int32_t Kpad, int32_t blockSize, int16_t const* xq,
    float const* xScale, int8_t const* w, float const* scale, float* y)
{
    int32_t const P = Kpad / 2, NB = Kpad / blockSize, pairsPerBlock = blockSize / 2;
    int8_t const* wg = w + static_cast<int64_t>(g) * P * kW4PairBytes;
    float const* sg = scale + static_cast<int64_t>(g) * NB * kW4GroupCols;
    int32_t const* xr[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
    {
        xr[r] = reinterpret_cast<int32_t const*>(xq + static_cast<int64_t>(r0 + r) * Kpad);
    }
    __m256 sum[R][HV][TV] = {}; // all zero
    for (int32_t b = 0; b < NB; ++b)
    {
        __m256i dot[R][HV][TV] = {}; // all zero
        for (int32_t p = b * pairsPerBlock; p < (b + 1) * pairsPerBlock; ++p)
        {
            int8_t const* wp = wg + static_cast<int64_t>(p) * kW4PairBytes;
            _mm_prefetch(reinterpret_cast<char const*>(wp + kPrefetchBytes), _MM_HINT_T0);
            __m256i wv[HV][TV];
#pragma GCC unroll 2
            for (int h = 0; h < HV; ++h)
            {
                __m256i const v = _mm256_loadu_si256(reinterpret_cast<__m256i const*>(wp + 32 * (H0 + h)));
                __m256i const all[4] = {nibbleAvx2<0>(v), nibbleAvx2<1>(v), nibbleAvx2<2>(v), nibbleAvx2<3>(v)};
#pragma GCC unroll 4
                for (int t = 0; t < TV; ++t)
                {
                    wv[h][t] = all[T0 + t];
                }
            }
#pragma GCC unroll 4
            for (int r = 0; r < R; ++r)
            {
                __m256i const xv = _mm256_set1_epi32(xr[r][p]);
#pragma GCC unroll 2
                for (int h = 0; h < HV; ++h)
                {
#pragma GCC unroll 4
                    for (int t = 0; t < TV; ++t)
                    {
                        dot[r][h][t] = _mm256_add_epi32(dot[r][h][t], _mm256_madd_epi16(wv[h][t], xv));
                    }
                }
            }
        }
#pragma GCC unroll 2
        for (int h = 0; h < HV; ++h)
        {
#pragma GCC unroll 4
            for (int t = 0; t < TV; ++t)
            {
                __m256 const s = _mm256_loadu_ps(sg + b * kW4GroupCols + 16 * (T0 + t) + 8 * (H0 + h));
#pragma GCC unroll 4
                for (int r = 0; r < R; ++r)
                {
                    // w8AccumulateBlock
                    sum[r][h][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[r][h][t]), s, sum[r][h][t]);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
    {
        __m256 const xs = _mm256_set1_ps(xScale[r0 + r]);
#pragma GCC unroll 2
        for (int h = 0; h < HV; ++h)
        {
#pragma GCC unroll 4
            for (int t = 0; t < TV; ++t)
            {
                int32_t const n0 = g * kW4GroupCols + 16 * (T0 + t) + 8 * (H0 + h);
                int32_t const cols = std::min(8, N - n0);
                if (cols <= 0)
                {
                    continue;
                }
                float out[8];
                _mm256_storeu_ps(out, _mm256_mul_ps(sum[r][h][t], xs)); // w8Finish
                std::copy(out, out + cols, y + static_cast<int64_t>(r0 + r) * N + n0);
            }
        }
    }
}

// One row: all 64 columns at once (8 accumulators). Four rows: 16 columns (one half, two nibbles) at a time, each
// weight load serving 4 rows.
RRWKV_W4_AVX2 void groupAvx2(int32_t r0, int32_t r1, int32_t g, int32_t N, int32_t Kpad, int32_t blockSize,
    int16_t const* xq, float const* xScale, int8_t const* w, float const* scale, float* y)
{
    int32_t r = r0;
    for (; r1 - r >= 4; r += 4) // not r + 4 <= r1: r1 may be 2^31 - 1
    {
        tileAvx2<4, 0, 1, 0, 2>(r, g, N, Kpad, blockSize, xq, xScale, w, scale, y);
        tileAvx2<4, 0, 1, 2, 2>(r, g, N, Kpad, blockSize, xq, xScale, w, scale, y);
        tileAvx2<4, 1, 1, 0, 2>(r, g, N, Kpad, blockSize, xq, xScale, w, scale, y);
        tileAvx2<4, 1, 1, 2, 2>(r, g, N, Kpad, blockSize, xq, xScale, w, scale, y);
    }
    for (; r < r1; ++r)
    {
        tileAvx2<1, 0, 2, 0, 4>(r, g, N, Kpad, blockSize, xq, xScale, w, scale, y);
    }
}

// ---- AVX-512 VNNI ----

// Taken at CpuIsa::kAvx512 only as cpuIsaVnni() reports it: this target adds AVX512DQ and AVX512_VNNI to the level.
#define RRWKV_W4_SIMD __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")))

template <int T>
RRWKV_W4_SIMD inline __m512i nibbleSimd(__m512i v)
{
    return _mm512_srai_epi16(_mm512_slli_epi16(v, 12 - 4 * T), 12);
}

// R rows (1..kSimdRows) x the 64 columns of group g: per row pair, the group's 64 weight bytes are loaded once and
// shifted into four vectors of 16 columns x 2 rows, multiplied with every row's broadcast (x[k], x[k+1]) pair.
template <int R>
RRWKV_W4_SIMD void groupSimd(int32_t r0, int32_t g, int32_t N, int32_t Kpad, int32_t blockSize, int16_t const* xq,
    float const* xScale, int8_t const* w, float const* scale, float* y)
{
    int32_t const P = Kpad / 2, NB = Kpad / blockSize, pairsPerBlock = blockSize / 2;
    int8_t const* wg = w + static_cast<int64_t>(g) * P * kW4PairBytes;
    float const* sg = scale + static_cast<int64_t>(g) * NB * kW4GroupCols;
    int32_t const* xr[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
    {
        xr[r] = reinterpret_cast<int32_t const*>(xq + static_cast<int64_t>(r0 + r) * Kpad); // (x[2p], x[2p+1])
    }
    __m512 sum[R][4] = {}; // all zero
    for (int32_t b = 0; b < NB; ++b)
    {
        __m512i dot[R][4] = {}; // all zero
        for (int32_t p = b * pairsPerBlock; p < (b + 1) * pairsPerBlock; ++p)
        {
            int8_t const* wp = wg + static_cast<int64_t>(p) * kW4PairBytes;
            _mm_prefetch(reinterpret_cast<char const*>(wp + kPrefetchBytes), _MM_HINT_T0);
            __m512i const v = _mm512_loadu_si512(wp);
            __m512i const wv[4] = {nibbleSimd<0>(v), nibbleSimd<1>(v), nibbleSimd<2>(v), nibbleSimd<3>(v)};
#pragma GCC unroll 4
            for (int r = 0; r < R; ++r)
            {
                __m512i const xv = _mm512_set1_epi32(xr[r][p]);
#pragma GCC unroll 4
                for (int t = 0; t < 4; ++t)
                {
                    dot[r][t] = _mm512_dpwssd_epi32(dot[r][t], wv[t], xv);
                }
            }
        }
#pragma GCC unroll 4
        for (int t = 0; t < 4; ++t)
        {
            __m512 const s = _mm512_loadu_ps(sg + b * kW4GroupCols + 16 * t);
#pragma GCC unroll 4
            for (int r = 0; r < R; ++r)
            {
                sum[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[r][t]), s, sum[r][t]); // w8AccumulateBlock
            }
        }
    }
    int32_t const n0 = g * kW4GroupCols;
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
    {
        float* yr = y + static_cast<int64_t>(r0 + r) * N + n0;
        __m512 const xs = _mm512_set1_ps(xScale[r0 + r]);
#pragma GCC unroll 4
        for (int t = 0; t < 4; ++t)
        {
            int32_t const cols = std::min(16, N - n0 - 16 * t);
            if (cols <= 0)
            {
                break;
            }
            __mmask16 const mask = static_cast<__mmask16>((1u << cols) - 1u);
            _mm512_mask_storeu_ps(yr + 16 * t, mask, _mm512_mul_ps(sum[r][t], xs)); // w8Finish
        }
    }
}

void groupRowsSimd(int32_t r0, int32_t r1, int32_t g, int32_t N, int32_t Kpad, int32_t blockSize, int16_t const* xq,
    float const* xScale, int8_t const* w, float const* scale, float* y)
{
    int32_t r = r0;
    for (; r1 - r >= kSimdRows; r += kSimdRows) // not r + kSimdRows <= r1: r1 may be 2^31 - 1
    {
        groupSimd<kSimdRows>(r, g, N, Kpad, blockSize, xq, xScale, w, scale, y);
    }
    switch (r1 - r)
    {
    case 3: groupSimd<3>(r, g, N, Kpad, blockSize, xq, xScale, w, scale, y); break;
    case 2: groupSimd<2>(r, g, N, Kpad, blockSize, xq, xScale, w, scale, y); break;
    case 1: groupSimd<1>(r, g, N, Kpad, blockSize, xq, xScale, w, scale, y); break;
    default: break;
    }
}

} // namespace

void matmulW4ForwardCpu(int32_t M, int32_t N, int32_t Kpad, int32_t blockSize, int16_t const* xq,
    float const* xScale, int8_t const* w, float const* scale, float* y, CpuIsa maxIsa, int64_t sliceBegin,
    int64_t sliceEnd)
{
    CpuIsa const isa = std::min(maxIsa, cpuIsaVnni());
    int64_t const count = matmulW8CpuSliceCount(M, N);
    for (int64_t s = sliceBegin; s < (sliceEnd < 0 ? count : std::min(sliceEnd, count)); ++s)
    {
        auto const [g, r0, r1] = matmulW8CpuSlice(s, M, N);
        switch (isa)
        {
        case CpuIsa::kAvx512: groupRowsSimd(r0, r1, g, N, Kpad, blockSize, xq, xScale, w, scale, y); break;
        case CpuIsa::kAvx2: groupAvx2(r0, r1, g, N, Kpad, blockSize, xq, xScale, w, scale, y); break;
        case CpuIsa::kPortable: groupScalar(r0, r1, g, N, Kpad, blockSize, xq, xScale, w, scale, y); break;
        }
    }
}

} // namespace rrwkv
