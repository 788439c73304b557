/*
 * TensorRT IPluginV3 for rrwkv::GatedOuterScan (docs/families/hgrn2.md §3.7, plugins/gated_outer_scan/spec.yaml).
 * Inputs:  q, f [B,T,H,K] f32|f16; lb [H,K] f32; v [B,T,H,V] (dtype of q); S0 [B,H,K,V] f32.
 * Outputs: o [B,T,H,V] (dtype of q); S_out [B,H,K,V] f32.
 * Attributes: scale (FLOAT, finite and > 0, required), chunk_size (INT >= 1, default 64; the CUDA kernel runs the
 * per-token recurrence, so it is validated and serialised only), plugin_namespace, plugin_version.
 * The IPluginV3 interface itself is common/pluginBase.h; this file holds the op-specific parts.
 */
#ifndef RRWKV_GATED_OUTER_SCAN_PLUGIN_H
#define RRWKV_GATED_OUTER_SCAN_PLUGIN_H

#include "NvInferRuntime.h"

#include "common/pluginBase.h"

namespace rrwkv
{

class GatedOuterScanPlugin : public RrwkvPluginBase<GatedOuterScanPlugin>
{
public:
    static constexpr char const* kNAME{"GatedOuterScan"};
    static constexpr int32_t kNB_INPUTS{5};
    static constexpr int32_t kNB_OUTPUTS{2};
    static constexpr int32_t kDEFAULT_CHUNK_SIZE{64};
    // Input indices.
    static constexpr int32_t kQ{0};
    static constexpr int32_t kF{1};
    static constexpr int32_t kLB{2};
    static constexpr int32_t kV{3};
    static constexpr int32_t kS0{4};
    //! Rank and named axes of each input, in order (spec.yaml).
    static InputContract const kINPUT_CONTRACT[kNB_INPUTS];

    //! scale: finite and > 0; chunkSize: >= 1. Throws PluginError otherwise.
    GatedOuterScanPlugin(float scale, int32_t chunkSize);
    GatedOuterScanPlugin(GatedOuterScanPlugin const& other);
    ~GatedOuterScanPlugin() override = default;

private:
    friend class RrwkvPluginBase<GatedOuterScanPlugin>;

    void inferOutputTypes(nvinfer1::DataType* outputTypes, nvinfer1::DataType const* inputTypes) const;
    void inferOutputShapes(
        nvinfer1::DimsExprs const* inputs, nvinfer1::DimsExprs* outputs, nvinfer1::IExprBuilder& exprBuilder) const;
    bool supportsTensor(
        int32_t pos, nvinfer1::PluginTensorDesc const& desc, nvinfer1::DynamicPluginTensorDesc const* inOut) const;
    void forward(nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs, void* const* outputs,
        void* workspace, cudaStream_t stream) const;

    float mScale;
    int32_t mChunkSize;
};

class GatedOuterScanPluginCreator : public RrwkvPluginCreatorBase<GatedOuterScanPluginCreator, GatedOuterScanPlugin>
{
public:
    GatedOuterScanPluginCreator();
    ~GatedOuterScanPluginCreator() override = default;

private:
    friend class RrwkvPluginCreatorBase<GatedOuterScanPluginCreator, GatedOuterScanPlugin>;

    GatedOuterScanPlugin* create(nvinfer1::PluginFieldCollection const* fc) const;
};

} // namespace rrwkv

#endif // RRWKV_GATED_OUTER_SCAN_PLUGIN_H
