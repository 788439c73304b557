/*
 * The arithmetic of rrwkv::GatedOuterScan (docs/families/hgrn2.md §3.4, §3.8): the single source for the CUDA kernels
 * (gatedOuterScanKernel.cuh) and the CPU kernel (gatedOuterScanCpu.cc). Everything is fp32; the variable names follow
 * export/ops/gated_outer_scan.py (hgrn2_log_gate, gated_outer_step) where they can. Plain expf: no fast-math
 * dependency.
 *
 * Per (b, h) and token t:  a = lb + (1 - lb) sigmoid(f) (= e^g);  kk = (1 - lb) sigmoid(-f) (= 1 - e^g);
 *   S[k][j] = a[k] S[k][j] + kk[k] v[j];  o[j] = scale * sum_k q[k] S[k][j].
 */
#ifndef RRWKV_GATED_OUTER_SCAN_MATH_H
#define RRWKV_GATED_OUTER_SCAN_MATH_H

#include "common/hostdevice.h"

#include <cmath>

namespace rrwkv
{

// The forget gate of one key k, in linear space: a = lb + (1 - lb) sigmoid(f) (decay, e^g of the reference) and
// kk = (1 - lb) sigmoid(-f) (key, 1 - e^g). Both sigmoids come from one exp(-|f|), so neither overflows and each keeps
// full relative precision; kk is never formed as 1 - a, which cancels where the gate saturates (f >> 0): the
// reference's log-space g = log(a) is what its chunked form needs, the per-token recurrence needs only a and kk.
RRWKV_HD inline void gosGate(float f, float lb, float& a, float& kk)
{
    float const e = expf(-fabsf(f));
    float const big = 1.F / (1.F + e); // sigmoid(|f|)
    float const small = e * big;       // sigmoid(-|f|)
    float const keep = 1.F - lb;
    a = lb + keep * (f >= 0.F ? big : small);
    kk = keep * (f >= 0.F ? small : big);
}

// One element of the state update: S[k][j] <- a[k] S[k][j] + kk[k] v[j].
RRWKV_HD inline float gosUpdate(float a, float kk, float vj, float s)
{
    return a * s + kk * vj;
}

// One term of the output's dot product over k, with the UPDATED state: acc + q[k] S[k][j].
RRWKV_HD inline float gosDot(float acc, float q, float s)
{
    return acc + q * s;
}

// o[j] = scale * sum_k q[k] S[k][j]: the scale is applied to the finished sum, as in the reference.
RRWKV_HD inline float gosOutput(float scale, float acc)
{
    return scale * acc;
}

} // namespace rrwkv

#endif // RRWKV_GATED_OUTER_SCAN_MATH_H
