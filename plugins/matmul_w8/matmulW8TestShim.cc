/*
 * MatMulW8's extern "C" entry points in librrwkv_cpu_testshim.so (tests/plugins/kernel_shim.py): the CPU kernels
 * of matmulW8Cpu.h and the CUDA kernels of matmulW8Kernel.cuh compiled for the CPU under tests/cudaEmulation.h.
 * Pointers are host buffers in the layouts of matmulW8Kernel.h.
 */
#include "tests/cpuTestShim.h"

#include "matmul_w8/matmulW8Cpu.h"
#include "matmul_w8/matmulW8Kernel.cuh"
#include "tests/weightOnlyMatmulTestShim.h"

#include <cstdint>

extern "C"
{

    // y [M, N] and the quantised rows xq [M, Kpad], xScale [M] (matmulW8Kernel.h). The CPU kernels run both
    // passes, all slices, on the best path up to maxIsa (rrwkv::CpuIsa: 0 portable, 1 AVX2, 2 AVX-512 VNNI).
    // Return 0, or for the emulated launcher its cudaError_t; the CPU kernels refuse the sizes matmulW8SizeError
    // names with 1 (cudaErrorInvalidValue), touching nothing.
    int rrwkv_cpu_matmul_w8(int32_t M, int32_t K, int32_t N, int32_t blockSize, float const* x, int8_t const* w,
        float const* scale, int16_t* xq, float* xScale, float* y, int32_t maxIsa)
    {
        return rrwkv::blockQuantizedCpuShim(
            rrwkv::matmulW8ForwardCpu, M, K, N, blockSize, x, w, scale, xq, xScale, y, maxIsa);
    }

    int rrwkv_emu_matmul_w8(int32_t M, int32_t K, int32_t N, int32_t blockSize, float const* x, int8_t const* w,
        float const* scale, int16_t* xq, float* xScale, float* y)
    {
        return rrwkv::matmulW8ForwardLaunch(nullptr, M, K, N, blockSize, x, w, scale, xq, xScale, y);
    }

    // The size arithmetic, for tests at the int32 limits without the buffers: w8BlockCount, w8GroupCount,
    // w8PaddedK; matmulW8SizeError into msg (capacity bytes, NUL-terminated), returning its length (0: valid);
    // pass-2 slice s of matmulW8CpuSlice and the slice count.
    int32_t rrwkv_w8_block_count(int32_t K, int32_t blockSize)
    {
        return rrwkv::w8BlockCount(K, blockSize);
    }

    int32_t rrwkv_w8_group_count(int32_t N)
    {
        return rrwkv::w8GroupCount(N);
    }

    int64_t rrwkv_w8_padded_k(int32_t K, int32_t blockSize)
    {
        return rrwkv::w8PaddedK(K, blockSize);
    }

    int32_t rrwkv_w8_size_error(int64_t M, int64_t K, int64_t N, int64_t blockSize, char* msg, int32_t capacity)
    {
        return rrwkv::shimMessage(rrwkv::matmulW8SizeError(M, K, N, blockSize), msg, capacity);
    }

    int64_t rrwkv_w8_cpu_slice(int64_t s, int32_t M, int32_t N, int32_t* g, int32_t* r0, int32_t* r1)
    {
        return rrwkv::shimSlice(rrwkv::matmulW8CpuSlice(s, M, N), rrwkv::matmulW8CpuSliceCount(M, N), g, r0, r1);
    }

    // The best path the MatMulW8/W4 CPU kernels take on this machine (rrwkv::CpuIsa, 2 only with VNNI).
    int32_t rrwkv_cpu_matmul_w8_isa()
    {
        return static_cast<int32_t>(rrwkv::cpuIsaVnni());
    }

    // Threads per block of the emulated MatMulW8 kernels: row quantisation, GEMM.
    void rrwkv_emu_matmul_w8_threads(int32_t* quantize, int32_t* gemm)
    {
        *quantize = rrwkv::kW8_QUANT_THREADS;
        *gemm = rrwkv::kW8_GEMM_THREADS;
    }

} // extern "C"
