/*
 * The arithmetic rrwkv::WKV4Medium adds to WKV4's step (wkv4/wkv4Math.h; docs/families/rrwkv.md §2.3, §2.6): the
 * medium merge and where it happens, the single source for the CUDA kernels (wkv4MediumKernel.cuh) and the CPU kernels
 * (wkv4MediumCpu.cc). Everything is fp32 and per channel; the variable names follow export/ops/wkv4_medium.py
 * (medium_merge, naive_wkv4_medium) so the two can be diffed by eye. Plain expf: no fast-math dependency.
 */
#ifndef RRWKV_WKV4_MEDIUM_MATH_H
#define RRWKV_WKV4_MEDIUM_MATH_H

#include "common/hostdevice.h"
#include "wkv4/wkv4Math.h"

#include <cmath>
#include <cstdint>

namespace rrwkv
{

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
// pos0 + t + 1 wraps in two's complement as int64 does in torch and ONNX (a signed overflow would be undefined).
RRWKV_HD inline bool mediumCloses(int64_t pos0, int32_t t, int32_t s)
{
    auto const x = static_cast<int64_t>(static_cast<uint64_t>(pos0) + static_cast<uint64_t>(t) + 1u);
    return x % s == 0;
}

// The k_m/v_m row of a sequence's `closes`-th close in this call; rows past M - 1 are clamped to the last
// (naive_wkv4_medium: row.clamp(max=Mmax - 1)). M >= 1.
RRWKV_HD inline int32_t mediumRow(int32_t closes, int32_t M)
{
    return closes < M - 1 ? closes : M - 1;
}

} // namespace rrwkv

#endif // RRWKV_WKV4_MEDIUM_MATH_H
