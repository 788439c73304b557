/*
 * CPU kernel of rrwkv::LTMUpdate (ltmUpdateCpu.h). Both phases are one product, out[r][c] = sum_k A[r][k] X[k][c]:
 * X_old = S B_past (A = the rows of S, X = B_past[b]) and B_new = G_inf^T [X_old; X_new] or G^T X_new (A[r][k] =
 * G_inf[k][n0 + r], X = one or two blocks of rows). Every element adds its terms one at a time in k order (ltmDotAdd),
 * as the CUDA kernels do. A tile of kRows rows x kCols columns keeps its accumulators in vectors of columns, so one
 * load of X[k] serves kRows rows; a slice walks its column blocks outermost, so that a block's panel of X stays in
 * cache for all the slice's rows. All arithmetic is in ltmUpdateMath.h. The SIMD paths are compiled with target
 * attributes and chosen at run time, so the library loads on any x86-64 CPU.
 */
#include "ltm_update/ltmUpdateCpu.h"

#include "common/noFpContract.h"
#include "common/simdIntrinsics.h"
#include "ltm_update/ltmUpdateMath.h"

#include <algorithm>
#include <vector>

namespace rrwkv
{
namespace
{

// One run of contracted terms: A[r][k] = a[k * aStep + r * aRowStep] and X[k][c] = x[k * e + c] for k < count.
struct Terms
{
    float const* a;
    int64_t aStep;
    float const* x;
    int32_t count;
};

// psi[j] = psi_j(t) for j in [jBegin, N).
inline void psiScalar(int32_t jBegin, int32_t N, float t, float const* basisMu, float const* basisSigma, float* psi)
{
    for (int32_t j = jBegin; j < N; ++j)
    {
        psi[j] = ltmPsi(t, basisMu[j], basisSigma[j]);
    }
}

// ---- portable ----

struct Portable
{
    static void psiRow(float t, int32_t N, float const* basisMu, float const* basisSigma, float* psi)
    {
        psiScalar(0, N, t, basisMu, basisSigma, psi);
    }

    static constexpr int32_t kRows = 1;  // rows per tile
    static constexpr int32_t kCols = 64; // columns per tile: the row's block of out stays in L1 over all k

    // out[r * e + c] = sum over the runs, k in order, of A[r][k] X[k][c], for r < R and c in [c0, c0 + cn).
    template <int R>
    static void tile(Terms const* terms, int32_t nTerms, int64_t aRowStep, int32_t e, int32_t c0, int32_t cn,
        float* out)
    {
        for (int r = 0; r < R; ++r)
        {
            float* o = out + static_cast<int64_t>(r) * e + c0;
            std::fill(o, o + cn, 0.F);
            for (int32_t t = 0; t < nTerms; ++t)
            {
                for (int32_t k = 0; k < terms[t].count; ++k)
                {
                    float const a = terms[t].a[k * terms[t].aStep + r * aRowStep];
                    float const* x = terms[t].x + static_cast<int64_t>(k) * e + c0;
                    for (int32_t c = 0; c < cn; ++c)
                    {
                        o[c] = ltmDotAdd(o[c], a, x[c]);
                    }
                }
            }
        }
    }
};

// The SIMD paths keep their accumulators in arrays of vectors indexed by compile-time constants; loops over them are
// unrolled completely, so that the arrays live in registers.
#define RRWKV_LTM_CPU_UNROLL _Pragma("GCC unroll 16")

// ---- AVX2 (no FMA: nothing to contract) ----

// Taken at CpuIsa::kAvx2, which also requires FMA and F16C (unused here).
#define RRWKV_LTM_AVX2 __attribute__((target("avx2")))

struct Avx2
{
    // ltmPsi a vector at a time: ltmExp's comparison for all lanes, expf only in the lanes that do not underflow.
    RRWKV_LTM_AVX2 static void psiRow(float t, int32_t N, float const* basisMu, float const* basisSigma, float* psi)
    {
        __m256 const tv = _mm256_set1_ps(t);
        __m256 const two = _mm256_set1_ps(2.F);
        __m256 const sqrt2Pi = _mm256_set1_ps(kLTM_SQRT_2PI);
        __m256 const signBit = _mm256_set1_ps(-0.F);
        __m256 const zeroBelow = _mm256_set1_ps(kLTM_EXP_ZERO_BELOW);
        int32_t j = 0;
        for (; j + 8 <= N; j += 8)
        {
            __m256 const sigma = _mm256_loadu_ps(basisSigma + j);
            __m256 const diff = _mm256_sub_ps(tv, _mm256_loadu_ps(basisMu + j)); // ltmPsiExponent
            __m256 const negSq = _mm256_xor_ps(_mm256_mul_ps(diff, diff), signBit);
            __m256 const exponent = _mm256_div_ps(negSq, _mm256_mul_ps(_mm256_mul_ps(two, sigma), sigma));
            __m256 const live = _mm256_cmp_ps(exponent, zeroBelow, _CMP_NLT_UQ); // ltmExp calls expf (or NaN)
            float e[8];
            _mm256_storeu_ps(e, exponent);
            for (int bits = _mm256_movemask_ps(live); bits != 0; bits &= bits - 1)
            {
                int const l = __builtin_ctz(static_cast<unsigned>(bits));
                e[l] = ltmExp(e[l]);
            }
            __m256 const ex = _mm256_and_ps(_mm256_loadu_ps(e), live); // +0 where ltmExp underflows
            _mm256_storeu_ps(psi + j, _mm256_div_ps(ex, _mm256_mul_ps(sigma, sqrt2Pi))); // / ltmPsiNorm
        }
        psiScalar(j, N, t, basisMu, basisSigma, psi);
    }

