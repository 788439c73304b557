/*
 * TensorRT IPluginV3 for rrwkv::MatMulWF16 (plugins/matmul_wf16/README.md, plugins/matmul_wf16/spec.yaml).
 * Inputs:  x [..., K] f32; w [G, K, 64] f16 (G = ceil(N / 64)).
 * Outputs: y [..., N] f32.
 * Attributes: N (INT >= 1, required), plugin_namespace, plugin_version. No workspace.
 * The plugin is the shared weight-only matmul plugin (common/weightOnlyMatmulPlugin.h) over these traits.
 */
#ifndef RRWKV_MATMUL_WF16_PLUGIN_H
#define RRWKV_MATMUL_WF16_PLUGIN_H

#include "NvInferRuntime.h"

#include "common/weightOnlyMatmulPlugin.h"
#include "matmul_wf16/matmulWF16Kernel.h"
#include "matmul_wf16/matmulWF16Traits.h"

namespace rrwkv
{

struct MatMulWF16PluginTraits : MatMulWF16Traits
{
    //! Rank and named axes of each input, in order (spec.yaml): G groups, K the rows of W (x's last axis), L the 64
    //! lanes of a group.
    static constexpr InputContract kINPUT_CONTRACT[] = {{"x", "...K"}, {"w", "GKL"}};
    static constexpr nvinfer1::DataType kINPUT_TYPES[] = {
        nvinfer1::DataType::kFLOAT, // x [..., K]
        nvinfer1::DataType::kHALF,  // w [G, K, 64]: packed fp16 weight
    };
    using Weight = uint16_t; // fp16 bits
    static constexpr auto kFORWARD = &matmulWF16Forward;
    static constexpr char const* kFORWARD_NAME{"matmulWF16Forward"};
};

using MatMulWF16Plugin = WeightOnlyMatmulPlugin<MatMulWF16PluginTraits>;
//! The creator the registration lists name (rrwkvOps.inc: <Cxx>PluginCreator).
class MatMulWF16PluginCreator : public WeightOnlyMatmulPluginCreator<MatMulWF16PluginTraits>
{
};

} // namespace rrwkv

#endif // RRWKV_MATMUL_WF16_PLUGIN_H
