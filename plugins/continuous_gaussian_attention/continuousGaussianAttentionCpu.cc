/*
 * CPU kernel of rrwkv::ContinuousGaussianAttention (continuousGaussianAttentionCpu.h). All arithmetic is in
 * continuousGaussianAttentionMath.h; the paths differ only in how many terms they compute at once:
 * - scores: a vector holds the 16 strided partial sums over k of one K_j·q (K_j and q loaded as they lie in memory);
 *   16 such vectors reduce to one vector of 16 scores by the pairs of cgaScoreReduce; each load of K_j serves a few
 *   query rows of its head;
 * - the two dots over j: 32 strided partial sums added in lane order (plain C++, the same loop on every path);
 * - r_j: a vector at a time, expf per element (cgaExp) where it does not underflow;
 * - ctx = sum_j r_j V_j: one vector of columns per accumulator, j in order; a block of V serves a few rows per pass.
 */
#include "continuous_gaussian_attention/continuousGaussianAttentionCpu.h"

#include "common/noFpContract.h"
#include "common/simdIntrinsics.h"
#include "continuous_gaussian_attention/continuousGaussianAttentionMath.h"

#include <algorithm>
#include <vector>

namespace rrwkv
{
namespace
{

constexpr int32_t kParts = kCGA_SCORE_PARTS; // partial sums per score: one AVX-512 vector, two AVX2 vectors

// ---- shared scalar pieces ----

// out[c] = sum_j r_j v[j * d + c] for c in [cBegin, cEnd), j in order.
template <typename T>
void ctxColumnsScalar(int32_t N, int32_t d, float const* r, T const* v, int32_t cBegin, int32_t cEnd, float* out)
{
    std::fill(out + cBegin, out + cEnd, 0.F);
    for (int32_t j = 0; j < N; ++j)
    {
        T const* vRow = v + static_cast<int64_t>(j) * d;
        for (int32_t c = cBegin; c < cEnd; ++c)
        {
            out[c] = cgaCtxAdd(out[c], r[j], toFloat(vRow[c]));
        }
    }
}

// r[j] = cgaR for j in [jBegin, N).
inline void rScalar(int32_t jBegin, int32_t N, float mu, float sigma2, float const* basisMu, float const* basisSigma,
    float* r)
{
    for (int32_t j = jBegin; j < N; ++j)
    {
        r[j] = cgaR(mu, sigma2, basisMu[j], basisSigma[j]);
    }
}

// ---- portable ----

struct Portable
{
    // n I/O elements to fp32 and back (fromFloat rounds to nearest even).
    template <typename T>
    static void toFloats(T const* src, int32_t n, float* dst)
    {
        for (int32_t i = 0; i < n; ++i)
        {
            dst[i] = toFloat(src[i]);
        }
    }

    template <typename T>
    static void fromFloats(float const* src, int32_t n, T* dst)
    {
        for (int32_t i = 0; i < n; ++i)
        {
            dst[i] = fromFloat<T>(src[i]);
        }
    }

    static constexpr int32_t kRows = 1; // query rows per pass over a block of K

    // s[r * sStride + jj] = scale * (K_jj · q_r) for jj < jn, q_r = qq + r * qStride.
    template <int R, typename T>
    static void scoreRows(T const* kBlk, int32_t jn, int32_t d, float const* qq, int32_t qStride, float scale,
        float* s, int64_t sStride)
    {
        for (int r = 0; r < R; ++r)
        {
            for (int32_t jj = 0; jj < jn; ++jj)
            {
                T const* kRow = kBlk + static_cast<int64_t>(jj) * d;
                float const* qRow = qq + r * qStride;
                float part[kParts] = {};
                for (int32_t k0 = 0; k0 < d; k0 += kParts)
                {
                    int32_t const n = std::min(kParts, d - k0);
                    for (int32_t u = 0; u < n; ++u) // partial sum u takes k = u, u + 16, ... in order
                    {
                        part[u] = cgaScoreDot(part[u], toFloat(kRow[k0 + u]), qRow[k0 + u]);
                    }
                }
                s[r * sStride + jj] = cgaScore(scale, cgaScoreReduce(part));
            }
        }
    }

    static void rRow(int32_t N, float mu, float sigma2, float const* basisMu, float const* basisSigma, float* r)
    {
        rScalar(0, N, mu, sigma2, basisMu, basisSigma, r);
    }

    static constexpr int32_t kCtxRows = 1; // query rows per pass over a block of V

