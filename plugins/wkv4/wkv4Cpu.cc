/*
 * CPU kernels of rrwkv::WKV4 (wkv4Cpu.h): the recurrence of wkv4SliceCpu over the requested slices, with nothing
 * between tokens, and the paths of a token (wkv4RowCpu). The portable path is wkv4Step of wkv4Math.h; the SIMD
 * paths are wkv4Step and wkv4Exp written out in intrinsics, one channel per lane, operation for operation (same
 * operands in the same order: max_ps(a, b) is wkv4Max(a, b), min_ps(a, b) wkv4Min(a, b), fmadd_ps is fmaf), so they
 * return the portable path's bits.
 */
#include "wkv4/wkv4Cpu.h"

#include "common/noFpContract.h"
#include "common/simdIntrinsics.h"
#include "wkv4/wkv4Math.h"

namespace rrwkv
{
namespace
{

// ---- portable ----

template <typename T>
void rowPortable(int32_t n, float const* w, float const* u, T const* k, T const* v, float const* aaIn,
    float const* bbIn, float const* ppIn, T* y, float* aaOut, float* bbOut, float* ppOut)
{
    for (int32_t j = 0; j < n; ++j)
    {
        float aa = aaIn[j];
        float bb = bbIn[j];
        float pp = ppIn[j];
        y[j] = fromFloat<T>(wkv4Step(w[j], u[j], toFloat(k[j]), toFloat(v[j]), aa, bb, pp));
        aaOut[j] = aa;
        bbOut[j] = bb;
        ppOut[j] = pp;
    }
}

// ---- AVX2 + FMA + F16C: 8 channels a vector ----

#define RRWKV_WKV4_AVX2 __attribute__((target("avx2,fma,f16c")))

struct Avx2
{
    static constexpr int32_t kLanes = 8;

    RRWKV_WKV4_AVX2 static __m256 load(float const* p)
    {
        return _mm256_loadu_ps(p);
    }

    // vcvtph2ps returns halfBitsToFloat's bits, but for a signalling NaN, which it quiets (as the first operation
    // on it would).
    RRWKV_WKV4_AVX2 static __m256 load(HostHalf const* p)
    {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<__m128i const*>(p)));
    }

    RRWKV_WKV4_AVX2 static void store(float* p, __m256 x)
    {
        _mm256_storeu_ps(p, x);
    }

    // vcvtps2ph rounding to nearest even: floatToHalfBits's bits for every float.
    RRWKV_WKV4_AVX2 static void store(HostHalf* p, __m256 x)
    {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
    }

    RRWKV_WKV4_AVX2 static __m256 pow2(__m256i n)
    {
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
    }

