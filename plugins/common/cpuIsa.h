/*
 * The x86 SIMD levels a CPU kernel may pick at run time, and the best one this CPU has, detected once per process:
 * the one detection of every CPU kernel (WKV4, MatMulW8/W4/WF16, LTMUpdate, ContinuousGaussianAttention).
 * A kernel with paths for these levels takes the best one up to a caller's `maxIsa` (tests lower it to run each).
 *
 * A level is detected only where the CPU has all of its features, and each level's features include those of the
 * levels below, so a lowered `maxIsa` runs a lower path only where that path's instructions exist too:
 *   kPortable  none: plain x86-64
 *   kAvx2      AVX2, FMA, F16C
 *   kAvx512    kAvx2's, AVX512F, AVX512BW, AVX512VL
 * A path's target attribute names its level's features or fewer. Where it names fewer, its op says so: the path still
 * waits for its whole level. One needing AVX2 alone runs only with FMA and F16C too, which every AVX2 CPU has; one
 * needing AVX512F alone only with BW and VL too, which Xeon Phi lacks: there it takes the kAvx2 path (the same bits,
 * more slowly). The one path that needs more, MatMulW8/W4's kAvx512 (vpdpwssd: also AVX512DQ and AVX512_VNNI), is
 * chosen by cpuIsaVnni() instead of cpuIsa().
 * The values are part of the test shims' interface (0, 1, 2 as integers from Python): never renumber them.
 */
#ifndef RRWKV_CPU_ISA_H
#define RRWKV_CPU_ISA_H

#include <cpuid.h>

#include <algorithm>
#include <cstdint>

namespace rrwkv
{

// In order of preference.
enum class CpuIsa : int32_t
{
    kPortable = 0,
    kAvx2 = 1,   // AVX2 + FMA + F16C
    kAvx512 = 2, // kAvx2 + AVX512F/BW/VL
};

inline CpuIsa detectCpuIsa()
{
    __builtin_cpu_init();
    // GCC 12's __builtin_cpu_supports has no "f16c": read the CPUID bit.
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    bool const f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c))
    {
        return CpuIsa::kPortable;
    }
    bool const avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512vl");
    return avx512 ? CpuIsa::kAvx512 : CpuIsa::kAvx2;
}

// The best level this CPU runs.
inline CpuIsa cpuIsa()
{
    static CpuIsa const isa = detectCpuIsa();
    return isa;
}

// The best level for a kernel whose kAvx512 path also uses AVX512DQ and AVX512_VNNI (MatMulW8/W4): cpuIsa(), lowered
// to kAvx2 where either is missing. A separate query rather than a fourth level, so that cpuIsa() stays within the
// three levels the other kernels switch over.
inline CpuIsa cpuIsaVnni()
{
    static CpuIsa const isa = cpuIsa() == CpuIsa::kAvx512 && __builtin_cpu_supports("avx512dq")
            && __builtin_cpu_supports("avx512vnni")
        ? CpuIsa::kAvx512
        : std::min(cpuIsa(), CpuIsa::kAvx2);
    return isa;
}

} // namespace rrwkv

#endif // RRWKV_CPU_ISA_H
