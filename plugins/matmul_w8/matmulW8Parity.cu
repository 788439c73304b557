/*
 * MatMulW8's kernel-parity cases (tests/kernelParity.cu, GPU hosts): the block-quantised weight-only matmul cases
 * (tests/weightOnlyMatmulParity.h) over random int8 weights, matmulW8Forward against matmulW8ForwardCpu.
 */
#include "matmul_w8/matmulW8Cpu.h"
#include "matmul_w8/matmulW8Kernel.h"
#include "matmul_w8/matmulW8Traits.h"
#include "tests/weightOnlyMatmulParity.h"

#include <cstdint>
#include <random>

namespace rrwkv
{
namespace
{

struct MatMulW8ParityTraits : MatMulW8Traits
{
    static constexpr int32_t kQ_MIN = -127; // int8 weights, symmetric
    static constexpr int32_t kQ_MAX = 127;
    static constexpr auto kFORWARD = &matmulW8Forward;

    static void forwardCpu(int32_t M, int32_t N, int32_t Kpad, int32_t bs, int16_t const* xq, float const* xScale,
        int8_t const* w, float const* scale, float* y)
    {
        matmulW8ForwardCpu(M, N, Kpad, bs, xq, xScale, w, scale, y, CpuIsa::kPortable);
    }
};

} // namespace

bool matMulW8KernelParity(std::mt19937& rng)
{
    return blockQuantizedKernelParity<MatMulW8ParityTraits>(rng);
}

} // namespace rrwkv
