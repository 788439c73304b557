/*
 * extern "C" entry points for the CPU tests (tests/plugins/, ctypes): the CPU kernels of wkv4Cpu.h and
 * matmulW8Cpu.h, the CUDA kernels of wkv4Kernel.cuh and matmulW8Kernel.cuh compiled for the CPU under
 * cudaEmulation.h, and the host fp16 conversions. Pointers are host buffers in the layouts of wkv4Kernel.h and
 * matmulW8Kernel.h; fp16 tensors are passed as uint16 bits.
 */
#include "tests/cudaEmulation.h"

#include "matmul_w8/matmulW8Cpu.h"
#include "matmul_w8/matmulW8Kernel.cuh"
#include "wkv4/wkv4Cpu.h"
#include "wkv4/wkv4Kernel.cuh"

#include <cstdint>

using rrwkv::HostHalf;

namespace
{

HostHalf const* asHalf(uint16_t const* p)
{
    return reinterpret_cast<HostHalf const*>(p);
}

HostHalf* asHalf(uint16_t* p)
{
    return reinterpret_cast<HostHalf*>(p);
}

} // namespace

extern "C"
{

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

    // MatMulW8: y [M, N] and the quantised rows xq [M, Kpad], xScale [M] (matmulW8Kernel.h). The CPU kernels run
    // both passes, all slices, on the best path up to maxIsa (rrwkv::W8Isa: 0 portable, 1 AVX2, 2 AVX-512 VNNI).
    // Return 0, or for the emulated launcher its cudaError_t.
    int rrwkv_cpu_matmul_w8(int32_t M, int32_t K, int32_t N, int32_t blockSize, float const* x, int8_t const* w,
        float const* scale, int16_t* xq, float* xScale, float* y, int32_t maxIsa)
    {
        int32_t const Kpad = rrwkv::w8BlockCount(K, blockSize) * blockSize;
        auto const isa = static_cast<rrwkv::W8Isa>(maxIsa);
        rrwkv::matmulW8QuantizeRowsCpu(M, K, Kpad, x, xq, xScale, isa);
        rrwkv::matmulW8ForwardCpu(M, N, Kpad, blockSize, xq, xScale, w, scale, y, isa);
        return 0;
    }

    int rrwkv_emu_matmul_w8(int32_t M, int32_t K, int32_t N, int32_t blockSize, float const* x, int8_t const* w,
        float const* scale, int16_t* xq, float* xScale, float* y)
    {
        return rrwkv::matmulW8ForwardLaunch(nullptr, M, K, N, blockSize, x, w, scale, xq, xScale, y);
    }

    // The best path the CPU kernels take on this machine (rrwkv::W8Isa).
    int32_t rrwkv_cpu_matmul_w8_isa()
    {
        return static_cast<int32_t>(rrwkv::matmulW8CpuIsa());
    }

    // Threads per block of the emulated MatMulW8 kernels: row quantisation, GEMM.
    void rrwkv_emu_matmul_w8_threads(int32_t* quantize, int32_t* gemm)
    {
        *quantize = rrwkv::kW8_QUANT_THREADS;
        *gemm = rrwkv::kW8_GEMM_THREADS;
    }

    // The last emulated launch on this thread: grid and block size, CUDA threads run, launches so far.
    void rrwkv_emu_last_launch(uint32_t* gridX, uint32_t* blockX, int64_t* threadsRun, int32_t* launches)
    {
        rrwkv::emu::LaunchRecord const& r = rrwkv::emu::lastLaunch;
        *gridX = r.gridX;
        *blockX = r.blockX;
        *threadsRun = r.threadsRun;
        *launches = r.launches;
    }

    int32_t rrwkv_emu_threads_per_block()
    {
        return rrwkv::kWKV4_THREADS_PER_BLOCK;
    }

    // Host fp16 conversions, checked against numpy.
    void rrwkv_half_to_float(uint16_t const* h, float* f, int64_t n)
    {
        for (int64_t i = 0; i < n; ++i)
        {
            f[i] = rrwkv::halfBitsToFloat(h[i]);
        }
    }

    void rrwkv_float_to_half(float const* f, uint16_t* h, int64_t n)
    {
        for (int64_t i = 0; i < n; ++i)
        {
            h[i] = rrwkv::floatToHalfBits(f[i]);
        }
    }

} // extern "C"
