/*
 * TensorRT IPluginV3 for rrwkv::MatMulWF16 (plugins/matmul_wf16/README.md, plugins/matmul_wf16/spec.yaml).
 * Inputs:  x [..., K] f32; w [G, K, 64] f16 (G = ceil(N / 64)).
 * Outputs: y [..., N] f32.
 * Attributes: N (INT >= 1, required), plugin_namespace, plugin_version. No workspace.
 * The IPluginV3 interface itself is common/pluginBase.h; this file holds the op-specific parts.
 */
#ifndef RRWKV_MATMUL_WF16_PLUGIN_H
#define RRWKV_MATMUL_WF16_PLUGIN_H

#include "NvInferRuntime.h"

#include "common/pluginBase.h"

namespace rrwkv
{

class MatMulWF16Plugin : public RrwkvPluginBase<MatMulWF16Plugin>
{
public:
    static constexpr char const* kNAME{"MatMulWF16"};
    static constexpr int32_t kNB_INPUTS{2};
    static constexpr int32_t kNB_OUTPUTS{1};
    // Input indices.
    static constexpr int32_t kX{0};
    static constexpr int32_t kW{1};
    //! Rank and named axes of each input, in order (spec.yaml): G groups, K the rows of W (x's last axis), L the 64
    //! lanes of a group.
    static InputContract const kINPUT_CONTRACT[kNB_INPUTS];

    //! n: output features N (>= 1). Throws PluginError otherwise.
    explicit MatMulWF16Plugin(int32_t n);
    MatMulWF16Plugin(MatMulWF16Plugin const& other);
    ~MatMulWF16Plugin() override = default;

private:
    friend class RrwkvPluginBase<MatMulWF16Plugin>;

    void inferOutputTypes(nvinfer1::DataType* outputTypes, nvinfer1::DataType const* inputTypes) const;
    void inferOutputShapes(
        nvinfer1::DimsExprs const* inputs, nvinfer1::DimsExprs* outputs, nvinfer1::IExprBuilder& exprBuilder) const;
    bool supportsTensor(
        int32_t pos, nvinfer1::PluginTensorDesc const& desc, nvinfer1::DynamicPluginTensorDesc const* inOut) const;
    void checkConfiguredShapes(nvinfer1::DynamicPluginTensorDesc const* in) const;
    void checkRuntimeShapes(nvinfer1::PluginTensorDesc const* in) const;
    void forward(nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs, void* const* outputs,
        void* workspace, cudaStream_t stream) const;

    //! The dims of w that N fixes (the contract already ties w's K to x's), wherever the extents are known.
    //! extent(i, axis) -> int64_t, -1 when unknown.
    template <typename ExtentFn>
    void checkWeightShape(ExtentFn const& extent) const;

    int32_t mN;
};

class MatMulWF16PluginCreator : public RrwkvPluginCreatorBase<MatMulWF16PluginCreator, MatMulWF16Plugin>
{
public:
    MatMulWF16PluginCreator();
    ~MatMulWF16PluginCreator() override = default;

private:
    friend class RrwkvPluginCreatorBase<MatMulWF16PluginCreator, MatMulWF16Plugin>;

    MatMulWF16Plugin* create(nvinfer1::PluginFieldCollection const* fc) const;
};

} // namespace rrwkv

#endif // RRWKV_MATMUL_WF16_PLUGIN_H
