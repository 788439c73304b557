/*
 * The arithmetic of rrwkv::WKV4 (docs/families/rwkv4.md §1.3): the single source for the CUDA kernels (wkv4Kernel.cuh)
 * and the CPU kernels (wkv4Cpu.h), and the step that the ops built on WKV4 share. Everything is fp32 and per
 * channel; the variable names follow export/ops/wkv4.py (wkv4_step) so the two can be diffed by eye. Plain expf:
 * no fast-math dependency.
 */
#ifndef RRWKV_WKV4_MATH_H
#define RRWKV_WKV4_MATH_H

#include "common/hostdevice.h"

#include <cmath>

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

} // namespace rrwkv

#endif // RRWKV_WKV4_MATH_H