    // out[r * kCGA_CPU_COLS + c] = sum_j r_r[j] v[j * d + c] for c < cn, r < R, with r_r = rw + r * rStride.
    template <int R, typename T>
    static void ctxRows(int32_t N, int32_t d, float const* rw, int64_t rStride, T const* v, int32_t cn, float* out)
    {
        for (int r = 0; r < R; ++r)
        {
            ctxColumnsScalar(N, d, rw + r * rStride, v, 0, cn, out + r * kCGA_CPU_COLS);
        }
    }
};

// The SIMD paths keep their accumulators in arrays of vectors indexed by compile-time constants; loops over them are
// unrolled completely, so that the arrays live in registers.
#define RRWKV_CGA_CPU_UNROLL _Pragma("GCC unroll 16")

// ---- AVX2 + F16C (no FMA: nothing to contract) ----

// Taken at CpuIsa::kAvx2, which also requires FMA (unused here).
#define RRWKV_CGA_AVX2 __attribute__((target("avx2,f16c")))

struct Avx2
{
    RRWKV_CGA_AVX2 static __m256 load8(float const* p)
    {
        return _mm256_loadu_ps(p);
    }

    // vcvtph2ps returns halfBitsToFloat's bits, but for a signalling NaN, which it quiets (as the first product
    // would); vcvtps2ph rounding to nearest even returns floatToHalfBits's bits for every float (both checked
    // exhaustively).
    RRWKV_CGA_AVX2 static __m256 load8(HostHalf const* p)
    {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<__m128i const*>(p)));
    }

    static void toFloats(float const* src, int32_t n, float* dst)
    {
        std::copy(src, src + n, dst);
    }

    RRWKV_CGA_AVX2 static void toFloats(HostHalf const* src, int32_t n, float* dst)
    {
        int32_t i = 0;
        for (; i + 8 <= n; i += 8)
        {
            _mm256_storeu_ps(dst + i, load8(src + i));
        }
        Portable::toFloats(src + i, n - i, dst + i);
    }

    static void fromFloats(float const* src, int32_t n, float* dst)
    {
        std::copy(src, src + n, dst);
    }

    RRWKV_CGA_AVX2 static void fromFloats(float const* src, int32_t n, HostHalf* dst)
    {
        int32_t i = 0;
        for (; i + 8 <= n; i += 8)
        {
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
        }
        Portable::fromFloats(src + i, n - i, dst + i);
    }

