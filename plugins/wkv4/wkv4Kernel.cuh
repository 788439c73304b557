/*
 * The WKV4 CUDA kernel and its launch configuration, included by wkv4Kernel.cu (nvcc) and by the CPU emulation
 * build wkv4TestShim.cc (g++ with plugins/tests/cudaEmulation.h), so the index and stride arithmetic tested on
 * the CPU is this code, not a copy. The arithmetic is wkv4Math.h. The kernels of the ops built on the WKV4
 * recurrence reuse the thread mapping, the I/O conversions and the launcher here.
 *
 * One thread per (b, c) (docs/families/rwkv4.md §1.10): idx = blockIdx.x * blockDim.x + threadIdx.x, b = idx / C,
 * c = idx % C; the thread keeps w, u and the state in fp32 registers and loops over t with stride C
 * (coalesced across c). The grid covers any B*C: the last block's surplus threads return at the guard.
 */
#ifndef RRWKV_WKV4_KERNEL_CUH
#define RRWKV_WKV4_KERNEL_CUH

#include "wkv4/wkv4Math.h"

#include <cstdint>

#if !defined(RRWKV_CUDA_EMULATION)
#include <cuda_fp16.h>
#include <cuda_runtime.h>
// kernel<<<grid, block, 0, stream>>>(args...); the emulation header defines its own (a loop over the grid).
#define RRWKV_LAUNCH(kernel, grid, block, stream, ...) kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#endif

namespace rrwkv
{

constexpr int32_t kWKV4_THREADS_PER_BLOCK = 32; // one warp: small B*C (decode) still spreads over many SMs

struct Wkv4LaunchConfig
{
    uint32_t blocks;
    uint32_t threads;
};

// Blocks of kWKV4_THREADS_PER_BLOCK threads covering n = B*C >= 1 threads (rounded up, no divisibility needed).
inline Wkv4LaunchConfig wkv4LaunchConfig(int64_t n, int32_t threadsPerBlock = kWKV4_THREADS_PER_BLOCK)
{
    int64_t const blocks = (n + threadsPerBlock - 1) / threadsPerBlock;
    return Wkv4LaunchConfig{static_cast<uint32_t>(blocks), static_cast<uint32_t>(threadsPerBlock)};
}

__device__ __forceinline__ float loadAsFloat(float x)
{
    return x;
}

__device__ __forceinline__ float loadAsFloat(__half x)
{
    return __half2float(x);
}

template <typename T>
__device__ __forceinline__ T storeFromFloat(float x);

template <>
__device__ __forceinline__ float storeFromFloat<float>(float x)
{
    return x;
}

template <>
__device__ __forceinline__ __half storeFromFloat<__half>(float x)
{
    return __float2half_rn(x);
}

// This CUDA thread's (b, c); idx = b * C + c is also its flat index in the state [B, C]. False for the surplus
// threads of the last block (the grid is rounded up to whole blocks), which return at once.
struct Wkv4Thread
{
    int64_t idx;
    int64_t b;
    int32_t c;
};

__device__ __forceinline__ bool wkv4Thread(int32_t B, int32_t C, Wkv4Thread& th)
{
    th.idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (th.idx >= static_cast<int64_t>(B) * C)
    {
        return false;
    }
    th.b = th.idx / C;
    th.c = static_cast<int32_t>(th.idx % C);
    return true;
}

template <typename T>
__global__ void wkv4ForwardKernel(int32_t B, int32_t T_, int32_t C, float const* __restrict__ w,
    float const* __restrict__ u, T const* __restrict__ k, T const* __restrict__ v, float const* aaIn,
    float const* bbIn, float const* ppIn, T* __restrict__ y, float* aaOut, float* bbOut, float* ppOut)
{
    Wkv4Thread th{};
    if (!wkv4Thread(B, C, th))
    {
        return;
    }
    auto const [idx, b, c] = th;
    int64_t const offset = b * T_ * C + c; // k, v, y [B, T, C]
    float const ww = w[c];
    float const uu = u[c];
    float aa = aaIn[idx]; // state [B, C]: flat index b*C + c == idx
    float bb = bbIn[idx];
    float pp = ppIn[idx];
    for (int32_t t = 0; t < T_; ++t)
    {
        int64_t const i = offset + static_cast<int64_t>(t) * C;
        y[i] = storeFromFloat<T>(wkv4Step(ww, uu, loadAsFloat(k[i]), loadAsFloat(v[i]), aa, bb, pp));
    }
    aaOut[idx] = aa;
    bbOut[idx] = bb;
    ppOut[idx] = pp;
}

// kernel(args...) on one thread per (b, c) in blocks of kWKV4_THREADS_PER_BLOCK; an empty batch or channel dim
// launches nothing.
template <typename Kernel, typename... Args>
cudaError_t wkv4Launch(cudaStream_t stream, int32_t B, int32_t C, Kernel kernel, Args... args)
{
    int64_t const n = static_cast<int64_t>(B) * C;
    if (n == 0)
    {
        return cudaSuccess;
    }
    Wkv4LaunchConfig const cfg = wkv4LaunchConfig(n);
    RRWKV_LAUNCH(kernel, cfg.blocks, cfg.threads, stream, args...);
    return cudaGetLastError();
}

// The launcher behind wkv4Forward (wkv4Kernel.h). Invalid sizes give cudaErrorInvalidValue;
// an empty batch or channel dim launches nothing.
template <typename T>
cudaError_t wkv4ForwardLaunch(cudaStream_t stream, int32_t B, int32_t T_, int32_t C, float const* w, float const* u,
    T const* k, T const* v, float const* aaIn, float const* bbIn, float const* ppIn, T* y, float* aaOut, float* bbOut,
    float* ppOut)
{
    if (B < 0 || T_ < 0 || C < 0)
    {
        return cudaErrorInvalidValue;
    }
    return wkv4Launch(stream, B, C, wkv4ForwardKernel<T>, B, T_, C, w, u, k, v, aaIn, bbIn, ppIn, y, aaOut, bbOut,
        ppOut);
}

} // namespace rrwkv

#endif // RRWKV_WKV4_KERNEL_CUH
