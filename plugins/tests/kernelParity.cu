/*
 * GPU hosts: the CUDA kernels (wkv4Kernel.h, matmulW8Kernel.h launchers) against the CPU kernels (wkv4Cpu.h,
 * matmulW8Cpu.h) on random inputs, no TensorRT or ONNX Runtime. Odd sizes; WKV4 and WKV4Medium in fp32 and fp16
 * I/O (both medium_decays, per-batch pos0), MatMulW8 over every block-size bound; outputs poisoned. Prints the max
 * errors; exit code 0 when every case is within tolerance.
 * Build: cmake --build build/plugins --target rrwkv_kernel_parity; run: build/plugins/rrwkv_kernel_parity.
 * The WKV tolerances are those of kernel_fp32 / kernel_fp16 in plugins/wkv4/spec.yaml (GPU vs reference); MatMulW8
 * must match bit for bit (its integer part is exact, matmulW8Math.h), NaNs compared as NaN (CUDA's are canonical).
 */
#include "matmul_w8/matmulW8Cpu.h"
#include "matmul_w8/matmulW8Kernel.h"
#include "matmul_w8/matmulW8Math.h"
#include "wkv4/wkv4Cpu.h"
#include "wkv4/wkv4Kernel.h"

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace
{

#define PARITY_CHECK(call)                                                                                             \
    do                                                                                                                 \
    {                                                                                                                  \
        cudaError_t const e_ = (call);                                                                                 \
        if (e_ != cudaSuccess)                                                                                         \
        {                                                                                                              \
            std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));             \
            std::exit(2);                                                                                              \
        }                                                                                                              \
    } while (0)

template <typename T>
T* toDevice(std::vector<T> const& h)
{
    T* d = nullptr;
    PARITY_CHECK(cudaMalloc(&d, h.size() * sizeof(T) + 1));
    PARITY_CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
    return d;
}

template <typename T>
std::vector<T> toHost(T const* d, size_t n)
{
    std::vector<T> h(n);
    PARITY_CHECK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
}

float asFloat(float x)
{
    return x;
}

float asFloat(rrwkv::HostHalf x)
{
    return rrwkv::toFloat(x);
}

// max over elements of |a - b| - (atol + rtol |b|); > 0 means out of tolerance. NaN counts as failure.
template <typename A, typename B>
double excess(std::vector<A> const& gpu, std::vector<B> const& cpu, double atol, double rtol, double& maxAbs)
{
    double worst = -1.0;
    for (size_t i = 0; i < gpu.size(); ++i)
    {
        double const g = asFloat(gpu[i]);
        double const c = asFloat(cpu[i]);
        double const d = std::fabs(g - c);
        if (std::isnan(d))
        {
            return std::numeric_limits<double>::infinity();
        }
        maxAbs = std::max(maxAbs, d);
        worst = std::max(worst, d - (atol + rtol * std::fabs(c)));
    }
    return worst;
}

