/*
 * The MatMulW4 CUDA kernels and their launch configuration, included by matmulW4Kernel.cu (nvcc) and by the CPU
 * emulation build matmulW4TestShim.cc (g++ with plugins/tests/cudaEmulation.h), so the index arithmetic
 * and the block reduction tested on the CPU are this code, not a copy. The arithmetic is matmulW4Math.h (the
 * activations' is matmulW8Math.h). Kernel 1 has MatMulW8's steps; it is a kernel of this op's own because a
 * __global__ function defined in two translation units of one library would be two definitions.
 *
 * 1. matmulW4QuantizeKernel: one block of kW4_QUANT_THREADS threads per row r. Thread t takes the max |x| of the
 *    columns t, t + kW4_QUANT_THREADS, ... with w8MaxAbsStep, a tree in shared memory combines the partial maxima,
 *    thread 0 turns the row's max into (inv, xScale), and every thread then quantises its columns; columns
 *    K..Kpad-1 get 0. A max is exact and w8MaxAbsStep keeps a NaN whatever the order, so the row's scale is the
 *    CPU kernels' (only a NaN's payload may differ, and w8RowScale ignores it).
 * 2. matmulW4GemmKernel: one thread per (r, n), idx = r * N + n (y's flat index). The threads of a warp read
 *    bytes of the packed weight and the same xq (a broadcast). Per block of rows, the exact int32 dot product
 *    (w4ColumnSum), then w8AccumulateBlock in block order, as the CPU kernels do: the same bits.
 * The grids cover any M and N: the GEMM's last block has surplus threads, which return at the guard.
 */
#ifndef RRWKV_MATMUL_W4_KERNEL_CUH
#define RRWKV_MATMUL_W4_KERNEL_CUH

#include "matmul_w4/matmulW4Math.h"

#include <cstdint>

#if !defined(RRWKV_CUDA_EMULATION)
#include <cuda_runtime.h>
// kernel<<<grid, block, 0, stream>>>(args...); the emulation header defines its own (a loop over the grid).
#define RRWKV_LAUNCH(kernel, grid, block, stream, ...) kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#endif

namespace rrwkv
{

constexpr int32_t kW4_QUANT_THREADS = 128; // per row; a power of two (the reduction tree halves it)
constexpr int32_t kW4_GEMM_THREADS = 128;
constexpr int32_t kW4_MAX_K = kW4MaxK; // K and Kpad (matmulW4Math.h): the int32 column loops below cannot overflow

__global__ void matmulW4QuantizeKernel(
    int32_t K, int32_t Kpad, float const* __restrict__ x, int16_t* __restrict__ xq, float* __restrict__ xScale)
{
    __shared__ float partial[kW4_QUANT_THREADS];
    __shared__ float rowInv;
    int64_t const r = blockIdx.x;
    int32_t const t = static_cast<int32_t>(threadIdx.x);
    float const* xr = x + r * K;
    int16_t* qr = xq + r * Kpad;

    float maxAbs = 0.0f;
    for (int32_t k = t; k < K; k += kW4_QUANT_THREADS)
    {
        maxAbs = w8MaxAbsStep(maxAbs, xr[k]);
    }
    partial[t] = maxAbs;
    __syncthreads();
    for (int32_t half = kW4_QUANT_THREADS / 2; half > 0; half /= 2)
    {
        if (t < half)
        {
            partial[t] = w8MaxAbsStep(partial[t], partial[t + half]);
        }
        __syncthreads();
    }
    if (t == 0)
    {
        float inv = 0.0f;
        float scaleOfRow = 0.0f;
        w8RowScale(partial[0], inv, scaleOfRow);
        rowInv = inv;
        xScale[r] = scaleOfRow;
    }
    __syncthreads();
    float const inv = rowInv;
    for (int32_t k = t; k < Kpad; k += kW4_QUANT_THREADS)
    {
        qr[k] = k < K ? w8QuantizeActivation(xr[k], inv) : int16_t{0};
    }
}

__global__ void matmulW4GemmKernel(int32_t M, int32_t N, int32_t Kpad, int32_t blockSize,
    int16_t const* __restrict__ xq, float const* __restrict__ xScale, int8_t const* __restrict__ w,
    float const* __restrict__ scale, float* __restrict__ y)
{
    int64_t const idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= static_cast<int64_t>(M) * N)
    {
        return;
    }
    int64_t const r = idx / N;
    int32_t const n = static_cast<int32_t>(idx % N);
    int16_t const* xr = xq + r * Kpad;
    float const sum = w4ColumnSum(xr, w, scale, Kpad, blockSize, n);
    y[idx] = w8Finish(sum, xScale[r]);
}

// The launcher behind matmulW4Forward (matmulW4Kernel.h): the row quantisation, then the GEMM, on one stream.
inline cudaError_t matmulW4ForwardLaunch(cudaStream_t stream, int32_t M, int32_t K, int32_t N, int32_t blockSize,
    float const* x, int8_t const* w, float const* scale, int16_t* xq, float* xScale, float* y)
{
    if (M < 0 || K < 0 || K > kW4_MAX_K || N < 1 || blockSize < 2 || blockSize > kW4MaxBlock || blockSize % 2 != 0)
    {
        return cudaErrorInvalidValue;
    }
    int64_t const Kpad = w8PaddedK(K, blockSize);
    int64_t const gemmBlocks = (static_cast<int64_t>(M) * N + kW4_GEMM_THREADS - 1) / kW4_GEMM_THREADS;
    if (Kpad > kW4_MAX_K || gemmBlocks > 0x7FFFFFFF)
    {
        return cudaErrorInvalidValue;
    }
    if (M == 0)
    {
        return cudaSuccess;
    }
    auto const kpad32 = static_cast<int32_t>(Kpad);
    RRWKV_LAUNCH(matmulW4QuantizeKernel, static_cast<uint32_t>(M), kW4_QUANT_THREADS, stream, K, kpad32, x, xq,
        xScale);
    cudaError_t const quantized = cudaGetLastError();
    if (quantized != cudaSuccess)
    {
        return quantized;
    }
    RRWKV_LAUNCH(matmulW4GemmKernel, static_cast<uint32_t>(gemmBlocks), kW4_GEMM_THREADS, stream, M, N, kpad32,
        blockSize, xq, xScale, w, scale, y);
    return cudaGetLastError();
}

} // namespace rrwkv

#endif // RRWKV_MATMUL_W4_KERNEL_CUH