    // Tiles of 4 rows x 2 vectors (8 accumulators, 2 X vectors, 1 broadcast of AVX2's 16 registers): faster here
    // than 2 x 4 or 4 x 3 (measured on an AMD EPYC, Zen 4).
    static constexpr int32_t kRows = 4;
    static constexpr int kVec = 2;
    static constexpr int32_t kCols = 8 * kVec; // columns per tile

    // All cn <= kCols columns at once: full vectors by plain loads, the last partial one by a masked load and store
    // (nothing past it is read or written).
    template <int R>
    RRWKV_LTM_AVX2 static void tile(Terms const* terms, int32_t nTerms, int64_t aRowStep, int32_t e, int32_t c0,
        int32_t cn, float* out)
    {
        int32_t const full = cn / 8;
        __m256i const tailMask
            = _mm256_cmpgt_epi32(_mm256_set1_epi32(cn % 8), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        __m256 acc[R][kVec];
        RRWKV_LTM_CPU_UNROLL
        for (int r = 0; r < R; ++r)
        {
            RRWKV_LTM_CPU_UNROLL
            for (int u = 0; u < kVec; ++u)
            {
                acc[r][u] = _mm256_setzero_ps();
            }
        }
        for (int32_t t = 0; t < nTerms; ++t)
        {
            Terms const run = terms[t];
            for (int32_t k = 0; k < run.count; ++k)
            {
                float const* x = run.x + static_cast<int64_t>(k) * e + c0;
                __m256 xv[kVec];
                RRWKV_LTM_CPU_UNROLL
                for (int u = 0; u < kVec; ++u)
                {
                    xv[u] = u < full ? _mm256_loadu_ps(x + 8 * u)
                                     : (u == full ? _mm256_maskload_ps(x + 8 * u, tailMask) : _mm256_setzero_ps());
                }
                RRWKV_LTM_CPU_UNROLL
                for (int r = 0; r < R; ++r)
                {
                    __m256 const a = _mm256_broadcast_ss(run.a + k * run.aStep + r * aRowStep);
                    RRWKV_LTM_CPU_UNROLL
                    for (int u = 0; u < kVec; ++u)
                    {
                        acc[r][u] = _mm256_add_ps(acc[r][u], _mm256_mul_ps(a, xv[u])); // ltmDotAdd
                    }
                }
            }
        }
        RRWKV_LTM_CPU_UNROLL
        for (int r = 0; r < R; ++r)
        {
            float* o = out + static_cast<int64_t>(r) * e + c0;
            RRWKV_LTM_CPU_UNROLL
            for (int u = 0; u < kVec; ++u)
            {
                if (u < full)
                {
                    _mm256_storeu_ps(o + 8 * u, acc[r][u]);
                }
                else if (u == full)
                {
                    _mm256_maskstore_ps(o + 8 * u, tailMask, acc[r][u]);
                }
            }
        }
    }
};

// ---- AVX-512F ----

// Taken at CpuIsa::kAvx512, which also requires AVX512BW/VL (unused here).
#define RRWKV_LTM_AVX512 __attribute__((target("avx512f")))

struct Avx512
{
    // Tiles of 4 rows x 4 vectors (16 accumulators): faster here than 8 x 2, 8 x 3 or 6 x 4 (measured on an AMD EPYC,
    // Zen 4; a slice's 16 rows split evenly).
    static constexpr int32_t kRows = 4;
    static constexpr int kVec = 4;
    static constexpr int32_t kCols = 16 * kVec; // columns per tile

