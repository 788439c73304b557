/*
 * CUDA launcher for rrwkv::MatMulWF16 (plugins/matmul_wf16/README.md): y [M, N] = x [M, K] @ W for the fp16 weight
 * W [K, N] in the packed layout of matmulWF16Math.h, one thread per (row, column). Same bits as the CPU kernels
 * (matmulWF16Cpu.h). Knows nothing of TensorRT or ONNX Runtime. All pointers are device pointers, dense row-major:
 *   x [M, K] fp32; w fp16 bits [G, K, 64]; y [M, N] fp32; G = ceil(N / 64). x and y may not alias.
 */
#ifndef RRWKV_MATMUL_WF16_KERNEL_H
#define RRWKV_MATMUL_WF16_KERNEL_H

#include <cstdint>
#include <cuda_runtime_api.h>

namespace rrwkv
{

// M >= 0, 0 <= K <= 2^30, 1 <= N <= kWF16MaxN, else cudaErrorInvalidValue; M = 0 launches nothing.
cudaError_t matmulWF16Forward(
    cudaStream_t stream, int32_t M, int32_t K, int32_t N, float const* x, uint16_t const* w, float* y);

} // namespace rrwkv

#endif // RRWKV_MATMUL_WF16_KERNEL_H
