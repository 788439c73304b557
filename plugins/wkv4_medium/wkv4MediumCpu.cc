/*
 * CPU kernels of rrwkv::WKV4Medium (wkv4MediumCpu.h): WKV4's slice loop (wkv4SliceCpu) with a medium merge after
 * every token that closes a window. All arithmetic is in wkv4MediumMath.h and wkv4/wkv4Math.h.
 */
#include "wkv4_medium/wkv4MediumCpu.h"

#include "wkv4_medium/wkv4MediumMath.h"

namespace rrwkv
{

template <typename T>
void wkv4MediumForwardCpu(int32_t B, int32_t T_, int32_t C, int32_t M, int32_t s, int32_t mediumDecays,
    float const* w, float const* u, T const* k, T const* v, float const* kM, float const* vM, float const* aaIn,
    float const* bbIn, float const* ppIn, int64_t const* pos0, T* y, float* aaOut, float* bbOut, float* ppOut,
    int64_t sliceBegin, int64_t sliceEnd)
{
    int64_t const end = wkv4CpuSliceEnd(sliceEnd, B, C);
    for (int64_t i = sliceBegin; i < end; ++i)
    {
        Wkv4CpuSlice const sl = wkv4CpuSlice(i, C);
        int32_t const n = sl.c1 - sl.c0;
        int64_t const p0 = pos0[sl.b];
        int32_t closes = 0; // closes so far in this call = the next medium row
        wkv4SliceCpu<T>(sl, T_, C, w, u, k, v, aaIn, bbIn, ppIn, y, aaOut, bbOut, ppOut,
            [&](int32_t t, float* aa, float* bb, float* pp) {
                if (!mediumCloses(p0, t, s))
                {
                    return;
                }
                int64_t const m = (sl.b * M + mediumRow(closes, M)) * C + sl.c0; // [B, M, C]
                for (int32_t j = 0; j < n; ++j)
                {
                    mediumMerge(w[sl.c0 + j], kM[m + j], vM[m + j], mediumDecays, aa[j], bb[j], pp[j]);
                }
                ++closes;
            });
    }
}

template void wkv4MediumForwardCpu<float>(int32_t, int32_t, int32_t, int32_t, int32_t, int32_t, float const*,
    float const*, float const*, float const*, float const*, float const*, float const*, float const*, float const*,
    int64_t const*, float*, float*, float*, float*, int64_t, int64_t);
template void wkv4MediumForwardCpu<HostHalf>(int32_t, int32_t, int32_t, int32_t, int32_t, int32_t, float const*,
    float const*, HostHalf const*, HostHalf const*, float const*, float const*, float const*, float const*,
    float const*, int64_t const*, HostHalf*, float*, float*, float*, int64_t, int64_t);

} // namespace rrwkv
