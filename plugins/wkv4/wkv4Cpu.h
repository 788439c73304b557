/*
 * CPU kernels for rrwkv::WKV4 over wkv4Math.h: the same arguments as the CUDA launchers of wkv4Kernel.h minus the
 * stream, on host pointers (dense row-major: k, v, y [B, T, C]; w, u [C]; aa, bb, pp [B, C]). T is float or
 * HostHalf (IEEE fp16 bits); state and arithmetic are fp32. In/out state buffers may alias (in place); k/v/y may
 * not. No ONNX Runtime or CUDA dependency.
 *
 * The work splits into independent slices, (sequence b, block of up to kWKV4_CPU_CHANNELS channels), so a
 * caller can spread them over a thread pool: the last two arguments select slices [sliceBegin, sliceEnd)
 * of wkv4CpuSliceCount(B, C); the defaults run them all. Within a slice the loop is t-outer, c-inner
 * (stride-1 reads), one token of the slice's channels at a time (wkv4RowCpu), with the slice's state in its part
 * of the output state buffers. wkv4SliceCpu is that loop, for the CPU kernels of the ops that build on the WKV4
 * recurrence too.
 *
 * A token of a slice runs on the best path this CPU has up to `maxIsa` (common/cpuIsa.h): AVX-512 (16 channels a
 * vector, the last one masked), AVX2 + FMA (8 a vector, the rest portable) or portable C++ (tests lower `maxIsa` to
 * run each). The SIMD paths do wkv4Step's and wkv4Exp's operations in the same order with the same rounding (IEEE
 * add, mul, div, fma; max/min as wkv4Max/wkv4Min's selects), so every path returns the same bits, and the same bits
 * as the CUDA kernel built for the CPU under plugins/tests/cudaEmulation.h.
 */
#ifndef RRWKV_WKV4_CPU_H
#define RRWKV_WKV4_CPU_H

#include "common/cpuIsa.h"
#include "common/hostHalf.h"

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
    CpuIsa maxIsa = CpuIsa::kAvx512, int64_t sliceBegin = 0, int64_t sliceEnd = -1);

// One token of n channels on path `isa` (at most cpuIsa()): y = wkv4Step of each channel, the state read from the
// *In pointers and written to the *Out ones (which may alias them). Pointers are at the first channel.
template <typename T>
void wkv4RowCpu(CpuIsa isa, int32_t n, float const* w, float const* u, T const* k, T const* v, float const* aaIn,
    float const* bbIn, float const* ppIn, T* y, float* aaOut, float* bbOut, float* ppOut);

// y[i] = wkv4Exp(x[i]) for i < n on the best path up to maxIsa: for tests of each path's exp.
void wkv4ExpCpu(CpuIsa maxIsa, int64_t n, float const* x, float* y);

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

// One slice of the recurrence: for every token, wkv4RowCpu over the slice's channels on path `isa` (at most
// cpuIsa()), then afterToken(t, aa, bb, pp) with the slice's state (channel c0 + j at [j]), where an op built on
// WKV4 changes the state between tokens. The state lives in the slice's part of aaOut, bbOut, ppOut: the first
// token reads the inputs, every later one works in place.
template <typename T, typename AfterToken>
void wkv4SliceCpu(Wkv4CpuSlice const& sl, int32_t T_, int32_t C, float const* w, float const* u, T const* k,
    T const* v, float const* aaIn, float const* bbIn, float const* ppIn, T* y, float* aaOut, float* bbOut,
    float* ppOut, AfterToken&& afterToken, CpuIsa isa = cpuIsa())
{
    int32_t const n = sl.c1 - sl.c0;
    int64_t const state = sl.b * C + sl.c0; // [B, C]
    float* aa = aaOut + state;
    float* bb = bbOut + state;
    float* pp = ppOut + state;
    for (int32_t j = 0; T_ == 0 && j < n; ++j) // no token: the state passes through
    {
        aa[j] = aaIn[state + j];
        bb[j] = bbIn[state + j];
        pp[j] = ppIn[state + j];
    }
    float const* aaPrev = aaIn + state;
    float const* bbPrev = bbIn + state;
    float const* ppPrev = ppIn + state;
    for (int32_t t = 0; t < T_; ++t)
    {
        int64_t const row = (sl.b * T_ + t) * C + sl.c0; // [B, T, C]
        wkv4RowCpu<T>(isa, n, w + sl.c0, u + sl.c0, k + row, v + row, aaPrev, bbPrev, ppPrev, y + row, aa, bb, pp);
        afterToken(t, aa, bb, pp);
        aaPrev = aa;
        bbPrev = bb;
        ppPrev = pp;
    }
}

} // namespace rrwkv

#endif // RRWKV_WKV4_CPU_H
