/*
 * CPU kernels of matmulW8Cpu.h: a portable path that spells out matmulW8Math.h in the packed order, an AVX2 path
 * (vpmaddwd, 8 columns x one row pair per instruction) and an AVX-512 VNNI path (vpdpwssd, 16 columns), which
 * compute the same integers and therefore the same bits. The SIMD paths are compiled with target attributes and
 * chosen at run time, so the library loads on any x86-64 CPU.
 *
 * Why the VNNI path looks the way it does: at one row the product is bound by reading the int8 weights, and the
 * hardware prefetcher alone streams them well below the memory's rate; a software prefetch ahead of the packed
 * stream closes most of the gap (measured: plugins/matmul_w8/README.md "Performance").
 */
#include "matmul_w8/matmulW8Cpu.h"

#include "common/simdIntrinsics.h"
#include "matmul_w8/matmulW8Math.h"

#include <algorithm>
#include <climits>
#include <cstring>

namespace rrwkv
{
namespace
{

constexpr int32_t kPairBytes = 2 * kW8GroupCols; // one row pair of a group: 128 int8
// The fastest prefetch distance of those tried at one row (plugins/matmul_w8/README.md "Performance").
constexpr int32_t kPrefetchBytes = 4096;
constexpr int32_t kSimdRows = 4;                  // rows that share one load of the weights

// ---- scalar ----

// always_inline: the AVX2 wrappers below recompile these loops for AVX2 + FMA by inlining them.
#define RRWKV_W8_INLINE __attribute__((always_inline)) inline

RRWKV_W8_INLINE void quantizeRowScalar(int32_t K, int32_t Kpad, float const* x, int16_t* xq, float& xScale)
{
    float maxAbs = 0.0f;
    for (int32_t k = 0; k < K; ++k)
    {
        maxAbs = w8MaxAbsStep(maxAbs, x[k]);
    }
    float inv = 0.0f;
    w8RowScale(maxAbs, inv, xScale);
    for (int32_t k = 0; k < K; ++k)
    {
        xq[k] = w8QuantizeActivation(x[k], inv);
    }
    std::fill(xq + K, xq + Kpad, int16_t{0});
}

// Rows [r0, r1) x the columns of group g, in the packed order (row pair outer, the 64 columns inner, stride 1):
// the compiler vectorises the column loop where it can, and the integer sums are those of w8ColumnSum.
RRWKV_W8_INLINE void groupScalar(int32_t r0, int32_t r1, int32_t g, int32_t N, int32_t Kpad, int32_t blockSize,
    int16_t const* xq, float const* xScale, int8_t const* w, float const* scale, float* y)
{
    int32_t const P = Kpad / 2, NB = Kpad / blockSize, pairsPerBlock = blockSize / 2;
    int8_t const* wg = w + static_cast<int64_t>(g) * P * kPairBytes;
    float const* sg = scale + static_cast<int64_t>(g) * NB * kW8GroupCols;
    int32_t const cols = std::min(N - g * kW8GroupCols, kW8GroupCols);
    for (int32_t r = r0; r < r1; ++r)
    {
        int16_t const* xr = xq + static_cast<int64_t>(r) * Kpad;
        float sum[kW8GroupCols] = {};
        for (int32_t b = 0; b < NB; ++b)
        {
            int32_t dot[kW8GroupCols] = {};
            for (int32_t p = b * pairsPerBlock; p < (b + 1) * pairsPerBlock; ++p)
            {
                int8_t const* wp = wg + static_cast<int64_t>(p) * kPairBytes;
                int32_t const x0 = xr[2 * p], x1 = xr[2 * p + 1];
                for (int32_t j = 0; j < kW8GroupCols; ++j)
                {
                    dot[j] += x0 * wp[2 * j] + x1 * wp[2 * j + 1];
                }
            }
            for (int32_t j = 0; j < kW8GroupCols; ++j)
            {
                sum[j] = w8AccumulateBlock(sum[j], dot[j], sg[b * kW8GroupCols + j]);
            }
        }
        for (int32_t j = 0; j < cols; ++j)
        {
            y[static_cast<int64_t>(r) * N + g * kW8GroupCols + j] = w8Finish(sum[j], xScale[r]);
        }
    }
}

// ---- AVX2 + FMA ----

// Taken at CpuIsa::kAvx2, which also requires F16C (unused here).
#define RRWKV_W8_AVX2 __attribute__((target("avx2,fma")))

// The portable row quantisation, recompiled for AVX2 (vectorised rint, max and stores).
RRWKV_W8_AVX2 void quantizeRowAvx2(int32_t K, int32_t Kpad, float const* x, int16_t* xq, float& xScale)
{
    quantizeRowScalar(K, Kpad, x, xq, xScale);
}

// R rows x V vectors of 8 columns, starting at column c0 of group g: per row pair, each vector is 16 weight bytes
// sign-extended to 8 columns x 2 rows, multiplied with a row's broadcast (x[k], x[k+1]) by vpmaddwd (the same int32
// pair sums as vpdpwssd) and added. R * V accumulators + V weights + 1 broadcast fit AVX2's 16 registers.
template <int R, int V>
RRWKV_W8_AVX2 void tileAvx2(int32_t r0, int32_t g, int32_t c0, int32_t N, int32_t Kpad, int32_t blockSize,
    int16_t const* xq, float const* xScale, int8_t const* w, float const* scale, float* y)
{
    int32_t const P = Kpad / 2, NB = Kpad / blockSize, pairsPerBlock = blockSize / 2;
    int8_t const* wg = w + static_cast<int64_t>(g) * P * kPairBytes + 2 * c0;
    float const* sg = scale + static_cast<int64_t>(g) * NB * kW8GroupCols + c0;
    int32_t const* xr[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
    {
        xr[r] = reinterpret_cast<int32_t const*>(xq + static_cast<int64_t>(r0 + r) * Kpad);
    }
    __m256 sum[R][V] = {}; // all zero
    for (int32_t b = 0; b < NB; ++b)
    {
        __m256i dot[R][V] = {}; // all zero
        for (int32_t p = b * pairsPerBlock; p < (b + 1) * pairsPerBlock; ++p)
        {
            int8_t const* wp = wg + static_cast<int64_t>(p) * kPairBytes;
            _mm_prefetch(reinterpret_cast<char const*>(wp + kPrefetchBytes), _MM_HINT_T0);
            __m256i wv[V];
#pragma GCC unroll 8
            for (int v = 0; v < V; ++v)
            {
                wv[v] = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<__m128i const*>(wp + 16 * v)));
            }
#pragma GCC unroll 4
            for (int r = 0; r < R; ++r)
            {
                __m256i const xv = _mm256_set1_epi32(xr[r][p]);
#pragma GCC unroll 8
                for (int v = 0; v < V; ++v)
                {
                    dot[r][v] = _mm256_add_epi32(dot[r][v], _mm256_madd_epi16(wv[v], xv));
                }
            }
        }
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v)
        {
            __m256 const s = _mm256_loadu_ps(sg + b * kW8GroupCols + 8 * v);
#pragma GCC unroll 4
            for (int r = 0; r < R; ++r)
            {
                sum[r][v] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[r][v]), s, sum[r][v]); // w8AccumulateBlock
            }
        }
    }
    int32_t const n0 = g * kW8GroupCols + c0;
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
    {
        float out[8 * V];
        __m256 const xs = _mm256_set1_ps(xScale[r0 + r]);
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v)
        {
            _mm256_storeu_ps(out + 8 * v, _mm256_mul_ps(sum[r][v], xs)); // w8Finish
        }
        int32_t const cols = std::min(8 * V, N - n0);
        std::copy(out, out + std::max(cols, 0), y + static_cast<int64_t>(r0 + r) * N + n0);
    }
}

