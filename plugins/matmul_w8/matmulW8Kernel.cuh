/*
 * The MatMulW8 CUDA kernels and their launch configuration: the block-quantised weight-only matmul kernels
 * (common/weightOnlyMatmulKernel.cuh: row quantisation, then one thread per (row, column)) over MatMulW8's kernel
 * traits, included by matmulW8Kernel.cu (nvcc) and by the CPU emulation build matmulW8TestShim.cc (g++ with
 * plugins/tests/cudaEmulation.h). The arithmetic is matmulW8Math.h: the threads of a warp read consecutive columns
 * of the packed weight (coalesced) and sum the blocks with w8ColumnSum.
 */
#ifndef RRWKV_MATMUL_W8_KERNEL_CUH
#define RRWKV_MATMUL_W8_KERNEL_CUH

#include "common/weightOnlyMatmulKernel.cuh"
#include "matmul_w8/matmulW8Math.h"

#include <cstdint>

namespace rrwkv
{

struct MatMulW8KernelTraits
{
    static constexpr int32_t kQUANT_THREADS = 128; // per row; a power of two (the reduction tree halves it)
    static constexpr int32_t kGEMM_THREADS = 128;
    static constexpr int32_t kMAX_K = kW8MaxK; // K and Kpad (matmulW8Math.h): the int32 column loops cannot overflow
    static constexpr int32_t kMAX_BLOCK = kW8MaxBlock;

    static RRWKV_HD float columnSum(
        int16_t const* xr, int8_t const* w, float const* scale, int32_t Kpad, int32_t blockSize, int32_t n)
    {
        return w8ColumnSum(xr, w, scale, Kpad, blockSize, n);
    }
};

constexpr int32_t kW8_QUANT_THREADS = MatMulW8KernelTraits::kQUANT_THREADS;
constexpr int32_t kW8_GEMM_THREADS = MatMulW8KernelTraits::kGEMM_THREADS;

// The launcher behind matmulW8Forward (matmulW8Kernel.h): the row quantisation, then the GEMM, on one stream.
inline cudaError_t matmulW8ForwardLaunch(cudaStream_t stream, int32_t M, int32_t K, int32_t N, int32_t blockSize,
    float const* x, int8_t const* w, float const* scale, int16_t* xq, float* xScale, float* y)
{
    return weightOnlyForwardLaunch<MatMulW8KernelTraits>(stream, M, K, N, blockSize, x, w, scale, xq, xScale, y);
}

} // namespace rrwkv

#endif // RRWKV_MATMUL_W8_KERNEL_CUH