    RRWKV_WKV4_AVX2 static __m256 exp(__m256 x)
    {
        __m256 const xc = _mm256_min_ps(_mm256_set1_ps(kWKV4_EXP_HI), _mm256_max_ps(_mm256_set1_ps(kWKV4_EXP_LO), x));
        __m256 const t = _mm256_fmadd_ps(xc, _mm256_set1_ps(kWKV4_EXP_LOG2E), _mm256_set1_ps(kWKV4_EXP_ROUND));
        __m256 const n = _mm256_sub_ps(t, _mm256_set1_ps(kWKV4_EXP_ROUND));
        __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-kWKV4_EXP_LN2_HI), xc);
        r = _mm256_fmadd_ps(n, _mm256_set1_ps(-kWKV4_EXP_LN2_LO), r);
        __m256 er = _mm256_set1_ps(kWKV4_EXP_C6);
        er = _mm256_fmadd_ps(er, r, _mm256_set1_ps(kWKV4_EXP_C5));
        er = _mm256_fmadd_ps(er, r, _mm256_set1_ps(kWKV4_EXP_C4));
        er = _mm256_fmadd_ps(er, r, _mm256_set1_ps(kWKV4_EXP_C3));
        er = _mm256_fmadd_ps(er, r, _mm256_set1_ps(kWKV4_EXP_C2));
        er = _mm256_fmadd_ps(er, r, _mm256_set1_ps(1.0F));
        er = _mm256_fmadd_ps(er, r, _mm256_set1_ps(1.0F));
        __m256i const ni = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(kWKV4_EXP_ROUND_BITS));
        __m256i const n1 = _mm256_srai_epi32(ni, 1);
        __m256 const ex = _mm256_mul_ps(_mm256_mul_ps(er, pow2(n1)), pow2(_mm256_sub_epi32(ni, n1)));
        // x < LO ? +0 : ex; all-ones lanes where not x < LO (NaN included)
        return _mm256_and_ps(_mm256_cmp_ps(x, _mm256_set1_ps(kWKV4_EXP_LO), _CMP_NLT_UQ), ex);
    }

    RRWKV_WKV4_AVX2 static __m256 step(__m256 w, __m256 u, __m256 kt, __m256 vt, __m256& aa, __m256& bb, __m256& pp)
    {
        __m256 ww = _mm256_add_ps(u, kt);
        __m256 p = _mm256_max_ps(pp, ww);
        __m256 e1 = exp(_mm256_sub_ps(pp, p));
        __m256 e2 = exp(_mm256_sub_ps(ww, p));
        __m256 const wkv = _mm256_div_ps(_mm256_add_ps(_mm256_mul_ps(e1, aa), _mm256_mul_ps(e2, vt)),
            _mm256_add_ps(_mm256_mul_ps(e1, bb), e2));
        ww = _mm256_add_ps(w, pp);
        p = _mm256_max_ps(ww, kt);
        e1 = exp(_mm256_sub_ps(ww, p));
        e2 = exp(_mm256_sub_ps(kt, p));
        aa = _mm256_add_ps(_mm256_mul_ps(e1, aa), _mm256_mul_ps(e2, vt));
        bb = _mm256_add_ps(_mm256_mul_ps(e1, bb), e2);
        pp = p;
        return wkv;
    }

    // Whole vectors, then the last n % 8 channels on the portable path.
    template <typename T>
    RRWKV_WKV4_AVX2 static void row(int32_t n, float const* w, float const* u, T const* k, T const* v,
        float const* aaIn, float const* bbIn, float const* ppIn, T* y, float* aaOut, float* bbOut, float* ppOut)
    {
        int32_t j = 0;
        for (; j + kLanes <= n; j += kLanes)
        {
            __m256 aa = load(aaIn + j);
            __m256 bb = load(bbIn + j);
            __m256 pp = load(ppIn + j);
            store(y + j, step(load(w + j), load(u + j), load(k + j), load(v + j), aa, bb, pp));
            store(aaOut + j, aa);
            store(bbOut + j, bb);
            store(ppOut + j, pp);
        }
        rowPortable<T>(n - j, w + j, u + j, k + j, v + j, aaIn + j, bbIn + j, ppIn + j, y + j, aaOut + j, bbOut + j,
            ppOut + j);
    }

    RRWKV_WKV4_AVX2 static void exps(int64_t n, float const* x, float* y)
    {
        int64_t i = 0;
        for (; i + kLanes <= n; i += kLanes)
        {
            store(y + i, exp(load(x + i)));
        }
        for (; i < n; ++i)
        {
            y[i] = wkv4Exp(x[i]);
        }
    }
};

// ---- AVX-512 (F, BW, VL): 16 channels a vector, the last one masked ----

#define RRWKV_WKV4_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

struct Avx512
{
    static constexpr int32_t kLanes = 16;

    // The n (<= 16) lowest lanes.
    RRWKV_WKV4_AVX512 static __mmask16 lanes(int64_t n)
    {
        return n >= kLanes ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
    }

    // 16 consecutive elements under `mask` as fp32 (0 where masked off; nothing past the mask is read).
    RRWKV_WKV4_AVX512 static __m512 load(float const* p, __mmask16 mask)
    {
        return _mm512_maskz_loadu_ps(mask, p);
    }