    // The 8 scores of part [8 keys][16 partial sums], by the pairs of cgaScoreReduce; lane jj = key jj.
    RRWKV_CGA_AVX2 static __m256 reduce8(float const* part)
    {
        __m256 a[8];
        RRWKV_CGA_CPU_UNROLL
        for (int i = 0; i < 8; ++i) // a_u = p_u + p_{u+8}
        {
            a[i] = _mm256_add_ps(_mm256_load_ps(part + kParts * i), _mm256_load_ps(part + kParts * i + 8));
        }
        __m256 z[4];
        RRWKV_CGA_CPU_UNROLL
        for (int i = 0; i < 4; ++i) // b_u = a_u + a_{u+4}; 128-bit lane L: key 2i + L
        {
            z[i] = _mm256_add_ps(_mm256_permute2f128_ps(a[2 * i], a[2 * i + 1], 0x20),
                _mm256_permute2f128_ps(a[2 * i], a[2 * i + 1], 0x31));
        }
        __m256 v[2];
        RRWKV_CGA_CPU_UNROLL
        for (int i = 0; i < 2; ++i) // c_u = b_u + b_{u+2}; lane L: (c_0, c_1) of keys 4i + L, 4i + 2 + L
        {
            v[i] = _mm256_add_ps(_mm256_shuffle_ps(z[2 * i], z[2 * i + 1], 0x44),
                _mm256_shuffle_ps(z[2 * i], z[2 * i + 1], 0xEE));
        }
        // dot = c_0 + c_1; element 4L + m: key L + 2m
        __m256 const f = _mm256_add_ps(_mm256_shuffle_ps(v[0], v[1], 0x88), _mm256_shuffle_ps(v[0], v[1], 0xDD));
        return _mm256_permutevar8x32_ps(f, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    }

    static constexpr int32_t kRows = 2; // query rows per pass over a block of K

    // Groups of 8 keys, J at a time (R x J x 2 accumulators, each 8 of the 16 partial sums); the last partial chunk
    // of a key through a zero-padded buffer (q is zero-padded to qStride).
    template <int R, typename T>
    RRWKV_CGA_AVX2 static void scoreRows(T const* kBlk, int32_t jn, int32_t d, float const* qq, int32_t qStride,
        float scale, float* s, int64_t sStride)
    {
        constexpr int J = R >= 2 ? 2 : 4;
        alignas(32) float part[R][8][kParts];
        __m256 const sc = _mm256_set1_ps(scale);
        int32_t const dFull = d - d % kParts;
        for (int32_t j0 = 0; j0 < jn; j0 += 8)
        {
            int32_t const keys = std::min(8, jn - j0);
            for (int jj = 0; jj < 8; jj += J)
            {
                __m256 acc[J][R][2];
                RRWKV_CGA_CPU_UNROLL
                for (int i = 0; i < J; ++i)
                {
                    RRWKV_CGA_CPU_UNROLL
                    for (int r = 0; r < R; ++r)
                    {
                        acc[i][r][0] = _mm256_setzero_ps();
                        acc[i][r][1] = _mm256_setzero_ps();
                    }
                }
                for (int32_t k0 = 0; k0 < d; k0 += kParts)
                {
                    __m256 qv[R][2];
                    RRWKV_CGA_CPU_UNROLL
                    for (int r = 0; r < R; ++r)
                    {
                        qv[r][0] = _mm256_loadu_ps(qq + r * qStride + k0);
                        qv[r][1] = _mm256_loadu_ps(qq + r * qStride + k0 + 8);
                    }
                    RRWKV_CGA_CPU_UNROLL
                    for (int i = 0; i < J; ++i)
                    {
                        if (jj + i >= keys)
                        {
                            continue;
                        }
                        T const* kp = kBlk + static_cast<int64_t>(j0 + jj + i) * d + k0;
                        __m256 kv[2];
                        if (k0 < dFull)
                        {
                            kv[0] = load8(kp);
                            kv[1] = load8(kp + 8);
                        }
                        else
                        {
                            float tail[kParts] = {};
                            for (int32_t u = 0; u < d - k0; ++u)
                            {
                                tail[u] = toFloat(kp[u]);
                            }
                            kv[0] = _mm256_loadu_ps(tail);
                            kv[1] = _mm256_loadu_ps(tail + 8);
                        }
                        RRWKV_CGA_CPU_UNROLL
                        for (int r = 0; r < R; ++r) // cgaScoreDot into partial sums k mod 16
                        {
                            acc[i][r][0] = _mm256_add_ps(acc[i][r][0], _mm256_mul_ps(kv[0], qv[r][0]));
                            acc[i][r][1] = _mm256_add_ps(acc[i][r][1], _mm256_mul_ps(kv[1], qv[r][1]));
                        }
                    }
                }
                RRWKV_CGA_CPU_UNROLL
                for (int i = 0; i < J; ++i)
                {
                    RRWKV_CGA_CPU_UNROLL
                    for (int r = 0; r < R; ++r)
                    {
                        _mm256_store_ps(part[r][jj + i], acc[i][r][0]);
                        _mm256_store_ps(part[r][jj + i] + 8, acc[i][r][1]);
                    }
                }
            }
            RRWKV_CGA_CPU_UNROLL
            for (int r = 0; r < R; ++r)
            {
                float sRow[8];
                _mm256_storeu_ps(sRow, _mm256_mul_ps(sc, reduce8(&part[r][0][0]))); // cgaScore
                std::copy(sRow, sRow + keys, s + r * sStride + j0);
            }
        }
    }

    // cgaR a vector at a time: cgaExp's comparison for all lanes, expf only in the lanes that do not underflow.
    RRWKV_CGA_AVX2 static void rRow(int32_t N, float mu, float sigma2, float const* basisMu, float const* basisSigma,
        float* r)
    {
        __m256 const m = _mm256_set1_ps(mu);
        __m256 const s2 = _mm256_set1_ps(sigma2);
        __m256 const two = _mm256_set1_ps(2.F);
        __m256 const twoPi = _mm256_set1_ps(kCGA_TWO_PI);
        __m256 const signBit = _mm256_set1_ps(-0.F);
        __m256 const zeroBelow = _mm256_set1_ps(kCGA_EXP_ZERO_BELOW);
        int32_t j = 0;
        for (; j + 8 <= N; j += 8)
        {
            __m256 const bs = _mm256_loadu_ps(basisSigma + j);
            __m256 const var = _mm256_add_ps(_mm256_mul_ps(bs, bs), s2);                       // cgaVar
            __m256 const diff = _mm256_sub_ps(m, _mm256_loadu_ps(basisMu + j));                // cgaRExponent
            __m256 const negSq = _mm256_xor_ps(_mm256_mul_ps(diff, diff), signBit);
            __m256 const exponent = _mm256_div_ps(negSq, _mm256_mul_ps(two, var));
            __m256 const live = _mm256_cmp_ps(exponent, zeroBelow, _CMP_NLT_UQ); // cgaExp calls expf (or NaN)
            float e[8];
            _mm256_storeu_ps(e, exponent);
            for (int bits = _mm256_movemask_ps(live); bits != 0; bits &= bits - 1)
            {
                int const l = __builtin_ctz(static_cast<unsigned>(bits));
                e[l] = cgaExp(e[l]);
            }
            __m256 const ex = _mm256_and_ps(_mm256_loadu_ps(e), live); // +0 where cgaExp underflows
            _mm256_storeu_ps(r + j, _mm256_div_ps(ex, _mm256_sqrt_ps(_mm256_mul_ps(twoPi, var)))); // / cgaRNorm
        }
        rScalar(j, N, mu, sigma2, basisMu, basisSigma, r);
    }

    static constexpr int32_t kCtxRows = 2; // 2 rows x 4 accumulators + 4 V vectors
    static constexpr int kCtxVec = 4;

    // Full vectors of 8 columns, 8 * kCtxVec columns per pass over V; the last cn % 8 columns scalar.
    template <int R, typename T>
    RRWKV_CGA_AVX2 static void ctxRows(int32_t N, int32_t d, float const* rw, int64_t rStride, T const* v,
        int32_t cn, float* out)
    {
        int32_t const cnVec = cn - cn % 8;
        for (int32_t c0 = 0; c0 < cnVec; c0 += 8 * kCtxVec)
        {
            int32_t const nv = std::min(kCtxVec, (cnVec - c0) / 8);
            __m256 acc[R][kCtxVec];
            RRWKV_CGA_CPU_UNROLL
            for (int r = 0; r < R; ++r)
            {
                RRWKV_CGA_CPU_UNROLL
                for (int u = 0; u < kCtxVec; ++u)
                {
                    acc[r][u] = _mm256_setzero_ps();
                }
            }
            for (int32_t j = 0; j < N; ++j)
            {
                T const* vRow = v + static_cast<int64_t>(j) * d + c0;
                __m256 vv[kCtxVec];
                RRWKV_CGA_CPU_UNROLL
                for (int u = 0; u < kCtxVec; ++u)
                {
                    vv[u] = u < nv ? load8(vRow + 8 * u) : _mm256_setzero_ps();
                }
                RRWKV_CGA_CPU_UNROLL
                for (int r = 0; r < R; ++r)
                {
                    __m256 const rj = _mm256_set1_ps(rw[r * rStride + j]);
                    RRWKV_CGA_CPU_UNROLL
                    for (int u = 0; u < kCtxVec; ++u)
                    {
                        acc[r][u] = _mm256_add_ps(acc[r][u], _mm256_mul_ps(rj, vv[u])); // cgaCtxAdd
                    }
                }
            }
            RRWKV_CGA_CPU_UNROLL
            for (int r = 0; r < R; ++r)
            {
                RRWKV_CGA_CPU_UNROLL
                for (int u = 0; u < kCtxVec; ++u)
                {
                    if (u < nv)
                    {
                        _mm256_storeu_ps(out + r * kCGA_CPU_COLS + c0 + 8 * u, acc[r][u]);
                    }
                }
            }
        }
        RRWKV_CGA_CPU_UNROLL
        for (int r = 0; r < R; ++r)
        {
            ctxColumnsScalar(N, d, rw + r * rStride, v, cnVec, cn, out + r * kCGA_CPU_COLS);
        }
    }
};

// ---- AVX-512 (F, BW, VL) ----

#define RRWKV_CGA_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

struct Avx512
{
    // The n (<= 16, clamped at 0) lowest lanes.
    RRWKV_CGA_AVX512 static __mmask16 lanes(int32_t n)
    {
        return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << std::max(n, 0)) - 1u);
    }

    // 16 consecutive elements under `mask` as fp32 (0 where masked off; nothing past the mask is read).
    RRWKV_CGA_AVX512 static __m512 load16(float const* p, __mmask16 mask)
    {
        return _mm512_maskz_loadu_ps(mask, p);
    }

    // As in Avx2: halfBitsToFloat's bits but for signalling NaNs, which come out quiet.
    RRWKV_CGA_AVX512 static __m512 load16(HostHalf const* p, __mmask16 mask)
    {
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, p));
    }

    template <typename T>
    RRWKV_CGA_AVX512 static void toFloats(T const* src, int32_t n, float* dst)
    {
        for (int32_t i = 0; i < n; i += 16)
        {
            _mm512_mask_storeu_ps(dst + i, lanes(n - i), load16(src + i, lanes(n - i)));
        }
    }

    static void fromFloats(float const* src, int32_t n, float* dst)
    {
        std::copy(src, src + n, dst);
    }

    // vcvtps2ph rounding to nearest even: floatToHalfBits's bits for every float.
    RRWKV_CGA_AVX512 static void fromFloats(float const* src, int32_t n, HostHalf* dst)
    {
        for (int32_t i = 0; i < n; i += 16)
        {
            __mmask16 const mask = lanes(n - i);
            _mm256_mask_storeu_epi16(
                dst + i, mask, _mm512_cvtps_ph(_mm512_maskz_loadu_ps(mask, src + i), _MM_FROUND_TO_NEAREST_INT));
        }
    }

    // The 16 scores of part [16 keys][16 partial sums], by the pairs of cgaScoreReduce; lane jj = key jj.
    RRWKV_CGA_AVX512 static __m512 reduce16(float const* part)
    {
        __m512 z[8];
        RRWKV_CGA_CPU_UNROLL
        for (int i = 0; i < 8; ++i) // a_u = p_u + p_{u+8}; 256-bit half h: key 2i + h
        {
            __m512 const x = _mm512_load_ps(part + kParts * (2 * i));
            __m512 const y = _mm512_load_ps(part + kParts * (2 * i + 1));
            z[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x44), _mm512_shuffle_f32x4(x, y, 0xEE));
        }
        __m512 w[4];
        RRWKV_CGA_CPU_UNROLL
        for (int i = 0; i < 4; ++i) // b_u = a_u + a_{u+4}; 128-bit lane L: key 4i + L
        {
            w[i] = _mm512_add_ps(_mm512_shuffle_f32x4(z[2 * i], z[2 * i + 1], 0x88),
                _mm512_shuffle_f32x4(z[2 * i], z[2 * i + 1], 0xDD));
        }
        __m512 v[2];
        RRWKV_CGA_CPU_UNROLL
        for (int i = 0; i < 2; ++i) // c_u = b_u + b_{u+2}; lane L: (c_0, c_1) of keys 8i + L, 8i + 4 + L
        {
            v[i] = _mm512_add_ps(_mm512_shuffle_ps(w[2 * i], w[2 * i + 1], 0x44),
                _mm512_shuffle_ps(w[2 * i], w[2 * i + 1], 0xEE));
        }
        // dot = c_0 + c_1; element 4L + m: key L + 4m
        __m512 const f = _mm512_add_ps(_mm512_shuffle_ps(v[0], v[1], 0x88), _mm512_shuffle_ps(v[0], v[1], 0xDD));
        return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), f);
    }

    static constexpr int32_t kRows = 4; // query rows per pass over a block of K

    // Groups of 16 keys, J at a time (R x J accumulators, each the 16 partial sums of one key and row); the last
    // chunk of K_j masked (q is zero-padded to qStride).
    template <int R, typename T>
    RRWKV_CGA_AVX512 static void scoreRows(T const* kBlk, int32_t jn, int32_t d, float const* qq, int32_t qStride,
        float scale, float* s, int64_t sStride)
    {
        constexpr int J = R >= 4 ? 2 : 4;
        alignas(64) float part[R][16][kParts];
        __m512 const sc = _mm512_set1_ps(scale);
        for (int32_t j0 = 0; j0 < jn; j0 += 16)
        {
            int32_t const keys = std::min(16, jn - j0);
            for (int jj = 0; jj < 16; jj += J)
            {
                __m512 acc[J][R];
                RRWKV_CGA_CPU_UNROLL
                for (int i = 0; i < J; ++i)
                {
                    RRWKV_CGA_CPU_UNROLL
                    for (int r = 0; r < R; ++r)
                    {
                        acc[i][r] = _mm512_setzero_ps();
                    }
                }
                for (int32_t k0 = 0; k0 < d; k0 += kParts)
                {
                    __mmask16 const mask = lanes(d - k0);
                    __m512 qv[R];
                    RRWKV_CGA_CPU_UNROLL
                    for (int r = 0; r < R; ++r)
                    {
                        qv[r] = _mm512_loadu_ps(qq + r * qStride + k0);
                    }
                    RRWKV_CGA_CPU_UNROLL
                    for (int i = 0; i < J; ++i)
                    {
                        if (jj + i < keys)
                        {
                            __m512 const kv = load16(kBlk + static_cast<int64_t>(j0 + jj + i) * d + k0, mask);
                            RRWKV_CGA_CPU_UNROLL
                            for (int r = 0; r < R; ++r) // cgaScoreDot into partial sums k mod 16
                            {
                                acc[i][r] = _mm512_add_ps(acc[i][r], _mm512_mul_ps(kv, qv[r]));
                            }
                        }
                    }
                }
                RRWKV_CGA_CPU_UNROLL
                for (int i = 0; i < J; ++i)
                {
                    RRWKV_CGA_CPU_UNROLL
                    for (int r = 0; r < R; ++r)
                    {
                        _mm512_store_ps(part[r][jj + i], acc[i][r]);
                    }
                }
            }
            RRWKV_CGA_CPU_UNROLL
            for (int r = 0; r < R; ++r)
            {
                _mm512_mask_storeu_ps(s + r * sStride + j0, lanes(keys), _mm512_mul_ps(sc, reduce16(&part[r][0][0])));
            }
        }
    }

    // cgaR a vector at a time: cgaExp's comparison for all lanes, expf only in the lanes that do not underflow.
    RRWKV_CGA_AVX512 static void rRow(int32_t N, float mu, float sigma2, float const* basisMu,
        float const* basisSigma, float* r)
    {
        __m512 const m = _mm512_set1_ps(mu);
        __m512 const s2 = _mm512_set1_ps(sigma2);
        __m512 const two = _mm512_set1_ps(2.F);
        __m512 const twoPi = _mm512_set1_ps(kCGA_TWO_PI);
        __m512 const zeroBelow = _mm512_set1_ps(kCGA_EXP_ZERO_BELOW);
        for (int32_t j = 0; j < N; j += 16)
        {
            __mmask16 const mask = lanes(N - j);
            __m512 const bs = _mm512_maskz_loadu_ps(mask, basisSigma + j);
            __m512 const var = _mm512_add_ps(_mm512_mul_ps(bs, bs), s2);                        // cgaVar
            __m512 const diff = _mm512_sub_ps(m, _mm512_maskz_loadu_ps(mask, basisMu + j));     // cgaRExponent
            __m512 const negSq = _mm512_castsi512_ps(
                _mm512_xor_si512(_mm512_castps_si512(_mm512_mul_ps(diff, diff)), _mm512_set1_epi32(INT32_MIN)));
            __m512 const exponent = _mm512_div_ps(negSq, _mm512_mul_ps(two, var));
            __mmask16 const live = _mm512_mask_cmp_ps_mask(mask, exponent, zeroBelow, _CMP_NLT_UQ); // cgaExp: expf
            float e[16];
            _mm512_storeu_ps(e, exponent);
            for (unsigned bits = live; bits != 0; bits &= bits - 1)
            {
                int const l = __builtin_ctz(bits);
                e[l] = cgaExp(e[l]);
            }
            __m512 const ex = _mm512_maskz_loadu_ps(live, e); // +0 where cgaExp underflows
            _mm512_mask_storeu_ps(r + j, mask, _mm512_div_ps(ex, _mm512_sqrt_ps(_mm512_mul_ps(twoPi, var))));
        }
    }

    static constexpr int32_t kCtxRows = 4; // 4 rows x 4 accumulators + 4 V vectors

    // Up to 64 columns in 4 vectors, the last one masked.
    template <int R, typename T>
    RRWKV_CGA_AVX512 static void ctxRows(int32_t N, int32_t d, float const* rw, int64_t rStride, T const* v,
        int32_t cn, float* out)
    {
        int32_t const nv = (cn + 15) / 16;
        __mmask16 mask[4];
        __m512 acc[R][4];
        RRWKV_CGA_CPU_UNROLL
        for (int u = 0; u < 4; ++u)
        {
            mask[u] = lanes(cn - 16 * u);
            RRWKV_CGA_CPU_UNROLL
            for (int r = 0; r < R; ++r)
            {
                acc[r][u] = _mm512_setzero_ps();
            }
        }
        for (int32_t j = 0; j < N; ++j)
        {
            T const* vRow = v + static_cast<int64_t>(j) * d;
            __m512 vv[4];
            RRWKV_CGA_CPU_UNROLL
            for (int u = 0; u < 4; ++u)
            {
                vv[u] = u < nv ? load16(vRow + 16 * u, mask[u]) : _mm512_setzero_ps();
            }
            RRWKV_CGA_CPU_UNROLL
            for (int r = 0; r < R; ++r)
            {
                __m512 const rj = _mm512_set1_ps(rw[r * rStride + j]);
                RRWKV_CGA_CPU_UNROLL
                for (int u = 0; u < 4; ++u)
                {
                    acc[r][u] = _mm512_add_ps(acc[r][u], _mm512_mul_ps(rj, vv[u])); // cgaCtxAdd
                }
            }
        }
        RRWKV_CGA_CPU_UNROLL
        for (int r = 0; r < R; ++r)
        {
            RRWKV_CGA_CPU_UNROLL
            for (int u = 0; u < 4; ++u)
            {
                if (u < nv)
                {
                    _mm512_mask_storeu_ps(out + r * kCGA_CPU_COLS + 16 * u, mask[u], acc[r][u]);
                }
            }
        }
    }
};

