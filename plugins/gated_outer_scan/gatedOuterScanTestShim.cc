/*
 * GatedOuterScan's extern "C" entry points in librrwkv_cpu_testshim.so (tests/plugins/kernel_shim.py): the CPU kernel
 * of gatedOuterScanCpu.h and the CUDA kernels of gatedOuterScanKernel.cuh compiled for the CPU under
 * tests/cudaEmulation.h. Pointers are host buffers in the layouts of gatedOuterScanKernel.h; fp16 tensors are passed
 * as uint16 bits.
 */
#include "tests/cpuTestShim.h"

#include "gated_outer_scan/gatedOuterScanCpu.h"
#include "gated_outer_scan/gatedOuterScanKernel.cuh"

#include <cstdint>

using rrwkv::asHalf;
using rrwkv::HostHalf;

extern "C"
{

    // CPU kernel (all slices). Returns 0.
    int rrwkv_cpu_gated_outer_scan_f32(int32_t B, int32_t T, int32_t H, int32_t K, int32_t V, float scale,
        float const* q, float const* f, float const* lb, float const* v, float const* S0, float* o, float* Sout)
    {
        rrwkv::gatedOuterScanForwardCpu<float>(B, T, H, K, V, scale, q, f, lb, v, S0, o, Sout);
        return 0;
    }

    int rrwkv_cpu_gated_outer_scan_f16(int32_t B, int32_t T, int32_t H, int32_t K, int32_t V, float scale,
        uint16_t const* q, uint16_t const* f, float const* lb, uint16_t const* v, float const* S0, uint16_t* o,
        float* Sout)
    {
        rrwkv::gatedOuterScanForwardCpu<HostHalf>(
            B, T, H, K, V, scale, asHalf(q), asHalf(f), lb, asHalf(v), S0, asHalf(o), Sout);
        return 0;
    }

    // Emulated CUDA launcher. Returns the cudaError_t of the launch (0 = cudaSuccess).
    int rrwkv_emu_gated_outer_scan_f32(int32_t B, int32_t T, int32_t H, int32_t K, int32_t V, float scale,
        float const* q, float const* f, float const* lb, float const* v, float const* S0, float* o, float* Sout)
    {
        return rrwkv::gatedOuterScanForwardLaunch<float>(nullptr, B, T, H, K, V, scale, q, f, lb, v, S0, o, Sout);
    }

    int rrwkv_emu_gated_outer_scan_f16(int32_t B, int32_t T, int32_t H, int32_t K, int32_t V, float scale,
        uint16_t const* q, uint16_t const* f, float const* lb, uint16_t const* v, float const* S0, uint16_t* o,
        float* Sout)
    {
        return rrwkv::gatedOuterScanForwardLaunch<__half>(
            nullptr, B, T, H, K, V, scale, asHalf(q), asHalf(f), lb, asHalf(v), S0, asHalf(o), Sout);
    }

    // The launch of gosLaunchConfig(B, H, K, V): kernel (1: registers, 0: large K), columns, row groups, tiles per
    // head, threads per block; returns the block count.
    int64_t rrwkv_emu_gated_outer_scan_config(int32_t B, int32_t H, int32_t K, int32_t V, int32_t* registers,
        int32_t* columns, int32_t* groups, int32_t* tiles, uint32_t* threads)
    {
        rrwkv::GosLaunchConfig const c = rrwkv::gosLaunchConfig(B, H, K, V);
        *registers = c.registers ? 1 : 0;
        *columns = c.columns;
        *groups = c.groups;
        *tiles = c.tiles;
        *threads = c.threads;
        return c.blocks;
    }

} // extern "C"
