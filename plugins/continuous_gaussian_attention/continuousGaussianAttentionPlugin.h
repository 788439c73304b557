/*
 * TensorRT IPluginV3 for rrwkv::ContinuousGaussianAttention (docs/families/inftyformer.md §4.8.1,
 * plugins/continuous_gaussian_attention/spec.yaml).
 * Inputs:  q [B,H,T,d] f32|f16; K, V [B,H,N,d] (dtype of q); w_mu, w_sigma, basis_mu, basis_sigma [N] f32.
 * Outputs: ctx [B,H,T,d] (dtype of q); mu, sigma2 [B,H,T] f32 (always all three).
 * Attributes: sigma2_min and scale (FLOAT, finite and > 0, both required), plugin_namespace, plugin_version.
 * The IPluginV3 interface itself is common/pluginBase.h; this file holds the op-specific parts.
 */
#ifndef RRWKV_CONTINUOUS_GAUSSIAN_ATTENTION_PLUGIN_H
#define RRWKV_CONTINUOUS_GAUSSIAN_ATTENTION_PLUGIN_H

#include "NvInferRuntime.h"

#include "common/pluginBase.h"

namespace rrwkv
{

class ContinuousGaussianAttentionPlugin : public RrwkvPluginBase<ContinuousGaussianAttentionPlugin>
{
public:
    static constexpr char const* kNAME{"ContinuousGaussianAttention"};
    static constexpr int32_t kNB_INPUTS{7};
    static constexpr int32_t kNB_OUTPUTS{3};
    // Input indices.
    static constexpr int32_t kQ{0};
    static constexpr int32_t kK{1};
    static constexpr int32_t kV{2};
    static constexpr int32_t kW_MU{3};
    static constexpr int32_t kW_SIGMA{4};
    static constexpr int32_t kBASIS_MU{5};
    static constexpr int32_t kBASIS_SIGMA{6};
    //! Rank and named axes of each input, in order (spec.yaml; D is the head dim d).
    static InputContract const kINPUT_CONTRACT[kNB_INPUTS];

    //! sigma2Min, scale: finite and > 0. Throws PluginError otherwise.
    ContinuousGaussianAttentionPlugin(float sigma2Min, float scale);
    ContinuousGaussianAttentionPlugin(ContinuousGaussianAttentionPlugin const& other);
    ~ContinuousGaussianAttentionPlugin() override = default;

private:
    friend class RrwkvPluginBase<ContinuousGaussianAttentionPlugin>;

    void inferOutputTypes(nvinfer1::DataType* outputTypes, nvinfer1::DataType const* inputTypes) const;
    void inferOutputShapes(
        nvinfer1::DimsExprs const* inputs, nvinfer1::DimsExprs* outputs, nvinfer1::IExprBuilder& exprBuilder) const;
    bool supportsTensor(
        int32_t pos, nvinfer1::PluginTensorDesc const& desc, nvinfer1::DynamicPluginTensorDesc const* inOut) const;
    void forward(nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs, void* const* outputs,
        void* workspace, cudaStream_t stream) const;

    float mSigma2Min;
    float mScale;
};

class ContinuousGaussianAttentionPluginCreator
    : public RrwkvPluginCreatorBase<ContinuousGaussianAttentionPluginCreator, ContinuousGaussianAttentionPlugin>
{
public:
    ContinuousGaussianAttentionPluginCreator();
    ~ContinuousGaussianAttentionPluginCreator() override = default;

private:
    friend class RrwkvPluginCreatorBase<ContinuousGaussianAttentionPluginCreator, ContinuousGaussianAttentionPlugin>;

    ContinuousGaussianAttentionPlugin* create(nvinfer1::PluginFieldCollection const* fc) const;
};

} // namespace rrwkv

#endif // RRWKV_CONTINUOUS_GAUSSIAN_ATTENTION_PLUGIN_H
