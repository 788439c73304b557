/*
 * CPU kernels of rrwkv::WKV4 (wkv4Cpu.h): the recurrence of wkv4SliceCpu over the requested slices, with nothing
 * between tokens. All arithmetic is in wkv4Math.h.
 */
#include "wkv4/wkv4Cpu.h"

namespace rrwkv
{

int64_t wkv4CpuSliceCount(int32_t B, int32_t C)
{
    int64_t const blocks = (static_cast<int64_t>(C) + kWKV4_CPU_CHANNELS - 1) / kWKV4_CPU_CHANNELS;
    return C <= 0 || B <= 0 ? 0 : static_cast<int64_t>(B) * blocks;
}

template <typename T>
void wkv4ForwardCpu(int32_t B, int32_t T_, int32_t C, float const* w, float const* u, T const* k, T const* v,
    float const* aaIn, float const* bbIn, float const* ppIn, T* y, float* aaOut, float* bbOut, float* ppOut,
    int64_t sliceBegin, int64_t sliceEnd)
{
    int64_t const end = wkv4CpuSliceEnd(sliceEnd, B, C);
    for (int64_t i = sliceBegin; i < end; ++i)
    {
        wkv4SliceCpu<T>(wkv4CpuSlice(i, C), T_, C, w, u, k, v, aaIn, bbIn, ppIn, y, aaOut, bbOut, ppOut,
            [](int32_t, float*, float*, float*) {});
    }
}

template void wkv4ForwardCpu<float>(int32_t, int32_t, int32_t, float const*, float const*, float const*, float const*,
    float const*, float const*, float const*, float*, float*, float*, float*, int64_t, int64_t);
template void wkv4ForwardCpu<HostHalf>(int32_t, int32_t, int32_t, float const*, float const*, HostHalf const*,
    HostHalf const*, float const*, float const*, float const*, HostHalf*, float*, float*, float*, int64_t, int64_t);

} // namespace rrwkv