// DevT: float or __half (device); HostT: float or HostHalf (same bits).
template <typename DevT, typename HostT>
bool runCase(int32_t B, int32_t T, int32_t C, int32_t s, int32_t md, bool medium, std::mt19937& rng)
{
    std::normal_distribution<float> normal;
    std::uniform_real_distribution<float> uniform(0.f, 1.f);
    int32_t const M = std::max(1, (T + s - 1) / s);
    size_t const nx = size_t(B) * T * C, ns = size_t(B) * C, nm = size_t(B) * M * C;
    std::vector<float> w(C), u(C), kM(nm), vM(nm), aa(ns), bb(ns), pp(ns);
    std::vector<HostT> k(nx), v(nx);
    for (int32_t c = 0; c < C; ++c)
    {
        w[c] = -std::exp(uniform(rng) * 4.f - 3.f);
        u[c] = normal(rng);
    }
    for (size_t i = 0; i < nx; ++i)
    {
        k[i] = rrwkv::fromFloat<HostT>(1.5f * normal(rng));
        v[i] = rrwkv::fromFloat<HostT>(normal(rng));
    }
    for (size_t i = 0; i < nm; ++i)
    {
        kM[i] = 1.5f * normal(rng) - 1.f;
        vM[i] = normal(rng);
    }
    for (size_t i = 0; i < ns; ++i)
    {
        aa[i] = normal(rng);
        bb[i] = uniform(rng) * 2.f + 0.1f;
        pp[i] = normal(rng);
    }
    std::vector<int64_t> pos0(B);
    for (int32_t b = 0; b < B; ++b)
    {
        pos0[b] = (s - 1 + 3 * b) + (b == 2 ? 3000000000LL * s : 0);
    }

    std::vector<HostT> yCpu(nx);
    std::vector<float> aaCpu(ns), bbCpu(ns), ppCpu(ns);
    if (medium)
    {
        rrwkv::wkv4MediumForwardCpu<HostT>(B, T, C, M, s, md, w.data(), u.data(), k.data(), v.data(), kM.data(),
            vM.data(), aa.data(), bb.data(), pp.data(), pos0.data(), yCpu.data(), aaCpu.data(), bbCpu.data(),
            ppCpu.data());
    }
    else
    {
        rrwkv::wkv4ForwardCpu<HostT>(B, T, C, w.data(), u.data(), k.data(), v.data(), aa.data(), bb.data(),
            pp.data(), yCpu.data(), aaCpu.data(), bbCpu.data(), ppCpu.data());
    }

    float *dW = toDevice(w), *dU = toDevice(u), *dKM = toDevice(kM), *dVM = toDevice(vM);
    float *dAA = toDevice(aa), *dBB = toDevice(bb), *dPP = toDevice(pp);
    int64_t* dPos = toDevice(pos0);
    auto* dK = reinterpret_cast<DevT*>(toDevice(k));
    auto* dV = reinterpret_cast<DevT*>(toDevice(v));
    DevT* dY = nullptr;
    float *dAAo = nullptr, *dBBo = nullptr, *dPPo = nullptr;
    PARITY_CHECK(cudaMalloc(&dY, nx * sizeof(DevT) + 1));
    PARITY_CHECK(cudaMalloc(&dAAo, ns * sizeof(float) + 1));
    PARITY_CHECK(cudaMalloc(&dBBo, ns * sizeof(float) + 1));
    PARITY_CHECK(cudaMalloc(&dPPo, ns * sizeof(float) + 1));
    PARITY_CHECK(cudaMemset(dY, 0xFF, nx * sizeof(DevT))); // all-ones bits: NaN in fp32 and fp16
    PARITY_CHECK(cudaMemset(dAAo, 0xFF, ns * sizeof(float)));
    PARITY_CHECK(cudaMemset(dBBo, 0xFF, ns * sizeof(float)));
    PARITY_CHECK(cudaMemset(dPPo, 0xFF, ns * sizeof(float)));
    cudaError_t const launched = medium
        ? rrwkv::wkv4MediumForward<DevT>(nullptr, B, T, C, M, s, md, dW, dU, dK, dV, dKM, dVM, dAA, dBB, dPP, dPos,
            dY, dAAo, dBBo, dPPo)
        : rrwkv::wkv4Forward<DevT>(nullptr, B, T, C, dW, dU, dK, dV, dAA, dBB, dPP, dY, dAAo, dBBo, dPPo);
    PARITY_CHECK(launched);
    PARITY_CHECK(cudaDeviceSynchronize());
    auto yGpu = toHost(reinterpret_cast<HostT*>(dY), nx);
    auto aaGpu = toHost(dAAo, ns), bbGpu = toHost(dBBo, ns), ppGpu = toHost(dPPo, ns);

    bool const half = sizeof(HostT) == 2;
    double const yAtol = half ? 2e-3 : 1e-4, yRtol = half ? 4e-3 : 1e-4, sTol = 1e-4;
    double maxY = 0, maxS = 0;
    double const worst = std::max({excess(yGpu, yCpu, yAtol, yRtol, maxY), excess(aaGpu, aaCpu, sTol, sTol, maxS),
        excess(bbGpu, bbCpu, sTol, sTol, maxS), excess(ppGpu, ppCpu, sTol, sTol, maxS)});
    bool const ok = worst <= 0;
    std::printf("%-4s %-10s B=%d T=%-4d C=%-4d s=%-2d md=%d  max|dy| %.3e  max|dstate| %.3e  %s\n",
        half ? "fp16" : "fp32", medium ? "WKV4Medium" : "WKV4", B, T, C, s, md, maxY, maxS, ok ? "ok" : "FAIL");
    for (void* p : {static_cast<void*>(dW), static_cast<void*>(dU), static_cast<void*>(dKM), static_cast<void*>(dVM),
             static_cast<void*>(dAA), static_cast<void*>(dBB), static_cast<void*>(dPP), static_cast<void*>(dPos),
             static_cast<void*>(dK), static_cast<void*>(dV), static_cast<void*>(dY), static_cast<void*>(dAAo),
             static_cast<void*>(dBBo), static_cast<void*>(dPPo)})
    {
        PARITY_CHECK(cudaFree(p));
    }
    return ok;
}

// Elements of gpu that are not cpu's bits; two NaNs count as equal (a CUDA NaN result is canonical, x86 keeps the
// operand's payload).
template <typename T>
size_t differing(std::vector<T> const& gpu, std::vector<T> const& cpu)
{
    size_t n = 0;
    for (size_t i = 0; i < gpu.size(); ++i)
    {
        bool const bothNan = std::isnan(static_cast<double>(gpu[i])) && std::isnan(static_cast<double>(cpu[i]));
        n += (bothNan || std::memcmp(&gpu[i], &cpu[i], sizeof(T)) == 0) ? 0 : 1;
    }
    return n;
}

