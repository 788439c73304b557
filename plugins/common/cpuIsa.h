/*
 * The x86 SIMD levels a CPU kernel may pick at run time, and the best one this CPU has, detected once per process.
 * A kernel with paths for these levels takes the best one up to a caller's `maxIsa` (tests lower it to run each).
 * Used by WKV4 (wkv4/wkv4Cpu.h); the ops with their own ISA enums keep them.
 */
#ifndef RRWKV_CPU_ISA_H
#define RRWKV_CPU_ISA_H

#include <cpuid.h>

#include <cstdint>

namespace rrwkv
{

// In order of preference.
enum class CpuIsa : int32_t
{
    kPortable = 0,
    kAvx2 = 1,   // AVX2 + FMA + F16C
    kAvx512 = 2, // AVX512F/BW/VL
};

inline CpuIsa detectCpuIsa()
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
    {
        return CpuIsa::kAvx512;
    }
    // GCC 12's __builtin_cpu_supports has no "f16c": read the CPUID bit.
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    bool const f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c ? CpuIsa::kAvx2
                                                                                   : CpuIsa::kPortable;
}

// The best level this CPU runs.
inline CpuIsa cpuIsa()
{
    static CpuIsa const isa = detectCpuIsa();
    return isa;
}

} // namespace rrwkv

#endif // RRWKV_CPU_ISA_H
