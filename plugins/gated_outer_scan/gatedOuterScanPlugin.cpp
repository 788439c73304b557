/*
 * TensorRT IPluginV3 for rrwkv::GatedOuterScan: shape/type contract on the host, gatedOuterScanForward<T> on the
 * device.
 */
#include "gated_outer_scan/gatedOuterScanPlugin.h"

#include "common/pluginUtils.h"
#include "gated_outer_scan/gatedOuterScanKernel.h"

#include <cmath>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>

using namespace nvinfer1;

namespace rrwkv
{
namespace
{
char const kFIELD_SCALE[] = "scale";
char const kFIELD_CHUNK_SIZE[] = "chunk_size";
} // namespace

InputContract const GatedOuterScanPlugin::kINPUT_CONTRACT[GatedOuterScanPlugin::kNB_INPUTS]
    = {{"q", "BTHK"}, {"f", "BTHK"}, {"lb", "HK"}, {"v", "BTHV"}, {"S0", "BHKV"}};

GatedOuterScanPlugin::GatedOuterScanPlugin(float scale, int32_t chunkSize)
    : mScale(scale)
    , mChunkSize(chunkSize)
{
    std::ostringstream scaleMsg;
    scaleMsg << "attribute 'scale' must be finite and > 0, got " << mScale;
    validate(mScale > 0.F && std::isfinite(mScale), kNAME, scaleMsg.str());
    validate(mChunkSize >= 1, kNAME, "attribute 'chunk_size' must be >= 1, got " + std::to_string(mChunkSize));
    initFieldsToSerialize({{kFIELD_SCALE, &mScale, PluginFieldType::kFLOAT32, 1},
        {kFIELD_CHUNK_SIZE, &mChunkSize, PluginFieldType::kINT32, 1}});
}

GatedOuterScanPlugin::GatedOuterScanPlugin(GatedOuterScanPlugin const& other)
    : GatedOuterScanPlugin(other.mScale, other.mChunkSize)
{
}

void GatedOuterScanPlugin::inferOutputTypes(DataType* outputTypes, DataType const* inputTypes) const
{
    DataType const act = inputTypes[kQ];
    std::ostringstream msg;
    msg << "input " << kQ << " 'q' must be float32 or float16, got " << dataTypeName(act);
    validate(act == DataType::kFLOAT || act == DataType::kHALF, kNAME, msg.str());
    validateInputType(inputTypes, kF, "f (same dtype as q)", act, kNAME);
    validateInputType(inputTypes, kLB, "lb", DataType::kFLOAT, kNAME);
    validateInputType(inputTypes, kV, "v (same dtype as q)", act, kNAME);
    validateInputType(inputTypes, kS0, "S0", DataType::kFLOAT, kNAME);
    outputTypes[0] = act; // o: dtype of q
    outputTypes[1] = DataType::kFLOAT; // S_out
}

void GatedOuterScanPlugin::inferOutputShapes(
    DimsExprs const* inputs, DimsExprs* outputs, IExprBuilder& /*exprBuilder*/) const
{
    outputs[0] = inputs[kV]; // o [B,T,H,V]
    outputs[1] = inputs[kS0]; // S_out [B,H,K,V]
}

bool GatedOuterScanPlugin::supportsTensor(
    int32_t pos, PluginTensorDesc const& desc, DynamicPluginTensorDesc const* inOut) const
{
    bool const isFloat = desc.type == DataType::kFLOAT;
    switch (pos)
    {
    case 0: return isFloat || desc.type == DataType::kHALF; // q [B,T,H,K]: the activation dtype
    case 1: return desc.type == inOut[kQ].desc.type; // f [B,T,H,K]: same as q
    case 2: return isFloat; // lb [H,K]
    case 3: return desc.type == inOut[kQ].desc.type; // v [B,T,H,V]: same as q
    case 4: return isFloat; // S0 [B,H,K,V]: fp32 state
    case 5: return desc.type == inOut[kQ].desc.type; // o [B,T,H,V]: same as q
    case 6: return isFloat; // S_out [B,H,K,V]
    default: return false;
    }
}

void GatedOuterScanPlugin::forward(PluginTensorDesc const* inputDesc, void const* const* inputs, void* const* outputs,
    void* /*workspace*/, cudaStream_t stream) const
{
    Dims const& qDims = inputDesc[kQ].dims; // [B,T,H,K]; onShapeChange checked the rest
    int32_t const B = toInt32(qDims.d[0], kNAME, "B");
    int32_t const T = toInt32(qDims.d[1], kNAME, "T");
    int32_t const H = toInt32(qDims.d[2], kNAME, "H");
    int32_t const K = toInt32(qDims.d[3], kNAME, "K");
    int32_t const V = toInt32(inputDesc[kV].dims.d[3], kNAME, "V"); // v [B,T,H,V]
    cudaError_t const status = dispatchActivation(inputDesc[kQ].type, [&](auto tag) {
        using Act = typename decltype(tag)::type; // q, f, v, o
        return gatedOuterScanForward<Act>(stream, B, T, H, K, V, mScale, static_cast<Act const*>(inputs[kQ]),
            static_cast<Act const*>(inputs[kF]), static_cast<float const*>(inputs[kLB]),
            static_cast<Act const*>(inputs[kV]), static_cast<float const*>(inputs[kS0]), static_cast<Act*>(outputs[0]),
            static_cast<float*>(outputs[1]));
    });
    validate(status == cudaSuccess, kNAME, std::string("gatedOuterScanForward failed: ") + cudaGetErrorName(status));
}

GatedOuterScanPluginCreator::GatedOuterScanPluginCreator()
    : RrwkvPluginCreatorBase({{kFIELD_SCALE, nullptr, PluginFieldType::kFLOAT32, 1},
        {kFIELD_CHUNK_SIZE, nullptr, PluginFieldType::kINT32, 1}})
{
}

GatedOuterScanPlugin* GatedOuterScanPluginCreator::create(PluginFieldCollection const* fc) const
{
    char const* const plugin = GatedOuterScanPlugin::kNAME;
    std::optional<float> scale;
    int32_t chunkSize{GatedOuterScanPlugin::kDEFAULT_CHUNK_SIZE};
    readFields(fc, [&](PluginField const& field) {
        if (std::strcmp(field.name, kFIELD_SCALE) == 0)
        {
            scale = readFloat32Field(field, plugin);
            return true;
        }
        if (std::strcmp(field.name, kFIELD_CHUNK_SIZE) == 0)
        {
            chunkSize = readInt32Field(field, plugin);
            return true;
        }
        return false;
    });
    validate(scale.has_value(), plugin, "required attribute 'scale' (query scale, FLOAT, finite and > 0) is missing");
    return new GatedOuterScanPlugin(*scale, chunkSize);
}

} // namespace rrwkv
