/*
 * GatedOuterScan's kernel-parity cases (tests/kernelParity.cu, GPU hosts): gatedOuterScanForward<T> against
 * gatedOuterScanForwardCpu<T> in fp32 and fp16 I/O, decode and prefill, odd sizes, both kernels (register kernel,
 * large-K kernel), a nonzero initial state, lb zero for some heads, outputs NaN-poisoned. Tolerances: kernel_fp32 /
 * kernel_fp16 of plugins/gated_outer_scan/spec.yaml.
 */
#include "gated_outer_scan/gatedOuterScanCpu.h"
#include "gated_outer_scan/gatedOuterScanKernel.h"
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

// {B, T, H, K, V}: odd sizes, decode (T = 1) with many heads, the shipped K = V = 128 and 64, and K = 1100 (past the
// register kernel's 1024 keys: the large-K kernel).
constexpr int32_t kGOS_PARITY_SHAPES[][5] = {{1, 1, 1, 1, 1}, {3, 7, 3, 5, 7}, {2, 63, 2, 33, 17},
    {1, 200, 1, 128, 128}, {3, 1, 16, 128, 128}, {2, 1000, 4, 64, 64}, {1, 5, 2, 1100, 9}};

template <typename HostT>
std::vector<HostT> randomHost(size_t n, float scale, float shift, std::mt19937& rng)
{
    std::normal_distribution<float> normal;
    std::vector<HostT> out(n);
    for (HostT& x : out)
    {
        x = fromFloat<HostT>(scale * normal(rng) + shift);
    }
    return out;
}

// The CPU kernel's and the CUDA kernel's outputs for one shape; prints one line, true within tolerance.
template <typename DevT, typename HostT>
bool gosCase(int32_t const (&sh)[5], std::mt19937& rng)
{
    int32_t const B = sh[0], T = sh[1], H = sh[2], K = sh[3], V = sh[4];
    size_t const nk = size_t(B) * T * H * K, nv = size_t(B) * T * H * V, ns = size_t(B) * H * K * V;
    float const scale = 1.F / std::sqrt(static_cast<float>(K));
    auto const q = randomHost<HostT>(nk, 1.F, 0.3F, rng);
    auto const f = randomHost<HostT>(nk, 2.F, 1.F, rng);
    auto const v = randomHost<HostT>(nv, 1.F, 0.F, rng);
    auto const s0 = randomHost<float>(ns, 1.F, 0.F, rng);
    std::uniform_real_distribution<float> uniform(0.F, 0.95F);
    std::vector<float> lb(size_t(H) * K);
    for (size_t i = 0; i < lb.size(); ++i)
    {
        lb[i] = (i / K) % 2 == 0 ? 0.F : uniform(rng); // even heads: layer 0's zero bound
    }
    std::vector<HostT> oCpu(nv);
    std::vector<float> sCpu(ns);
    gatedOuterScanForwardCpu<HostT>(
        B, T, H, K, V, scale, q.data(), f.data(), lb.data(), v.data(), s0.data(), oCpu.data(), sCpu.data());

    DevT* dQ = reinterpret_cast<DevT*>(parity::toDevice(q));
    DevT* dF = reinterpret_cast<DevT*>(parity::toDevice(f));
    DevT* dV = reinterpret_cast<DevT*>(parity::toDevice(v));
    float* dLb = parity::toDevice(lb);
    float* dS0 = parity::toDevice(s0);
    DevT* dO = nullptr;
    float* dS = nullptr;
    PARITY_CHECK(cudaMalloc(&dO, nv * sizeof(DevT) + 1));
    PARITY_CHECK(cudaMalloc(&dS, ns * sizeof(float) + 1));
    PARITY_CHECK(cudaMemset(dO, 0xFF, nv * sizeof(DevT))); // all-ones bits: NaN in fp32 and fp16
    PARITY_CHECK(cudaMemset(dS, 0xFF, ns * sizeof(float)));
    PARITY_CHECK(gatedOuterScanForward<DevT>(nullptr, B, T, H, K, V, scale, dQ, dF, dLb, dV, dS0, dO, dS));
    PARITY_CHECK(cudaDeviceSynchronize());
    auto const oGpu = parity::toHost(reinterpret_cast<HostT const*>(dO), nv);
    auto const sGpu = parity::toHost(dS, ns);
    parity::freeAll({dQ, dF, dV, dLb, dS0, dO, dS});

    bool const half = sizeof(HostT) == 2;
    double const oAtol = half ? 2e-3 : 1e-4, oRtol = half ? 4e-3 : 1e-4, sTol = 1e-4;
    double maxO = 0, maxS = 0;
    double const worst = std::max(
        parity::excess(oGpu, oCpu, oAtol, oRtol, maxO), parity::excess(sGpu, sCpu, sTol, sTol, maxS));
    bool const ok = worst <= 0;
    std::printf("%-4s %-14s B=%d T=%-4d H=%-2d K=%-4d V=%-3d max|do| %.3e  max|dS| %.3e  %s\n", half ? "fp16" : "fp32",
        "GatedOuterScan", B, T, H, K, V, maxO, maxS, ok ? "ok" : "FAIL");
    return ok;
}

} // namespace

bool gatedOuterScanKernelParity(std::mt19937& rng)
{
    bool ok = true;
    for (auto const& sh : kGOS_PARITY_SHAPES)
    {
        ok = gosCase<float, float>(sh, rng) && ok;
        ok = gosCase<__half, HostHalf>(sh, rng) && ok;
    }
    return ok;
}

} // namespace rrwkv
