/*
 * TensorRT IPluginV3 for rrwkv::WKV4 (ARCHITECTURES.md §1.8, plugins/wkv4/spec.yaml).
 * Inputs:  w, u [C] f32; k, v [B,T,C] f32|f16; aa, bb, pp [B,C] f32.
 * Outputs: y [B,T,C] (dtype of k); aa_out, bb_out, pp_out [B,C] f32.
 * Attributes: plugin_namespace, plugin_version (ONNX STRING, type-checked, values ignored).
 */
#ifndef RRWKV_WKV4_PLUGIN_H
#define RRWKV_WKV4_PLUGIN_H

#include "NvInferRuntime.h"

#include <string>
#include <vector>

namespace rrwkv
{

class Wkv4Plugin : public nvinfer1::IPluginV3,
                   public nvinfer1::IPluginV3OneCore,
                   public nvinfer1::IPluginV3OneBuild,
                   public nvinfer1::IPluginV3OneRuntime
{
public:
    static constexpr char const* kNAME{"WKV4"};
    static constexpr int32_t kNB_INPUTS{7};
    static constexpr int32_t kNB_OUTPUTS{4};
    // Input indices.
    static constexpr int32_t kW{0};
    static constexpr int32_t kU{1};
    static constexpr int32_t kK{2};
    static constexpr int32_t kV{3};
    static constexpr int32_t kAA{4};
    static constexpr int32_t kBB{5};
    static constexpr int32_t kPP{6};

    Wkv4Plugin();
    Wkv4Plugin(Wkv4Plugin const& other);
    ~Wkv4Plugin() override = default;

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

    std::vector<nvinfer1::PluginField> mDataToSerialize;
    nvinfer1::PluginFieldCollection mFCToSerialize{};
};

class Wkv4PluginCreator : public nvinfer1::IPluginCreatorV3One
{
public:
    Wkv4PluginCreator();
    ~Wkv4PluginCreator() override = default;

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

#endif // RRWKV_WKV4_PLUGIN_H
