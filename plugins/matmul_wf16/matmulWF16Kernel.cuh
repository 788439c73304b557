/*
 * The MatMulWF16 CUDA kernel and its launch configuration, included by matmulWF16Kernel.cu (nvcc) and by the CPU
 * emulation build matmulWF16TestShim.cc (g++ with plugins/tests/cudaEmulation.h), so the index arithmetic tested on
 * the CPU is this code, not a copy. The arithmetic is matmulWF16Math.h.
 *
 * matmulWF16Kernel: one thread per (r, n), idx = r * N + n (y's flat index). The threads of a warp read consecutive
 * columns of the packed weight (64 contiguous bytes, coalesced) and the same x[r, k] (a broadcast), and each sums
 * its output with wf16ColumnSum: one fmaf per k in order, the CPU kernels' bits. The grid covers any M * N: the last
 * block's surplus threads return at the guard.
 */
#ifndef RRWKV_MATMUL_WF16_KERNEL_CUH
#define RRWKV_MATMUL_WF16_KERNEL_CUH

#include "matmul_wf16/matmulWF16Math.h"

#include <cstdint>

#if !defined(RRWKV_CUDA_EMULATION)
#include <cuda_runtime.h>
// kernel<<<grid, block, 0, stream>>>(args...); the emulation header defines its own (a loop over the grid).
#define RRWKV_LAUNCH(kernel, grid, block, stream, ...) kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#endif

namespace rrwkv
{

constexpr int32_t kWF16_THREADS = 128;

__global__ void matmulWF16Kernel(
    int32_t M, int32_t K, int32_t N, float const* __restrict__ x, uint16_t const* __restrict__ w, float* __restrict__ y)
{
    int64_t const idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= static_cast<int64_t>(M) * N)
    {
        return;
    }
    int64_t const r = idx / N;
    int32_t const n = static_cast<int32_t>(idx % N);
    y[idx] = wf16ColumnSum(x + r * K, w, K, n);
}

// The launcher behind matmulWF16Forward (matmulWF16Kernel.h).
inline cudaError_t matmulWF16ForwardLaunch(
    cudaStream_t stream, int32_t M, int32_t K, int32_t N, float const* x, uint16_t const* w, float* y)
{
    if (M < 0 || K < 0 || K > kWF16MaxK || N < 1 || N > kWF16MaxN)
    {
        return cudaErrorInvalidValue;
    }
    int64_t const blocks = (static_cast<int64_t>(M) * N + kWF16_THREADS - 1) / kWF16_THREADS;
    if (blocks > 0x7FFFFFFF)
    {
        return cudaErrorInvalidValue;
    }
    if (M == 0)
    {
        return cudaSuccess;
    }
    RRWKV_LAUNCH(matmulWF16Kernel, static_cast<uint32_t>(blocks), kWF16_THREADS, stream, M, K, N, x, w, y);
    return cudaGetLastError();
}

} // namespace rrwkv

#endif // RRWKV_MATMUL_WF16_KERNEL_CUH
