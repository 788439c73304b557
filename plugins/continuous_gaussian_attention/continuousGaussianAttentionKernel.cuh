/*
 * The ContinuousGaussianAttention CUDA kernel and its launch configuration, included by
 * continuousGaussianAttentionKernel.cu (nvcc) and by the CPU emulation build continuousGaussianAttentionTestShim.cc
 * (g++ with plugins/tests/cudaEmulation.h), so the index arithmetic and the barriers tested on the CPU are this code.
 * The arithmetic is continuousGaussianAttentionMath.h.
 *
 * One warp per query row (b, h, t), kCGA_WARPS warps (rows) per block; rows past the last are idle but keep the
 * barriers. Per row:
 * 1. lane l takes the basis functions j = l, l + 32, ...: s_j = scale K_j·q (16 strided partial sums over k in
 *    registers, then cgaScoreReduce) and its running terms of w_mu·s and w_sigma·s; the 32 partial sums meet in
 *    shared memory and every lane adds them in lane order (the CPU kernel's order), giving mu and sigma2 (lane 0
 *    writes them);
 * 2. ctx in passes of kCGA_COLS * 32 columns (one pass for d <= 128), each lane kCGA_COLS columns c = lane + 32 u;
 *    per pass the r_j are computed in chunks of kCGA_CHUNK into shared memory (lanes over j), then every lane adds
 *    r_j V[j][c] for j in order. For d > 128 the r_j are recomputed per pass (cheap next to the N d products).
 * Warp shuffles are avoided on purpose: the CPU emulation has __syncthreads() but no warp intrinsics. The grid is
 * ceil(B H T / kCGA_WARPS) blocks (at most 2^31 - 1).
 */
#ifndef RRWKV_CONTINUOUS_GAUSSIAN_ATTENTION_KERNEL_CUH
#define RRWKV_CONTINUOUS_GAUSSIAN_ATTENTION_KERNEL_CUH

#include "continuous_gaussian_attention/continuousGaussianAttentionMath.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#if !defined(RRWKV_CUDA_EMULATION)
#include <cuda_fp16.h>
#include <cuda_runtime.h>
// kernel<<<grid, block, 0, stream>>>(args...); the emulation header defines its own (a loop over the grid).
#define RRWKV_LAUNCH(kernel, grid, block, stream, ...) kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#define RRWKV_CGA_UNROLL _Pragma("unroll")
#else
#define RRWKV_CGA_UNROLL
#endif

namespace rrwkv
{

constexpr int32_t kCGA_WARP = 32;    // lanes per row (== kCGA_LANES of the math header)
constexpr int32_t kCGA_WARPS = 4;    // rows (warps) per block
constexpr int32_t kCGA_CHUNK = 256;  // r_j per row held in shared memory at a time
constexpr int32_t kCGA_COLS = 4;     // ctx columns per lane per pass: a pass covers 128 columns
constexpr int64_t kCGA_MAX_BLOCKS = 0x7FFFFFFF;
static_assert(kCGA_WARP == kCGA_LANES, "the CUDA lanes are the math header's partial sums");

struct CgaLaunchConfig
{
    int32_t warps;    // rows per block
    uint32_t threads; // warps * 32
    int64_t blocks;   // ceil(rows / warps)
};

// The launch for rows >= 1 query rows: a block of fewer warps when there are fewer rows (decode of one head).
inline CgaLaunchConfig cgaLaunchConfig(int64_t rows)
{
    CgaLaunchConfig c{};
    c.warps = static_cast<int32_t>(std::min<int64_t>(rows, kCGA_WARPS));
    c.threads = static_cast<uint32_t>(c.warps * kCGA_WARP);
    c.blocks = (rows + c.warps - 1) / c.warps;
    return c;
}

__device__ __forceinline__ float cgaLoad(float x)
{
    return x;
}

__device__ __forceinline__ float cgaLoad(__half x)
{
    return __half2float(x);
}

template <typename T>
__device__ __forceinline__ T cgaStore(float x);

template <>
__device__ __forceinline__ float cgaStore<float>(float x)
{
    return x;
}

template <>
__device__ __forceinline__ __half cgaStore<__half>(float x)
{
    return __float2half_rn(x);
}

template <typename T>
__global__ void continuousGaussianAttentionKernel(int64_t rows, int32_t T_, int32_t N, int32_t d, float sigma2Min,
    float scale, T const* __restrict__ q, T const* __restrict__ K, T const* __restrict__ V,
    float const* __restrict__ wMu, float const* __restrict__ wSigma, float const* __restrict__ basisMu,
    float const* __restrict__ basisSigma, T* __restrict__ ctx, float* __restrict__ muOut,
    float* __restrict__ sigma2Out)
{
    __shared__ float sPartMu[kCGA_WARPS][kCGA_WARP];
    __shared__ float sPartSigma[kCGA_WARPS][kCGA_WARP];
    __shared__ float sR[kCGA_WARPS][kCGA_CHUNK];
    int32_t const lane = static_cast<int32_t>(threadIdx.x) % kCGA_WARP;
    int32_t const warp = static_cast<int32_t>(threadIdx.x) / kCGA_WARP;
    int64_t const row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / kCGA_WARP) + warp; // (b H + h) T + t
    bool const active = row < rows;
    int64_t const head = active ? row / T_ * N * d : 0; // K, V [b, h, 0, 0]
    T const* qRow = q + (active ? row : 0) * d;

