/*
 * rrwkv::LTMUpdate CUDA launcher (the API of ltmUpdateKernel.h) over the kernels of ltmUpdateKernel.cuh.
 */
#include "ltm_update/ltmUpdateKernel.cuh"
#include "ltm_update/ltmUpdateKernel.h"

namespace rrwkv
{

size_t ltmUpdateWorkspaceBytes(int64_t B, int64_t M, int64_t e)
{
    return ltmWorkspaceBytes(B, M, e);
}

cudaError_t ltmUpdateForward(cudaStream_t stream, int32_t B, int32_t N, int32_t e, int32_t L, int32_t M, int32_t NB,
    int32_t sticky, float const* bPast, float const* xNew, int64_t const* mode, float const* G, float const* gInf,
    float const* sSamp, float const* hist, float const* basisMu, float const* basisSigma, float* xOld, float* bNew)
{
    return ltmUpdateForwardLaunch(stream, B, N, e, L, M, NB, sticky, bPast, xNew, mode, G, gInf, sSamp, hist,
        basisMu, basisSigma, xOld, bNew);
}

} // namespace rrwkv