// One row: all 64 columns at once (8 accumulators). Four rows: 16 columns at a time, each weight load serving 4 rows.
RRWKV_W8_AVX2 void groupAvx2(int32_t r0, int32_t r1, int32_t g, int32_t N, int32_t Kpad, int32_t blockSize,
    int16_t const* xq, float const* xScale, int8_t const* w, float const* scale, float* y)
{
    int32_t const cols = std::min(N - g * kW8GroupCols, kW8GroupCols);
    int32_t r = r0;
    for (; r1 - r >= 4; r += 4) // not r + 4 <= r1: r1 may be 2^31 - 1
    {
        for (int32_t c0 = 0; c0 < cols; c0 += 16)
        {
            tileAvx2<4, 2>(r, g, c0, N, Kpad, blockSize, xq, xScale, w, scale, y);
        }
    }
    for (; r < r1; ++r)
    {
        tileAvx2<1, 8>(r, g, 0, N, Kpad, blockSize, xq, xScale, w, scale, y);
    }
}

// ---- AVX-512 VNNI ----

// Taken at CpuIsa::kAvx512 only as cpuIsaVnni() reports it: this target adds AVX512DQ and AVX512_VNNI to the level.
#define RRWKV_W8_SIMD __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")))

RRWKV_W8_SIMD void quantizeRowSimd(int32_t K, int32_t Kpad, float const* x, int16_t* xq, float& xScale)
{
    __m512 vmax = _mm512_setzero_ps();
    __mmask16 nonFinite = 0;
    int32_t k = 0;
    for (; k + 16 <= K; k += 16)
    {
        __m512 const v = _mm512_loadu_ps(x + k);
        vmax = _mm512_max_ps(vmax, _mm512_abs_ps(v));
        nonFinite |= _mm512_fpclass_ps_mask(v, 0x99); // QNaN | SNaN | +inf | -inf
    }
    float maxAbs = nonFinite ? nanf("") : _mm512_reduce_max_ps(vmax);
    for (int32_t t = k; t < K; ++t)
    {
        maxAbs = w8MaxAbsStep(maxAbs, x[t]);
    }
    float inv = 0.0f;
    w8RowScale(maxAbs, inv, xScale);
    __m512 const vinv = _mm512_set1_ps(inv);
    for (k = 0; k + 16 <= K; k += 16)
    {
        // cvtps_epi32 rounds half to even (the default MXCSR mode), as rintf does; |values| <= 32767.
        __m512i const q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + k), vinv));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(xq + k), _mm512_cvtepi32_epi16(q));
    }
    for (; k < K; ++k)
    {
        xq[k] = w8QuantizeActivation(x[k], inv);
    }
    std::fill(xq + K, xq + Kpad, int16_t{0});
}