    // As in Avx2: halfBitsToFloat's bits but for signalling NaNs, which come out quiet.
    RRWKV_WKV4_AVX512 static __m512 load(HostHalf const* p, __mmask16 mask)
    {
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, p));
    }

    RRWKV_WKV4_AVX512 static void store(float* p, __mmask16 mask, __m512 x)
    {
        _mm512_mask_storeu_ps(p, mask, x);
    }

    RRWKV_WKV4_AVX512 static void store(HostHalf* p, __mmask16 mask, __m512 x)
    {
        _mm256_mask_storeu_epi16(p, mask, _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
    }

    RRWKV_WKV4_AVX512 static __m512 pow2(__m512i n)
    {
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n, _mm512_set1_epi32(127)), 23));
    }

    RRWKV_WKV4_AVX512 static __m512 exp(__m512 x)
    {
        __m512 const xc = _mm512_min_ps(_mm512_set1_ps(kWKV4_EXP_HI), _mm512_max_ps(_mm512_set1_ps(kWKV4_EXP_LO), x));
        __m512 const t = _mm512_fmadd_ps(xc, _mm512_set1_ps(kWKV4_EXP_LOG2E), _mm512_set1_ps(kWKV4_EXP_ROUND));
        __m512 const n = _mm512_sub_ps(t, _mm512_set1_ps(kWKV4_EXP_ROUND));
        __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-kWKV4_EXP_LN2_HI), xc);
        r = _mm512_fmadd_ps(n, _mm512_set1_ps(-kWKV4_EXP_LN2_LO), r);
        __m512 er = _mm512_set1_ps(kWKV4_EXP_C6);
        er = _mm512_fmadd_ps(er, r, _mm512_set1_ps(kWKV4_EXP_C5));
        er = _mm512_fmadd_ps(er, r, _mm512_set1_ps(kWKV4_EXP_C4));
        er = _mm512_fmadd_ps(er, r, _mm512_set1_ps(kWKV4_EXP_C3));
        er = _mm512_fmadd_ps(er, r, _mm512_set1_ps(kWKV4_EXP_C2));
        er = _mm512_fmadd_ps(er, r, _mm512_set1_ps(1.0F));
        er = _mm512_fmadd_ps(er, r, _mm512_set1_ps(1.0F));
        __m512i const ni = _mm512_sub_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(kWKV4_EXP_ROUND_BITS));
        __m512i const n1 = _mm512_srai_epi32(ni, 1);
        // x < LO ? +0 : ex, the second product zeroed in the lanes where x < LO (not NaN's)
        __mmask16 const keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(kWKV4_EXP_LO), _CMP_NLT_UQ);
        return _mm512_maskz_mul_ps(keep, _mm512_mul_ps(er, pow2(n1)), pow2(_mm512_sub_epi32(ni, n1)));
    }

    RRWKV_WKV4_AVX512 static __m512 step(__m512 w, __m512 u, __m512 kt, __m512 vt, __m512& aa, __m512& bb,
        __m512& pp)
    {
        __m512 ww = _mm512_add_ps(u, kt);
        __m512 p = _mm512_max_ps(pp, ww);
        __m512 e1 = exp(_mm512_sub_ps(pp, p));
        __m512 e2 = exp(_mm512_sub_ps(ww, p));
        __m512 const wkv = _mm512_div_ps(_mm512_add_ps(_mm512_mul_ps(e1, aa), _mm512_mul_ps(e2, vt)),
            _mm512_add_ps(_mm512_mul_ps(e1, bb), e2));
        ww = _mm512_add_ps(w, pp);
        p = _mm512_max_ps(ww, kt);
        e1 = exp(_mm512_sub_ps(ww, p));
        e2 = exp(_mm512_sub_ps(kt, p));
        aa = _mm512_add_ps(_mm512_mul_ps(e1, aa), _mm512_mul_ps(e2, vt));
        bb = _mm512_add_ps(_mm512_mul_ps(e1, bb), e2);
        pp = p;
        return wkv;
    }

    // Masked-off lanes compute on zeros and are never stored.
    template <typename T>
    RRWKV_WKV4_AVX512 static void row(int32_t n, float const* w, float const* u, T const* k, T const* v,
        float const* aaIn, float const* bbIn, float const* ppIn, T* y, float* aaOut, float* bbOut, float* ppOut)
    {
        for (int32_t j = 0; j < n; j += kLanes)
        {
            __mmask16 const m = lanes(n - j);
            __m512 aa = load(aaIn + j, m);
            __m512 bb = load(bbIn + j, m);
            __m512 pp = load(ppIn + j, m);
            store(y + j, m, step(load(w + j, m), load(u + j, m), load(k + j, m), load(v + j, m), aa, bb, pp));
            store(aaOut + j, m, aa);
            store(bbOut + j, m, bb);
            store(ppOut + j, m, pp);
        }
    }

    RRWKV_WKV4_AVX512 static void exps(int64_t n, float const* x, float* y)
    {
        for (int64_t i = 0; i < n; i += kLanes)
        {
            __mmask16 const m = lanes(n - i);
            store(y + i, m, exp(load(x + i, m)));
        }
    }
};

} // namespace

