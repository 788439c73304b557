/*
 * What the weight-only matmul ops have in common (rrwkv::MatMulW8, MatMulW4, MatMulWF16: y [..., N] = x [..., K] @ W,
 * x and y fp32, W [K, N] packed in groups of 64 output columns): the facts of a weight format that the shared
 * TensorRT plugin (weightOnlyMatmulPlugin.h), ONNX Runtime op (weightOnlyMatmulOrt.h) and CUDA launcher
 * (weightOnlyMatmulKernel.cuh) read. No TensorRT, ONNX Runtime or CUDA dependency.
 *
 * Each op folder describes its format with a traits struct (<op>Traits.h, e.g. MatMulW8Traits):
 *   kNAME        the op_type (= ORT custom-op name = TensorRT plugin name);
 *   kGROUP_COLS  output columns per packed group (G = ceil(N / kGROUP_COLS));
 *   kMAX_N       the largest attribute N the kernels take;
 *   kMAX_BLOCK   a block-quantised format: the largest attribute block_size (even, >= 2, default
 *                kWEIGHT_ONLY_DEFAULT_BLOCK); inputs x, w [G, Kpad / 2, ...], scale [G, NB, 64] with NB =
 *                ceil(K / block_size), Kpad = NB * block_size, and the rows of x quantised to int16 first (a
 *                workspace). 0: no block_size attribute, no scale and no workspace; inputs x, w [G, K, ...];
 *   kW_TAIL      the fixed dims of w after its first two, in order.
 * The role-specific traits (<Op>PluginTraits in <op>Plugin.h, <Op>OrtTraits in <op>Ort.cc) derive from it and add the
 * dtypes and the kernel entry points.
 */
#ifndef RRWKV_WEIGHT_ONLY_MATMUL_H
#define RRWKV_WEIGHT_ONLY_MATMUL_H

#include <cstdint>

namespace rrwkv
{

//! One fixed dim of a packed weight: its size, its name in ONNX Runtime errors ("expected [..., 64]") and its rule
//! in TensorRT plugin errors ("expected 64 (the columns of a group)").
struct PackedDim
{
    int64_t size;
    char const* name;
    char const* rule;
};

constexpr int32_t kWEIGHT_ONLY_DEFAULT_BLOCK = 128; // the block_size attribute's default

//! Whether Traits describes a block-quantised format (block_size, scale, quantised activations).
template <typename Traits>
constexpr bool kBLOCK_QUANTIZED = Traits::kMAX_BLOCK > 0;

//! G = ceil(N / groupCols), in 64 bits (N + 63 would overflow int32 near 2^31).
constexpr int64_t weightOnlyGroupCount(int64_t N, int32_t groupCols)
{
    return (N + groupCols - 1) / groupCols;
}

//! NB * blockSize for K >= 0 rows, in 64 bits (K is any extent TensorRT passes).
constexpr int64_t weightOnlyPaddedK(int64_t K, int32_t blockSize)
{
    return (K + blockSize - 1) / blockSize * blockSize;
}

} // namespace rrwkv

#endif // RRWKV_WEIGHT_ONLY_MATMUL_H
