/*
 * TensorRT IPluginV3 for rrwkv::WKV4Medium (docs/families/rrwkv.md §2.6, plugins/wkv4_medium/spec.yaml).
 * Inputs:  w, u [C] f32; k, v [B,T,C] f32|f16; k_m, v_m [B,M,C] f32; aa, bb, pp [B,C] f32; pos0 [B] i64.
 * Outputs: y [B,T,C] (dtype of k); aa_out, bb_out, pp_out [B,C] f32.
 * Attributes: s (INT >= 1, required), medium_decays (INT 0|1, default 0), plugin_namespace, plugin_version.
 * The IPluginV3 interface itself is common/pluginBase.h; this file holds the op-specific parts.
 */
#ifndef RRWKV_WKV4_MEDIUM_PLUGIN_H
#define RRWKV_WKV4_MEDIUM_PLUGIN_H

#include "NvInferRuntime.h"

#include "common/pluginBase.h"

namespace rrwkv
{

class Wkv4MediumPlugin : public RrwkvPluginBase<Wkv4MediumPlugin>
{
public:
    static constexpr char const* kNAME{"WKV4Medium"};
    static constexpr int32_t kNB_INPUTS{10};
    static constexpr int32_t kNB_OUTPUTS{4};
    // Input indices.
    static constexpr int32_t kW{0};
    static constexpr int32_t kU{1};
    static constexpr int32_t kK{2};
    static constexpr int32_t kV{3};
    static constexpr int32_t kKM{4};
    static constexpr int32_t kVM{5};
    static constexpr int32_t kAA{6};
    static constexpr int32_t kBB{7};
    static constexpr int32_t kPP{8};
    static constexpr int32_t kPOS0{9};
    //! Rank and named axes of each input, in order (spec.yaml); M is Mmax, the medium rows.
    static InputContract const kINPUT_CONTRACT[kNB_INPUTS];

    //! s: medium interval (>= 1); mediumDecays: 0 or 1. Throws PluginError otherwise.
    Wkv4MediumPlugin(int32_t s, int32_t mediumDecays);
    Wkv4MediumPlugin(Wkv4MediumPlugin const& other);
    ~Wkv4MediumPlugin() override = default;

private:
    friend class RrwkvPluginBase<Wkv4MediumPlugin>;

    void inferOutputTypes(nvinfer1::DataType* outputTypes, nvinfer1::DataType const* inputTypes) const;
    void inferOutputShapes(
        nvinfer1::DimsExprs const* inputs, nvinfer1::DimsExprs* outputs, nvinfer1::IExprBuilder& exprBuilder) const;
    bool supportsTensor(
        int32_t pos, nvinfer1::PluginTensorDesc const& desc, nvinfer1::DynamicPluginTensorDesc const* inOut) const;
    void checkConfiguredShapes(nvinfer1::DynamicPluginTensorDesc const* in) const;
    void checkRuntimeShapes(nvinfer1::PluginTensorDesc const* in) const;
    void forward(nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs, void* const* outputs,
        void* workspace, cudaStream_t stream) const;

    int32_t mS;
    int32_t mMediumDecays;
};

class Wkv4MediumPluginCreator : public RrwkvPluginCreatorBase<Wkv4MediumPluginCreator, Wkv4MediumPlugin>
{
public:
    Wkv4MediumPluginCreator();
    ~Wkv4MediumPluginCreator() override = default;

private:
    friend class RrwkvPluginCreatorBase<Wkv4MediumPluginCreator, Wkv4MediumPlugin>;

    Wkv4MediumPlugin* create(nvinfer1::PluginFieldCollection const* fc) const;
};

} // namespace rrwkv

#endif // RRWKV_WKV4_MEDIUM_PLUGIN_H