int64_t wkv4CpuSliceCount(int32_t B, int32_t C)
{
    int64_t const blocks = (static_cast<int64_t>(C) + kWKV4_CPU_CHANNELS - 1) / kWKV4_CPU_CHANNELS;
    return C <= 0 || B <= 0 ? 0 : static_cast<int64_t>(B) * blocks;
}

template <typename T>
void wkv4RowCpu(CpuIsa isa, int32_t n, float const* w, float const* u, T const* k, T const* v, float const* aaIn,
    float const* bbIn, float const* ppIn, T* y, float* aaOut, float* bbOut, float* ppOut)
{
    switch (isa)
    {
    case CpuIsa::kAvx512: Avx512::row<T>(n, w, u, k, v, aaIn, bbIn, ppIn, y, aaOut, bbOut, ppOut); break;
    case CpuIsa::kAvx2: Avx2::row<T>(n, w, u, k, v, aaIn, bbIn, ppIn, y, aaOut, bbOut, ppOut); break;
    case CpuIsa::kPortable: rowPortable<T>(n, w, u, k, v, aaIn, bbIn, ppIn, y, aaOut, bbOut, ppOut); break;
    }
}

template <typename T>
void wkv4ForwardCpu(int32_t B, int32_t T_, int32_t C, float const* w, float const* u, T const* k, T const* v,
    float const* aaIn, float const* bbIn, float const* ppIn, T* y, float* aaOut, float* bbOut, float* ppOut,
    CpuIsa maxIsa, int64_t sliceBegin, int64_t sliceEnd)
{
    CpuIsa const isa = std::min(maxIsa, cpuIsa());
    int64_t const end = wkv4CpuSliceEnd(sliceEnd, B, C);
    for (int64_t i = sliceBegin; i < end; ++i)
    {
        wkv4SliceCpu<T>(wkv4CpuSlice(i, C), T_, C, w, u, k, v, aaIn, bbIn, ppIn, y, aaOut, bbOut, ppOut,
            [](int32_t, float*, float*, float*) {}, isa);
    }
}

void wkv4ExpCpu(CpuIsa maxIsa, int64_t n, float const* x, float* y)
{
    switch (std::min(maxIsa, cpuIsa()))
    {
    case CpuIsa::kAvx512: Avx512::exps(n, x, y); break;
    case CpuIsa::kAvx2: Avx2::exps(n, x, y); break;
    case CpuIsa::kPortable: std::transform(x, x + n, y, wkv4Exp); break;
    }
}

#define RRWKV_WKV4_CPU_INSTANTIATE(T)                                                                                 \
    template void wkv4RowCpu<T>(CpuIsa, int32_t, float const*, float const*, T const*, T const*, float const*,       \
        float const*, float const*, T*, float*, float*, float*);                                                      \
    template void wkv4ForwardCpu<T>(int32_t, int32_t, int32_t, float const*, float const*, T const*, T const*,        \
        float const*, float const*, float const*, T*, float*, float*, float*, CpuIsa, int64_t, int64_t);

RRWKV_WKV4_CPU_INSTANTIATE(float)
RRWKV_WKV4_CPU_INSTANTIATE(HostHalf)

} // namespace rrwkv
