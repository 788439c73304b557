/*
 * CPU kernels for rrwkv::WKV4 over wkv4Math.h: the same arguments as the CUDA launchers of wkv4Kernel.h minus the
 * stream, on host pointers (dense row-major: k, v, y [B, T, C]; w, u [C]; aa, bb, pp [B, C]). T is float or
 * HostHalf (IEEE fp16 bits); state and arithmetic are fp32. In/out state buffers may alias (in place); k/v/y may
 * not. No ONNX Runtime or CUDA dependency.
 *
 * The work splits into independent slices, (sequence b, block of up to kWKV4_CPU_CHANNELS channels), so a
 * caller can spread them over a thread pool: the last two arguments select slices [sliceBegin, sliceEnd)
 * of wkv4CpuSliceCount(B, C); the defaults run them all. Within a slice the loop is t-outer, c-inner
 * (stride-1 reads), with the slice's state in local arrays. wkv4SliceCpu is that loop, for the CPU kernels of
 * the ops that build on the WKV4 recurrence too.
 */
#ifndef RRWKV_WKV4_CPU_H
#define RRWKV_WKV4_CPU_H

#include "common/hostHalf.h"
#include "wkv4/wkv4Math.h"

#include <algorithm>
#include <cstdint>

namespace rrwkv
{

constexpr int32_t kWKV4_CPU_CHANNELS = 64;

// Number of slices: B * ceil(C / kWKV4_CPU_CHANNELS).
int64_t wkv4CpuSliceCount(int32_t B, int32_t C);

template <typename T>
void wkv4ForwardCpu(int32_t B, int32_t T_, int32_t C, float const* w, float const* u, T const* k, T const* v,
    float const* aaIn, float const* bbIn, float const* ppIn, T* y, float* aaOut, float* bbOut, float* ppOut,
    int64_t sliceBegin = 0, int64_t sliceEnd = -1);

// Sequence b, channels [c0, c1).
struct Wkv4CpuSlice
{
    int64_t b;
    int32_t c0;
    int32_t c1;
};

// Slice `index` of wkv4CpuSliceCount(B, C): channel blocks of one sequence are consecutive.
// In 64 bits: C + 63 and c0 + 64 pass 2^31 - 1 for C near it.
inline Wkv4CpuSlice wkv4CpuSlice(int64_t index, int32_t C)
{
    int64_t const blocks = (static_cast<int64_t>(C) + kWKV4_CPU_CHANNELS - 1) / kWKV4_CPU_CHANNELS;
    int64_t const c0 = (index % blocks) * kWKV4_CPU_CHANNELS;
    int64_t const c1 = std::min<int64_t>(C, c0 + kWKV4_CPU_CHANNELS);
    return Wkv4CpuSlice{index / blocks, static_cast<int32_t>(c0), static_cast<int32_t>(c1)};
}

// The end of a slice range: sliceEnd < 0 means all slices.
inline int64_t wkv4CpuSliceEnd(int64_t sliceEnd, int32_t B, int32_t C)
{
    int64_t const all = wkv4CpuSliceCount(B, C);
    return sliceEnd < 0 ? all : std::min(sliceEnd, all);
}

// One slice of the recurrence: loads the slice's state, runs wkv4Step for every token and channel, then
// afterToken(t, aa, bb, pp) with the slice's state arrays (channel c0 + j at [j]), where an op built on WKV4
// changes the state between tokens, and stores the state.
template <typename T, typename AfterToken>
void wkv4SliceCpu(Wkv4CpuSlice const& sl, int32_t T_, int32_t C, float const* w, float const* u, T const* k,
    T const* v, float const* aaIn, float const* bbIn, float const* ppIn, T* y, float* aaOut, float* bbOut,
    float* ppOut, AfterToken&& afterToken)
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
    for (int32_t t = 0; t < T_; ++t)
    {
        int64_t const row = (sl.b * T_ + t) * C + sl.c0; // [B, T, C]
        for (int32_t j = 0; j < n; ++j)
        {
            int32_t const c = sl.c0 + j;
            float const wkv = wkv4Step(w[c], u[c], toFloat(k[row + j]), toFloat(v[row + j]), aa[j], bb[j], pp[j]);
            y[row + j] = fromFloat<T>(wkv);
        }
        afterToken(t, aa, bb, pp);
    }
    for (int32_t j = 0; j < n; ++j)
    {
        aaOut[state + j] = aa[j];
        bbOut[state + j] = bb[j];
        ppOut[state + j] = pp[j];
    }
}

} // namespace rrwkv

#endif // RRWKV_WKV4_CPU_H