// ---- the phases, over one path ----

template <class Isa, typename T>
void scoresOn(int32_t T_, int32_t N, int32_t d, float scale, T const* q, T const* K, float* w, int64_t sliceBegin,
    int64_t sliceEnd)
{
    int64_t const blocks = (N + kCGA_CPU_KEYS - 1) / kCGA_CPU_KEYS;
    int32_t const qStride = (d + kParts - 1) / kParts * kParts; // q rows zero-padded to whole vectors of k
    std::vector<float> qq(static_cast<size_t>(Isa::kRows) * qStride);
    for (int64_t slice = sliceBegin; slice < sliceEnd; ++slice)
    {
        int64_t const bh = slice / blocks;
        int32_t const j0 = static_cast<int32_t>(slice % blocks) * kCGA_CPU_KEYS;
        int32_t const jn = std::min(kCGA_CPU_KEYS, N - j0);
        T const* kBlk = K + (bh * N + j0) * d;
        for (int32_t t0 = 0; t0 < T_;)
        {
            int32_t const rows = T_ - t0 >= Isa::kRows ? Isa::kRows : 1;
            T const* qRows = q + (bh * T_ + t0) * d;
            for (int32_t r = 0; r < rows; ++r)
            {
                Isa::toFloats(qRows + static_cast<int64_t>(r) * d, d, qq.data() + static_cast<size_t>(r) * qStride);
            }
            float* s = w + (bh * T_ + t0) * N + j0;
            if (rows == Isa::kRows)
            {
                Isa::template scoreRows<Isa::kRows>(kBlk, jn, d, qq.data(), qStride, scale, s, N);
            }
            else
            {
                Isa::template scoreRows<1>(kBlk, jn, d, qq.data(), qStride, scale, s, N);
            }
            t0 += rows;
        }
    }
}