// R rows (1..kSimdRows) x the 64 columns of group g: per row pair, the group's 128 weight bytes are sign-extended
// once into four vectors of 16 columns x 2 rows and multiplied with every row's broadcast (x[k], x[k+1]) pair.
template <int R>
RRWKV_W8_SIMD void groupSimd(int32_t r0, int32_t g, int32_t N, int32_t Kpad, int32_t blockSize, int16_t const* xq,
    float const* xScale, int8_t const* w, float const* scale, float* y)
{
    int32_t const P = Kpad / 2, NB = Kpad / blockSize, pairsPerBlock = blockSize / 2;
    int8_t const* wg = w + static_cast<int64_t>(g) * P * kPairBytes;
    float const* sg = scale + static_cast<int64_t>(g) * NB * kW8GroupCols;
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
            int8_t const* wp = wg + static_cast<int64_t>(p) * kPairBytes;
            _mm_prefetch(reinterpret_cast<char const*>(wp + kPrefetchBytes), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<char const*>(wp + kPrefetchBytes + 64), _MM_HINT_T0);
            __m512i wv[4];
            #pragma GCC unroll 4
            for (int t = 0; t < 4; ++t)
            {
                wv[t] = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<__m256i const*>(wp + 32 * t)));
            }
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
            __m512 const s = _mm512_loadu_ps(sg + b * kW8GroupCols + 16 * t);
            #pragma GCC unroll 4
            for (int r = 0; r < R; ++r)
            {
                sum[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[r][t]), s, sum[r][t]); // w8AccumulateBlock
            }
        }
    }
    int32_t const n0 = g * kW8GroupCols;
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

