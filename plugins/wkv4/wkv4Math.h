/*
 * The arithmetic of rrwkv::WKV4 and rrwkv::WKV4Medium (ARCHITECTURES.md §1.3, §2.3, §2.6): the single source
 * for the CUDA kernels (wkv4Kernel.cuh) and the CPU kernels (wkv4Cpu.cc). Everything is fp32 and per channel;
 * the variable names follow export/ops/wkv4.py (wkv4_step) and export/ops/wkv4_medium.py (medium_merge,
 * naive_wkv4_medium) so the three can be diffed by eye. Plain expf: no fast-math dependency.
 */
#ifndef RRWKV_WKV4_MATH_H
#define RRWKV_WKV4_MATH_H

#include "common/hostdevice.h"

#include <cmath>
#include <cstdint>

namespace rrwkv
{

// One token: returns wkv_t and advances (aa, bb, pp) in place. w is already -exp(time_decay).
RRWKV_HD inline float wkv4Step(float w, float u, float kt, float vt, float& aa, float& bb, float& pp)
{
    float ww = u + kt;
    float p = fmaxf(pp, ww);
    float e1 = expf(pp - p);
    float e2 = expf(ww - p);
    float const wkv = (e1 * aa + e2 * vt) / (e1 * bb + e2);
    ww = w + pp;
    p = fmaxf(ww, kt);
    e1 = expf(ww - p);
    e2 = expf(kt - p);
    aa = e1 * aa + e2 * vt;
    bb = e1 * bb + e2;
    pp = p;
    return wkv;
}

// Insert one medium (km, vm) into the state. mediumDecays = 0: no time slot consumed (no decay);
// 1: the state decays by w once, like a token update (§2.8.1).
RRWKV_HD inline void mediumMerge(float w, float km, float vm, int32_t mediumDecays, float& aa, float& bb, float& pp)
{
    float const base = mediumDecays ? pp + w : pp;
    float const p = fmaxf(base, km);
    float const e1 = expf(base - p);
    float const e2 = expf(km - p);
    aa = e1 * aa + e2 * vm;
    bb = e1 * bb + e2;
    pp = p;
}

// Token t of a call starting at global position pos0 closes a window of s tokens. x % s == 0 has the same
// answer under C's truncating and Python's floor modulo, so a negative pos0 agrees with the reference too.
RRWKV_HD inline bool mediumCloses(int64_t pos0, int32_t t, int32_t s)
{
    return (pos0 + t + 1) % s == 0;
}

// The k_m/v_m row of a sequence's `closes`-th close in this call; rows past M - 1 are clamped to the last
// (naive_wkv4_medium: row.clamp(max=Mmax - 1)). M >= 1.
RRWKV_HD inline int32_t mediumRow(int32_t closes, int32_t M)
{
    return closes < M - 1 ? closes : M - 1;
}

} // namespace rrwkv

#endif // RRWKV_WKV4_MATH_H
