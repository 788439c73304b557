/*
 * LTMUpdate's extern "C" entry points in librrwkv_cpu_testshim.so (tests/plugins/ltm_update_inputs.py): the CPU
 * kernel of ltmUpdateCpu.h and the CUDA kernels of ltmUpdateKernel.cuh compiled for the CPU under
 * tests/cudaEmulation.h, plus the math header's quantile position. Pointers are host buffers in the layouts of
 * ltmUpdateKernel.h; xOld is the caller's B * M * e scratch.
 */
#include "tests/cpuTestShim.h"

#include "ltm_update/ltmUpdateCpu.h"
#include "ltm_update/ltmUpdateKernel.cuh"
#include "ltm_update/ltmUpdateMath.h"

#include <cstdint>

extern "C"
{

    // CPU kernel (both phases, all rows) on the best path up to maxIsa (rrwkv::CpuIsa: 0 portable, 1 AVX2,
    // 2 AVX-512). Returns 0.
    int rrwkv_cpu_ltm_update(int32_t B, int32_t N, int32_t e, int32_t L, int32_t M, int32_t NB, int32_t sticky,
        float const* bPast, float const* xNew, int64_t const* mode, float const* G, float const* gInf,
        float const* sSamp, float const* hist, float const* basisMu, float const* basisSigma, float* xOld, float* bNew,
        int32_t maxIsa)
    {
        rrwkv::ltmUpdateForwardCpu(B, N, e, L, M, NB, sticky, bPast, xNew, mode, G, gInf, sSamp, hist, basisMu,
            basisSigma, xOld, bNew, static_cast<rrwkv::CpuIsa>(maxIsa));
        return 0;
    }

    // The best path this CPU runs (rrwkv::CpuIsa).
    int32_t rrwkv_cpu_ltm_update_isa()
    {
        return static_cast<int32_t>(rrwkv::cpuIsa());
    }

    // Emulated CUDA launcher. Returns the cudaError_t of the launches (0 = cudaSuccess).
    int rrwkv_emu_ltm_update(int32_t B, int32_t N, int32_t e, int32_t L, int32_t M, int32_t NB, int32_t sticky,
        float const* bPast, float const* xNew, int64_t const* mode, float const* G, float const* gInf,
        float const* sSamp, float const* hist, float const* basisMu, float const* basisSigma, float* xOld, float* bNew)
    {
        return rrwkv::ltmUpdateForwardLaunch(nullptr, B, N, e, L, M, NB, sticky, bPast, xNew, mode, G, gInf, sSamp,
            hist, basisMu, basisSigma, xOld, bNew);
    }

    // ltmQuantilePosition for every m < M of one histogram; writes pos [M].
    void rrwkv_ltm_quantile_positions(float const* hist, int32_t NB, int32_t M, float* pos)
    {
        for (int32_t m = 0; m < M; ++m)
        {
            pos[m] = rrwkv::ltmQuantilePosition(hist, NB, m, M);
        }
    }

} // extern "C"
