/*
 * MatMulW4's kernel-parity cases (tests/kernelParity.cu, GPU hosts): the block-quantised weight-only matmul cases
 * (tests/weightOnlyMatmulParity.h) over random packed bytes (every byte is two valid nibbles), matmulW4Forward
 * against matmulW4ForwardCpu.
 */
#include "matmul_w4/matmulW4Cpu.h"
#include "matmul_w4/matmulW4Kernel.h"
#include "matmul_w4/matmulW4Traits.h"
#include "tests/weightOnlyMatmulParity.h"

#include <cstdint>
#include <random>

namespace rrwkv
{
namespace
{

struct MatMulW4ParityTraits : MatMulW4Traits
{
    static constexpr int32_t kQ_MIN = -128; // any byte
    static constexpr int32_t kQ_MAX = 127;
    static constexpr auto kFORWARD = &matmulW4Forward;

    static void forwardCpu(int32_t M, int32_t N, int32_t Kpad, int32_t bs, int16_t const* xq, float const* xScale,
        int8_t const* w, float const* scale, float* y)
    {
        matmulW4ForwardCpu(M, N, Kpad, bs, xq, xScale, w, scale, y, CpuIsa::kPortable);
    }
};

} // namespace

bool matMulW4KernelParity(std::mt19937& rng)
{
    return blockQuantizedKernelParity<MatMulW4ParityTraits>(rng);
}

} // namespace rrwkv
