/*
 * CPU kernels of matmulWF16Cpu.h: a portable path that spells out matmulWF16Math.h in the packed order, an AVX2 +
 * F16C + FMA path (8 columns per vector) and an AVX-512 path (16 columns per vector), which take the same fused
 * multiply-adds in the same order per output and therefore return the same bits. The SIMD paths are compiled with
 * target attributes and chosen at run time, so the library loads on any x86-64 CPU.
 *
 * At one row (decode) the product is bound by reading the fp16 weights: each row k of a group is 128 contiguous
 * bytes, converted to fp32 in registers (vcvtph2ps) and multiplied with the broadcast x[k]; a software prefetch ahead
 * of the packed stream keeps the memory busy (as in MatMulW8, plugins/matmul_w8/README.md "Performance").
 */
#include "matmul_wf16/matmulWF16Cpu.h"

#include "common/simdIntrinsics.h"
#include "matmul_wf16/matmulWF16Math.h"

#include <algorithm>
#include <climits>

namespace rrwkv
{
namespace
{

// The distance MatMulW8 measured fastest at one row on an Intel machine (plugins/matmul_w8/README.md "Performance");
// on the AMD machine the hardware prefetcher alone kept up (plugins/matmul_wf16/README.md "Performance").
constexpr int32_t kPrefetchBytes = 4096;
constexpr int32_t kSimdRows = 4; // rows that share one load and conversion of the weights

// ---- portable ----

// Rows [r0, r1) x the columns of group g, in the packed order (k outer, the 64 columns inner): the sums of
// wf16ColumnSum.
void groupScalar(int32_t r0, int32_t r1, int32_t g, int32_t K, int32_t N, float const* x, uint16_t const* w, float* y)
{
    uint16_t const* wg = w + static_cast<int64_t>(g) * K * kWF16GroupCols;
    int32_t const cols = std::min(N - g * kWF16GroupCols, kWF16GroupCols);
    for (int32_t r = r0; r < r1; ++r)
    {
        float const* xr = x + static_cast<int64_t>(r) * K;
        float sum[kWF16GroupCols] = {};
        for (int32_t k = 0; k < K; ++k)
        {
            uint16_t const* wk = wg + static_cast<int64_t>(k) * kWF16GroupCols;
            for (int32_t j = 0; j < kWF16GroupCols; ++j)
            {
                sum[j] = wf16Accumulate(sum[j], xr[k], wf16ToFloat(wk[j]));
            }
        }
        std::copy(sum, sum + cols, y + static_cast<int64_t>(r) * N + g * kWF16GroupCols);
    }
}

// ---- AVX2 + F16C + FMA ----

#define RRWKV_WF16_AVX2 __attribute__((target("avx2,f16c,fma")))

// R rows x V vectors of 8 columns, starting at column c0 of group g: per k, V weight vectors are converted once
// (vcvtph2ps) and fused into every row's accumulators with the row's broadcast x[k]. R * V accumulators + V weights
// + 1 broadcast fit AVX2's 16 registers.
template <int R, int V>
RRWKV_WF16_AVX2 void tileAvx2(int32_t r0, int32_t g, int32_t c0, int32_t K, int32_t N, float const* x,
    uint16_t const* w, float* y)
{
    uint16_t const* wg = w + static_cast<int64_t>(g) * K * kWF16GroupCols + c0;
    float const* xr[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
    {
        xr[r] = x + static_cast<int64_t>(r0 + r) * K;
    }
    __m256 sum[R][V] = {}; // all zero
    for (int32_t k = 0; k < K; ++k)
    {
        uint16_t const* wk = wg + static_cast<int64_t>(k) * kWF16GroupCols;
        _mm_prefetch(reinterpret_cast<char const*>(wk) + kPrefetchBytes, _MM_HINT_T0);
        __m256 wv[V];
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v)
        {
            wv[v] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<__m128i const*>(wk + 8 * v)));
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r)
        {
            __m256 const xv = _mm256_set1_ps(xr[r][k]);
#pragma GCC unroll 8
            for (int v = 0; v < V; ++v)
            {
                sum[r][v] = _mm256_fmadd_ps(xv, wv[v], sum[r][v]); // wf16Accumulate
            }
        }
    }
    int32_t const n0 = g * kWF16GroupCols + c0;
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
    {
        float out[8 * V];
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v)
        {
            _mm256_storeu_ps(out + 8 * v, sum[r][v]);
        }
        int32_t const cols = std::min(8 * V, N - n0);
        std::copy(out, out + std::max(cols, 0), y + static_cast<int64_t>(r0 + r) * N + n0);
    }
}

// One row: all 64 columns at once (8 accumulators). Four rows: 16 columns at a time, each conversion serving 4 rows.
RRWKV_WF16_AVX2 void groupAvx2(
    int32_t r0, int32_t r1, int32_t g, int32_t K, int32_t N, float const* x, uint16_t const* w, float* y)
{
    int32_t const cols = std::min(N - g * kWF16GroupCols, kWF16GroupCols);
    int32_t r = r0;
    for (; r1 - r >= 4; r += 4) // not r + 4 <= r1: r1 may be 2^31 - 1
    {
        for (int32_t c0 = 0; c0 < cols; c0 += 16)
        {
            tileAvx2<4, 2>(r, g, c0, K, N, x, w, y);
        }
    }
    for (; r < r1; ++r)
    {
        tileAvx2<1, 8>(r, g, 0, K, N, x, w, y);
    }
}

// ---- AVX-512 ----

// Taken at CpuIsa::kAvx512, which also requires AVX512BW/VL (unused here).
#define RRWKV_WF16_SIMD __attribute__((target("avx512f")))