    // The n (clamped to [0, 16]) lowest lanes.
    RRWKV_LTM_AVX512 static __mmask16 lanes(int32_t n)
    {
        return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << std::max(n, 0)) - 1u);
    }

    // ltmPsi a vector at a time: ltmExp's comparison for all lanes, expf only in the lanes that do not underflow.
    RRWKV_LTM_AVX512 static void psiRow(float t, int32_t N, float const* basisMu, float const* basisSigma, float* psi)
    {
        __m512 const tv = _mm512_set1_ps(t);
        __m512 const two = _mm512_set1_ps(2.F);
        __m512 const sqrt2Pi = _mm512_set1_ps(kLTM_SQRT_2PI);
        __m512 const zeroBelow = _mm512_set1_ps(kLTM_EXP_ZERO_BELOW);
        for (int32_t j = 0; j < N; j += 16)
        {
            __mmask16 const mask = lanes(N - j);
            __m512 const sigma = _mm512_maskz_loadu_ps(mask, basisSigma + j);
            __m512 const diff = _mm512_sub_ps(tv, _mm512_maskz_loadu_ps(mask, basisMu + j)); // ltmPsiExponent
            __m512 const negSq = _mm512_castsi512_ps(
                _mm512_xor_si512(_mm512_castps_si512(_mm512_mul_ps(diff, diff)), _mm512_set1_epi32(INT32_MIN)));
            __m512 const exponent = _mm512_div_ps(negSq, _mm512_mul_ps(_mm512_mul_ps(two, sigma), sigma));
            __mmask16 const live = _mm512_mask_cmp_ps_mask(mask, exponent, zeroBelow, _CMP_NLT_UQ); // ltmExp: expf
            float e[16];
            _mm512_storeu_ps(e, exponent);
            for (unsigned bits = live; bits != 0; bits &= bits - 1)
            {
                int const l = __builtin_ctz(bits);
                e[l] = ltmExp(e[l]);
            }
            __m512 const ex = _mm512_maskz_loadu_ps(live, e); // +0 where ltmExp underflows
            _mm512_mask_storeu_ps(psi + j, mask, _mm512_div_ps(ex, _mm512_mul_ps(sigma, sqrt2Pi))); // / ltmPsiNorm
        }
    }

