/*
 * TensorRT IPluginV3 for rrwkv::WKV4Medium (ARCHITECTURES.md §2.6, plugins/wkv4_medium/spec.yaml).
 * Inputs:  w, u [C] f32; k, v [B,T,C] f32|f16; k_m, v_m [B,M,C] f32; aa, bb, pp [B,C] f32; pos0 [B] i64.
 * Outputs: y [B,T,C] (dtype of k); aa_out, bb_out, pp_out [B,C] f32.
 * Attributes: s (INT >= 1, required), medium_decays (INT 0|1, default 0), plugin_namespace, plugin_version.
 */
#ifndef RRWKV_WKV4_MEDIUM_PLUGIN_H
#define RRWKV_WKV4_MEDIUM_PLUGIN_H

#include "NvInferRuntime.h"

#include <string>
#include <vector>

namespace rrwkv
{

class Wkv4MediumPlugin : public nvinfer1::IPluginV3,
                   public nvinfer1::IPluginV3OneCore,
                   public nvinfer1::IPluginV3OneBuild,
                   public nvinfer1::IPluginV3OneRuntime
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

    //! s: medium interval (>= 1); mediumDecays: 0 or 1. Throws PluginError otherwise.
    Wkv4MediumPlugin(int32_t s, int32_t mediumDecays);
    Wkv4MediumPlugin(Wkv4MediumPlugin const& other);
    ~Wkv4MediumPlugin() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t getNbOutputs() const noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    void initFieldsToSerialize();

    int32_t mS;
    int32_t mMediumDecays;
    std::vector<nvinfer1::PluginField> mDataToSerialize;
    nvinfer1::PluginFieldCollection mFCToSerialize{};
};

class Wkv4MediumPluginCreator : public nvinfer1::IPluginCreatorV3One
{
public:
    Wkv4MediumPluginCreator();
    ~Wkv4MediumPluginCreator() override = default;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override;

private:
    std::vector<nvinfer1::PluginField> mPluginAttributes;
    nvinfer1::PluginFieldCollection mFC{};
};

} // namespace rrwkv

#endif // RRWKV_WKV4_MEDIUM_PLUGIN_H
