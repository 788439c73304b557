/*
 * The LTMUpdate CUDA kernels and their launch configuration, included by ltmUpdateKernel.cu (nvcc) and by the CPU
 * emulation build ltmUpdateTestShim.cc (g++ with plugins/tests/cudaEmulation.h), so the index arithmetic and the
 * barriers tested on the CPU are this code. The arithmetic is ltmUpdateMath.h.
 *
 * Both kernels are the same 32 x 32 output tile over a 1-D grid of (b, row tile, column tile) blocks of 256 threads:
 * thread t owns column t % 32 and rows t / 32 + 8 i (i < 4); the contraction runs in chunks of 32 through shared
 * memory (A tile stored [k][row], X tile [k][column]) and every output adds its terms in contraction order, the CPU
 * kernel's order.
 * Each block reads its sequence's mode once through ltmRowMode (a value other than FIT or UPDATE keeps the row: the
 * kernels cannot report an error per row) and, b being the whole block's, branches or exits as one.
 * 1. ltmOldKernel: X_old[b, m, :] = sum_j S[m][j] B_past[b, j, :] for an UPDATE sequence. Sticky: the block's first
 *    32 threads find the quantile positions of its 32 rows (ltmQuantilePosition) into shared memory first, and the A
 *    tile is psi(pos_m) evaluated on the fly; otherwise it is read from S_samp. For KEEP and FIT the block exits at
 *    once, before the quantile search.
 * 2. ltmNewKernel: KEEP copies the block's B_past tile to B_new and exits; otherwise B_new[b, n, :] =
 *    sum_k A(n, k) X(k, :) with A = G_inf^T, X = [X_old; X_new] (UPDATE) or A = G^T, X = X_new (FIT).
 * Warp intrinsics are avoided (the CPU emulation has none). The grids are at most 2^31 - 1 blocks.
 */
#ifndef RRWKV_LTM_UPDATE_KERNEL_CUH
#define RRWKV_LTM_UPDATE_KERNEL_CUH

#include "ltm_update/ltmUpdateMath.h"

#include <cstddef>
#include <cstdint>

#if !defined(RRWKV_CUDA_EMULATION)
#include <cuda_runtime.h>
// kernel<<<grid, block, 0, stream>>>(args...); the emulation header defines its own (a loop over the grid).
#define RRWKV_LAUNCH(kernel, grid, block, stream, ...) kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#define RRWKV_LTM_UNROLL _Pragma("unroll")
#else
#define RRWKV_LTM_UNROLL
#endif

