/*
 * CPU kernels of rrwkv::WKV4 / rrwkv::WKV4Medium (wkv4Cpu.h): per slice (b, channels [c0, c1)), the state is
 * loaded into local arrays, every token runs wkv4Step (and mediumMerge where a window closes) per channel, and
 * the state is written back. All arithmetic is in wkv4Math.h.
 */
#include "wkv4/wkv4Cpu.h"

#include "wkv4/wkv4Math.h"

#include <algorithm>

namespace rrwkv
{
namespace
{

struct Slice
{
    int64_t b;
    int32_t c0;
    int32_t c1;
};

int32_t channelBlocks(int32_t C)
{
    return (C + kWKV4_CPU_CHANNELS - 1) / kWKV4_CPU_CHANNELS;
}

Slice slice(int64_t index, int32_t C)
{
    int32_t const blocks = channelBlocks(C);
    int32_t const c0 = static_cast<int32_t>(index % blocks) * kWKV4_CPU_CHANNELS;
    return Slice{index / blocks, c0, std::min(C, c0 + kWKV4_CPU_CHANNELS)};
}

int64_t sliceEndOrAll(int64_t sliceEnd, int32_t B, int32_t C)
{
    int64_t const all = wkv4CpuSliceCount(B, C);
    return sliceEnd < 0 ? all : std::min(sliceEnd, all);
}

// mediumDecays < 0: plain WKV4 (no merges); kM, vM, pos0 unused.
template <typename T>
void runSlice(Slice const& sl, int32_t T_, int32_t C, int32_t M, int32_t s, int32_t mediumDecays, float const* w,
    float const* u, T const* k, T const* v, float const* kM, float const* vM, float const* aaIn, float const* bbIn,
    float const* ppIn, int64_t const* pos0, T* y, float* aaOut, float* bbOut, float* ppOut)
{
    float aa[kWKV4_CPU_CHANNELS];
    float bb[kWKV4_CPU_CHANNELS];
    float pp[kWKV4_CPU_CHANNELS];
    int32_t const n = sl.c1 - sl.c0;
    int64_t const state = sl.b * C + sl.c0; // [B, C]
    for (int32_t j = 0; j < n; ++j)
    {
        aa[j] = aaIn[state + j];
        bb[j] = bbIn[state + j];
        pp[j] = ppIn[state + j];
    }
    bool const medium = mediumDecays >= 0;
    int64_t const p0 = medium ? pos0[sl.b] : 0;
    int32_t closes = 0;
    for (int32_t t = 0; t < T_; ++t)
    {
        int64_t const row = (sl.b * T_ + t) * C + sl.c0; // [B, T, C]
        for (int32_t j = 0; j < n; ++j)
        {
            int32_t const c = sl.c0 + j;
            float const wkv = wkv4Step(w[c], u[c], toFloat(k[row + j]), toFloat(v[row + j]), aa[j], bb[j], pp[j]);
            y[row + j] = fromFloat<T>(wkv);
        }
        if (medium && mediumCloses(p0, t, s))
        {
            int64_t const m = (sl.b * M + mediumRow(closes, M)) * C + sl.c0; // [B, M, C]
            for (int32_t j = 0; j < n; ++j)
            {
                mediumMerge(w[sl.c0 + j], kM[m + j], vM[m + j], mediumDecays, aa[j], bb[j], pp[j]);
            }
            ++closes;
        }
    }
    for (int32_t j = 0; j < n; ++j)
    {
        aaOut[state + j] = aa[j];
        bbOut[state + j] = bb[j];
        ppOut[state + j] = pp[j];
    }
}

} // namespace

int64_t wkv4CpuSliceCount(int32_t B, int32_t C)
{
    return C <= 0 || B <= 0 ? 0 : static_cast<int64_t>(B) * channelBlocks(C);
}

template <typename T>
void wkv4ForwardCpu(int32_t B, int32_t T_, int32_t C, float const* w, float const* u, T const* k, T const* v,
    float const* aaIn, float const* bbIn, float const* ppIn, T* y, float* aaOut, float* bbOut, float* ppOut,
    int64_t sliceBegin, int64_t sliceEnd)
{
    int64_t const end = sliceEndOrAll(sliceEnd, B, C);
    for (int64_t i = sliceBegin; i < end; ++i)
    {
        runSlice<T>(slice(i, C), T_, C, 1, 1, -1, w, u, k, v, nullptr, nullptr, aaIn, bbIn, ppIn, nullptr, y, aaOut,
            bbOut, ppOut);
    }
}

template <typename T>
void wkv4MediumForwardCpu(int32_t B, int32_t T_, int32_t C, int32_t M, int32_t s, int32_t mediumDecays,
    float const* w, float const* u, T const* k, T const* v, float const* kM, float const* vM, float const* aaIn,
    float const* bbIn, float const* ppIn, int64_t const* pos0, T* y, float* aaOut, float* bbOut, float* ppOut,
    int64_t sliceBegin, int64_t sliceEnd)
{
    int64_t const end = sliceEndOrAll(sliceEnd, B, C);
    for (int64_t i = sliceBegin; i < end; ++i)
    {
        runSlice<T>(slice(i, C), T_, C, M, s, mediumDecays, w, u, k, v, kM, vM, aaIn, bbIn, ppIn, pos0, y, aaOut,
            bbOut, ppOut);
    }
}

template void wkv4ForwardCpu<float>(int32_t, int32_t, int32_t, float const*, float const*, float const*, float const*,
    float const*, float const*, float const*, float*, float*, float*, float*, int64_t, int64_t);
template void wkv4ForwardCpu<HostHalf>(int32_t, int32_t, int32_t, float const*, float const*, HostHalf const*,
    HostHalf const*, float const*, float const*, float const*, HostHalf*, float*, float*, float*, int64_t, int64_t);
template void wkv4MediumForwardCpu<float>(int32_t, int32_t, int32_t, int32_t, int32_t, int32_t, float const*,
    float const*, float const*, float const*, float const*, float const*, float const*, float const*, float const*,
    int64_t const*, float*, float*, float*, float*, int64_t, int64_t);
template void wkv4MediumForwardCpu<HostHalf>(int32_t, int32_t, int32_t, int32_t, int32_t, int32_t, float const*,
    float const*, HostHalf const*, HostHalf const*, float const*, float const*, float const*, float const*,
    float const*, int64_t const*, HostHalf*, float*, float*, float*, int64_t, int64_t);

} // namespace rrwkv