template <class Isa>
void weightsOn(int32_t N, float sigma2Min, float const* wMu, float const* wSigma, float const* basisMu,
    float const* basisSigma, float* w, float* mu, float* sigma2, int64_t rowBegin, int64_t rowEnd)
{
    for (int64_t row = rowBegin; row < rowEnd; ++row) // row = (b * H + h) * T + t
    {
        float* s = w + row * N;
        // the dots as the CUDA kernel's lanes take them: lane l adds j = l, l + 32, ... in order
        float partMu[kCGA_LANES] = {};
        float partSigma[kCGA_LANES] = {};
        for (int32_t j0 = 0; j0 < N; j0 += kCGA_LANES)
        {
            int32_t const n = std::min(kCGA_LANES, N - j0);
            for (int32_t lane = 0; lane < n; ++lane)
            {
                partMu[lane] = cgaDotAdd(partMu[lane], wMu[j0 + lane], s[j0 + lane]);
                partSigma[lane] = cgaDotAdd(partSigma[lane], wSigma[j0 + lane], s[j0 + lane]);
            }
        }
        float xMu = 0.F;
        float xSigma = 0.F;
        for (int32_t lane = 0; lane < kCGA_LANES; ++lane)
        {
            xMu += partMu[lane];
            xSigma += partSigma[lane];
        }
        float const m = cgaMu(xMu);
        float const s2 = cgaSigma2(xSigma, sigma2Min);
        mu[row] = m;
        sigma2[row] = s2;
        Isa::rRow(N, m, s2, basisMu, basisSigma, s); // the scores are spent: r in their place
    }
}

