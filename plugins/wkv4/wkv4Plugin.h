/*
 * TensorRT IPluginV3 for rrwkv::WKV4 (docs/families/rwkv4.md §1.8, plugins/wkv4/spec.yaml).
 * Inputs:  w, u [C] f32; k, v [B,T,C] f32|f16; aa, bb, pp [B,C] f32.
 * Outputs: y [B,T,C] (dtype of k); aa_out, bb_out, pp_out [B,C] f32.
 * Attributes: plugin_namespace, plugin_version (ONNX STRING, type-checked, values ignored).
 * The IPluginV3 interface itself is common/pluginBase.h; this file holds the op-specific parts.
 */
#ifndef RRWKV_WKV4_PLUGIN_H
#define RRWKV_WKV4_PLUGIN_H

#include "NvInferRuntime.h"

#include "common/pluginBase.h"

namespace rrwkv
{

class Wkv4Plugin : public RrwkvPluginBase<Wkv4Plugin>
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
    //! Rank and named axes of each input, in order (spec.yaml).
    static InputContract const kINPUT_CONTRACT[kNB_INPUTS];

    Wkv4Plugin();
    Wkv4Plugin(Wkv4Plugin const& other);
    ~Wkv4Plugin() override = default;

private:
    friend class RrwkvPluginBase<Wkv4Plugin>;

    void inferOutputTypes(nvinfer1::DataType* outputTypes, nvinfer1::DataType const* inputTypes) const;
    void inferOutputShapes(
        nvinfer1::DimsExprs const* inputs, nvinfer1::DimsExprs* outputs, nvinfer1::IExprBuilder& exprBuilder) const;
    bool supportsTensor(
        int32_t pos, nvinfer1::PluginTensorDesc const& desc, nvinfer1::DynamicPluginTensorDesc const* inOut) const;
    void forward(nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs, void* const* outputs,
        void* workspace, cudaStream_t stream) const;
};

class Wkv4PluginCreator : public RrwkvPluginCreatorBase<Wkv4PluginCreator, Wkv4Plugin>
{
public:
    Wkv4PluginCreator();
    ~Wkv4PluginCreator() override = default;

private:
    friend class RrwkvPluginCreatorBase<Wkv4PluginCreator, Wkv4Plugin>;

    Wkv4Plugin* create(nvinfer1::PluginFieldCollection const* fc) const;
};

} // namespace rrwkv

#endif // RRWKV_WKV4_PLUGIN_H
