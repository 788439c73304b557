/*
 * ContinuousGaussianAttention's extern "C" entry points in librrwkv_cpu_testshim.so
 * (tests/plugins/continuous_gaussian_attention_inputs.py): the CPU kernel of continuousGaussianAttentionCpu.h and the
 * CUDA kernel of continuousGaussianAttentionKernel.cuh compiled for the CPU under tests/cudaEmulation.h. Pointers are
 * host buffers in the layouts of continuousGaussianAttentionKernel.h; fp16 tensors are passed as uint16 bits.
 */
#include "tests/cpuTestShim.h"

#include "continuous_gaussian_attention/continuousGaussianAttentionCpu.h"
#include "continuous_gaussian_attention/continuousGaussianAttentionKernel.cuh"

#include <cstdint>

using rrwkv::asHalf;
using rrwkv::HostHalf;

extern "C"
{

    // CPU kernel (all rows) on the best path up to maxIsa (rrwkv::CpuIsa: 0 portable, 1 AVX2, 2 AVX-512).
    // Returns 0.
    int rrwkv_cpu_continuous_gaussian_attention_f32(int32_t B, int32_t H, int32_t T, int32_t N, int32_t d,
        float sigma2Min, float scale, float const* q, float const* K, float const* V, float const* wMu,
        float const* wSigma, float const* basisMu, float const* basisSigma, float* ctx, float* mu, float* sigma2,
        int32_t maxIsa)
    {
        rrwkv::continuousGaussianAttentionForwardCpu<float>(B, H, T, N, d, sigma2Min, scale, q, K, V, wMu, wSigma,
            basisMu, basisSigma, ctx, mu, sigma2, static_cast<rrwkv::CpuIsa>(maxIsa));
        return 0;
    }

    int rrwkv_cpu_continuous_gaussian_attention_f16(int32_t B, int32_t H, int32_t T, int32_t N, int32_t d,
        float sigma2Min, float scale, uint16_t const* q, uint16_t const* K, uint16_t const* V, float const* wMu,
        float const* wSigma, float const* basisMu, float const* basisSigma, uint16_t* ctx, float* mu, float* sigma2,
        int32_t maxIsa)
    {
        rrwkv::continuousGaussianAttentionForwardCpu<HostHalf>(B, H, T, N, d, sigma2Min, scale, asHalf(q), asHalf(K),
            asHalf(V), wMu, wSigma, basisMu, basisSigma, asHalf(ctx), mu, sigma2, static_cast<rrwkv::CpuIsa>(maxIsa));
        return 0;
    }

    // The best path this CPU runs (rrwkv::CpuIsa).
    int32_t rrwkv_cpu_continuous_gaussian_attention_isa()
    {
        return static_cast<int32_t>(rrwkv::cpuIsa());
    }

    // Emulated CUDA launcher. Returns the cudaError_t of the launch (0 = cudaSuccess).
    int rrwkv_emu_continuous_gaussian_attention_f32(int32_t B, int32_t H, int32_t T, int32_t N, int32_t d,
        float sigma2Min, float scale, float const* q, float const* K, float const* V, float const* wMu,
        float const* wSigma, float const* basisMu, float const* basisSigma, float* ctx, float* mu, float* sigma2)
    {
        return rrwkv::continuousGaussianAttentionForwardLaunch<float>(
            nullptr, B, H, T, N, d, sigma2Min, scale, q, K, V, wMu, wSigma, basisMu, basisSigma, ctx, mu, sigma2);
    }

    int rrwkv_emu_continuous_gaussian_attention_f16(int32_t B, int32_t H, int32_t T, int32_t N, int32_t d,
        float sigma2Min, float scale, uint16_t const* q, uint16_t const* K, uint16_t const* V, float const* wMu,
        float const* wSigma, float const* basisMu, float const* basisSigma, uint16_t* ctx, float* mu, float* sigma2)
    {
        return rrwkv::continuousGaussianAttentionForwardLaunch<__half>(nullptr, B, H, T, N, d, sigma2Min, scale,
            asHalf(q), asHalf(K), asHalf(V), wMu, wSigma, basisMu, basisSigma, asHalf(ctx), mu, sigma2);
    }

    // The launch of cgaLaunchConfig(rows): rows per block and threads per block; returns the block count.
    int64_t rrwkv_emu_continuous_gaussian_attention_config(int64_t rows, int32_t* warps, uint32_t* threads)
    {
        rrwkv::CgaLaunchConfig const c = rrwkv::cgaLaunchConfig(rows);
        *warps = c.warps;
        *threads = c.threads;
        return c.blocks;
    }

} // extern "C"
