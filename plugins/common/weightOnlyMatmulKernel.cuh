/*
 * The CUDA kernels and launcher of a block-quantised weight-only matmul (MatMulW8, MatMulW4: common/weightOnlyMatmul.h)
 * as templates over the op's kernel traits, included by its <op>Kernel.cuh (nvcc, and the CPU emulation build of its
 * <op>TestShim.cc: g++ with plugins/tests/cudaEmulation.h), so the index arithmetic and the block reduction tested on
 * the CPU are this code, not a copy. Each op instantiates the kernels with its own traits, so every __global__
 * function is the op's own (one defined in two translation units of one library would be two definitions).
 *
 * 1. weightOnlyQuantizeKernel: one block of kQUANT_THREADS threads per row r. Thread t takes the max |x| of the
 *    columns t, t + kQUANT_THREADS, ... with w8MaxAbsStep, a tree in shared memory combines the partial maxima,
 *    thread 0 turns the row's max into (inv, xScale), and every thread then quantises its columns; columns
 *    K..Kpad-1 get 0. A max is exact and w8MaxAbsStep keeps a NaN whatever the order, so the row's scale is the
 *    CPU kernels' (only a NaN's payload may differ, and w8RowScale ignores it). The activations of every
 *    block-quantised format are MatMulW8's (matmul_w8/matmulW8Math.h).
 * 2. weightOnlyGemmKernel: one thread per (r, n), idx = r * N + n (y's flat index). The threads of a warp read
 *    neighbouring columns of the packed weight and the same xq (a broadcast). Per block of rows, the exact int32 dot
 *    product, then w8AccumulateBlock in block order (Traits::columnSum), as the CPU kernels do: the same bits.
 * The grids cover any M and N: the GEMM's last block has surplus threads, which return at the guard.
 *
 * Kernel traits: kQUANT_THREADS (per row; a power of two, the reduction tree halves it), kGEMM_THREADS, kMAX_K (K and
 * Kpad: the int32 column loops cannot overflow), kMAX_BLOCK, and
 *   static RRWKV_HD float columnSum(xr, w, scale, Kpad, blockSize, n): column n's sum over the blocks of one
 *   quantised row xr [Kpad] (the format's <op>Math.h).
 */
#ifndef RRWKV_WEIGHT_ONLY_MATMUL_KERNEL_CUH
#define RRWKV_WEIGHT_ONLY_MATMUL_KERNEL_CUH

#include "matmul_w8/matmulW8Math.h"

#include <cstdint>

#if !defined(RRWKV_CUDA_EMULATION)
#include <cuda_runtime.h>
// kernel<<<grid, block, 0, stream>>>(args...); the emulation header defines its own (a loop over the grid).
#define RRWKV_LAUNCH(kernel, grid, block, stream, ...) kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#endif

namespace rrwkv
{

template <typename Traits>
__global__ void weightOnlyQuantizeKernel(
    int32_t K, int32_t Kpad, float const* __restrict__ x, int16_t* __restrict__ xq, float* __restrict__ xScale)
{
    __shared__ float partial[Traits::kQUANT_THREADS];
    __shared__ float rowInv;
    int64_t const r = blockIdx.x;
    int32_t const t = static_cast<int32_t>(threadIdx.x);
    float const* xr = x + r * K;
    int16_t* qr = xq + r * Kpad;

    float maxAbs = 0.0f;
    for (int32_t k = t; k < K; k += Traits::kQUANT_THREADS)
    {
        maxAbs = w8MaxAbsStep(maxAbs, xr[k]);
    }
    partial[t] = maxAbs;
    __syncthreads();
    for (int32_t half = Traits::kQUANT_THREADS / 2; half > 0; half /= 2)
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
    for (int32_t k = t; k < Kpad; k += Traits::kQUANT_THREADS)
    {
        qr[k] = k < K ? w8QuantizeActivation(xr[k], inv) : int16_t{0};
    }
}

template <typename Traits>
__global__ void weightOnlyGemmKernel(int32_t M, int32_t N, int32_t Kpad, int32_t blockSize,
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
    float const sum = Traits::columnSum(xr, w, scale, Kpad, blockSize, n);
    y[idx] = w8Finish(sum, xScale[r]);
}

// The launcher behind <op>Forward (<op>Kernel.h): the row quantisation, then the GEMM, on one stream.
// M >= 0, 0 <= K and Kpad <= kMAX_K, N >= 1, blockSize even in [2, kMAX_BLOCK], else cudaErrorInvalidValue;
// M = 0 launches nothing.
template <typename Traits>
cudaError_t weightOnlyForwardLaunch(cudaStream_t stream, int32_t M, int32_t K, int32_t N, int32_t blockSize,
    float const* x, int8_t const* w, float const* scale, int16_t* xq, float* xScale, float* y)
{
    if (M < 0 || K < 0 || K > Traits::kMAX_K || N < 1 || blockSize < 2 || blockSize > Traits::kMAX_BLOCK
        || blockSize % 2 != 0)
    {
        return cudaErrorInvalidValue;
    }
    int64_t const Kpad = w8PaddedK(K, blockSize);
    int64_t const gemmBlocks = (static_cast<int64_t>(M) * N + Traits::kGEMM_THREADS - 1) / Traits::kGEMM_THREADS;
    if (Kpad > Traits::kMAX_K || gemmBlocks > 0x7FFFFFFF)
    {
        return cudaErrorInvalidValue;
    }
    if (M == 0)
    {
        return cudaSuccess;
    }
    auto const kpad32 = static_cast<int32_t>(Kpad);
    RRWKV_LAUNCH(weightOnlyQuantizeKernel<Traits>, static_cast<uint32_t>(M), Traits::kQUANT_THREADS, stream, K,
        kpad32, x, xq, xScale);
    cudaError_t const quantized = cudaGetLastError();
    if (quantized != cudaSuccess)
    {
        return quantized;
    }
    RRWKV_LAUNCH(weightOnlyGemmKernel<Traits>, static_cast<uint32_t>(gemmBlocks), Traits::kGEMM_THREADS, stream, M,
        N, kpad32, blockSize, xq, xScale, w, scale, y);
    return cudaGetLastError();
}

} // namespace rrwkv

#endif // RRWKV_WEIGHT_ONLY_MATMUL_KERNEL_CUH
