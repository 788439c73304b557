/*
 * ContinuousGaussianAttention's kernel-parity cases (tests/kernelParity.cu, GPU hosts):
 * continuousGaussianAttentionForward<T> against continuousGaussianAttentionForwardCpu<T> in fp32 and fp16 I/O, decode
 * (T = 1) and prefill, odd sizes, d past one 128-column pass and N past one 256-entry r chunk, the ∞-former's basis
 * (centres linspace(0, 1, N/2), widths 0.005 / 0.01), outputs NaN-poisoned. Tolerances: kernel_fp32 / kernel_fp16 of
 * plugins/continuous_gaussian_attention/spec.yaml.
 */
#include "continuous_gaussian_attention/continuousGaussianAttentionCpu.h"
#include "continuous_gaussian_attention/continuousGaussianAttentionKernel.h"
#include "tests/kernelParity.h"

#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

namespace rrwkv
{
namespace
{

// {B, H, T, N, d}: one row, odd sizes, decode over many heads, the GPT-2 setup (N = 512, d = 64) and sorting-like
// d = 50, a prefill of 63 tokens, d = 200 (two column passes) and N = 700 (three r chunks).
constexpr int32_t kCGA_PARITY_SHAPES[][5] = {{1, 1, 1, 1, 1}, {2, 3, 7, 33, 5}, {3, 12, 1, 512, 64},
    {2, 4, 63, 512, 50}, {1, 2, 5, 700, 200}};

template <typename HostT>
std::vector<HostT> randomHost(size_t n, float scale, std::mt19937& rng)
{
    std::normal_distribution<float> normal;
    std::vector<HostT> out(n);
    for (HostT& x : out)
    {
        x = fromFloat<HostT>(scale * normal(rng));
    }
    return out;
}

// The CPU kernel's and the CUDA kernel's outputs for one shape; prints one line, true within tolerance.
template <typename DevT, typename HostT>
bool cgaCase(int32_t const (&sh)[5], std::mt19937& rng)
{
    int32_t const B = sh[0], H = sh[1], T = sh[2], N = sh[3], d = sh[4];
    size_t const nq = size_t(B) * H * T * d, nk = size_t(B) * H * N * d, nr = size_t(B) * H * T;
    float const scale = 1.F / std::sqrt(static_cast<float>(d));
    float const sigma2Min = 1e-4F;
    auto const q = randomHost<HostT>(nq, 1.F, rng);
    auto const K = randomHost<HostT>(nk, 1.F, rng);
    auto const V = randomHost<HostT>(nk, 1.F, rng);
    std::uniform_real_distribution<float> uniform(-1.F, 1.F);
    std::vector<float> wMu(N), wSigma(N), basisMu(N), basisSigma(N);
    int32_t const half = (N + 1) / 2;
    for (int32_t j = 0; j < N; ++j)
    {
        wMu[j] = 3.F * uniform(rng) / std::sqrt(static_cast<float>(N));
        wSigma[j] = 3.F * uniform(rng) / std::sqrt(static_cast<float>(N));
        basisMu[j] = half > 1 ? static_cast<float>(j % half) / static_cast<float>(half - 1) : 0.5F;
        basisSigma[j] = j < half ? 0.005F : 0.01F;
    }
    std::vector<HostT> ctxCpu(nq);
    std::vector<float> muCpu(nr), sigma2Cpu(nr);
    continuousGaussianAttentionForwardCpu<HostT>(B, H, T, N, d, sigma2Min, scale, q.data(), K.data(), V.data(),
        wMu.data(), wSigma.data(), basisMu.data(), basisSigma.data(), ctxCpu.data(), muCpu.data(), sigma2Cpu.data());

    DevT* dQ = reinterpret_cast<DevT*>(parity::toDevice(q));
    DevT* dK = reinterpret_cast<DevT*>(parity::toDevice(K));
    DevT* dV = reinterpret_cast<DevT*>(parity::toDevice(V));
    float* dWMu = parity::toDevice(wMu);
    float* dWSigma = parity::toDevice(wSigma);
    float* dBasisMu = parity::toDevice(basisMu);
    float* dBasisSigma = parity::toDevice(basisSigma);
    DevT* dCtx = nullptr;
    float* dMu = nullptr;
    float* dSigma2 = nullptr;
    PARITY_CHECK(cudaMalloc(&dCtx, nq * sizeof(DevT) + 1));
    PARITY_CHECK(cudaMalloc(&dMu, nr * sizeof(float) + 1));
    PARITY_CHECK(cudaMalloc(&dSigma2, nr * sizeof(float) + 1));
    PARITY_CHECK(cudaMemset(dCtx, 0xFF, nq * sizeof(DevT))); // all-ones bits: NaN in fp32 and fp16
    PARITY_CHECK(cudaMemset(dMu, 0xFF, nr * sizeof(float)));
    PARITY_CHECK(cudaMemset(dSigma2, 0xFF, nr * sizeof(float)));
    PARITY_CHECK(continuousGaussianAttentionForward<DevT>(nullptr, B, H, T, N, d, sigma2Min, scale, dQ, dK, dV, dWMu,
        dWSigma, dBasisMu, dBasisSigma, dCtx, dMu, dSigma2));
    PARITY_CHECK(cudaDeviceSynchronize());
    auto const ctxGpu = parity::toHost(reinterpret_cast<HostT const*>(dCtx), nq);
    auto const muGpu = parity::toHost(dMu, nr);
    auto const sigma2Gpu = parity::toHost(dSigma2, nr);
    parity::freeAll({dQ, dK, dV, dWMu, dWSigma, dBasisMu, dBasisSigma, dCtx, dMu, dSigma2});

    bool const half16 = sizeof(HostT) == 2;
    double const cAtol = 1e-2, cRtol = 4e-3; // kernel_fp32 / kernel_fp16 ctx
    double maxC = 0, maxM = 0, maxS = 0;
    double const worst = std::max({parity::excess(ctxGpu, ctxCpu, cAtol, cRtol, maxC),
        parity::excess(muGpu, muCpu, 5e-6, 0.0, maxM), parity::excess(sigma2Gpu, sigma2Cpu, 1e-8, 3e-5, maxS)});
    bool const ok = worst <= 0;
    std::printf("%-4s %-27s B=%d H=%-2d T=%-3d N=%-3d d=%-3d max|dctx| %.3e  max|dmu| %.3e  max|dsigma2| %.3e  %s\n",
        half16 ? "fp16" : "fp32", "ContinuousGaussianAttention", B, H, T, N, d, maxC, maxM, maxS, ok ? "ok" : "FAIL");
    return ok;
}

} // namespace

bool continuousGaussianAttentionKernelParity(std::mt19937& rng)
{
    bool ok = true;
    for (auto const& sh : kCGA_PARITY_SHAPES)
    {
        ok = cgaCase<float, float>(sh, rng) && ok;
        ok = cgaCase<__half, HostHalf>(sh, rng) && ok;
    }
    return ok;
}

} // namespace rrwkv
