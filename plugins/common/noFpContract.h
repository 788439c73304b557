/*
 * Every product rounded before it is added, for the rest of the translation unit that includes this: a CPU kernel
 * whose SIMD paths must return the bits of its portable path and of the CUDA kernel that the host compiler builds
 * for the emulation tests, which compute a * b + c as two roundings. The SIMD targets have FMA instructions, and
 * GCC and Clang contract a multiply feeding an add into one unless told not to; an FMA the math wants is written
 * as fmaf / _mm*_fmadd_ps, which this leaves alone.
 */
#ifndef RRWKV_NO_FP_CONTRACT_H
#define RRWKV_NO_FP_CONTRACT_H

#if defined(__clang__)
#pragma clang fp contract(off)
#else
#pragma GCC optimize("fp-contract=off")
#endif

#endif // RRWKV_NO_FP_CONTRACT_H
