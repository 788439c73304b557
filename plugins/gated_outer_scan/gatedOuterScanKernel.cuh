/*
 * The GatedOuterScan CUDA kernels and their launch configuration, included by gatedOuterScanKernel.cu (nvcc) and by
 * the CPU emulation build gatedOuterScanTestShim.cc (g++ with plugins/tests/cudaEmulation.h), so the index arithmetic,
 * the barriers and the reduction tested on the CPU are this code, not a copy. The arithmetic is gatedOuterScanMath.h.
 *
 * A block serves one (b, h) and a tile of `columns` value columns j (V <= 128: the whole head, one block per (b, h)).
 * Per token, the block first computes the gates a, kk and q of every key k into shared memory (threads over k), then
 * each thread updates its column of the state and forms its part of o[j]:
 * 1. gatedOuterScanRegKernel (K <= kGOS_MAX_REG_K): thread = group * columns + column. A thread keeps kGOS_ROWS rows
 *    [group * kGOS_ROWS, + kGOS_ROWS) of its column in registers for the whole call (rows >= K have zero gates and
 *    stay 0); the groups' partial dot products meet in shared memory and group 0 writes o[j]. Two barriers per token.
 *    The state is read from S0 once and written to S_out once.
 * 2. gatedOuterScanLargeKKernel (larger K): one thread per column, the state kept in S_out itself (updated in place,
 *    cached in L1/L2), the gates computed in chunks of kGOS_CHUNK_ROWS keys.
 * The grid is B * H * tiles blocks (at most 2^31 - 1); threads of columns >= V compute nothing but keep the barriers.
 */
#ifndef RRWKV_GATED_OUTER_SCAN_KERNEL_CUH
#define RRWKV_GATED_OUTER_SCAN_KERNEL_CUH

#include "gated_outer_scan/gatedOuterScanMath.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#if !defined(RRWKV_CUDA_EMULATION)
#include <cuda_fp16.h>
#include <cuda_runtime.h>
// kernel<<<grid, block, 0, stream>>>(args...); the emulation header defines its own (a loop over the grid).
#define RRWKV_LAUNCH(kernel, grid, block, stream, ...) kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
// The register array of a thread's rows stays in registers only when its loops are unrolled.
#define RRWKV_GOS_UNROLL _Pragma("unroll")
#define RRWKV_GOS_LAUNCH_BOUNDS __launch_bounds__(kGOS_MAX_THREADS)
#else
#define RRWKV_GOS_UNROLL
#define RRWKV_GOS_LAUNCH_BOUNDS
#endif

