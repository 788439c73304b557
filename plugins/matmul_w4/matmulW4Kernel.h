/*
 * CUDA launcher for rrwkv::MatMulW4 (plugins/matmul_w4/README.md): y [M, N] = x [M, K] @ W for the int4 weight W
 * [K, N] in the packed layout of matmulW4Math.h. Two kernels on `stream`: each row of x is quantised to int16 into
 * the caller's workspace (xq, xScale) as MatMulW8 does, then one thread per (row, column) sums the blocks. Same bits
 * as the CPU kernels (matmulW4Cpu.h). Knows nothing of TensorRT or ONNX Runtime. All pointers are device pointers,
 * dense row-major:
 *   x [M, K] fp32; w int8 [G, Kpad / 2, 64] (packed nibbles); scale fp32 [G, NB, 64]; y [M, N] fp32;
 *   workspace xq int16 [M, Kpad] and xScale fp32 [M], written before they are read;
 * with G = ceil(N / 64), NB = ceil(K / blockSize), Kpad = NB * blockSize. x and y may not alias.
 */
#ifndef RRWKV_MATMUL_W4_KERNEL_H
#define RRWKV_MATMUL_W4_KERNEL_H

#include <cstdint>
#include <cuda_runtime_api.h>

namespace rrwkv
{

// M >= 0, 0 <= K and Kpad <= 2^30, N >= 1, blockSize even in [2, kW4MaxBlock], else cudaErrorInvalidValue;
// M = 0 launches nothing.
cudaError_t matmulW4Forward(cudaStream_t stream, int32_t M, int32_t K, int32_t N, int32_t blockSize, float const* x,
    int8_t const* w, float const* scale, int16_t* xq, float* xScale, float* y);

} // namespace rrwkv

#endif // RRWKV_MATMUL_W4_KERNEL_H