    // All cn <= kCols columns at once, the last vector masked (nothing past it is read or written).
    template <int R>
    RRWKV_LTM_AVX512 static void tile(Terms const* terms, int32_t nTerms, int64_t aRowStep, int32_t e, int32_t c0,
        int32_t cn, float* out)
    {
        int32_t const nv = (cn + 15) / 16;
        __mmask16 mask[kVec];
        __m512 acc[R][kVec];
        RRWKV_LTM_CPU_UNROLL
        for (int u = 0; u < kVec; ++u)
        {
            mask[u] = lanes(cn - 16 * u);
            RRWKV_LTM_CPU_UNROLL
            for (int r = 0; r < R; ++r)
            {
                acc[r][u] = _mm512_setzero_ps();
            }
        }
        for (int32_t t = 0; t < nTerms; ++t)
        {
            Terms const run = terms[t];
            for (int32_t k = 0; k < run.count; ++k)
            {
                float const* x = run.x + static_cast<int64_t>(k) * e + c0;
                __m512 xv[kVec];
                RRWKV_LTM_CPU_UNROLL
                for (int u = 0; u < kVec; ++u)
                {
                    xv[u] = u < nv ? _mm512_maskz_loadu_ps(mask[u], x + 16 * u) : _mm512_setzero_ps();
                }
                RRWKV_LTM_CPU_UNROLL
                for (int r = 0; r < R; ++r)
                {
                    __m512 const a = _mm512_set1_ps(run.a[k * run.aStep + r * aRowStep]);
                    RRWKV_LTM_CPU_UNROLL
                    for (int u = 0; u < kVec; ++u)
                    {
                        acc[r][u] = _mm512_add_ps(acc[r][u], _mm512_mul_ps(a, xv[u])); // ltmDotAdd
                    }
                }
            }
        }
        RRWKV_LTM_CPU_UNROLL
        for (int r = 0; r < R; ++r)
        {
            RRWKV_LTM_CPU_UNROLL
            for (int u = 0; u < kVec; ++u)
            {
                if (u < nv)
                {
                    _mm512_mask_storeu_ps(out + static_cast<int64_t>(r) * e + c0 + 16 * u, mask[u], acc[r][u]);
                }
            }
        }
    }
};

// ---- the phases, over one path ----

// out [rows, e] = the product over `terms` (A's row r at a + r * aRowStep): column blocks outermost, then tiles of
// Isa::kRows rows (the last rows one at a time).
template <class Isa>
void product(Terms const* terms, int32_t nTerms, int64_t aRowStep, int32_t rows, int32_t e, float* out)
{
    for (int32_t c0 = 0; c0 < e; c0 += Isa::kCols)
    {
        int32_t const cn = std::min(Isa::kCols, e - c0);
        for (int32_t r0 = 0; r0 < rows;)
        {
            int32_t const tileRows = rows - r0 >= Isa::kRows ? Isa::kRows : 1;
            Terms shifted[2];
            for (int32_t t = 0; t < nTerms; ++t)
            {
                shifted[t] = terms[t];
                shifted[t].a += r0 * aRowStep;
            }
            float* o = out + static_cast<int64_t>(r0) * e;
            if (tileRows == Isa::kRows)
            {
                Isa::template tile<Isa::kRows>(shifted, nTerms, aRowStep, e, c0, cn, o);
            }
            else
            {
                Isa::template tile<1>(shifted, nTerms, aRowStep, e, c0, cn, o);
            }
            r0 += tileRows;
        }
    }
}

template <class Isa>
void oldOn(int32_t N, int32_t e, int32_t M, int32_t NB, int32_t sticky, float const* bPast, int64_t const* mode,
    float const* sSamp, float const* hist, float const* basisMu, float const* basisSigma, float* xOld,
    int64_t sliceBegin, int64_t sliceEnd)
{
    int64_t const blocks = (M + kLTM_CPU_ROWS - 1) / kLTM_CPU_ROWS;
    std::vector<float> sRows(sticky ? static_cast<size_t>(kLTM_CPU_ROWS) * N : 0);
    for (int64_t slice = sliceBegin; slice < sliceEnd; ++slice)
    {
        int64_t const b = slice / blocks;
        int32_t const m0 = static_cast<int32_t>(slice % blocks) * kLTM_CPU_ROWS;
        int32_t const rows = std::min(kLTM_CPU_ROWS, M - m0);
        if (ltmRowMode(mode[b]) != kLTM_UPDATE)
        {
            continue; // no X_old needed, and no quantile search
        }
        float const* s = sSamp + static_cast<int64_t>(m0) * N;
        if (sticky)
        {
            for (int32_t r = 0; r < rows; ++r)
            {
                Isa::psiRow(ltmQuantilePosition(hist + b * NB, NB, m0 + r, M), N, basisMu, basisSigma,
                    sRows.data() + static_cast<size_t>(r) * N);
            }
            s = sRows.data();
        }
        Terms const terms{s, 1, bPast + b * N * e, N};
        product<Isa>(&terms, 1, N, rows, e, xOld + (b * M + m0) * e);
    }
}

template <class Isa>
void newOn(int32_t N, int32_t e, int32_t L, int32_t M, float const* bPast, float const* xNew, int64_t const* mode,
    float const* G, float const* gInf, float const* xOld, float* bNew, int64_t sliceBegin, int64_t sliceEnd)
{
    int64_t const blocks = (N + kLTM_CPU_ROWS - 1) / kLTM_CPU_ROWS;
    std::vector<float> aPack;
    for (int64_t slice = sliceBegin; slice < sliceEnd; ++slice)
    {
        int64_t const b = slice / blocks;
        int32_t const n0 = static_cast<int32_t>(slice % blocks) * kLTM_CPU_ROWS;
        int32_t const rows = std::min(kLTM_CPU_ROWS, N - n0);
        int64_t const first = (b * N + n0) * e; // B_new[b, n0, 0]
        int32_t const rowMode = ltmRowMode(mode[b]);
        if (rowMode == kLTM_KEEP)
        {
            std::copy(bPast + first, bPast + first + static_cast<int64_t>(rows) * e, bNew + first);
            continue;
        }
        aPack.resize(static_cast<size_t>(M + L) * kLTM_CPU_ROWS);
        // The slice's columns of G_inf (or G) packed k-major, kLTM_CPU_ROWS to a row: the tiles then read the
        // coefficients contiguously instead of one cache line (and page) per k.
        bool const update = rowMode == kLTM_UPDATE;
        float const* a = update ? gInf : G;
        int32_t const K = update ? M + L : L;
        for (int32_t k = 0; k < K; ++k)
        {
            float const* src = a + static_cast<int64_t>(k) * N + n0;
            std::copy(src, src + rows, aPack.data() + static_cast<size_t>(k) * kLTM_CPU_ROWS);
        }
        float const* xn = xNew + b * L * e;
        if (update)
        {
            Terms const terms[2] = {{aPack.data(), kLTM_CPU_ROWS, xOld + b * M * e, M},
                {aPack.data() + static_cast<size_t>(M) * kLTM_CPU_ROWS, kLTM_CPU_ROWS, xn, L}};
            product<Isa>(terms, 2, 1, rows, e, bNew + first);
        }
        else
        {
            Terms const terms{aPack.data(), kLTM_CPU_ROWS, xn, L};
            product<Isa>(&terms, 1, 1, rows, e, bNew + first);
        }
    }
}

int64_t sliceEndOr(int64_t sliceEnd, int64_t count)
{
    return sliceEnd < 0 ? count : std::min(sliceEnd, count);
}

} // namespace