// R rows (1..kSimdRows) x the 64 columns of group g: per k, the group's 128 weight bytes are converted once into
// four vectors of 16 columns and fused into every row's accumulators with the row's broadcast x[k].
template <int R>
RRWKV_WF16_SIMD void groupSimd(int32_t r0, int32_t g, int32_t K, int32_t N, float const* x, uint16_t const* w, float* y)
{
    uint16_t const* wg = w + static_cast<int64_t>(g) * K * kWF16GroupCols;
    float const* xr[R];
    #pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
    {
        xr[r] = x + static_cast<int64_t>(r0 + r) * K;
    }
    __m512 sum[R][4] = {}; // all zero
    for (int32_t k = 0; k < K; ++k)
    {
        uint16_t const* wk = wg + static_cast<int64_t>(k) * kWF16GroupCols;
        _mm_prefetch(reinterpret_cast<char const*>(wk) + kPrefetchBytes, _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<char const*>(wk) + kPrefetchBytes + 64, _MM_HINT_T0);
        __m512 wv[4];
        #pragma GCC unroll 4
        for (int t = 0; t < 4; ++t)
        {
            wv[t] = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<__m256i const*>(wk + 16 * t)));
        }
        #pragma GCC unroll 4
        for (int r = 0; r < R; ++r)
        {
            __m512 const xv = _mm512_set1_ps(xr[r][k]);
            #pragma GCC unroll 4
            for (int t = 0; t < 4; ++t)
            {
                sum[r][t] = _mm512_fmadd_ps(xv, wv[t], sum[r][t]); // wf16Accumulate
            }
        }
    }
    int32_t const n0 = g * kWF16GroupCols;
    #pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
    {
        float* yr = y + static_cast<int64_t>(r0 + r) * N + n0;
        #pragma GCC unroll 4
        for (int t = 0; t < 4; ++t)
        {
            int32_t const cols = std::min(16, N - n0 - 16 * t);
            if (cols <= 0)
            {
                break;
            }
            _mm512_mask_storeu_ps(yr + 16 * t, static_cast<__mmask16>((1u << cols) - 1u), sum[r][t]);
        }
    }
}

void groupRowsSimd(int32_t r0, int32_t r1, int32_t g, int32_t K, int32_t N, float const* x, uint16_t const* w, float* y)
{
    int32_t r = r0;
    for (; r1 - r >= kSimdRows; r += kSimdRows) // not r + kSimdRows <= r1: r1 may be 2^31 - 1
    {
        groupSimd<kSimdRows>(r, g, K, N, x, w, y);
    }
    switch (r1 - r)
    {
    case 3: groupSimd<3>(r, g, K, N, x, w, y); break;
    case 2: groupSimd<2>(r, g, K, N, x, w, y); break;
    case 1: groupSimd<1>(r, g, K, N, x, w, y); break;
    default: break;
    }
}

} // namespace

std::string matmulWF16SizeError(int64_t M, int64_t K, int64_t N)
{
    if (N < 1 || N > kWF16MaxN)
    {
        return "N = " + std::to_string(N) + " (output features) is outside [1, " + std::to_string(kWF16MaxN) + "]";
    }
    if (K < 0 || K > kWF16MaxK)
    {
        return "K = " + std::to_string(K) + " (input features) is outside [0, " + std::to_string(kWF16MaxK) + "]";
    }
    if (M < 0 || M > INT32_MAX)
    {
        return "M = " + std::to_string(M) + " (rows of x) is outside [0, 2^31)";
    }
    return {};
}

WF16CpuSlice matmulWF16CpuSlice(int64_t s, int32_t M, int32_t N)
{
    // Consecutive slices walk the column groups of one row block: a thread's slices stream distinct weights.
    // r0 < M, but r0 + kWF16_CPU_ROWS may pass 2^31 - 1: the row end is taken in 64 bits.
    int64_t const groups = wf16GroupCount(N);
    int64_t const r0 = (s / groups) * kWF16_CPU_ROWS;
    int64_t const r1 = std::min<int64_t>(M, r0 + kWF16_CPU_ROWS);
    return WF16CpuSlice{static_cast<int32_t>(s % groups), static_cast<int32_t>(r0), static_cast<int32_t>(r1)};
}

int64_t matmulWF16CpuSliceCount(int32_t M, int32_t N)
{
    int64_t const rowBlocks = (static_cast<int64_t>(M) + kWF16_CPU_ROWS - 1) / kWF16_CPU_ROWS;
    return rowBlocks * wf16GroupCount(N);
}

void matmulWF16ForwardCpu(int32_t M, int32_t K, int32_t N, float const* x, uint16_t const* w, float* y,
    CpuIsa maxIsa, int64_t sliceBegin, int64_t sliceEnd)
{
    CpuIsa const isa = std::min(maxIsa, cpuIsa());
    int64_t const count = matmulWF16CpuSliceCount(M, N);
    int64_t const end = sliceEnd < 0 ? count : std::min(sliceEnd, count);
    for (int64_t s = sliceBegin; s < end; ++s)
    {
        auto const [g, r0, r1] = matmulWF16CpuSlice(s, M, N);
        switch (isa)
        {
        case CpuIsa::kAvx512: groupRowsSimd(r0, r1, g, K, N, x, w, y); break;
        case CpuIsa::kAvx2: groupAvx2(r0, r1, g, K, N, x, w, y); break;
        case CpuIsa::kPortable: groupScalar(r0, r1, g, K, N, x, w, y); break;
        }
    }
}

} // namespace rrwkv
