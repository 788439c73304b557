/*
 * CPU kernel for rrwkv::LTMUpdate over ltmUpdateMath.h: the same arguments as the CUDA launcher of ltmUpdateKernel.h
 * minus the stream and the workspace, on host pointers (dense row-major, all fp32 but mode int64):
 *   B_past, B_new [B, N, e]; X_new [B, L, e]; mode [B]; G [L, N]; G_inf [M+L, N]; S_samp [M, N]; hist [B, NB];
 *   basis_mu, basis_sigma [N]; xOld [B, M, e] scratch. No ONNX Runtime or CUDA dependency.
 *
 * Two phases, each split into independent rows so a caller can spread them over a thread pool (the defaults run them
 * all): ltmUpdateOldRowsCpu fills xOld rows (b, m) of ltmUpdateOldRowCount(B, M) (only for sequences that UPDATE;
 * the other rows are left alone), then ltmUpdateNewRowsCpu writes B_new rows (b, n) of ltmUpdateNewRowCount(B, N). A
 * mode is read through ltmRowMode (ltmUpdateMath.h): a value other than 1 or 2 keeps the row; callers that can
 * report an error check the values first.
 */
#ifndef RRWKV_LTM_UPDATE_CPU_H
#define RRWKV_LTM_UPDATE_CPU_H

#include <cstdint>

namespace rrwkv
{

// B * M and B * N (0 when any is <= 0).
int64_t ltmUpdateOldRowCount(int32_t B, int32_t M);
int64_t ltmUpdateNewRowCount(int32_t B, int32_t N);

// xOld[b, m, :] = sum_j S[m][j] B_past[b, j, :] with S = S_samp (sticky 0) or psi(pos_bm) (sticky 1), where b
// updates.
void ltmUpdateOldRowsCpu(int32_t B, int32_t N, int32_t e, int32_t M, int32_t NB, int32_t sticky, float const* bPast,
    int64_t const* mode, float const* sSamp, float const* hist, float const* basisMu, float const* basisSigma,
    float* xOld, int64_t rowBegin = 0, int64_t rowEnd = -1);

// B_new[b, n, :] = B_past[b, n, :] (KEEP), sum_l G[l][n] X_new[b, l, :] (FIT) or sum_k G_inf[k][n] X[b, k, :] with
// X = [xOld; X_new] (UPDATE).
void ltmUpdateNewRowsCpu(int32_t B, int32_t N, int32_t e, int32_t L, int32_t M, float const* bPast, float const* xNew,
    int64_t const* mode, float const* G, float const* gInf, float const* xOld, float* bNew, int64_t rowBegin = 0,
    int64_t rowEnd = -1);

// Both phases over all rows; xOld holds B * M * e floats.
void ltmUpdateForwardCpu(int32_t B, int32_t N, int32_t e, int32_t L, int32_t M, int32_t NB, int32_t sticky,
    float const* bPast, float const* xNew, int64_t const* mode, float const* G, float const* gInf,
    float const* sSamp, float const* hist, float const* basisMu, float const* basisSigma, float* xOld, float* bNew);

} // namespace rrwkv

#endif // RRWKV_LTM_UPDATE_CPU_H