CpuIsa pathFor(CpuIsa maxIsa)
{
    return std::min(maxIsa, cpuIsaVnni());
}

int64_t sliceEndOr(int64_t sliceEnd, int64_t count)
{
    return sliceEnd < 0 ? count : std::min(sliceEnd, count);
}

} // namespace

void matmulW8QuantizeRowsCpu(int32_t M, int32_t K, int32_t Kpad, float const* x, int16_t* xq, float* xScale,
    CpuIsa maxIsa, int64_t sliceBegin, int64_t sliceEnd)
{
    CpuIsa const isa = pathFor(maxIsa);
    for (int64_t r = sliceBegin; r < sliceEndOr(sliceEnd, M); ++r)
    {
        float const* xr = x + r * K;
        int16_t* qr = xq + r * Kpad;
        switch (isa)
        {
        case CpuIsa::kAvx512: quantizeRowSimd(K, Kpad, xr, qr, xScale[r]); break;
        case CpuIsa::kAvx2: quantizeRowAvx2(K, Kpad, xr, qr, xScale[r]); break;
        case CpuIsa::kPortable: quantizeRowScalar(K, Kpad, xr, qr, xScale[r]); break;
        }
    }
}

std::string matmulW8SizeError(int64_t M, int64_t K, int64_t N, int64_t blockSize)
{
    if (blockSize < 2 || blockSize > kW8MaxBlock || blockSize % 2 != 0)
    {
        return "block_size = " + std::to_string(blockSize) + " is not an even value in [2, "
            + std::to_string(kW8MaxBlock) + "]";
    }
    if (N < 1 || N > kW8MaxN)
    {
        return "N = " + std::to_string(N) + " (output features) is outside [1, " + std::to_string(kW8MaxN) + "]";
    }
    if (K < 0 || K > kW8MaxK)
    {
        return "K = " + std::to_string(K) + " (input features) is outside [0, " + std::to_string(kW8MaxK) + "]";
    }
    int64_t const Kpad = w8PaddedK(static_cast<int32_t>(K), static_cast<int32_t>(blockSize));
    if (Kpad > kW8MaxK)
    {
        return "K = " + std::to_string(K) + " padded to a multiple of block_size = " + std::to_string(blockSize)
            + " is " + std::to_string(Kpad) + ", more than " + std::to_string(kW8MaxK);
    }
    if (M < 0 || M > INT32_MAX)
    {
        return "M = " + std::to_string(M) + " (rows of x) is outside [0, 2^31)";
    }
    return {};
}

W8CpuSlice matmulW8CpuSlice(int64_t s, int32_t M, int32_t N)
{
    // Consecutive slices walk the column groups of one row block: a thread's slices stream distinct weights.
    // r0 < M, but r0 + kW8_CPU_ROWS may pass 2^31 - 1: the row end is taken in 64 bits.
    int64_t const groups = w8GroupCount(N);
    int64_t const r0 = (s / groups) * kW8_CPU_ROWS;
    int64_t const r1 = std::min<int64_t>(M, r0 + kW8_CPU_ROWS);
    return W8CpuSlice{static_cast<int32_t>(s % groups), static_cast<int32_t>(r0), static_cast<int32_t>(r1)};
}

int64_t matmulW8CpuSliceCount(int32_t M, int32_t N)
{
    int64_t const rowBlocks = (static_cast<int64_t>(M) + kW8_CPU_ROWS - 1) / kW8_CPU_ROWS;
    return rowBlocks * w8GroupCount(N);
}

void matmulW8ForwardCpu(int32_t M, int32_t N, int32_t Kpad, int32_t blockSize, int16_t const* xq,
    float const* xScale, int8_t const* w, float const* scale, float* y, CpuIsa maxIsa, int64_t sliceBegin,
    int64_t sliceEnd)
{
    CpuIsa const isa = pathFor(maxIsa);
    for (int64_t s = sliceBegin; s < sliceEndOr(sliceEnd, matmulW8CpuSliceCount(M, N)); ++s)
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
