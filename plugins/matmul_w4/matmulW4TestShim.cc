/*
 * MatMulW4's extern "C" entry points in librrwkv_cpu_testshim.so (tests/plugins/kernel_shim.py): the CPU kernels
 * of matmulW4Cpu.h and the CUDA kernels of matmulW4Kernel.cuh compiled for the CPU under tests/cudaEmulation.h.
 * Pointers are host buffers in the layouts of matmulW4Kernel.h. The size arithmetic, slices and path detection are
 * MatMulW8's (its shim entry points).
 */
#include "tests/cpuTestShim.h"

#include "matmul_w4/matmulW4Cpu.h"
#include "matmul_w4/matmulW4Kernel.cuh"
#include "tests/weightOnlyMatmulTestShim.h"

#include <cstdint>

extern "C"
{

    // y [M, N] and the quantised rows xq [M, Kpad], xScale [M] (matmulW4Kernel.h). The CPU kernels run both
    // passes, all slices, on the best path up to maxIsa (rrwkv::CpuIsa: 0 portable, 1 AVX2, 2 AVX-512 VNNI).
    // Return 0, or for the emulated launcher its cudaError_t; the CPU kernels refuse the sizes matmulW8SizeError
    // names with 1 (cudaErrorInvalidValue), touching nothing.
    int rrwkv_cpu_matmul_w4(int32_t M, int32_t K, int32_t N, int32_t blockSize, float const* x, int8_t const* w,
        float const* scale, int16_t* xq, float* xScale, float* y, int32_t maxIsa)
    {
        return rrwkv::blockQuantizedCpuShim(
            rrwkv::matmulW4ForwardCpu, M, K, N, blockSize, x, w, scale, xq, xScale, y, maxIsa);
    }

    int rrwkv_emu_matmul_w4(int32_t M, int32_t K, int32_t N, int32_t blockSize, float const* x, int8_t const* w,
        float const* scale, int16_t* xq, float* xScale, float* y)
    {
        return rrwkv::matmulW4ForwardLaunch(nullptr, M, K, N, blockSize, x, w, scale, xq, xScale, y);
    }

    // Threads per block of the emulated MatMulW4 kernels: row quantisation, GEMM.
    void rrwkv_emu_matmul_w4_threads(int32_t* quantize, int32_t* gemm)
    {
        *quantize = rrwkv::kW4_QUANT_THREADS;
        *gemm = rrwkv::kW4_GEMM_THREADS;
    }

} // extern "C"