template <class Isa, typename T>
void contextOn(int32_t T_, int32_t N, int32_t d, T const* V, float const* w, T* ctx, int64_t sliceBegin,
    int64_t sliceEnd)
{
    int64_t const blocks = (d + kCGA_CPU_COLS - 1) / kCGA_CPU_COLS;
    float out[Isa::kCtxRows * kCGA_CPU_COLS];
    for (int64_t slice = sliceBegin; slice < sliceEnd; ++slice)
    {
        int64_t const bh = slice / blocks;
        int32_t const c0 = static_cast<int32_t>(slice % blocks) * kCGA_CPU_COLS;
        int32_t const cn = std::min(kCGA_CPU_COLS, d - c0);
        T const* v = V + bh * N * d + c0;
        for (int32_t t0 = 0; t0 < T_;)
        {
            int32_t const rows = T_ - t0 >= Isa::kCtxRows ? Isa::kCtxRows : 1;
            float const* rw = w + (bh * T_ + t0) * N;
            if (rows == Isa::kCtxRows)
            {
                Isa::template ctxRows<Isa::kCtxRows, T>(N, d, rw, N, v, cn, out);
            }
            else
            {
                Isa::template ctxRows<1, T>(N, d, rw, N, v, cn, out);
            }
            for (int32_t r = 0; r < rows; ++r)
            {
                Isa::fromFloats(out + r * kCGA_CPU_COLS, cn, ctx + (bh * T_ + t0 + r) * d + c0);
            }
            t0 += rows;
        }
    }
}

