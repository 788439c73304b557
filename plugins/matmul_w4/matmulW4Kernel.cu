/*
 * rrwkv::MatMulW4 CUDA launcher (the API of matmulW4Kernel.h) over the kernels of matmulW4Kernel.cuh.
 */
#include "matmul_w4/matmulW4Kernel.cuh"
#include "matmul_w4/matmulW4Kernel.h"

namespace rrwkv
{

cudaError_t matmulW4Forward(cudaStream_t stream, int32_t M, int32_t K, int32_t N, int32_t blockSize, float const* x,
    int8_t const* w, float const* scale, int16_t* xq, float* xScale, float* y)
{
    return matmulW4ForwardLaunch(stream, M, K, N, blockSize, x, w, scale, xq, xScale, y);
}

} // namespace rrwkv