namespace rrwkv
{

constexpr int32_t kLTM_TILE = 32;                  // rows, columns and contraction chunk of a tile
constexpr int32_t kLTM_THREADS = 256;              // per block
constexpr int32_t kLTM_ROWS_PER_THREAD = kLTM_TILE * kLTM_TILE / kLTM_THREADS; // 4
constexpr int32_t kLTM_ROW_STEP = kLTM_THREADS / kLTM_TILE;                     // 8
constexpr int64_t kLTM_MAX_BLOCKS = 0x7FFFFFFF;

inline size_t ltmWorkspaceBytes(int64_t B, int64_t M, int64_t e)
{
    return B <= 0 || M <= 0 || e <= 0 ? 0 : static_cast<size_t>(B * M * e) * sizeof(float);
}

// Blocks of a [B, rows, cols] output: B * ceil(rows / 32) * ceil(cols / 32).
inline int64_t ltmBlocks(int64_t B, int64_t rows, int64_t cols)
{
    return B * ((rows + kLTM_TILE - 1) / kLTM_TILE) * ((cols + kLTM_TILE - 1) / kLTM_TILE);
}

__global__ void ltmOldKernel(int32_t N, int32_t e, int32_t M, int32_t NB, int32_t sticky,
    float const* __restrict__ bPast, int64_t const* __restrict__ mode, float const* __restrict__ sSamp,
    float const* __restrict__ hist, float const* __restrict__ basisMu, float const* __restrict__ basisSigma,
    float* __restrict__ xOld)
{
    __shared__ float sA[kLTM_TILE][kLTM_TILE + 1]; // [j][m]
    __shared__ float sX[kLTM_TILE][kLTM_TILE + 1]; // [j][c]
    __shared__ float sPos[kLTM_TILE];
    int32_t const rowTiles = (M + kLTM_TILE - 1) / kLTM_TILE;
    int32_t const colTiles = (e + kLTM_TILE - 1) / kLTM_TILE;
    int64_t const block = blockIdx.x;
    int64_t const b = block / (static_cast<int64_t>(rowTiles) * colTiles);
    int32_t const m0 = static_cast<int32_t>(block / colTiles % rowTiles) * kLTM_TILE;
    int32_t const c0 = static_cast<int32_t>(block % colTiles) * kLTM_TILE;
    if (ltmRowMode(mode[b]) != kLTM_UPDATE)
    {
        return; // the whole block: b is the block's
    }
    int32_t const t = static_cast<int32_t>(threadIdx.x);
    int32_t const tx = t % kLTM_TILE;
    int32_t const ty = t / kLTM_TILE;
    if (sticky && t < kLTM_TILE)
    {
        sPos[t] = m0 + t < M ? ltmQuantilePosition(hist + b * NB, NB, m0 + t, M) : 0.F;
    }
    float acc[kLTM_ROWS_PER_THREAD];
    RRWKV_LTM_UNROLL
    for (int32_t i = 0; i < kLTM_ROWS_PER_THREAD; ++i)
    {
        acc[i] = 0.F;
    }
    float const* past = bPast + b * N * e;
    for (int32_t j0 = 0; j0 < N; j0 += kLTM_TILE)
    {
        __syncthreads(); // the previous chunk is consumed (and sPos written)
        RRWKV_LTM_UNROLL
        for (int32_t i = 0; i < kLTM_ROWS_PER_THREAD; ++i)
        {
            int32_t const r = ty + kLTM_ROW_STEP * i; // A: k = tx (contiguous in S_samp), row r
            int32_t const m = m0 + r;
            int32_t const j = j0 + tx;
            float a = 0.F;
            if (m < M && j < N)
            {
                a = sticky ? ltmPsi(sPos[r], basisMu[j], basisSigma[j]) : sSamp[static_cast<int64_t>(m) * N + j];
            }
            sA[tx][r] = a;
            int32_t const jx = j0 + r; // X: k = r, column tx
            int32_t const c = c0 + tx;
            sX[r][tx] = jx < N && c < e ? past[static_cast<int64_t>(jx) * e + c] : 0.F;
        }
        __syncthreads();
        int32_t const n = N - j0 < kLTM_TILE ? N - j0 : kLTM_TILE;
        for (int32_t k = 0; k < n; ++k)
        {
            float const x = sX[k][tx];
            RRWKV_LTM_UNROLL
            for (int32_t i = 0; i < kLTM_ROWS_PER_THREAD; ++i)
            {
                acc[i] = ltmDotAdd(acc[i], sA[k][ty + kLTM_ROW_STEP * i], x);
            }
        }
    }
    int32_t const c = c0 + tx;
    RRWKV_LTM_UNROLL
    for (int32_t i = 0; i < kLTM_ROWS_PER_THREAD; ++i)
    {
        int32_t const m = m0 + ty + kLTM_ROW_STEP * i;
        if (m < M && c < e)
        {
            xOld[(b * M + m) * e + c] = acc[i];
        }
    }
}

__global__ void ltmNewKernel(int32_t N, int32_t e, int32_t L, int32_t M, float const* __restrict__ bPast,
    float const* __restrict__ xNew, int64_t const* __restrict__ mode, float const* __restrict__ G,
    float const* __restrict__ gInf, float const* __restrict__ xOld, float* __restrict__ bNew)
{
    __shared__ float sA[kLTM_TILE][kLTM_TILE + 1]; // [k][n]
    __shared__ float sX[kLTM_TILE][kLTM_TILE + 1]; // [k][c]
    int32_t const rowTiles = (N + kLTM_TILE - 1) / kLTM_TILE;
    int32_t const colTiles = (e + kLTM_TILE - 1) / kLTM_TILE;
    int64_t const block = blockIdx.x;
    int64_t const b = block / (static_cast<int64_t>(rowTiles) * colTiles);
    int32_t const n0 = static_cast<int32_t>(block / colTiles % rowTiles) * kLTM_TILE;
    int32_t const c0 = static_cast<int32_t>(block % colTiles) * kLTM_TILE;
    int32_t const t = static_cast<int32_t>(threadIdx.x);
    int32_t const tx = t % kLTM_TILE;
    int32_t const ty = t / kLTM_TILE;
    int32_t const rowMode = ltmRowMode(mode[b]);
    if (rowMode == kLTM_KEEP)
    {
        int32_t const c = c0 + tx;
        RRWKV_LTM_UNROLL
        for (int32_t i = 0; i < kLTM_ROWS_PER_THREAD; ++i)
        {
            int32_t const n = n0 + ty + kLTM_ROW_STEP * i;
            if (n < N && c < e)
            {
                bNew[(b * N + n) * e + c] = bPast[(b * N + n) * e + c];
            }
        }
        return; // the whole block: b is the block's
    }
    bool const update = rowMode == kLTM_UPDATE;
    int32_t const K = update ? M + L : L;
    float const* A = update ? gInf : G;
    float const* xn = xNew + b * L * e;
    float acc[kLTM_ROWS_PER_THREAD];
    RRWKV_LTM_UNROLL
    for (int32_t i = 0; i < kLTM_ROWS_PER_THREAD; ++i)
    {
        acc[i] = 0.F;
    }
    for (int32_t k0 = 0; k0 < K; k0 += kLTM_TILE)
    {
        __syncthreads();
        RRWKV_LTM_UNROLL
        for (int32_t i = 0; i < kLTM_ROWS_PER_THREAD; ++i)
        {
            int32_t const kr = k0 + ty + kLTM_ROW_STEP * i; // A: row n = tx (contiguous in G / G_inf), k = kr
            int32_t const n = n0 + tx;
            sA[ty + kLTM_ROW_STEP * i][tx] = kr < K && n < N ? A[static_cast<int64_t>(kr) * N + n] : 0.F;
            int32_t const c = c0 + tx; // X: k = kr, column tx
            float x = 0.F;
            if (kr < K && c < e)
            {
                x = update && kr < M ? xOld[(b * M + kr) * e + c]
                                     : xn[static_cast<int64_t>(update ? kr - M : kr) * e + c];
            }
            sX[ty + kLTM_ROW_STEP * i][tx] = x;
        }
        __syncthreads();
        int32_t const n = K - k0 < kLTM_TILE ? K - k0 : kLTM_TILE;
        for (int32_t k = 0; k < n; ++k)
        {
            float const x = sX[k][tx];
            RRWKV_LTM_UNROLL
            for (int32_t i = 0; i < kLTM_ROWS_PER_THREAD; ++i)
            {
                acc[i] = ltmDotAdd(acc[i], sA[k][ty + kLTM_ROW_STEP * i], x);
            }
        }
    }
    int32_t const c = c0 + tx;
    RRWKV_LTM_UNROLL
    for (int32_t i = 0; i < kLTM_ROWS_PER_THREAD; ++i)
    {
        int32_t const n = n0 + ty + kLTM_ROW_STEP * i;
        if (n < N && c < e)
        {
            bNew[(b * N + n) * e + c] = acc[i];
        }
    }
}

// The launcher behind ltmUpdateForward (ltmUpdateKernel.h). Invalid sizes or sticky, or a grid beyond 2^31 - 1
// blocks, give cudaErrorInvalidValue; no output launches nothing.
inline cudaError_t ltmUpdateForwardLaunch(cudaStream_t stream, int32_t B, int32_t N, int32_t e, int32_t L, int32_t M,
    int32_t NB, int32_t sticky, float const* bPast, float const* xNew, int64_t const* mode, float const* G,
    float const* gInf, float const* sSamp, float const* hist, float const* basisMu, float const* basisSigma,
    float* xOld, float* bNew)
{
    if (B < 0 || N < 0 || e < 0 || L < 0 || M < 1 || NB < 1 || (sticky != 0 && sticky != 1))
    {
        return cudaErrorInvalidValue;
    }
    if (B == 0 || N == 0 || e == 0)
    {
        return cudaSuccess;
    }
    int64_t const oldBlocks = ltmBlocks(B, M, e);
    int64_t const newBlocks = ltmBlocks(B, N, e);
    if (oldBlocks > kLTM_MAX_BLOCKS || newBlocks > kLTM_MAX_BLOCKS || static_cast<int64_t>(M) + L > 0x7FFFFFFF)
    {
        return cudaErrorInvalidValue;
    }
    RRWKV_LAUNCH(ltmOldKernel, static_cast<uint32_t>(oldBlocks), static_cast<uint32_t>(kLTM_THREADS), stream, N, e, M,
        NB, sticky, bPast, mode, sSamp, hist, basisMu, basisSigma, xOld);
    cudaError_t const status = cudaGetLastError();
    if (status != cudaSuccess)
    {
        return status;
    }
    RRWKV_LAUNCH(ltmNewKernel, static_cast<uint32_t>(newBlocks), static_cast<uint32_t>(kLTM_THREADS), stream, N, e, L,
        M, bPast, xNew, mode, G, gInf, xOld, bNew);
    return cudaGetLastError();
}

} // namespace rrwkv

#endif // RRWKV_LTM_UPDATE_KERNEL_CUH
