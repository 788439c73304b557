/*
 * One kernel-parity case of the WKV4 recurrence, for wkv4Parity.cu and the parity cases of the ops built on WKV4:
 * random inputs on the host and the device, NaN-poisoned device outputs, and the comparison of the device outputs
 * with the CPU kernel's under the kernel_fp32 / kernel_fp16 tolerances of spec.yaml (GPU vs reference).
 */
#ifndef RRWKV_WKV4_PARITY_H
#define RRWKV_WKV4_PARITY_H

#include "tests/kernelParity.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace rrwkv
{

// DevT: float or __half (device); HostT: float or HostHalf (same bits). The case fills yCpu, aaCpu, bbCpu, ppCpu
// from its CPU kernel and launches its CUDA kernel on the d* buffers, then calls compare.
template <typename DevT, typename HostT>
struct Wkv4ParityCase
{
    Wkv4ParityCase(int32_t B_, int32_t T_, int32_t C_, std::mt19937& rng)
        : B(B_)
        , T(T_)
        , C(C_)
        , nx(size_t(B_) * T_ * C_)
        , ns(size_t(B_) * C_)
        , w(C_)
        , u(C_)
        , aa(ns)
        , bb(ns)
        , pp(ns)
        , k(nx)
        , v(nx)
        , yCpu(nx)
        , aaCpu(ns)
        , bbCpu(ns)
        , ppCpu(ns)
    {
        std::normal_distribution<float> normal;
        std::uniform_real_distribution<float> uniform(0.f, 1.f);
        for (int32_t c = 0; c < C; ++c)
        {
            w[c] = -std::exp(uniform(rng) * 4.f - 3.f);
            u[c] = normal(rng);
        }
        for (size_t i = 0; i < nx; ++i)
        {
            k[i] = fromFloat<HostT>(1.5f * normal(rng));
            v[i] = fromFloat<HostT>(normal(rng));
        }
        for (size_t i = 0; i < ns; ++i)
        {
            aa[i] = normal(rng);
            bb[i] = uniform(rng) * 2.f + 0.1f;
            pp[i] = normal(rng);
        }
        dW = parity::toDevice(w);
        dU = parity::toDevice(u);
        dAA = parity::toDevice(aa);
        dBB = parity::toDevice(bb);
        dPP = parity::toDevice(pp);
        dK = reinterpret_cast<DevT*>(parity::toDevice(k));
        dV = reinterpret_cast<DevT*>(parity::toDevice(v));
        PARITY_CHECK(cudaMalloc(&dY, nx * sizeof(DevT) + 1));
        PARITY_CHECK(cudaMalloc(&dAAo, ns * sizeof(float) + 1));
        PARITY_CHECK(cudaMalloc(&dBBo, ns * sizeof(float) + 1));
        PARITY_CHECK(cudaMalloc(&dPPo, ns * sizeof(float) + 1));
        PARITY_CHECK(cudaMemset(dY, 0xFF, nx * sizeof(DevT))); // all-ones bits: NaN in fp32 and fp16
        PARITY_CHECK(cudaMemset(dAAo, 0xFF, ns * sizeof(float)));
        PARITY_CHECK(cudaMemset(dBBo, 0xFF, ns * sizeof(float)));
        PARITY_CHECK(cudaMemset(dPPo, 0xFF, ns * sizeof(float)));
    }

    ~Wkv4ParityCase()
    {
        parity::freeAll({dW, dU, dAA, dBB, dPP, dK, dV, dY, dAAo, dBBo, dPPo});
    }

    Wkv4ParityCase(Wkv4ParityCase const&) = delete;
    Wkv4ParityCase& operator=(Wkv4ParityCase const&) = delete;

    // Synchronises, compares the device outputs with the CPU ones and prints one line: op, sizes, `params`, the
    // max errors. True when within tolerance.
    bool compare(char const* op, std::string const& params) const
    {
        PARITY_CHECK(cudaDeviceSynchronize());
        auto const yGpu = parity::toHost(reinterpret_cast<HostT const*>(dY), nx);
        auto const aaGpu = parity::toHost(dAAo, ns);
        auto const bbGpu = parity::toHost(dBBo, ns);
        auto const ppGpu = parity::toHost(dPPo, ns);
        bool const half = sizeof(HostT) == 2;
        double const yAtol = half ? 2e-3 : 1e-4, yRtol = half ? 4e-3 : 1e-4, sTol = 1e-4;
        double maxY = 0, maxS = 0;
        double const worst = std::max({parity::excess(yGpu, yCpu, yAtol, yRtol, maxY),
            parity::excess(aaGpu, aaCpu, sTol, sTol, maxS), parity::excess(bbGpu, bbCpu, sTol, sTol, maxS),
            parity::excess(ppGpu, ppCpu, sTol, sTol, maxS)});
        bool const ok = worst <= 0;
        std::printf("%-4s %-10s B=%d T=%-4d C=%-4d %-9s max|dy| %.3e  max|dstate| %.3e  %s\n", half ? "fp16" : "fp32",
            op, B, T, C, params.c_str(), maxY, maxS, ok ? "ok" : "FAIL");
        return ok;
    }

    int32_t B;
    int32_t T;
    int32_t C;
    size_t nx; // k, v, y [B, T, C]
    size_t ns; // state [B, C]
    std::vector<float> w;
    std::vector<float> u;
    std::vector<float> aa;
    std::vector<float> bb;
    std::vector<float> pp;
    std::vector<HostT> k;
    std::vector<HostT> v;
    std::vector<HostT> yCpu;
    std::vector<float> aaCpu;
    std::vector<float> bbCpu;
    std::vector<float> ppCpu;
    float* dW{nullptr};
    float* dU{nullptr};
    float* dAA{nullptr};
    float* dBB{nullptr};
    float* dPP{nullptr};
    DevT* dK{nullptr};
    DevT* dV{nullptr};
    DevT* dY{nullptr};
    float* dAAo{nullptr};
    float* dBBo{nullptr};
    float* dPPo{nullptr};
};

// The sizes of the WKV-family parity cases: odd B*C, T = 1 (decode) to 1000, C up to 768.
constexpr int32_t kWKV4_PARITY_SHAPES[][3] = {{1, 1, 1}, {3, 7, 33}, {1, 63, 500}, {3, 63, 500}, {3, 1000, 33},
    {2, 1000, 768}};

} // namespace rrwkv

#endif // RRWKV_WKV4_PARITY_H
