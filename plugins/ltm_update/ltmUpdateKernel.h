/*
 * CUDA launcher for rrwkv::LTMUpdate (docs/families/inftyformer.md §4.8.2). Two tiled kernels, one block per
 * (b, 32-row tile, 32-column tile): X_old = S B_past (rows m of an UPDATE sequence; S = S_samp, or psi at the sticky
 * quantile positions), then B_new = G_inf^T [X_old; X_new] (UPDATE), G^T X_new (FIT) or B_past (KEEP) (rows n). fp32
 * throughout. Knows nothing of TensorRT or ONNX Runtime. All pointers are device pointers, dense row-major:
 *   B_past, B_new [B, N, e]; X_new [B, L, e]; mode [B] int64; G [L, N]; G_inf [M+L, N]; S_samp [M, N];
 *   hist [B, NB]; basis_mu, basis_sigma [N]; xOld the workspace, ltmUpdateWorkspaceBytes(B, M, e) bytes.
 * mode: 0 keep, 1 first fit, 2 update. The kernels cannot report an error per row: any other value keeps the row
 * (ltmRowMode), so B_new stays a valid memory; hosts that can report one (the ORT op) reject such values first.
 */
#ifndef RRWKV_LTM_UPDATE_KERNEL_H
#define RRWKV_LTM_UPDATE_KERNEL_H

#include <cstddef>
#include <cstdint>
#include <cuda_runtime_api.h>

namespace rrwkv
{

// The X_old scratch: B * M * e floats.
size_t ltmUpdateWorkspaceBytes(int64_t B, int64_t M, int64_t e);

// Sizes >= 0, M >= 1 and NB >= 1, sticky 0 or 1 (cudaErrorInvalidValue otherwise); no output (B, N or e = 0)
// launches nothing.
cudaError_t ltmUpdateForward(cudaStream_t stream, int32_t B, int32_t N, int32_t e, int32_t L, int32_t M, int32_t NB,
    int32_t sticky, float const* bPast, float const* xNew, int64_t const* mode, float const* G, float const* gInf,
    float const* sSamp, float const* hist, float const* basisMu, float const* basisSigma, float* xOld, float* bNew);

} // namespace rrwkv

#endif // RRWKV_LTM_UPDATE_KERNEL_H
