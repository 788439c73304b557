/*
 * Just enough CUDA to compile a .cuh kernel file with g++ and run it on the CPU: __global__/__device__/__host__
 * vanish, threadIdx/blockIdx/blockDim/gridDim are thread_local variables that the launch loop sets before
 * running the kernel body once per CUDA thread, and __half is the host IEEE fp16 (common/hostHalf.h) with
 * round-to-nearest-even conversion like __float2half_rn.
 * Shared memory and __syncthreads(): every CUDA thread of a block is a fiber (POSIX ucontext) on the launching host
 * thread. The launch loop runs the block in passes: each pass resumes every unfinished thread in threadIdx order
 * until it reaches its next __syncthreads() or returns, so no thread passes a barrier before all have reached it.
 * __shared__ variables are static thread_local: one copy per host thread, and blocks run one at a time.
 * Warp intrinsics are not emulated. Include it before the .cuh; it defines RRWKV_CUDA_EMULATION and RRWKV_LAUNCH.
 * Tests only.
 */
#ifndef RRWKV_CUDA_EMULATION_H
#define RRWKV_CUDA_EMULATION_H

#if defined(__CUDACC__)
#error "cudaEmulation.h is for host compilers only"
#endif

#include "common/hostHalf.h"

#include <ucontext.h>

#include <cstdint>
#include <memory>
#include <vector>

#define RRWKV_CUDA_EMULATION 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static thread_local

struct dim3
{
    uint32_t x;
    uint32_t y;
    uint32_t z;
    dim3(uint32_t x_ = 1, uint32_t y_ = 1, uint32_t z_ = 1)
        : x(x_)
        , y(y_)
        , z(z_)
    {
    }
};
using uint3 = dim3;

inline thread_local uint3 threadIdx{0, 0, 0};
inline thread_local uint3 blockIdx{0, 0, 0};
inline thread_local dim3 blockDim{1, 1, 1};
inline thread_local dim3 gridDim{1, 1, 1};

enum cudaError_t
{
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorInvalidConfiguration = 9,
};
using cudaStream_t = struct CUstreamEmulated*;

using __half = rrwkv::HostHalf;

inline float __half2float(__half x)
{
    return rrwkv::halfBitsToFloat(x.bits);
}

inline __half __float2half_rn(float x)
{
    return __half{rrwkv::floatToHalfBits(x)};
}

inline __half __float2half(float x)
{
    return __float2half_rn(x);
}

namespace rrwkv
{
namespace emu
{

// What the last launch on this host thread did (tests assert on it).
struct LaunchRecord
{
    uint32_t gridX = 0;
    uint32_t blockX = 0;
    int64_t threadsRun = 0;
    int32_t launches = 0;
};

inline thread_local LaunchRecord lastLaunch;
inline thread_local cudaError_t lastError = cudaSuccess;

// The fibers of the block being run on this host thread: the launch loop's context, and per CUDA thread its context,
// stack and whether it has returned.
struct BlockFibers
{
    static constexpr size_t kSTACK_BYTES = 64 * 1024;

    ucontext_t loop{};
    std::vector<ucontext_t> threads;
    std::vector<std::unique_ptr<char[]>> stacks;
    std::vector<bool> done;
    uint32_t current = 0;
    void (*run)(void*) = nullptr; // run(body): the kernel body of the current launch
    void* body = nullptr;
};

inline thread_local BlockFibers blockFibers;

inline void fiberMain()
{
    BlockFibers& f = blockFibers;
    f.run(f.body);
    f.done[f.current] = true; // then back to f.loop (uc_link)
}

// __syncthreads(): suspend this CUDA thread; the launch loop resumes it in the block's next pass.
inline void syncThreads()
{
    BlockFibers& f = blockFibers;
    swapcontext(&f.threads[f.current], &f.loop);
}

// Run body() once per CUDA thread of a 1-D grid, with the built-in index variables set. The launch limits of
// real hardware are checked: block size 1..1024, grid 1..2^31-1.
template <typename Body>
void launch(dim3 grid, dim3 block, Body body)
{
    if (grid.x < 1 || grid.x > 0x7FFFFFFFu || grid.y != 1 || grid.z != 1 || block.x < 1 || block.x > 1024
        || block.y != 1 || block.z != 1)
    {
        lastError = cudaErrorInvalidConfiguration;
        return;
    }
    gridDim = grid;
    blockDim = block;
    lastLaunch = LaunchRecord{grid.x, block.x, 0, lastLaunch.launches + 1};
    BlockFibers& f = blockFibers;
    f.run = [](void* b) { (*static_cast<Body*>(b))(); };
    f.body = &body;
    f.threads.resize(block.x);
    f.done.assign(block.x, false);
    while (f.stacks.size() < block.x)
    {
        f.stacks.emplace_back(new char[BlockFibers::kSTACK_BYTES]);
    }
    for (uint32_t bx = 0; bx < grid.x; ++bx)
    {
        for (uint32_t tx = 0; tx < block.x; ++tx)
        {
            ucontext_t& t = f.threads[tx];
            getcontext(&t);
            t.uc_stack.ss_sp = f.stacks[tx].get();
            t.uc_stack.ss_size = BlockFibers::kSTACK_BYTES;
            t.uc_link = &f.loop;
            makecontext(&t, fiberMain, 0);
            f.done[tx] = false;
        }
        for (bool pending = true; pending;)
        {
            pending = false;
            for (uint32_t tx = 0; tx < block.x; ++tx)
            {
                if (f.done[tx])
                {
                    continue;
                }
                blockIdx = uint3{bx, 0, 0};
                threadIdx = uint3{tx, 0, 0};
                f.current = tx;
                swapcontext(&f.loop, &f.threads[tx]);
                if (f.done[tx])
                {
                    ++lastLaunch.threadsRun;
                }
                else
                {
                    pending = true; // waiting at a __syncthreads()
                }
            }
        }
    }
}

} // namespace emu
} // namespace rrwkv

inline cudaError_t cudaGetLastError()
{
    cudaError_t const e = rrwkv::emu::lastError;
    rrwkv::emu::lastError = cudaSuccess;
    return e;
}

inline void __syncthreads()
{
    rrwkv::emu::syncThreads();
}

#define RRWKV_LAUNCH(kernel, grid, block, stream, ...)                                                                 \
    ((void) (stream), ::rrwkv::emu::launch(dim3(grid), dim3(block), [&]() { kernel(__VA_ARGS__); }))

#endif // RRWKV_CUDA_EMULATION_H
