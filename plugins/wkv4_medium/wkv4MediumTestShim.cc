/*
 * WKV4Medium's extern "C" entry points in librrwkv_cpu_testshim.so (tests/plugins/kernel_shim.py): the CPU kernel
 * of wkv4MediumCpu.h and the CUDA kernel of wkv4MediumKernel.cuh compiled for the CPU under tests/cudaEmulation.h.
 * Pointers are host buffers in the layouts of wkv4MediumKernel.h; fp16 tensors are passed as uint16 bits.
 */
#include "tests/cpuTestShim.h"

#include "wkv4_medium/wkv4MediumCpu.h"
#include "wkv4_medium/wkv4MediumKernel.cuh"

#include <cstdint>

using rrwkv::asHalf;
using rrwkv::HostHalf;

extern "C"
{

    // CPU kernels (all slices). Return 0.
    int rrwkv_cpu_wkv4_medium_f32(int32_t B, int32_t T, int32_t C, int32_t M, int32_t s, int32_t mediumDecays,
        float const* w, float const* u, float const* k, float const* v, float const* kM, float const* vM,
        float const* aa, float const* bb, float const* pp, int64_t const* pos0, float* y, float* aaOut,
        float* bbOut, float* ppOut)
    {
        rrwkv::wkv4MediumForwardCpu<float>(
            B, T, C, M, s, mediumDecays, w, u, k, v, kM, vM, aa, bb, pp, pos0, y, aaOut, bbOut, ppOut);
        return 0;
    }

    int rrwkv_cpu_wkv4_medium_f16(int32_t B, int32_t T, int32_t C, int32_t M, int32_t s, int32_t mediumDecays,
        float const* w, float const* u, uint16_t const* k, uint16_t const* v, float const* kM, float const* vM,
        float const* aa, float const* bb, float const* pp, int64_t const* pos0, uint16_t* y, float* aaOut,
        float* bbOut, float* ppOut)
    {
        rrwkv::wkv4MediumForwardCpu<HostHalf>(B, T, C, M, s, mediumDecays, w, u, asHalf(k), asHalf(v), kM, vM, aa,
            bb, pp, pos0, asHalf(y), aaOut, bbOut, ppOut);
        return 0;
    }

    // Emulated CUDA launchers. Return the cudaError_t of the launch (0 = cudaSuccess).
    int rrwkv_emu_wkv4_medium_f32(int32_t B, int32_t T, int32_t C, int32_t M, int32_t s, int32_t mediumDecays,
        float const* w, float const* u, float const* k, float const* v, float const* kM, float const* vM,
        float const* aa, float const* bb, float const* pp, int64_t const* pos0, float* y, float* aaOut,
        float* bbOut, float* ppOut)
    {
        return rrwkv::wkv4MediumForwardLaunch<float>(
            nullptr, B, T, C, M, s, mediumDecays, w, u, k, v, kM, vM, aa, bb, pp, pos0, y, aaOut, bbOut, ppOut);
    }

    int rrwkv_emu_wkv4_medium_f16(int32_t B, int32_t T, int32_t C, int32_t M, int32_t s, int32_t mediumDecays,
        float const* w, float const* u, uint16_t const* k, uint16_t const* v, float const* kM, float const* vM,
        float const* aa, float const* bb, float const* pp, int64_t const* pos0, uint16_t* y, float* aaOut,
        float* bbOut, float* ppOut)
    {
        return rrwkv::wkv4MediumForwardLaunch<__half>(nullptr, B, T, C, M, s, mediumDecays, w, u, asHalf(k),
            asHalf(v), kM, vM, aa, bb, pp, pos0, asHalf(y), aaOut, bbOut, ppOut);
    }

} // extern "C"
