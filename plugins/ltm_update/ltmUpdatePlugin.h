/*
 * TensorRT IPluginV3 for rrwkv::LTMUpdate (docs/families/inftyformer.md §4.8.2, plugins/ltm_update/spec.yaml).
 * Inputs:  B_past [B,N,e] f32; X_new [B,L,e] f32; mode [B] int64 (0 keep, 1 first fit, 2 update; the kernels keep a
 *          row with any other value, they cannot report it); G [L,N], G_inf [M+L,N], S_samp [M,N] f32; hist [B,NB]
 *          f32; basis_mu, basis_sigma [N] f32.
 * Output:  B_new [B,N,e] f32.
 * Attributes: sticky (INT 0 or 1, default 0), plugin_namespace, plugin_version. Workspace: X_old, B * M * e floats
 * for the profile's largest B.
 * The IPluginV3 interface itself is common/pluginBase.h; this file holds the op-specific parts.
 */
#ifndef RRWKV_LTM_UPDATE_PLUGIN_H
#define RRWKV_LTM_UPDATE_PLUGIN_H

#include "NvInferRuntime.h"

#include "common/pluginBase.h"

namespace rrwkv
{

class LtmUpdatePlugin : public RrwkvPluginBase<LtmUpdatePlugin>
{
public:
    static constexpr char const* kNAME{"LTMUpdate"};
    static constexpr int32_t kNB_INPUTS{9};
    static constexpr int32_t kNB_OUTPUTS{1};
    // Input indices.
    static constexpr int32_t kB_PAST{0};
    static constexpr int32_t kX_NEW{1};
    static constexpr int32_t kMODE{2};
    static constexpr int32_t kG{3};
    static constexpr int32_t kG_INF{4};
    static constexpr int32_t kS_SAMP{5};
    static constexpr int32_t kHIST{6};
    static constexpr int32_t kBASIS_MU{7};
    static constexpr int32_t kBASIS_SIGMA{8};
    //! Rank and named axes of each input, in order (spec.yaml; E is e, P is M + L, H the histogram bins NB).
    static InputContract const kINPUT_CONTRACT[kNB_INPUTS];

    //! sticky: 0 or 1. Throws PluginError otherwise.
    explicit LtmUpdatePlugin(int32_t sticky);
    LtmUpdatePlugin(LtmUpdatePlugin const& other);
    ~LtmUpdatePlugin() override = default;

private:
    friend class RrwkvPluginBase<LtmUpdatePlugin>;

    void inferOutputTypes(nvinfer1::DataType* outputTypes, nvinfer1::DataType const* inputTypes) const;
    void inferOutputShapes(
        nvinfer1::DimsExprs const* inputs, nvinfer1::DimsExprs* outputs, nvinfer1::IExprBuilder& exprBuilder) const;
    bool supportsTensor(
        int32_t pos, nvinfer1::PluginTensorDesc const& desc, nvinfer1::DynamicPluginTensorDesc const* inOut) const;
    void checkConfiguredShapes(nvinfer1::DynamicPluginTensorDesc const* in) const;
    void checkRuntimeShapes(nvinfer1::PluginTensorDesc const* in) const;
    size_t workspaceBytes(nvinfer1::DynamicPluginTensorDesc const* in) const;
    void forward(nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs, void* const* outputs,
        void* workspace, cudaStream_t stream) const;

    int32_t mSticky;
};

class LtmUpdatePluginCreator : public RrwkvPluginCreatorBase<LtmUpdatePluginCreator, LtmUpdatePlugin>
{
public:
    LtmUpdatePluginCreator();
    ~LtmUpdatePluginCreator() override = default;

private:
    friend class RrwkvPluginCreatorBase<LtmUpdatePluginCreator, LtmUpdatePlugin>;

    LtmUpdatePlugin* create(nvinfer1::PluginFieldCollection const* fc) const;
};

} // namespace rrwkv

#endif // RRWKV_LTM_UPDATE_PLUGIN_H