// MatMulW8 on the GPU against the CPU kernels' scalar path: y, and the quantised rows (xq, xScale) the GPU left in
// its workspace. Random int8 weights and positive scales (any packed values are valid inputs), rows of different
// magnitudes; with M >= 4 also an all-zero row and rows holding a NaN and an infinity.
bool runMatMulW8Case(int32_t M, int32_t K, int32_t N, int32_t bs, std::mt19937& rng)
{
    std::normal_distribution<float> normal;
    std::uniform_real_distribution<float> uniform(0.f, 1.f);
    std::uniform_int_distribution<int32_t> q8(-127, 127);
    int32_t const NB = rrwkv::w8BlockCount(K, bs);
    int32_t const Kpad = NB * bs;
    int32_t const G = rrwkv::w8GroupCount(N);
    size_t const nx = size_t(M) * K, nq = size_t(M) * Kpad, ny = size_t(M) * N;
    std::vector<float> x(nx), scale(size_t(G) * NB * rrwkv::kW8GroupCols);
    std::vector<int8_t> w(size_t(G) * Kpad * rrwkv::kW8GroupCols); // [G, Kpad / 2, 64, 2]
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
    auto const portable = rrwkv::W8Isa::kPortable;
    rrwkv::matmulW8QuantizeRowsCpu(M, K, Kpad, x.data(), xqCpu.data(), xsCpu.data(), portable);
    rrwkv::matmulW8ForwardCpu(
        M, N, Kpad, bs, xqCpu.data(), xsCpu.data(), w.data(), scale.data(), yCpu.data(), portable);

    float *dX = toDevice(x), *dS = toDevice(scale);
    int8_t* dW = toDevice(w);
    int16_t* dXq = toDevice(std::vector<int16_t>(nq, -32768)); // no quantised value is -32768
    float* dXs = toDevice(std::vector<float>(M, std::numeric_limits<float>::quiet_NaN()));
    float* dY = toDevice(std::vector<float>(ny, std::numeric_limits<float>::quiet_NaN()));
    PARITY_CHECK(rrwkv::matmulW8Forward(nullptr, M, K, N, bs, dX, dW, dS, dXq, dXs, dY));
    PARITY_CHECK(cudaDeviceSynchronize());
    size_t const badY = differing(toHost(dY, ny), yCpu);
    size_t const badXq = differing(toHost(dXq, nq), xqCpu);
    size_t const badXs = differing(toHost(dXs, size_t(M)), xsCpu);
    bool const ok = badY == 0 && badXq == 0 && badXs == 0;
    std::printf("fp32 MatMulW8   M=%-3d K=%-4d N=%-4d bs=%-3d  differing y %zu/%zu  xq %zu/%zu  xScale %zu/%d  %s\n", M,
        K, N, bs, badY, ny, badXq, nq, badXs, M, ok ? "ok" : "FAIL");
    for (void* p : {static_cast<void*>(dX), static_cast<void*>(dS), static_cast<void*>(dW), static_cast<void*>(dXq),
             static_cast<void*>(dXs), static_cast<void*>(dY)})
    {
        PARITY_CHECK(cudaFree(p));
    }
    return ok;
}

} // namespace

int main()
{
    std::mt19937 rng(0);
    bool ok = true;
    int const shapes[][3] = {{1, 1, 1}, {3, 7, 33}, {1, 63, 500}, {3, 63, 500}, {3, 1000, 33}, {2, 1000, 768}};
    for (auto const& sh : shapes)
    {
        for (bool medium : {false, true})
        {
            int32_t const s = medium ? (sh[1] % 3 == 0 ? 16 : 4) : 1;
            for (int32_t md : medium ? std::vector<int32_t>{0, 1} : std::vector<int32_t>{0})
            {
                ok = runCase<float, float>(sh[0], sh[1], sh[2], s, md, medium, rng) && ok;
                ok = runCase<__half, rrwkv::HostHalf>(sh[0], sh[1], sh[2], s, md, medium, rng) && ok;
            }
        }
    }
    int const w8Shapes[][4] = {{1, 5, 1, 2}, {3, 130, 63, 32}, {7, 768, 65, 128}, {70, 768, 200, 256},
        {70, 130, 200, 2}, {1, 768, 768, 128}, {1, 768, 3072, 128}, {1, 3072, 768, 128}, {64, 3072, 768, 128}};
    for (auto const& sh : w8Shapes)
    {
        ok = runMatMulW8Case(sh[0], sh[1], sh[2], sh[3], rng) && ok;
    }
    std::printf("%s\n", ok ? "kernel parity: all cases within tolerance" : "kernel parity: FAILED");
    return ok ? 0 : 1;
}
