/*
 * The WKV4Medium CUDA kernel, included by wkv4MediumKernel.cu (nvcc) and by the CPU emulation build
 * wkv4MediumTestShim.cc (g++ with plugins/tests/cudaEmulation.h), so the code tested on the CPU is this code, not a
 * copy. It is WKV4's kernel (wkv4/wkv4Kernel.cuh: one thread per (b, c), the same launcher) with a medium merge
 * after every token that closes a window; the arithmetic is wkv4MediumMath.h.
 */
#ifndef RRWKV_WKV4_MEDIUM_KERNEL_CUH
#define RRWKV_WKV4_MEDIUM_KERNEL_CUH

#include "wkv4/wkv4Kernel.cuh"
#include "wkv4_medium/wkv4MediumMath.h"

#include <cstdint>

namespace rrwkv
{

template <typename T>
__global__ void wkv4MediumForwardKernel(int32_t B, int32_t T_, int32_t C, int32_t M, int32_t s,
    int32_t mediumDecays, float const* __restrict__ w, float const* __restrict__ u, T const* __restrict__ k,
    T const* __restrict__ v, float const* __restrict__ kM, float const* __restrict__ vM, float const* aaIn,
    float const* bbIn, float const* ppIn, int64_t const* __restrict__ pos0, T* __restrict__ y, float* aaOut,
    float* bbOut, float* ppOut)
{
    Wkv4Thread th{};
    if (!wkv4Thread(B, C, th))
    {
        return;
    }
    auto const [idx, b, c] = th;
    int64_t const offset = b * T_ * C + c;      // k, v, y [B, T, C]
    int64_t const mediumOffset = b * M * C + c; // kM, vM [B, M, C]
    int64_t const p0 = pos0[b];
    float const ww = w[c];
    float const uu = u[c];
    float aa = aaIn[idx];
    float bb = bbIn[idx];
    float pp = ppIn[idx];
    int32_t closes = 0; // closes so far in this call = the next medium row
    for (int32_t t = 0; t < T_; ++t)
    {
        int64_t const i = offset + static_cast<int64_t>(t) * C;
        y[i] = storeFromFloat<T>(wkv4Step(ww, uu, loadAsFloat(k[i]), loadAsFloat(v[i]), aa, bb, pp));
        if (mediumCloses(p0, t, s))
        {
            int64_t const m = mediumOffset + static_cast<int64_t>(mediumRow(closes, M)) * C;
            mediumMerge(ww, kM[m], vM[m], mediumDecays, aa, bb, pp);
            ++closes;
        }
    }
    aaOut[idx] = aa;
    bbOut[idx] = bb;
    ppOut[idx] = pp;
}

// The launcher behind wkv4MediumForward (wkv4MediumKernel.h). Invalid sizes give cudaErrorInvalidValue;
// an empty batch or channel dim launches nothing.
template <typename T>
cudaError_t wkv4MediumForwardLaunch(cudaStream_t stream, int32_t B, int32_t T_, int32_t C, int32_t M, int32_t s,
    int32_t mediumDecays, float const* w, float const* u, T const* k, T const* v, float const* kM, float const* vM,
    float const* aaIn, float const* bbIn, float const* ppIn, int64_t const* pos0, T* y, float* aaOut, float* bbOut,
    float* ppOut)
{
    if (B < 0 || T_ < 0 || C < 0 || M < 1 || s < 1 || (mediumDecays != 0 && mediumDecays != 1))
    {
        return cudaErrorInvalidValue;
    }
    return wkv4Launch(stream, B, C, wkv4MediumForwardKernel<T>, B, T_, C, M, s, mediumDecays, w, u, k, v, kM, vM,
        aaIn, bbIn, ppIn, pos0, y, aaOut, bbOut, ppOut);
}

} // namespace rrwkv

#endif // RRWKV_WKV4_MEDIUM_KERNEL_CUH