    // 1. scores and the two dots, lanes over j
    float partMu = 0.F;
    float partSigma = 0.F;
    for (int32_t j = lane; active && j < N; j += kCGA_WARP)
    {
        T const* kRow = K + head + static_cast<int64_t>(j) * d;
        float part[kCGA_SCORE_PARTS];
        RRWKV_CGA_UNROLL
        for (int32_t u = 0; u < kCGA_SCORE_PARTS; ++u)
        {
            part[u] = 0.F;
        }
        for (int32_t k0 = 0; k0 < d; k0 += kCGA_SCORE_PARTS)
        {
            RRWKV_CGA_UNROLL
            for (int32_t u = 0; u < kCGA_SCORE_PARTS; ++u)
            {
                if (k0 + u < d)
                {
                    part[u] = cgaScoreDot(part[u], cgaLoad(kRow[k0 + u]), cgaLoad(qRow[k0 + u]));
                }
            }
        }
        float const s = cgaScore(scale, cgaScoreReduce(part));
        partMu = cgaDotAdd(partMu, wMu[j], s);
        partSigma = cgaDotAdd(partSigma, wSigma[j], s);
    }
    sPartMu[warp][lane] = partMu;
    sPartSigma[warp][lane] = partSigma;
    __syncthreads();
    float xMu = 0.F;
    float xSigma = 0.F;
    for (int32_t l = 0; l < kCGA_WARP; ++l) // every lane, in lane order: a broadcast read
    {
        xMu += sPartMu[warp][l];
        xSigma += sPartSigma[warp][l];
    }
    float const mu = cgaMu(xMu);
    float const sigma2 = cgaSigma2(xSigma, sigma2Min);
    if (active && lane == 0)
    {
        muOut[row] = mu;
        sigma2Out[row] = sigma2;
    }

    // 2. ctx = sum_j r_j V_j, lanes over columns, r_j in shared memory chunk by chunk
    for (int32_t c0 = 0; c0 < d; c0 += kCGA_WARP * kCGA_COLS)
    {
        float acc[kCGA_COLS];
        RRWKV_CGA_UNROLL
        for (int32_t u = 0; u < kCGA_COLS; ++u)
        {
            acc[u] = 0.F;
        }
        for (int32_t j0 = 0; j0 < N; j0 += kCGA_CHUNK)
        {
            int32_t const n = N - j0 < kCGA_CHUNK ? N - j0 : kCGA_CHUNK;
            __syncthreads(); // every lane is done with the previous chunk's r
            for (int32_t i = lane; i < n; i += kCGA_WARP)
            {
                sR[warp][i] = cgaR(mu, sigma2, basisMu[j0 + i], basisSigma[j0 + i]);
            }
            __syncthreads();
            for (int32_t i = 0; active && i < n; ++i)
            {
                float const r = sR[warp][i];
                T const* vRow = V + head + static_cast<int64_t>(j0 + i) * d;
                RRWKV_CGA_UNROLL
                for (int32_t u = 0; u < kCGA_COLS; ++u)
                {
                    int32_t const c = c0 + lane + kCGA_WARP * u;
                    if (c < d)
                    {
                        acc[u] = cgaCtxAdd(acc[u], r, cgaLoad(vRow[c]));
                    }
                }
            }
        }
        RRWKV_CGA_UNROLL
        for (int32_t u = 0; u < kCGA_COLS; ++u)
        {
            int32_t const c = c0 + lane + kCGA_WARP * u;
            if (active && c < d)
            {
                ctx[row * d + c] = cgaStore<T>(acc[u]);
            }
        }
    }
}

// The launcher behind continuousGaussianAttentionForward (continuousGaussianAttentionKernel.h). Invalid sizes or
// attributes, or a grid beyond 2^31 - 1 blocks, give cudaErrorInvalidValue; no rows launches nothing.
template <typename T>
cudaError_t continuousGaussianAttentionForwardLaunch(cudaStream_t stream, int32_t B, int32_t H, int32_t T_, int32_t N,
    int32_t d, float sigma2Min, float scale, T const* q, T const* K, T const* V, float const* wMu, float const* wSigma,
    float const* basisMu, float const* basisSigma, T* ctx, float* mu, float* sigma2)
{
    if (B < 0 || H < 0 || T_ < 0 || N < 0 || d < 0 || !(scale > 0.F) || !std::isfinite(scale) || !(sigma2Min > 0.F)
        || !std::isfinite(sigma2Min))
    {
        return cudaErrorInvalidValue;
    }
    int64_t const rows = static_cast<int64_t>(B) * H * T_;
    if (rows == 0)
    {
        return cudaSuccess;
    }
    CgaLaunchConfig const c = cgaLaunchConfig(rows);
    if (c.blocks > kCGA_MAX_BLOCKS)
    {
        return cudaErrorInvalidValue;
    }
    RRWKV_LAUNCH(continuousGaussianAttentionKernel<T>, static_cast<uint32_t>(c.blocks), c.threads, stream, rows, T_, N,
        d, sigma2Min, scale, q, K, V, wMu, wSigma, basisMu, basisSigma, ctx, mu, sigma2);
    return cudaGetLastError();
}

} // namespace rrwkv

#endif // RRWKV_CONTINUOUS_GAUSSIAN_ATTENTION_KERNEL_CUH
