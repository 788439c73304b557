/*
 * WKV4's extern "C" entry points in librrwkv_cpu_testshim.so (tests/plugins/kernel_shim.py): the CPU kernel of
 * wkv4Cpu.h and the CUDA kernel of wkv4Kernel.cuh compiled for the CPU under tests/cudaEmulation.h. Pointers are
 * host buffers in the layouts of wkv4Kernel.h; fp16 tensors are passed as uint16 bits.
 */
#include "tests/cpuTestShim.h"

#include "wkv4/wkv4Cpu.h"
#include "wkv4/wkv4Kernel.cuh"

#include <cstdint>

using rrwkv::asHalf;
using rrwkv::HostHalf;

extern "C"
{

    // Slice `index` of the CPU kernel's slicing (wkv4CpuSlice: sequence b, channels [c0, c1)); returns the slice
    // count. For tests of the size arithmetic at the int32 limits without the buffers.
    int64_t rrwkv_wkv4_cpu_slice(int64_t index, int32_t B, int32_t C, int64_t* b, int32_t* c0, int32_t* c1)
    {
        rrwkv::Wkv4CpuSlice const slice = rrwkv::wkv4CpuSlice(index, C);
        *b = slice.b;
        *c0 = slice.c0;
        *c1 = slice.c1;
        return rrwkv::wkv4CpuSliceCount(B, C);
    }

    // CPU kernels (all slices). Return 0.
    int rrwkv_cpu_wkv4_f32(int32_t B, int32_t T, int32_t C, float const* w, float const* u, float const* k,
        float const* v, float const* aa, float const* bb, float const* pp, float* y, float* aaOut, float* bbOut,
        float* ppOut)
    {
        rrwkv::wkv4ForwardCpu<float>(B, T, C, w, u, k, v, aa, bb, pp, y, aaOut, bbOut, ppOut);
        return 0;
    }

    int rrwkv_cpu_wkv4_f16(int32_t B, int32_t T, int32_t C, float const* w, float const* u, uint16_t const* k,
        uint16_t const* v, float const* aa, float const* bb, float const* pp, uint16_t* y, float* aaOut,
        float* bbOut, float* ppOut)
    {
        rrwkv::wkv4ForwardCpu<HostHalf>(
            B, T, C, w, u, asHalf(k), asHalf(v), aa, bb, pp, asHalf(y), aaOut, bbOut, ppOut);
        return 0;
    }

    // CPU kernels (all slices) on the best path up to maxIsa (rrwkv::CpuIsa: 0 portable, 1 AVX2, 2 AVX-512).
    // Return 0.
    int rrwkv_cpu_wkv4_isa_f32(int32_t B, int32_t T, int32_t C, float const* w, float const* u, float const* k,
        float const* v, float const* aa, float const* bb, float const* pp, float* y, float* aaOut, float* bbOut,
        float* ppOut, int32_t maxIsa)
    {
        rrwkv::wkv4ForwardCpu<float>(
            B, T, C, w, u, k, v, aa, bb, pp, y, aaOut, bbOut, ppOut, static_cast<rrwkv::CpuIsa>(maxIsa));
        return 0;
    }

    int rrwkv_cpu_wkv4_isa_f16(int32_t B, int32_t T, int32_t C, float const* w, float const* u, uint16_t const* k,
        uint16_t const* v, float const* aa, float const* bb, float const* pp, uint16_t* y, float* aaOut,
        float* bbOut, float* ppOut, int32_t maxIsa)
    {
        rrwkv::wkv4ForwardCpu<HostHalf>(B, T, C, w, u, asHalf(k), asHalf(v), aa, bb, pp, asHalf(y), aaOut, bbOut,
            ppOut, static_cast<rrwkv::CpuIsa>(maxIsa));
        return 0;
    }

    // The best path of the WKV4 CPU kernels on this CPU (rrwkv::CpuIsa).
    int32_t rrwkv_cpu_wkv4_isa()
    {
        return static_cast<int32_t>(rrwkv::cpuIsa());
    }

    // y = wkv4Exp(x) elementwise, n elements, on the best path up to maxIsa (rrwkv::CpuIsa).
    void rrwkv_cpu_wkv4_exp(float const* x, float* y, int64_t n, int32_t maxIsa)
    {
        rrwkv::wkv4ExpCpu(static_cast<rrwkv::CpuIsa>(maxIsa), n, x, y);
    }

    // Emulated CUDA launchers. Return the cudaError_t of the launch (0 = cudaSuccess).
    int rrwkv_emu_wkv4_f32(int32_t B, int32_t T, int32_t C, float const* w, float const* u, float const* k,
        float const* v, float const* aa, float const* bb, float const* pp, float* y, float* aaOut, float* bbOut,
        float* ppOut)
    {
        return rrwkv::wkv4ForwardLaunch<float>(nullptr, B, T, C, w, u, k, v, aa, bb, pp, y, aaOut, bbOut, ppOut);
    }

    int rrwkv_emu_wkv4_f16(int32_t B, int32_t T, int32_t C, float const* w, float const* u, uint16_t const* k,
        uint16_t const* v, float const* aa, float const* bb, float const* pp, uint16_t* y, float* aaOut,
        float* bbOut, float* ppOut)
    {
        return rrwkv::wkv4ForwardLaunch<__half>(
            nullptr, B, T, C, w, u, asHalf(k), asHalf(v), aa, bb, pp, asHalf(y), aaOut, bbOut, ppOut);
    }

    // Threads per block of the emulated WKV4 kernel (and of the kernels built on it).
    int32_t rrwkv_emu_wkv4_threads_per_block()
    {
        return rrwkv::kWKV4_THREADS_PER_BLOCK;
    }

} // extern "C"
