/*
 * TensorRT IPluginV3 for rrwkv::MatMulW8 (plugins/matmul_w8/README.md, plugins/matmul_w8/spec.yaml).
 * Inputs:  x [..., K] f32; w [G, Kpad/2, 64, 2] i8; scale [G, NB, 64] f32
 *          (G = ceil(N / 64), NB = ceil(K / block_size), Kpad = NB * block_size).
 * Outputs: y [..., N] f32.
 * Attributes: N (INT >= 1, required), block_size (INT, even in [2, 256], default 128), plugin_namespace,
 * plugin_version.
 * Workspace: the quantised rows of x (matmulW8Kernel.h), sized for the profile's largest x.
 * The plugin is the shared weight-only matmul plugin (common/weightOnlyMatmulPlugin.h) over these traits.
 */
#ifndef RRWKV_MATMUL_W8_PLUGIN_H
#define RRWKV_MATMUL_W8_PLUGIN_H

#include "NvInferRuntime.h"

#include "common/weightOnlyMatmulPlugin.h"
#include "matmul_w8/matmulW8Kernel.h"
#include "matmul_w8/matmulW8Traits.h"

namespace rrwkv
{

struct MatMulW8PluginTraits : MatMulW8Traits
{
    //! Rank and named axes of each input, in order (spec.yaml): G groups, P row pairs, L the 64 lanes of a group,
    //! I the 2 rows of a pair, B blocks along K; x is [..., K].
    static constexpr InputContract kINPUT_CONTRACT[] = {{"x", "...K"}, {"w", "GPLI"}, {"scale", "GBL"}};
    static constexpr nvinfer1::DataType kINPUT_TYPES[] = {
        nvinfer1::DataType::kFLOAT, // x [..., K]
        nvinfer1::DataType::kINT8,  // w [G, Kpad/2, 64, 2]: packed int8 weight
        nvinfer1::DataType::kFLOAT, // scale [G, NB, 64]
    };
    using Weight = int8_t;
    static constexpr auto kFORWARD = &matmulW8Forward;
    static constexpr char const* kFORWARD_NAME{"matmulW8Forward"};
};

using MatMulW8Plugin = WeightOnlyMatmulPlugin<MatMulW8PluginTraits>;
//! The creator the registration lists name (rrwkvOps.inc: <Cxx>PluginCreator).
class MatMulW8PluginCreator : public WeightOnlyMatmulPluginCreator<MatMulW8PluginTraits>
{
};

} // namespace rrwkv

#endif // RRWKV_MATMUL_W8_PLUGIN_H
