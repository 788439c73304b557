/*
 * The MatMulW4 CUDA kernels and their launch configuration: the block-quantised weight-only matmul kernels
 * (common/weightOnlyMatmulKernel.cuh: MatMulW8's row quantisation, then one thread per (row, column)) over
 * MatMulW4's kernel traits (MatMulW8's but for the GEMM's column sum), included by matmulW4Kernel.cu (nvcc) and by
 * the CPU emulation build matmulW4TestShim.cc (g++ with plugins/tests/cudaEmulation.h). The arithmetic is
 * matmulW4Math.h (the activations' is matmulW8Math.h): the threads of a warp read bytes of the packed weight and sum
 * the blocks with w4ColumnSum.
 */
#ifndef RRWKV_MATMUL_W4_KERNEL_CUH
#define RRWKV_MATMUL_W4_KERNEL_CUH

#include "common/weightOnlyMatmulKernel.cuh"
#include "matmul_w4/matmulW4Math.h"
#include "matmul_w8/matmulW8Kernel.cuh"

#include <cstdint>

namespace rrwkv
{

// MatMulW8's launch configuration and limits (kW4MaxK and kW4MaxBlock are MatMulW8's); the GEMM reads int4.
struct MatMulW4KernelTraits : MatMulW8KernelTraits
{
    static RRWKV_HD float columnSum(
        int16_t const* xr, int8_t const* w, float const* scale, int32_t Kpad, int32_t blockSize, int32_t n)
    {
        return w4ColumnSum(xr, w, scale, Kpad, blockSize, n);
    }
};

constexpr int32_t kW4_QUANT_THREADS = MatMulW4KernelTraits::kQUANT_THREADS;
constexpr int32_t kW4_GEMM_THREADS = MatMulW4KernelTraits::kGEMM_THREADS;

// The launcher behind matmulW4Forward (matmulW4Kernel.h): the row quantisation, then the GEMM, on one stream.
inline cudaError_t matmulW4ForwardLaunch(cudaStream_t stream, int32_t M, int32_t K, int32_t N, int32_t blockSize,
    float const* x, int8_t const* w, float const* scale, int16_t* xq, float* xScale, float* y)
{
    return weightOnlyForwardLaunch<MatMulW4KernelTraits>(stream, M, K, N, blockSize, x, w, scale, xq, xScale, y);
}

} // namespace rrwkv

#endif // RRWKV_MATMUL_W4_KERNEL_CUH