int64_t ltmUpdateOldSliceCount(int32_t B, int32_t M)
{
    return B <= 0 || M <= 0 ? 0 : static_cast<int64_t>(B) * ((M + kLTM_CPU_ROWS - 1) / kLTM_CPU_ROWS);
}

int64_t ltmUpdateNewSliceCount(int32_t B, int32_t N)
{
    return B <= 0 || N <= 0 ? 0 : static_cast<int64_t>(B) * ((N + kLTM_CPU_ROWS - 1) / kLTM_CPU_ROWS);
}

void ltmUpdateOldCpu(int32_t B, int32_t N, int32_t e, int32_t M, int32_t NB, int32_t sticky, float const* bPast,
    int64_t const* mode, float const* sSamp, float const* hist, float const* basisMu, float const* basisSigma,
    float* xOld, CpuIsa maxIsa, int64_t sliceBegin, int64_t sliceEnd)
{
    int64_t const end = sliceEndOr(sliceEnd, ltmUpdateOldSliceCount(B, M));
    switch (std::min(maxIsa, cpuIsa()))
    {
    case CpuIsa::kAvx512:
        oldOn<Avx512>(N, e, M, NB, sticky, bPast, mode, sSamp, hist, basisMu, basisSigma, xOld, sliceBegin, end);
        break;
    case CpuIsa::kAvx2:
        oldOn<Avx2>(N, e, M, NB, sticky, bPast, mode, sSamp, hist, basisMu, basisSigma, xOld, sliceBegin, end);
        break;
    case CpuIsa::kPortable:
        oldOn<Portable>(N, e, M, NB, sticky, bPast, mode, sSamp, hist, basisMu, basisSigma, xOld, sliceBegin, end);
        break;
    }
}

void ltmUpdateNewCpu(int32_t B, int32_t N, int32_t e, int32_t L, int32_t M, float const* bPast, float const* xNew,
    int64_t const* mode, float const* G, float const* gInf, float const* xOld, float* bNew, CpuIsa maxIsa,
    int64_t sliceBegin, int64_t sliceEnd)
{
    int64_t const end = sliceEndOr(sliceEnd, ltmUpdateNewSliceCount(B, N));
    switch (std::min(maxIsa, cpuIsa()))
    {
    case CpuIsa::kAvx512: newOn<Avx512>(N, e, L, M, bPast, xNew, mode, G, gInf, xOld, bNew, sliceBegin, end); break;
    case CpuIsa::kAvx2: newOn<Avx2>(N, e, L, M, bPast, xNew, mode, G, gInf, xOld, bNew, sliceBegin, end); break;
    case CpuIsa::kPortable:
        newOn<Portable>(N, e, L, M, bPast, xNew, mode, G, gInf, xOld, bNew, sliceBegin, end);
        break;
    }
}

void ltmUpdateForwardCpu(int32_t B, int32_t N, int32_t e, int32_t L, int32_t M, int32_t NB, int32_t sticky,
    float const* bPast, float const* xNew, int64_t const* mode, float const* G, float const* gInf,
    float const* sSamp, float const* hist, float const* basisMu, float const* basisSigma, float* xOld, float* bNew,
    CpuIsa maxIsa)
{
    ltmUpdateOldCpu(B, N, e, M, NB, sticky, bPast, mode, sSamp, hist, basisMu, basisSigma, xOld, maxIsa);
    ltmUpdateNewCpu(B, N, e, L, M, bPast, xNew, mode, G, gInf, xOld, bNew, maxIsa);
}

} // namespace rrwkv
