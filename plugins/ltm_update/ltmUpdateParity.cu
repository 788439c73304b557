/*
 * LTMUpdate's kernel-parity cases (tests/kernelParity.cu, GPU hosts): ltmUpdateForward against ltmUpdateForwardCpu,
 * fixed and sticky sampling, the three modes mixed (rows UPDATE, FIT, KEEP, ...; NaN in what a row's mode must not
 * read: X_new and hist of KEEP rows, B_past of FIT rows), odd sizes and the GPT-2-like N = 512, e = 256; outputs
 * NaN-poisoned; KEEP rows must be B_past's bits.
 * Tolerance: kernel_fp32 of plugins/ltm_update/spec.yaml (nvcc contracts a * b + c into FMA).
 */
#include "ltm_update/ltmUpdateCpu.h"
#include "ltm_update/ltmUpdateKernel.h"
#include "ltm_update/ltmUpdateMath.h"
#include "tests/kernelParity.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

namespace rrwkv
{
namespace
{

// {B, N, e, L, M, NB, sticky}
constexpr int32_t kLTM_PARITY_SHAPES[][7] = {{1, 1, 1, 1, 1, 1, 0}, {3, 33, 17, 7, 9, 5, 0}, {3, 33, 17, 7, 9, 5, 1},
    {2, 512, 256, 64, 96, 128, 0}, {2, 512, 256, 64, 96, 128, 1}};

std::vector<float> randomVec(size_t n, float lo, float hi, std::mt19937& rng)
{
    std::uniform_real_distribution<float> u(lo, hi);
    std::vector<float> out(n);
    for (float& x : out)
    {
        x = u(rng);
    }
    return out;
}

bool ltmCase(int32_t const (&sh)[7], std::mt19937& rng)
{
    int32_t const B = sh[0], N = sh[1], e = sh[2], L = sh[3], M = sh[4], NB = sh[5], sticky = sh[6];
    auto bPast = randomVec(size_t(B) * N * e, -1.F, 1.F, rng);
    auto xNew = randomVec(size_t(B) * L * e, -1.F, 1.F, rng);
    auto const G = randomVec(size_t(L) * N, -0.1F, 0.1F, rng);
    auto const gInf = randomVec(size_t(M + L) * N, -0.1F, 0.1F, rng);
    auto const sSamp = randomVec(size_t(M) * N, 0.F, 40.F, rng);
    auto hist = randomVec(size_t(B) * NB, 0.F, 1.F, rng);
    std::vector<float> basisMu(N), basisSigma(N);
    int32_t const half = (N + 1) / 2;
    for (int32_t j = 0; j < N; ++j)
    {
        basisMu[j] = half > 1 ? static_cast<float>(j % half) / static_cast<float>(half - 1) : 0.5F;
        basisSigma[j] = j < half ? 0.005F : 0.01F;
    }
    float const nan = std::nanf("");
    std::vector<int64_t> mode(B);
    for (int32_t b = 0; b < B; ++b)
    {
        mode[b] = kLTM_UPDATE - b % 3;
        if (mode[b] == kLTM_KEEP)
        {
            std::fill_n(xNew.begin() + size_t(b) * L * e, size_t(L) * e, nan);
            std::fill_n(hist.begin() + size_t(b) * NB, NB, nan);
        }
        else if (mode[b] == kLTM_FIT)
        {
            std::fill_n(bPast.begin() + size_t(b) * N * e, size_t(N) * e, nan);
        }
    }
    size_t const nOut = size_t(B) * N * e, nOld = size_t(B) * M * e;
    std::vector<float> xOldCpu(nOld), bNewCpu(nOut);
    ltmUpdateForwardCpu(B, N, e, L, M, NB, sticky, bPast.data(), xNew.data(), mode.data(), G.data(), gInf.data(),
        sSamp.data(), hist.data(), basisMu.data(), basisSigma.data(), xOldCpu.data(), bNewCpu.data());

    float* dBPast = parity::toDevice(bPast);
    float* dXNew = parity::toDevice(xNew);
    int64_t* dMode = parity::toDevice(mode);
    float* dG = parity::toDevice(G);
    float* dGInf = parity::toDevice(gInf);
    float* dSSamp = parity::toDevice(sSamp);
    float* dHist = parity::toDevice(hist);
    float* dBasisMu = parity::toDevice(basisMu);
    float* dBasisSigma = parity::toDevice(basisSigma);
    float* dXOld = nullptr;
    float* dBNew = nullptr;
    PARITY_CHECK(cudaMalloc(&dXOld, ltmUpdateWorkspaceBytes(B, M, e) + 1));
    PARITY_CHECK(cudaMalloc(&dBNew, nOut * sizeof(float) + 1));
    PARITY_CHECK(cudaMemset(dBNew, 0xFF, nOut * sizeof(float))); // NaN
    PARITY_CHECK(ltmUpdateForward(nullptr, B, N, e, L, M, NB, sticky, dBPast, dXNew, dMode, dG, dGInf, dSSamp,
        dHist, dBasisMu, dBasisSigma, dXOld, dBNew));
    PARITY_CHECK(cudaDeviceSynchronize());
    auto const bNewGpu = parity::toHost(dBNew, nOut);
    parity::freeAll({dBPast, dXNew, dMode, dG, dGInf, dSSamp, dHist, dBasisMu, dBasisSigma, dXOld, dBNew});

    size_t keepDiffering = 0;
    for (int32_t b = 0; b < B; ++b)
    {
        if (mode[b] == kLTM_KEEP)
        {
            auto const row = [&](std::vector<float> const& v) {
                return std::vector<float>(v.begin() + size_t(b) * N * e, v.begin() + size_t(b + 1) * N * e);
            };
            keepDiffering += parity::differing(row(bNewGpu), row(bPast));
        }
    }
    double maxAbs = 0;
    bool const ok = parity::excess(bNewGpu, bNewCpu, 1e-4, 1e-4, maxAbs) <= 0 && keepDiffering == 0; // kernel_fp32
    std::printf("fp32 %-27s B=%d N=%-3d e=%-3d L=%-2d M=%-2d NB=%-3d sticky=%d max|dB| %.3e  %s\n", "LTMUpdate", B, N,
        e, L, M, NB, sticky, maxAbs, ok ? "ok" : "FAIL");
    return ok;
}

} // namespace

bool ltmUpdateKernelParity(std::mt19937& rng)
{
    bool ok = true;
    for (auto const& sh : kLTM_PARITY_SHAPES)
    {
        ok = ltmCase(sh, rng) && ok;
    }
    return ok;
}

} // namespace rrwkv
