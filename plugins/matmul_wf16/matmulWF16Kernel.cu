/*
 * rrwkv::MatMulWF16 CUDA launcher (the API of matmulWF16Kernel.h) over the kernel of matmulWF16Kernel.cuh.
 */
#include "matmul_wf16/matmulWF16Kernel.cuh"
#include "matmul_wf16/matmulWF16Kernel.h"

namespace rrwkv
{

cudaError_t matmulWF16Forward(
    cudaStream_t stream, int32_t M, int32_t K, int32_t N, float const* x, uint16_t const* w, float* y)
{
    return matmulWF16ForwardLaunch(stream, M, K, N, x, w, y);
}

} // namespace rrwkv
