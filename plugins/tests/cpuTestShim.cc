/*
 * The shared extern "C" entry points of librrwkv_cpu_testshim.so (tests/plugins/, ctypes): what the emulated CUDA
 * launches recorded, and the host fp16 conversions. Each op's own entry points (its CPU kernels and its CUDA kernels
 * compiled for the CPU under cudaEmulation.h) are in its folder's TEST_SHIM_SOURCES (plugins/<folder>/op.cmake).
 */
#include "tests/cpuTestShim.h"

#include <cstdint>

extern "C"
{

    // The last emulated launch on this thread: grid and block size, CUDA threads run, launches so far.
    void rrwkv_emu_last_launch(uint32_t* gridX, uint32_t* blockX, int64_t* threadsRun, int32_t* launches)
    {
        rrwkv::emu::LaunchRecord const& r = rrwkv::emu::lastLaunch;
        *gridX = r.gridX;
        *blockX = r.blockX;
        *threadsRun = r.threadsRun;
        *launches = r.launches;
    }

    // Host fp16 conversions, checked against numpy.
    void rrwkv_half_to_float(uint16_t const* h, float* f, int64_t n)
    {
        for (int64_t i = 0; i < n; ++i)
        {
            f[i] = rrwkv::halfBitsToFloat(h[i]);
        }
    }

    void rrwkv_float_to_half(float const* f, uint16_t* h, int64_t n)
    {
        for (int64_t i = 0; i < n; ++i)
        {
            h[i] = rrwkv::floatToHalfBits(f[i]);
        }
    }

} // extern "C"