namespace rrwkv
{

constexpr int32_t kGOS_ROWS = 32;           // rows of its column a thread of the register kernel keeps in registers
constexpr int32_t kGOS_MAX_THREADS = 512;   // threads per block: 128 registers per thread available
constexpr int32_t kGOS_MAX_COLUMNS = 128;   // columns per block
constexpr int32_t kGOS_MAX_REG_K = 1024;    // largest K of the register kernel (its gates fill shared memory)
constexpr int32_t kGOS_CHUNK_ROWS = 1024;   // keys per gate chunk of the large-K kernel
constexpr int64_t kGOS_MAX_BLOCKS = 0x7FFFFFFF;

struct GosLaunchConfig
{
    bool registers;  // gatedOuterScanRegKernel, else gatedOuterScanLargeKKernel
    int32_t columns; // value columns per block
    int32_t groups;  // row groups per column (register kernel; 1 otherwise)
    int32_t tiles;   // blocks per (b, h): ceil(V / columns)
    uint32_t threads;
    int64_t blocks; // B * H * tiles
};

// The launch of B, H >= 1, K >= 0, V >= 1. With several row groups a tile is whole warps (rounded up to 32 columns),
// so that the threads of a warp read the same gate (a broadcast); halved until the block has at most
// kGOS_MAX_THREADS threads.
inline GosLaunchConfig gosLaunchConfig(int32_t B, int32_t H, int32_t K, int32_t V)
{
    GosLaunchConfig c{};
    c.registers = K <= kGOS_MAX_REG_K;
    c.groups = c.registers ? std::max(1, (K + kGOS_ROWS - 1) / kGOS_ROWS) : 1;
    int64_t const wanted = c.groups == 1 ? V : (static_cast<int64_t>(V) + 31) / 32 * 32; // V may be near 2^31
    c.columns = static_cast<int32_t>(std::min<int64_t>(wanted, kGOS_MAX_COLUMNS));
    while (c.columns * c.groups > kGOS_MAX_THREADS)
    {
        c.columns /= 2;
    }
    c.tiles = static_cast<int32_t>((static_cast<int64_t>(V) + c.columns - 1) / c.columns);
    c.threads = static_cast<uint32_t>(c.columns * c.groups);
    c.blocks = static_cast<int64_t>(B) * H * c.tiles;
    return c;
}

__device__ __forceinline__ float gosLoad(float x)
{
    return x;
}

__device__ __forceinline__ float gosLoad(__half x)
{
    return __half2float(x);
}

template <typename T>
__device__ __forceinline__ T gosStore(float x);

template <>
__device__ __forceinline__ float gosStore<float>(float x)
{
    return x;
}

template <>
__device__ __forceinline__ __half gosStore<__half>(float x)
{
    return __float2half_rn(x);
}

// This block's head and first column: bh = b * H + h (the head's index in S0 / S_out), j0 = tile * columns.
struct GosBlock
{
    int64_t bh;
    int64_t b;
    int32_t h;
    int32_t j0;
};

__device__ __forceinline__ GosBlock gosBlock(int32_t H, int32_t tiles, int32_t columns)
{
    GosBlock blk{};
    blk.bh = static_cast<int64_t>(blockIdx.x) / tiles;
    blk.b = blk.bh / H;
    blk.h = static_cast<int32_t>(blk.bh % H);
    blk.j0 = static_cast<int32_t>(static_cast<int64_t>(blockIdx.x) % tiles) * columns;
    return blk;
}

// Gates and q of keys [k0, k0 + n) into sA, sKK, sQ[0, n), the block's threads over the keys; keys >= K get zeros, so
// their rows neither change nor count. The caller synchronises before reading them.
template <typename T>
__device__ __forceinline__ void gosGatesToShared(T const* qRow, T const* fRow, float const* lbRow, int32_t K,
    int64_t k0, int32_t n, float* sA, float* sKK, float* sQ)
{
    for (int32_t i = static_cast<int32_t>(threadIdx.x); i < n; i += static_cast<int32_t>(blockDim.x))
    {
        int64_t const k = k0 + i;
        float a = 0.F;
        float kk = 0.F;
        float qq = 0.F;
        if (k < K)
        {
            gosGate(gosLoad(fRow[k]), lbRow[k], a, kk);
            qq = gosLoad(qRow[k]);
        }
        sA[i] = a;
        sKK[i] = kk;
        sQ[i] = qq;
    }
}

template <typename T>
__global__ void RRWKV_GOS_LAUNCH_BOUNDS gatedOuterScanRegKernel(int32_t T_, int32_t H, int32_t K, int32_t V,
    int32_t columns, int32_t groups, int32_t tiles, float scale, T const* __restrict__ q, T const* __restrict__ f,
    float const* __restrict__ lb, T const* __restrict__ v, float const* S0, T* __restrict__ o, float* Sout)
{
    __shared__ float sA[kGOS_MAX_REG_K];
    __shared__ float sKK[kGOS_MAX_REG_K];
    __shared__ float sQ[kGOS_MAX_REG_K];
    __shared__ float sPart[kGOS_MAX_THREADS]; // the groups' partial dot products, [group][column]
    GosBlock const blk = gosBlock(H, tiles, columns);
    int32_t const tid = static_cast<int32_t>(threadIdx.x);
    int32_t const column = tid % columns;
    int32_t const group = tid / columns;
    int32_t const j = blk.j0 + column;
    bool const active = j < V;
    int32_t const k0 = group * kGOS_ROWS;
    int64_t const state = blk.bh * K * V + j; // S[b, h, 0, j]; row k at + k * V
    float s[kGOS_ROWS];
    RRWKV_GOS_UNROLL
    for (int32_t r = 0; r < kGOS_ROWS; ++r)
    {
        s[r] = active && k0 + r < K ? S0[state + static_cast<int64_t>(k0 + r) * V] : 0.F;
    }
    for (int32_t t = 0; t < T_; ++t)
    {
        int64_t const row = (blk.b * T_ + t) * H + blk.h; // token row of [B, T, H, *]
        gosGatesToShared(q + row * K, f + row * K, lb + static_cast<int64_t>(blk.h) * K, K, 0, groups * kGOS_ROWS,
            sA, sKK, sQ);
        __syncthreads();
        float const vj = active ? gosLoad(v[row * V + j]) : 0.F;
        float part = 0.F;
        RRWKV_GOS_UNROLL
        for (int32_t r = 0; r < kGOS_ROWS; ++r)
        {
            s[r] = gosUpdate(sA[k0 + r], sKK[k0 + r], vj, s[r]);
            part = gosDot(part, sQ[k0 + r], s[r]);
        }
        sPart[tid] = part;
        __syncthreads(); // also: every thread is done with this token's gates before the next token's overwrite them
        if (group == 0 && active)
        {
            float acc = 0.F;
            for (int32_t g = 0; g < groups; ++g)
            {
                acc += sPart[g * columns + column];
            }
            o[row * V + j] = gosStore<T>(gosOutput(scale, acc));
        }
    }
    RRWKV_GOS_UNROLL
    for (int32_t r = 0; r < kGOS_ROWS; ++r)
    {
        if (active && k0 + r < K)
        {
            Sout[state + static_cast<int64_t>(k0 + r) * V] = s[r];
        }
    }
}

template <typename T>
__global__ void gatedOuterScanLargeKKernel(int32_t T_, int32_t H, int32_t K, int32_t V, int32_t columns,
    int32_t tiles, float scale, T const* __restrict__ q, T const* __restrict__ f, float const* __restrict__ lb,
    T const* __restrict__ v, float const* S0, T* __restrict__ o, float* Sout)
{
    __shared__ float sA[kGOS_CHUNK_ROWS];
    __shared__ float sKK[kGOS_CHUNK_ROWS];
    __shared__ float sQ[kGOS_CHUNK_ROWS];
    GosBlock const blk = gosBlock(H, tiles, columns);
    int32_t const j = blk.j0 + static_cast<int32_t>(threadIdx.x);
    bool const active = j < V;
    int64_t const state = blk.bh * K * V + j; // S[b, h, 0, j]; row k at + k * V
    float const* src = S0;                    // the state before this token: S0, then S_out (in place)
    for (int32_t t = 0; t < T_; ++t)
    {
        int64_t const row = (blk.b * T_ + t) * H + blk.h;
        float const vj = active ? gosLoad(v[row * V + j]) : 0.F;
        float part = 0.F;
        for (int64_t kc = 0; kc < K; kc += kGOS_CHUNK_ROWS) // 64 bits: K + 1023 may pass 2^31 - 1
        {
            int32_t const n = K - kc < kGOS_CHUNK_ROWS ? static_cast<int32_t>(K - kc) : kGOS_CHUNK_ROWS;
            gosGatesToShared(q + row * K, f + row * K, lb + static_cast<int64_t>(blk.h) * K, K, kc, n, sA, sKK, sQ);
            __syncthreads();
            for (int32_t i = 0; active && i < n; ++i)
            {
                int64_t const e = state + (kc + i) * V;
                float const sNew = gosUpdate(sA[i], sKK[i], vj, src[e]);
                Sout[e] = sNew;
                part = gosDot(part, sQ[i], sNew);
            }
            __syncthreads(); // the chunk's gates are read by all before the next chunk overwrites them
        }
        if (active)
        {
            o[row * V + j] = gosStore<T>(gosOutput(scale, part));
        }
        src = Sout;
    }
    for (int32_t k = 0; T_ == 0 && active && k < K; ++k)
    {
        Sout[state + static_cast<int64_t>(k) * V] = S0[state + static_cast<int64_t>(k) * V];
    }
}

// The launcher behind gatedOuterScanForward (gatedOuterScanKernel.h). Invalid sizes or scale, or a grid beyond
// 2^31 - 1 blocks, give cudaErrorInvalidValue; an empty B, H or V launches nothing.
template <typename T>
cudaError_t gatedOuterScanForwardLaunch(cudaStream_t stream, int32_t B, int32_t T_, int32_t H, int32_t K, int32_t V,
    float scale, T const* q, T const* f, float const* lb, T const* v, float const* S0, T* o, float* Sout)
{
    if (B < 0 || T_ < 0 || H < 0 || K < 0 || V < 0 || !(scale > 0.F) || !std::isfinite(scale))
    {
        return cudaErrorInvalidValue;
    }
    if (B == 0 || H == 0 || V == 0)
    {
        return cudaSuccess;
    }
    GosLaunchConfig const c = gosLaunchConfig(B, H, K, V);
    if (c.blocks > kGOS_MAX_BLOCKS)
    {
        return cudaErrorInvalidValue;
    }
    auto const blocks = static_cast<uint32_t>(c.blocks);
    if (c.registers)
    {
        RRWKV_LAUNCH(gatedOuterScanRegKernel<T>, blocks, c.threads, stream, T_, H, K, V, c.columns, c.groups, c.tiles,
            scale, q, f, lb, v, S0, o, Sout);
    }
    else
    {
        RRWKV_LAUNCH(gatedOuterScanLargeKKernel<T>, blocks, c.threads, stream, T_, H, K, V, c.columns, c.tiles, scale,
            q, f, lb, v, S0, o, Sout);
    }
    return cudaGetLastError();
}

} // namespace rrwkv

#endif // RRWKV_GATED_OUTER_SCAN_KERNEL_CUH
