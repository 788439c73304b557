/*
 * <immintrin.h> for a CPU kernel's SIMD paths (compiled with target attributes, chosen at run time by
 * common/cpuIsa.h), with the one warning its intrinsics raise silenced for the rest of the translation unit:
 * GCC 12's avx512fintrin.h initialises its "undefined" vectors with themselves (`__m512 __Y = __Y;`), which
 * -Wmaybe-uninitialized reports wherever an intrinsic using one is inlined; the pattern is intended.
 * A kernel whose SIMD paths mirror a math header's separate multiplies and adds also includes common/noFpContract.h.
 */
#ifndef RRWKV_SIMD_INTRINSICS_H
#define RRWKV_SIMD_INTRINSICS_H

#include <immintrin.h>

#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#endif // RRWKV_SIMD_INTRINSICS_H
