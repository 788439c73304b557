/*
 * CPU kernel of rrwkv::ContinuousGaussianAttention (continuousGaussianAttentionCpu.h): per query row, the scores and
 * the two dots (kCGA_LANES strided partial sums, added in lane order, as the CUDA kernel's lanes do), mu and sigma2,
 * then ctx = sum_j r_j V_j with j in order. All arithmetic is in continuousGaussianAttentionMath.h.
 */
#include "continuous_gaussian_attention/continuousGaussianAttentionCpu.h"

#include "continuous_gaussian_attention/continuousGaussianAttentionMath.h"

#include <algorithm>
#include <vector>

namespace rrwkv
{

int64_t continuousGaussianAttentionCpuRowCount(int32_t B, int32_t H, int32_t T_)
{
    return B <= 0 || H <= 0 || T_ <= 0 ? 0 : static_cast<int64_t>(B) * H * T_;
}

template <typename T>
void continuousGaussianAttentionForwardCpu(int32_t B, int32_t H, int32_t T_, int32_t N, int32_t d, float sigma2Min,
    float scale, T const* q, T const* K, T const* V, float const* wMu, float const* wSigma, float const* basisMu,
    float const* basisSigma, T* ctx, float* mu, float* sigma2, int64_t rowBegin, int64_t rowEnd)
{
    int64_t const all = continuousGaussianAttentionCpuRowCount(B, H, T_);
    int64_t const end = rowEnd < 0 ? all : std::min(rowEnd, all);
    if (rowBegin >= end)
    {
        return;
    }
    int64_t const head = static_cast<int64_t>(N) * d; // elements of one head of K or V
    std::vector<float> qq(d);
    std::vector<float> acc(d);
    for (int64_t row = rowBegin; row < end; ++row) // row = (b * H + h) * T + t
    {
        int64_t const bh = row / T_;
        T const* qRow = q + row * d;
        T const* kHead = K + bh * head;
        T const* vHead = V + bh * head;
        for (int32_t k = 0; k < d; ++k)
        {
            qq[k] = toFloat(qRow[k]);
        }
        float partMu[kCGA_LANES] = {};
        float partSigma[kCGA_LANES] = {};
        for (int32_t j = 0; j < N; ++j)
        {
            T const* kRow = kHead + static_cast<int64_t>(j) * d;
            float dot = 0.F;
            for (int32_t k = 0; k < d; ++k)
            {
                dot = cgaScoreDot(dot, toFloat(kRow[k]), qq[k]);
            }
            float const s = cgaScore(scale, dot);
            int32_t const lane = j % kCGA_LANES;
            partMu[lane] = cgaDotAdd(partMu[lane], wMu[j], s);
            partSigma[lane] = cgaDotAdd(partSigma[lane], wSigma[j], s);
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
        std::fill(acc.begin(), acc.end(), 0.F);
        for (int32_t j = 0; j < N; ++j)
        {
            float const r = cgaR(m, s2, basisMu[j], basisSigma[j]);
            T const* vRow = vHead + static_cast<int64_t>(j) * d;
            for (int32_t c = 0; c < d; ++c)
            {
                acc[c] = cgaCtxAdd(acc[c], r, toFloat(vRow[c]));
            }
        }
        T* out = ctx + row * d;
        for (int32_t c = 0; c < d; ++c)
        {
            out[c] = fromFloat<T>(acc[c]);
        }
    }
}

template void continuousGaussianAttentionForwardCpu<float>(int32_t, int32_t, int32_t, int32_t, int32_t, float, float,
    float const*, float const*, float const*, float const*, float const*, float const*, float const*, float*, float*,
    float*, int64_t, int64_t);
template void continuousGaussianAttentionForwardCpu<HostHalf>(int32_t, int32_t, int32_t, int32_t, int32_t, float,
    float, HostHalf const*, HostHalf const*, HostHalf const*, float const*, float const*, float const*, float const*,
    HostHalf*, float*, float*, int64_t, int64_t);

} // namespace rrwkv
