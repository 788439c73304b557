/*
 * MatMulW8's extern "C" entry points in librrwkv_cpu_testshim.so (tests/plugins/kernel_shim.py): the CPU kernels
 * of matmulW8Cpu.h and the CUDA kernels of matmulW8Kernel.cuh compiled for the CPU under tests/cudaEmulation.h.
 * Pointers are host buffers in the layouts of matmulW8Kernel.h.
 */
#include "tests/cpuTestShim.h"

#include "matmul_w8/matmulW8Cpu.h"
#include "matmul_w8/matmulW8Kernel.cuh"

#include <cstdint>

extern "C"
{

    // y [M, N] and the quantised rows xq [M, Kpad], xScale [M] (matmulW8Kernel.h). The CPU kernels run both
    // passes, all slices, on the best path up to maxIsa (rrwkv::W8Isa: 0 portable, 1 AVX2, 2 AVX-512 VNNI).
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

} // extern "C"
