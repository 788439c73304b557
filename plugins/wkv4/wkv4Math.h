/*
 * The arithmetic of rrwkv::WKV4 (docs/families/rwkv4.md §1.3): the single source for the CUDA kernels (wkv4Kernel.cuh)
 * and the CPU kernels (wkv4Cpu.h), and the step that the ops built on WKV4 share. Everything is fp32 and per
 * channel; the variable names follow export/ops/wkv4.py (wkv4_step) so the two can be diffed by eye.
 *
 * The exponential is wkv4Exp, not expf: libm's expf, CUDA's expf and any vectorised exp round differently, while
 * wkv4Exp is built from operations that IEEE 754 rounds exactly (fmaf, +, -, *, compares and selects, an exponent
 * field written as bits), so the CUDA kernel, every path of the CPU kernel (wkv4Cpu.cc mirrors wkv4Step and
 * wkv4Exp lane for lane) and the emulated CUDA kernel compute the same bits. The maxima are selects for the same
 * reason (wkv4Max). No fast-math dependency.
 */
#ifndef RRWKV_WKV4_MATH_H
#define RRWKV_WKV4_MATH_H

#include "common/hostdevice.h"

#include <cmath>
#include <cstdint>
#include <cstring>

namespace rrwkv
{

// a > b ? a : b, so b when either is NaN and b for two zeros of either sign: x86's MAXPS rule, so the SIMD CPU
// paths' max_ps(a, b) agrees on every input (fmaxf drops a NaN, and its choice between -0 and +0 is the library's).
RRWKV_HD inline float wkv4Max(float a, float b)
{
    return a > b ? a : b;
}

// a < b ? a : b: MINPS's rule.
RRWKV_HD inline float wkv4Min(float a, float b)
{
    return a < b ? a : b;
}

// wkv4Exp's constants; the SIMD paths broadcast the same ones.
// Below LO, just above ln(FLT_MIN) = -87.3365, e^x is flushed to +0 instead of a subnormal: a product that
// underflows costs the CPU a microcode assist per vector, and in WKV4 such a weight always sits beside a weight of
// e^0 = 1 (one of e1, e2 is e^(p - p)), so it is under 1.2e-38 of it. Above ln(FLT_MAX) = 88.72 e^x overflows; the
// clamp at HI = 89 keeps that +inf and n = round(x / ln 2) <= 128.
constexpr float kWKV4_EXP_LO = -0x1.5d589ep+6F;
constexpr float kWKV4_EXP_HI = 89.0F;
constexpr float kWKV4_EXP_LOG2E = 0x1.715476p+0F;
// 1.5 * 2^23: v + it, rounded, is 1.5 * 2^23 + round(v) for |v| < 2^22 (ties to even), with round(v) in the low
// mantissa bits.
constexpr float kWKV4_EXP_ROUND = 0x1.8p+23F;
constexpr int32_t kWKV4_EXP_ROUND_BITS = 0x4B400000;
// ln 2 = LN2_HI + LN2_LO (Cody-Waite): n * LN2_HI is a multiple of 2^-24, so x - n * LN2_HI is exact for |x| <= 89.
constexpr float kWKV4_EXP_LN2_HI = 0x1.62e430p-1F;
constexpr float kWKV4_EXP_LN2_LO = -0x1.05c610p-29F;
// e^r ~ 1 + r + C2 r^2 + ... + C6 r^6 on |r| <= 0.34658 (ln 2 / 2 and the rounding of n): the minimax polynomial
// of relative error 2.6e-9 (Remez, with the first two coefficients fixed at 1), coefficients rounded to fp32.
constexpr float kWKV4_EXP_C2 = 0x1.000002p-1F;
constexpr float kWKV4_EXP_C3 = 0x1.5553c2p-3F;
constexpr float kWKV4_EXP_C4 = 0x1.55515ep-5F;
constexpr float kWKV4_EXP_C5 = 0x1.129042p-7F;
constexpr float kWKV4_EXP_C6 = 0x1.709b70p-10F;

RRWKV_HD inline int32_t wkv4FloatBits(float x)
{
#if defined(__CUDA_ARCH__)
    return __float_as_int(x);
#else
    int32_t bits;
    memcpy(&bits, &x, sizeof(bits));
    return bits;
#endif
}

// 2^n for n in [-126, 127], from its exponent field.
RRWKV_HD inline float wkv4Pow2(int32_t n)
{
    int32_t const bits = static_cast<int32_t>(static_cast<uint32_t>(n + 127) << 23);
#if defined(__CUDA_ARCH__)
    return __int_as_float(bits);
#else
    float x;
    memcpy(&x, &bits, sizeof(x));
    return x;
#endif
}

// e^x within 1.2 ulp for x in [LO, 88.72] (every float checked against a double exp); exactly 1 at x = +-0, +0
// below LO (-inf too), +inf above 88.72, NaN for NaN. x = n ln 2 + r, e^x = 2^n e^r.
RRWKV_HD inline float wkv4Exp(float x)
{
    float const xc = wkv4Min(kWKV4_EXP_HI, wkv4Max(kWKV4_EXP_LO, x)); // a NaN x is the second operand: it stays
    float const t = fmaf(xc, kWKV4_EXP_LOG2E, kWKV4_EXP_ROUND);
    float const n = t - kWKV4_EXP_ROUND;
    float r = fmaf(n, -kWKV4_EXP_LN2_HI, xc);
    r = fmaf(n, -kWKV4_EXP_LN2_LO, r);
    float er = kWKV4_EXP_C6;
    er = fmaf(er, r, kWKV4_EXP_C5);
    er = fmaf(er, r, kWKV4_EXP_C4);
    er = fmaf(er, r, kWKV4_EXP_C3);
    er = fmaf(er, r, kWKV4_EXP_C2);
    er = fmaf(er, r, 1.0F);
    er = fmaf(er, r, 1.0F);
    // 2^n in two factors, as n reaches 128 (e^x near FLT_MAX): the first product is exact, the second rounds once
    // (to +inf above 88.72). For a NaN x, n is garbage but er is NaN.
    int32_t const ni = wkv4FloatBits(t) - kWKV4_EXP_ROUND_BITS;
    int32_t const n1 = ni >> 1;
    float const ex = er * wkv4Pow2(n1) * wkv4Pow2(ni - n1);
    return x < kWKV4_EXP_LO ? 0.0F : ex;
}

// One token: returns wkv_t and advances (aa, bb, pp) in place. w is already -exp(time_decay).
RRWKV_HD inline float wkv4Step(float w, float u, float kt, float vt, float& aa, float& bb, float& pp)
{
    float ww = u + kt;
    float p = wkv4Max(pp, ww);
    float e1 = wkv4Exp(pp - p);
    float e2 = wkv4Exp(ww - p);
    float const wkv = (e1 * aa + e2 * vt) / (e1 * bb + e2);
    ww = w + pp;
    p = wkv4Max(ww, kt);
    e1 = wkv4Exp(ww - p);
    e2 = wkv4Exp(kt - p);
    aa = e1 * aa + e2 * vt;
    bb = e1 * bb + e2;
    pp = p;
    return wkv;
}

} // namespace rrwkv

#endif // RRWKV_WKV4_MATH_H
