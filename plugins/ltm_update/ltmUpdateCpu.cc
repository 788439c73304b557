/*
 * CPU kernel of rrwkv::LTMUpdate (ltmUpdateCpu.h): row by row, each output row accumulated over the contraction index
 * in order (the CUDA kernels' order), the inner loop over the e columns. All arithmetic is in ltmUpdateMath.h.
 */
#include "ltm_update/ltmUpdateCpu.h"

#include "ltm_update/ltmUpdateMath.h"

#include <algorithm>
#include <vector>

namespace rrwkv
{

int64_t ltmUpdateOldRowCount(int32_t B, int32_t M)
{
    return B <= 0 || M <= 0 ? 0 : static_cast<int64_t>(B) * M;
}

int64_t ltmUpdateNewRowCount(int32_t B, int32_t N)
{
    return B <= 0 || N <= 0 ? 0 : static_cast<int64_t>(B) * N;
}

void ltmUpdateOldRowsCpu(int32_t B, int32_t N, int32_t e, int32_t M, int32_t NB, int32_t sticky, float const* bPast,
    int64_t const* mode, float const* sSamp, float const* hist, float const* basisMu, float const* basisSigma,
    float* xOld, int64_t rowBegin, int64_t rowEnd)
{
    int64_t const all = ltmUpdateOldRowCount(B, M);
    int64_t const end = rowEnd < 0 ? all : std::min(rowEnd, all);
    std::vector<float> sRow(sticky ? N : 0);
    for (int64_t row = rowBegin; row < end; ++row) // row = b * M + m
    {
        int64_t const b = row / M;
        int32_t const m = static_cast<int32_t>(row % M);
        if (ltmRowMode(mode[b]) != kLTM_UPDATE)
        {
            continue; // no X_old needed, and no quantile search
        }
        float const* s = sSamp + static_cast<int64_t>(m) * N;
        if (sticky)
        {
            float const pos = ltmQuantilePosition(hist + b * NB, NB, m, M);
            for (int32_t j = 0; j < N; ++j)
            {
                sRow[j] = ltmPsi(pos, basisMu[j], basisSigma[j]);
            }
            s = sRow.data();
        }
        float* out = xOld + row * e;
        std::fill(out, out + e, 0.F);
        float const* past = bPast + b * N * e;
        for (int32_t j = 0; j < N; ++j)
        {
            float const a = s[j];
            float const* x = past + static_cast<int64_t>(j) * e;
            for (int32_t c = 0; c < e; ++c)
            {
                out[c] = ltmDotAdd(out[c], a, x[c]);
            }
        }
    }
}

void ltmUpdateNewRowsCpu(int32_t B, int32_t N, int32_t e, int32_t L, int32_t M, float const* bPast, float const* xNew,
    int64_t const* mode, float const* G, float const* gInf, float const* xOld, float* bNew, int64_t rowBegin,
    int64_t rowEnd)
{
    int64_t const all = ltmUpdateNewRowCount(B, N);
    int64_t const end = rowEnd < 0 ? all : std::min(rowEnd, all);
    for (int64_t row = rowBegin; row < end; ++row) // row = b * N + n
    {
        int64_t const b = row / N;
        int32_t const n = static_cast<int32_t>(row % N);
        float* out = bNew + row * e;
        int32_t const rowMode = ltmRowMode(mode[b]);
        if (rowMode == kLTM_KEEP)
        {
            std::copy(bPast + row * e, bPast + (row + 1) * e, out);
            continue;
        }
        std::fill(out, out + e, 0.F);
        float const* xn = xNew + b * L * e;
        bool const update = rowMode == kLTM_UPDATE;
        int32_t const K = update ? M + L : L;
        for (int32_t k = 0; k < K; ++k)
        {
            float const a = update ? gInf[static_cast<int64_t>(k) * N + n] : G[static_cast<int64_t>(k) * N + n];
            float const* x
                = update && k < M ? xOld + (b * M + k) * e : xn + static_cast<int64_t>(update ? k - M : k) * e;
            for (int32_t c = 0; c < e; ++c)
            {
                out[c] = ltmDotAdd(out[c], a, x[c]);
            }
        }
    }
}

void ltmUpdateForwardCpu(int32_t B, int32_t N, int32_t e, int32_t L, int32_t M, int32_t NB, int32_t sticky,
    float const* bPast, float const* xNew, int64_t const* mode, float const* G, float const* gInf,
    float const* sSamp, float const* hist, float const* basisMu, float const* basisSigma, float* xOld, float* bNew)
{
    ltmUpdateOldRowsCpu(B, N, e, M, NB, sticky, bPast, mode, sSamp, hist, basisMu, basisSigma, xOld);
    ltmUpdateNewRowsCpu(B, N, e, L, M, bPast, xNew, mode, G, gInf, xOld, bNew);
}

} // namespace rrwkv
