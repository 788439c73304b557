/*
 * MatMulWF16's kernel-parity cases (tests/kernelParity.cu, GPU hosts): matmulWF16Forward against the CPU kernels'
 * portable path on odd sizes and the 169M projections. The GPU must match bit for bit (one fmaf per k in order,
 * matmulWF16Math.h), NaNs compared as NaN.
 */
#include "matmul_wf16/matmulWF16Cpu.h"
#include "matmul_wf16/matmulWF16Kernel.h"
#include "matmul_wf16/matmulWF16Math.h"
#include "tests/kernelParity.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

namespace rrwkv
{
namespace
{

// Random rows of different magnitudes (with M >= 3 also a row holding a NaN and one an infinity) and fp16 weights
// ~ N(0, 1 / K), some of them subnormal halves.
bool runMatMulWF16Case(int32_t M, int32_t K, int32_t N, std::mt19937& rng)
{
    std::normal_distribution<float> normal;
    std::uniform_real_distribution<float> uniform(0.f, 1.f);
    int32_t const G = wf16GroupCount(N);
    size_t const nx = size_t(M) * K, ny = size_t(M) * N;
    std::vector<float> x(nx);
    std::vector<uint16_t> w(size_t(G) * K * kWF16GroupCols, 0); // [G, K, 64], padded columns 0
    for (int32_t r = 0; r < M; ++r)
    {
        float const magnitude = std::exp(uniform(rng) * 6.f - 3.f);
        for (int32_t k = 0; k < K; ++k)
        {
            x[size_t(r) * K + k] = magnitude * normal(rng);
        }
    }
    if (M >= 3 && K >= 1)
    {
        x[size_t(1) * K + K / 2] = std::numeric_limits<float>::quiet_NaN();
        x[size_t(2) * K] = -std::numeric_limits<float>::infinity();
    }
    for (int32_t k = 0; k < K; ++k)
    {
        for (int32_t n = 0; n < N; ++n)
        {
            float const v = normal(rng) / std::sqrt(float(K)) * (uniform(rng) < 0.01f ? 1e-4f : 1.f);
            w[size_t(wf16WeightIndex(K, k, n))] = floatToHalfBits(v);
        }
    }
    std::vector<float> yCpu(ny);
    matmulWF16ForwardCpu(M, K, N, x.data(), w.data(), yCpu.data(), CpuIsa::kPortable);

    float* dX = parity::toDevice(x);
    uint16_t* dW = parity::toDevice(w);
    float* dY = parity::toDevice(std::vector<float>(ny, std::numeric_limits<float>::quiet_NaN()));
    PARITY_CHECK(matmulWF16Forward(nullptr, M, K, N, dX, dW, dY));
    PARITY_CHECK(cudaDeviceSynchronize());
    size_t const bad = parity::differing(parity::toHost(dY, ny), yCpu);
    std::printf("fp32 MatMulWF16 M=%-3d K=%-4d N=%-5d  differing y %zu/%zu  %s\n", M, K, N, bad, ny,
        bad == 0 ? "ok" : "FAIL");
    parity::freeAll({dX, dW, dY});
    return bad == 0;
}

} // namespace

bool matMulWF16KernelParity(std::mt19937& rng)
{
    int const shapes[][3] = {{1, 5, 1}, {3, 130, 63}, {7, 768, 65}, {70, 257, 200}, {1, 768, 768}, {1, 768, 3072},
        {1, 3072, 768}, {64, 3072, 768}};
    bool ok = true;
    for (auto const& sh : shapes)
    {
        ok = runMatMulWF16Case(sh[0], sh[1], sh[2], rng) && ok;
    }
    return ok;
}

} // namespace rrwkv
