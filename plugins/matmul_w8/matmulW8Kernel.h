/*
 * CUDA launcher for rrwkv::MatMulW8 (plugins/matmul_w8/README.md): y [M, N] = x [M, K] @ W for the int8 weight W
 * [K, N] in the packed layout of matmulW8Math.h. Two kernels on `stream`: each row of x is quantised to int16 into
 * the caller's workspace (xq, xScale), then one thread per (row, column) sums the blocks. Same bits as the CPU
 * kernels (matmulW8Cpu.h). Knows nothing of TensorRT or ONNX Runtime. All pointers are device pointers, dense
 * row-major:
 *   x [M, K] fp32; w int8 [G, Kpad / 2, 64, 2]; scale fp32 [G, NB, 64]; y [M, N] fp32;
 *   workspace xq int16 [M, Kpad] and xScale fp32 [M], written before they are read;
 * with G = ceil(N / 64), NB = ceil(K / blockSize), Kpad = NB * blockSize. x and y may not alias.
 */
#ifndef RRWKV_MATMUL_W8_KERNEL_H
#define RRWKV_MATMUL_W8_KERNEL_H

#include <cstdint>
#include <cuda_runtime_api.h>

namespace rrwkv
{

// M >= 0, 0 <= K and Kpad <= 2^30, N >= 1, blockSize even in [2, kW8MaxBlock], else cudaErrorInvalidValue;
// M = 0 launches nothing.
cudaError_t matmulW8Forward(cudaStream_t stream, int32_t M, int32_t K, int32_t N, int32_t blockSize, float const* x,
    int8_t const* w, float const* scale, int16_t* xq, float* xScale, float* y);

} // namespace rrwkv

#endif // RRWKV_MATMUL_W8_KERNEL_H
