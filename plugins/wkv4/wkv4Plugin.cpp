/*
 * TensorRT IPluginV3 for rrwkv::WKV4: shape/type contract on the host, wkv4Forward<T> on the device.
 */
#include "wkv4/wkv4Plugin.h"

#include "common/pluginUtils.h"
#include "wkv4/wkv4Kernel.h"

#include <string>

using namespace nvinfer1;

namespace rrwkv
{

InputContract const Wkv4Plugin::kINPUT_CONTRACT[Wkv4Plugin::kNB_INPUTS]
    = {{"w", "C"}, {"u", "C"}, {"k", "BTC"}, {"v", "BTC"}, {"aa", "BC"}, {"bb", "BC"}, {"pp", "BC"}};

Wkv4Plugin::Wkv4Plugin()
{
    initFieldsToSerialize({});
}

Wkv4Plugin::Wkv4Plugin(Wkv4Plugin const& /*other*/)
    : Wkv4Plugin()
{
}

void Wkv4Plugin::inferOutputTypes(DataType* outputTypes, DataType const* inputTypes) const
{
    validateInputType(inputTypes, kW, "w", DataType::kFLOAT, kNAME);
    validateInputType(inputTypes, kU, "u", DataType::kFLOAT, kNAME);
    validateActivationTypes(inputTypes, kK, kV, kNAME);
    validateInputType(inputTypes, kAA, "aa", DataType::kFLOAT, kNAME);
    validateInputType(inputTypes, kBB, "bb", DataType::kFLOAT, kNAME);
    validateInputType(inputTypes, kPP, "pp", DataType::kFLOAT, kNAME);
    outputTypes[0] = inputTypes[kK]; // y: dtype of k
    outputTypes[1] = DataType::kFLOAT; // aa_out
    outputTypes[2] = DataType::kFLOAT; // bb_out
    outputTypes[3] = DataType::kFLOAT; // pp_out
}

void Wkv4Plugin::inferOutputShapes(DimsExprs const* inputs, DimsExprs* outputs, IExprBuilder& /*exprBuilder*/) const
{
    outputs[0] = inputs[kK]; // y [B,T,C]
    outputs[1] = inputs[kAA]; // aa_out [B,C]
    outputs[2] = inputs[kAA]; // bb_out [B,C]
    outputs[3] = inputs[kAA]; // pp_out [B,C]
}

bool Wkv4Plugin::supportsTensor(int32_t pos, PluginTensorDesc const& desc, DynamicPluginTensorDesc const* inOut) const
{
    bool const isFloat = desc.type == DataType::kFLOAT;
    switch (pos)
    {
    case 0: return isFloat; // w [C]
    case 1: return isFloat; // u [C]
    case 2: return isFloat || desc.type == DataType::kHALF; // k [B,T,C]: the activation dtype
    case 3: return desc.type == inOut[kK].desc.type; // v [B,T,C]: same as k
    case 4: return isFloat; // aa [B,C]
    case 5: return isFloat; // bb [B,C]
    case 6: return isFloat; // pp [B,C]
    case 7: return desc.type == inOut[kK].desc.type; // y [B,T,C]: same as k
    case 8: return isFloat; // aa_out [B,C]
    case 9: return isFloat; // bb_out [B,C]
    case 10: return isFloat; // pp_out [B,C]
    default: return false;
    }
}

void Wkv4Plugin::forward(PluginTensorDesc const* inputDesc, void const* const* inputs, void* const* outputs,
    void* /*workspace*/, cudaStream_t stream) const
{
    Dims const& kDims = inputDesc[kK].dims; // [B,T,C]; onShapeChange checked the rest
    int32_t const B = toInt32(kDims.d[0], kNAME, "B");
    int32_t const T = toInt32(kDims.d[1], kNAME, "T");
    int32_t const C = toInt32(kDims.d[2], kNAME, "C");
    cudaError_t const status = dispatchActivation(inputDesc[kK].type, [&](auto tag) {
        using Act = typename decltype(tag)::type; // k, v, y
        return wkv4Forward<Act>(stream, B, T, C, static_cast<float const*>(inputs[kW]),
            static_cast<float const*>(inputs[kU]), static_cast<Act const*>(inputs[kK]),
            static_cast<Act const*>(inputs[kV]), static_cast<float const*>(inputs[kAA]),
            static_cast<float const*>(inputs[kBB]), static_cast<float const*>(inputs[kPP]),
            static_cast<Act*>(outputs[0]), static_cast<float*>(outputs[1]), static_cast<float*>(outputs[2]),
            static_cast<float*>(outputs[3]));
    });
    validate(status == cudaSuccess, kNAME, std::string("wkv4Forward failed: ") + cudaGetErrorName(status));
}

Wkv4PluginCreator::Wkv4PluginCreator()
    : RrwkvPluginCreatorBase({})
{
}

Wkv4Plugin* Wkv4PluginCreator::create(PluginFieldCollection const* fc) const
{
    readFields(fc, [](PluginField const& /*field*/) { return false; });
    return new Wkv4Plugin();
}

} // namespace rrwkv