int64_t sliceEndOr(int64_t sliceEnd, int64_t count)
{
    return sliceEnd < 0 ? count : std::min(sliceEnd, count);
}

} // namespace

int64_t continuousGaussianAttentionCpuScoreSliceCount(int32_t B, int32_t H, int32_t N)
{
    return B <= 0 || H <= 0 || N <= 0 ? 0 : static_cast<int64_t>(B) * H * ((N + kCGA_CPU_KEYS - 1) / kCGA_CPU_KEYS);
}

int64_t continuousGaussianAttentionCpuRowCount(int32_t B, int32_t H, int32_t T_)
{
    return B <= 0 || H <= 0 || T_ <= 0 ? 0 : static_cast<int64_t>(B) * H * T_;
}

int64_t continuousGaussianAttentionCpuContextSliceCount(int32_t B, int32_t H, int32_t d)
{
    return B <= 0 || H <= 0 || d <= 0 ? 0 : static_cast<int64_t>(B) * H * ((d + kCGA_CPU_COLS - 1) / kCGA_CPU_COLS);
}

template <typename T>
void continuousGaussianAttentionScoresCpu(int32_t B, int32_t H, int32_t T_, int32_t N, int32_t d, float scale,
    T const* q, T const* K, float* w, CpuIsa maxIsa, int64_t sliceBegin, int64_t sliceEnd)
{
    if (T_ <= 0)
    {
        return;
    }
    int64_t const end = sliceEndOr(sliceEnd, continuousGaussianAttentionCpuScoreSliceCount(B, H, N));
    switch (std::min(maxIsa, cpuIsa()))
    {
    case CpuIsa::kAvx512: scoresOn<Avx512>(T_, N, d, scale, q, K, w, sliceBegin, end); break;
    case CpuIsa::kAvx2: scoresOn<Avx2>(T_, N, d, scale, q, K, w, sliceBegin, end); break;
    case CpuIsa::kPortable: scoresOn<Portable>(T_, N, d, scale, q, K, w, sliceBegin, end); break;
    }
}

