/*
 * CPU kernel of rrwkv::GatedOuterScan (gatedOuterScanCpu.h): per (b, h) slice, the per-token recurrence on a local
 * copy of the head's state. A token is one pass over the state rows: each row k is updated and immediately added,
 * times q[k], into the output sums of every column, so the state is read and written once per token. All arithmetic
 * is in gatedOuterScanMath.h.
 */
#include "gated_outer_scan/gatedOuterScanCpu.h"

#include "gated_outer_scan/gatedOuterScanMath.h"

#include <algorithm>
#include <vector>

namespace rrwkv
{
namespace
{

// One head's working set: the state S [K, V], the token's decays a, keys kk and q [K], its v and output sums [V].
struct HeadScratch
{
    HeadScratch(int32_t K, int32_t V)
        : S(static_cast<size_t>(K) * V)
        , a(K)
        , kk(K)
        , q(K)
        , v(V)
        , acc(V)
    {
    }

    std::vector<float> S;
    std::vector<float> a;
    std::vector<float> kk;
    std::vector<float> q;
    std::vector<float> v;
    std::vector<float> acc;
};

// Token rows qRow, fRow [K] and vRow, oRow [V] of one head: gates, state update, output.
template <typename T>
void gosTokenCpu(int32_t K, int32_t V, float scale, T const* qRow, T const* fRow, float const* lbRow, T const* vRow,
    T* oRow, HeadScratch& w)
{
    for (int32_t k = 0; k < K; ++k)
    {
        gosGate(toFloat(fRow[k]), lbRow[k], w.a[k], w.kk[k]);
        w.q[k] = toFloat(qRow[k]);
    }
    for (int32_t j = 0; j < V; ++j)
    {
        w.v[j] = toFloat(vRow[j]);
        w.acc[j] = 0.F;
    }
    float const* vv = w.v.data();
    float* acc = w.acc.data();
    for (int32_t k = 0; k < K; ++k)
    {
        float* row = w.S.data() + static_cast<int64_t>(k) * V; // S[k][:]
        float const a = w.a[k], kk = w.kk[k], qk = w.q[k];
        for (int32_t j = 0; j < V; ++j)
        {
            row[j] = gosUpdate(a, kk, vv[j], row[j]);
            acc[j] = gosDot(acc[j], qk, row[j]);
        }
    }
    for (int32_t j = 0; j < V; ++j)
    {
        oRow[j] = fromFloat<T>(gosOutput(scale, acc[j]));
    }
}

} // namespace

int64_t gatedOuterScanCpuSliceCount(int32_t B, int32_t H)
{
    return B <= 0 || H <= 0 ? 0 : static_cast<int64_t>(B) * H;
}

template <typename T>
void gatedOuterScanForwardCpu(int32_t B, int32_t T_, int32_t H, int32_t K, int32_t V, float scale, T const* q,
    T const* f, float const* lb, T const* v, float const* S0, T* o, float* Sout, int64_t sliceBegin, int64_t sliceEnd)
{
    int64_t const all = gatedOuterScanCpuSliceCount(B, H);
    int64_t const end = sliceEnd < 0 ? all : std::min(sliceEnd, all);
    if (sliceBegin >= end)
    {
        return;
    }
    HeadScratch w(K, V);
    int64_t const headState = static_cast<int64_t>(K) * V;
    for (int64_t i = sliceBegin; i < end; ++i) // i = b * H + h, also the head's index in S0 / S_out
    {
        int64_t const b = i / H;
        int32_t const h = static_cast<int32_t>(i % H);
        std::copy(S0 + i * headState, S0 + (i + 1) * headState, w.S.begin());
        for (int32_t t = 0; t < T_; ++t)
        {
            int64_t const row = (b * T_ + t) * H + h; // token row of [B, T, H, *]
            gosTokenCpu<T>(K, V, scale, q + row * K, f + row * K, lb + static_cast<int64_t>(h) * K, v + row * V,
                o + row * V, w);
        }
        std::copy(w.S.begin(), w.S.end(), Sout + i * headState);
    }
}

template void gatedOuterScanForwardCpu<float>(int32_t, int32_t, int32_t, int32_t, int32_t, float, float const*,
    float const*, float const*, float const*, float const*, float*, float*, int64_t, int64_t);
template void gatedOuterScanForwardCpu<HostHalf>(int32_t, int32_t, int32_t, int32_t, int32_t, float, HostHalf const*,
    HostHalf const*, float const*, HostHalf const*, float const*, HostHalf*, float*, int64_t, int64_t);

} // namespace rrwkv
