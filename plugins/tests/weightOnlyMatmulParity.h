/*
 * The kernel-parity cases of a block-quantised weight-only matmul (MatMulW8, MatMulW4: common/weightOnlyMatmul.h),
 * a template over the op's parity traits, for its <op>Parity.cu (tests/kernelParity.cu, GPU hosts): <op>Forward on
 * the GPU against the CPU kernels' portable path over every block-size bound and the 169M projections. The GPU must
 * match bit for bit (the integer part is exact), NaNs compared as NaN (CUDA's are canonical).
 *
 * Parity traits: the members of the op's <Op>Traits (kNAME, kW_TAIL), and
 *   kQ_MIN, kQ_MAX            the range of the random bytes of w (every byte in it is a valid packed value);
 *   forwardCpu(M, N, Kpad, bs, xq, xScale, w, scale, y)   pass 2 of the CPU kernels, portable path;
 *   kFORWARD                  the CUDA launcher (<op>Kernel.h).
 */
#ifndef RRWKV_WEIGHT_ONLY_MATMUL_PARITY_H
#define RRWKV_WEIGHT_ONLY_MATMUL_PARITY_H

#include "matmul_w8/matmulW8Cpu.h"
#include "matmul_w8/matmulW8Math.h"
#include "tests/kernelParity.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

namespace rrwkv
{

// The op on the GPU against the CPU kernels: y, and the quantised rows (xq, xScale) the GPU left in its workspace.
// Random packed weights and positive scales (any packed values are valid inputs), rows of different magnitudes; with
// M >= 4 also an all-zero row and rows holding a NaN and an infinity.
template <typename Traits>
bool runBlockQuantizedParityCase(int32_t M, int32_t K, int32_t N, int32_t bs, std::mt19937& rng)
{
    std::normal_distribution<float> normal;
    std::uniform_real_distribution<float> uniform(0.f, 1.f);
    std::uniform_int_distribution<int32_t> q8(Traits::kQ_MIN, Traits::kQ_MAX);
    int32_t const NB = w8BlockCount(K, bs);
    int32_t const Kpad = NB * bs;
    int32_t const G = w8GroupCount(N);
    size_t pairBytes = 1; // w [G, Kpad / 2, kW_TAIL...]
    for (auto const& dim : Traits::kW_TAIL)
    {
        pairBytes *= static_cast<size_t>(dim.size);
    }
    size_t const nx = size_t(M) * K, nq = size_t(M) * Kpad, ny = size_t(M) * N;
    std::vector<float> x(nx), scale(size_t(G) * NB * kW8GroupCols);
    std::vector<int8_t> w(size_t(G) * Kpad / 2 * pairBytes);
    for (int32_t r = 0; r < M; ++r)
    {
        float const magnitude = std::exp(uniform(rng) * 6.f - 3.f);
        for (int32_t k = 0; k < K; ++k)
        {
            x[size_t(r) * K + k] = magnitude * normal(rng);
        }
    }
    if (M >= 4 && K >= 1)
    {
        std::fill(x.begin() + K, x.begin() + 2 * K, 0.f);
        x[size_t(2) * K + K / 2] = std::numeric_limits<float>::quiet_NaN();
        x[size_t(3) * K] = -std::numeric_limits<float>::infinity();
    }
    for (int8_t& q : w)
    {
        q = static_cast<int8_t>(q8(rng));
    }
    for (float& s : scale)
    {
        s = std::exp(uniform(rng) * 4.f - 7.f);
    }

    std::vector<int16_t> xqCpu(nq);
    std::vector<float> xsCpu(M), yCpu(ny);
    matmulW8QuantizeRowsCpu(M, K, Kpad, x.data(), xqCpu.data(), xsCpu.data(), CpuIsa::kPortable);
    Traits::forwardCpu(M, N, Kpad, bs, xqCpu.data(), xsCpu.data(), w.data(), scale.data(), yCpu.data());

    float *dX = parity::toDevice(x), *dS = parity::toDevice(scale);
    int8_t* dW = parity::toDevice(w);
    int16_t* dXq = parity::toDevice(std::vector<int16_t>(nq, -32768)); // no quantised value is -32768
    float* dXs = parity::toDevice(std::vector<float>(M, std::numeric_limits<float>::quiet_NaN()));
    float* dY = parity::toDevice(std::vector<float>(ny, std::numeric_limits<float>::quiet_NaN()));
    PARITY_CHECK(Traits::kFORWARD(nullptr, M, K, N, bs, dX, dW, dS, dXq, dXs, dY));
    PARITY_CHECK(cudaDeviceSynchronize());
    size_t const badY = parity::differing(parity::toHost(dY, ny), yCpu);
    size_t const badXq = parity::differing(parity::toHost(dXq, nq), xqCpu);
    size_t const badXs = parity::differing(parity::toHost(dXs, size_t(M)), xsCpu);
    bool const ok = badY == 0 && badXq == 0 && badXs == 0;
    std::printf("fp32 %-11sM=%-3d K=%-4d N=%-4d bs=%-3d  differing y %zu/%zu  xq %zu/%zu  xScale %zu/%d  %s\n",
        Traits::kNAME, M, K, N, bs, badY, ny, badXq, nq, badXs, M, ok ? "ok" : "FAIL");
    parity::freeAll({dX, dS, dW, dXq, dXs, dY});
    return ok;
}

// Every case: M rows, K, N, block size.
template <typename Traits>
bool blockQuantizedKernelParity(std::mt19937& rng)
{
    int const shapes[][4] = {{1, 5, 1, 2}, {3, 130, 63, 32}, {7, 768, 65, 128}, {70, 768, 200, 256}, {70, 130, 200, 2},
        {1, 768, 768, 128}, {1, 768, 3072, 128}, {1, 3072, 768, 128}, {64, 3072, 768, 128}};
    bool ok = true;
    for (auto const& sh : shapes)
    {
        ok = runBlockQuantizedParityCase<Traits>(sh[0], sh[1], sh[2], sh[3], rng) && ok;
    }
    return ok;
}

} // namespace rrwkv

#endif // RRWKV_WEIGHT_ONLY_MATMUL_PARITY_H