void continuousGaussianAttentionWeightsCpu(int32_t B, int32_t H, int32_t T_, int32_t N, float sigma2Min,
    float const* wMu, float const* wSigma, float const* basisMu, float const* basisSigma, float* w, float* mu,
    float* sigma2, CpuIsa maxIsa, int64_t rowBegin, int64_t rowEnd)
{
    int64_t const end = sliceEndOr(rowEnd, continuousGaussianAttentionCpuRowCount(B, H, T_));
    if (rowBegin >= end)
    {
        return;
    }
    switch (std::min(maxIsa, cpuIsa()))
    {
    case CpuIsa::kAvx512:
        weightsOn<Avx512>(N, sigma2Min, wMu, wSigma, basisMu, basisSigma, w, mu, sigma2, rowBegin, end);
        break;
    case CpuIsa::kAvx2:
        weightsOn<Avx2>(N, sigma2Min, wMu, wSigma, basisMu, basisSigma, w, mu, sigma2, rowBegin, end);
        break;
    case CpuIsa::kPortable:
        weightsOn<Portable>(N, sigma2Min, wMu, wSigma, basisMu, basisSigma, w, mu, sigma2, rowBegin, end);
        break;
    }
}

template <typename T>
void continuousGaussianAttentionContextCpu(int32_t B, int32_t H, int32_t T_, int32_t N, int32_t d, T const* V,
    float const* w, T* ctx, CpuIsa maxIsa, int64_t sliceBegin, int64_t sliceEnd)
{
    if (T_ <= 0)
    {
        return;
    }
    int64_t const end = sliceEndOr(sliceEnd, continuousGaussianAttentionCpuContextSliceCount(B, H, d));
    switch (std::min(maxIsa, cpuIsa()))
    {
    case CpuIsa::kAvx512: contextOn<Avx512>(T_, N, d, V, w, ctx, sliceBegin, end); break;
    case CpuIsa::kAvx2: contextOn<Avx2>(T_, N, d, V, w, ctx, sliceBegin, end); break;
    case CpuIsa::kPortable: contextOn<Portable>(T_, N, d, V, w, ctx, sliceBegin, end); break;
    }
}

template <typename T>
void continuousGaussianAttentionForwardCpu(int32_t B, int32_t H, int32_t T_, int32_t N, int32_t d, float sigma2Min,
    float scale, T const* q, T const* K, T const* V, float const* wMu, float const* wSigma, float const* basisMu,
    float const* basisSigma, T* ctx, float* mu, float* sigma2, CpuIsa maxIsa)
{
    std::vector<float> w(static_cast<size_t>(continuousGaussianAttentionCpuRowCount(B, H, T_)) * std::max(N, 0));
    continuousGaussianAttentionScoresCpu<T>(B, H, T_, N, d, scale, q, K, w.data(), maxIsa);
    continuousGaussianAttentionWeightsCpu(
        B, H, T_, N, sigma2Min, wMu, wSigma, basisMu, basisSigma, w.data(), mu, sigma2, maxIsa);
    continuousGaussianAttentionContextCpu<T>(B, H, T_, N, d, V, w.data(), ctx, maxIsa);
}

#define RRWKV_CGA_INSTANTIATE(T)                                                                                      \
    template void continuousGaussianAttentionScoresCpu<T>(int32_t, int32_t, int32_t, int32_t, int32_t, float,        \
        T const*, T const*, float*, CpuIsa, int64_t, int64_t);                                                        \
    template void continuousGaussianAttentionContextCpu<T>(int32_t, int32_t, int32_t, int32_t, int32_t, T const*,    \
        float const*, T*, CpuIsa, int64_t, int64_t);                                                                  \
    template void continuousGaussianAttentionForwardCpu<T>(int32_t, int32_t, int32_t, int32_t, int32_t, float, float, \
        T const*, T const*, T const*, float const*, float const*, float const*, float const*, T*, float*, float*,     \
        CpuIsa);

RRWKV_CGA_INSTANTIATE(float)
RRWKV_CGA_INSTANTIATE(HostHalf)

} // namespace rrwkv
