/*
 * TensorRT IPluginV3 for rrwkv::MatMulW4 (plugins/matmul_w4/README.md, plugins/matmul_w4/spec.yaml).
 * Inputs:  x [..., K] f32; w [G, Kpad/2, 64] i8 (packed nibbles); scale [G, NB, 64] f32
 *          (G = ceil(N / 64), NB = ceil(K / block_size), Kpad = NB * block_size).
 * Outputs: y [..., N] f32.
 * Attributes: N (INT >= 1, required), block_size (INT, even in [2, 256], default 128), plugin_namespace,
 * plugin_version.
 * Workspace: the quantised rows of x (matmulW4Kernel.h), sized for the profile's largest x.
 * The plugin is the shared weight-only matmul plugin (common/weightOnlyMatmulPlugin.h) over these traits.
 */
#ifndef RRWKV_MATMUL_W4_PLUGIN_H
#define RRWKV_MATMUL_W4_PLUGIN_H

#include "NvInferRuntime.h"

#include "common/weightOnlyMatmulPlugin.h"
#include "matmul_w4/matmulW4Kernel.h"
#include "matmul_w4/matmulW4Traits.h"

namespace rrwkv
{

struct MatMulW4PluginTraits : MatMulW4Traits
{
    //! Rank and named axes of each input, in order (spec.yaml): G groups, P row pairs, Y the 64 bytes of a row pair
    //! (w), B blocks along K, L the 64 lanes of a group (scale); x is [..., K]. Y is not L: the two are both 64
    //! but count different things, and a wrong w must be reported as its own dim.
    static constexpr InputContract kINPUT_CONTRACT[] = {{"x", "...K"}, {"w", "GPY"}, {"scale", "GBL"}};
    static constexpr nvinfer1::DataType kINPUT_TYPES[] = {
        nvinfer1::DataType::kFLOAT, // x [..., K]
        nvinfer1::DataType::kINT8,  // w [G, Kpad/2, 64]: packed int4 weight
        nvinfer1::DataType::kFLOAT, // scale [G, NB, 64]
    };
    using Weight = int8_t;
    static constexpr auto kFORWARD = &matmulW4Forward;
    static constexpr char const* kFORWARD_NAME{"matmulW4Forward"};
};

using MatMulW4Plugin = WeightOnlyMatmulPlugin<MatMulW4PluginTraits>;
//! The creator the registration lists name (rrwkvOps.inc: <Cxx>PluginCreator).
class MatMulW4PluginCreator : public WeightOnlyMatmulPluginCreator<MatMulW4PluginTraits>
{
};

} // namespace rrwkv

#endif // RRWKV_MATMUL_W4_PLUGIN_H
