/*
 * CPU kernel for rrwkv::LTMUpdate over ltmUpdateMath.h: the same arguments as the CUDA launcher of ltmUpdateKernel.h
 * minus the stream and the workspace, on host pointers (dense row-major, all fp32 but mode int64):
 *   B_past, B_new [B, N, e]; X_new [B, L, e]; mode [B]; G [L, N]; G_inf [M+L, N]; S_samp [M, N]; hist [B, NB];
 *   basis_mu, basis_sigma [N]; xOld [B, M, e] scratch. No ONNX Runtime or CUDA dependency.
 *
 * Two phases, each split into slices so a caller can spread them over a thread pool ([sliceBegin, sliceEnd); the
 * defaults run them all): ltmUpdateOldCpu fills the xOld rows (b, m) of sequences that UPDATE (the other rows are
 * left alone), then ltmUpdateNewCpu writes B_new. A slice is one sequence's block of kLTM_CPU_ROWS output rows, all
 * e columns: a few rows at a time share each load of the contracted rows (B_past, or xOld and X_new), each
 * accumulator a vector of columns. A mode is read through ltmRowMode (ltmUpdateMath.h): a value other than 1 or 2
 * keeps the row; callers that can report an error check the values first.
 *
 * Each picks, at run time, the best path this CPU has up to `maxIsa` (common/cpuIsa.h): CpuIsa::kAvx512 (needs
 * AVX512F alone, the level adds BW and VL), CpuIsa::kAvx2 (needs AVX2 alone, the level adds FMA and F16C) or portable
 * C++ (tests lower `maxIsa` to run each). Every output element adds its terms one at a time in index order with the
 * product rounded before the add (ltmDotAdd, no FMA) and psi's libm expf through ltmExp on every path, so all paths
 * return the same bits, and the same bits as the CUDA kernels built for the CPU under plugins/tests/cudaEmulation.h.
 */
#ifndef RRWKV_LTM_UPDATE_CPU_H
#define RRWKV_LTM_UPDATE_CPU_H

#include "common/cpuIsa.h"

#include <cstdint>

namespace rrwkv
{

constexpr int32_t kLTM_CPU_ROWS = 16; // output rows per slice

// B * ceil(M / kLTM_CPU_ROWS) and B * ceil(N / kLTM_CPU_ROWS) (0 when any is <= 0).
int64_t ltmUpdateOldSliceCount(int32_t B, int32_t M);
int64_t ltmUpdateNewSliceCount(int32_t B, int32_t N);

// xOld[b, m, :] = sum_j S[m][j] B_past[b, j, :] with S = S_samp (sticky 0) or psi(pos_bm) (sticky 1), where b
// updates.
void ltmUpdateOldCpu(int32_t B, int32_t N, int32_t e, int32_t M, int32_t NB, int32_t sticky, float const* bPast,
    int64_t const* mode, float const* sSamp, float const* hist, float const* basisMu, float const* basisSigma,
    float* xOld, CpuIsa maxIsa = CpuIsa::kAvx512, int64_t sliceBegin = 0, int64_t sliceEnd = -1);

// B_new[b, n, :] = B_past[b, n, :] (KEEP), sum_l G[l][n] X_new[b, l, :] (FIT) or sum_k G_inf[k][n] X[b, k, :] with
// X = [xOld; X_new] (UPDATE).
void ltmUpdateNewCpu(int32_t B, int32_t N, int32_t e, int32_t L, int32_t M, float const* bPast, float const* xNew,
    int64_t const* mode, float const* G, float const* gInf, float const* xOld, float* bNew,
    CpuIsa maxIsa = CpuIsa::kAvx512, int64_t sliceBegin = 0, int64_t sliceEnd = -1);

// Both phases over everything; xOld holds B * M * e floats.
void ltmUpdateForwardCpu(int32_t B, int32_t N, int32_t e, int32_t L, int32_t M, int32_t NB, int32_t sticky,
    float const* bPast, float const* xNew, int64_t const* mode, float const* G, float const* gInf,
    float const* sSamp, float const* hist, float const* basisMu, float const* basisSigma, float* xOld, float* bNew,
    CpuIsa maxIsa = CpuIsa::kAvx512);

} // namespace rrwkv

#endif // RRWKV_LTM_UPDATE_CPU_H
