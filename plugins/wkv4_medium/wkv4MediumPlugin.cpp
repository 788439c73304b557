/*
 * TensorRT IPluginV3 for rrwkv::WKV4Medium: shape/type contract on the host, wkv4MediumForward<T> on the device.
 */
#include "wkv4_medium/wkv4MediumPlugin.h"

#include "common/pluginUtils.h"
#include "wkv4_medium/wkv4MediumKernel.h"

#include <cstring>
#include <optional>
#include <string>

using namespace nvinfer1;

namespace rrwkv
{
namespace
{
char const kFIELD_S[] = "s";
char const kFIELD_MEDIUM_DECAYS[] = "medium_decays";
char const kNEEDS_MEDIUM_ROW[] = "input 'k_m' needs at least one row (Mmax >= 1)";
} // namespace

InputContract const Wkv4MediumPlugin::kINPUT_CONTRACT[Wkv4MediumPlugin::kNB_INPUTS] = {{"w", "C"}, {"u", "C"},
    {"k", "BTC"}, {"v", "BTC"}, {"k_m", "BMC"}, {"v_m", "BMC"}, {"aa", "BC"}, {"bb", "BC"}, {"pp", "BC"},
    {"pos0", "B"}};

Wkv4MediumPlugin::Wkv4MediumPlugin(int32_t s, int32_t mediumDecays)
    : mS(s)
    , mMediumDecays(mediumDecays)
{
    validate(mS >= 1, kNAME, "attribute 's' (medium interval) must be >= 1, got " + std::to_string(mS));
    validate(mMediumDecays == 0 || mMediumDecays == 1, kNAME,
        "attribute 'medium_decays' must be 0 or 1, got " + std::to_string(mMediumDecays));
    initFieldsToSerialize({{kFIELD_S, &mS, PluginFieldType::kINT32, 1},
        {kFIELD_MEDIUM_DECAYS, &mMediumDecays, PluginFieldType::kINT32, 1}});
}

Wkv4MediumPlugin::Wkv4MediumPlugin(Wkv4MediumPlugin const& other)
    : Wkv4MediumPlugin(other.mS, other.mMediumDecays)
{
}

void Wkv4MediumPlugin::inferOutputTypes(DataType* outputTypes, DataType const* inputTypes) const
{
    validateInputType(inputTypes, kW, "w", DataType::kFLOAT, kNAME);
    validateInputType(inputTypes, kU, "u", DataType::kFLOAT, kNAME);
    validateActivationTypes(inputTypes, kK, kV, kNAME);
    validateInputType(inputTypes, kKM, "k_m", DataType::kFLOAT, kNAME);
    validateInputType(inputTypes, kVM, "v_m", DataType::kFLOAT, kNAME);
    validateInputType(inputTypes, kAA, "aa", DataType::kFLOAT, kNAME);
    validateInputType(inputTypes, kBB, "bb", DataType::kFLOAT, kNAME);
    validateInputType(inputTypes, kPP, "pp", DataType::kFLOAT, kNAME);
    validateInputType(inputTypes, kPOS0, "pos0", DataType::kINT64, kNAME);
    outputTypes[0] = inputTypes[kK]; // y: dtype of k
    outputTypes[1] = DataType::kFLOAT; // aa_out
    outputTypes[2] = DataType::kFLOAT; // bb_out
    outputTypes[3] = DataType::kFLOAT; // pp_out
}

void Wkv4MediumPlugin::inferOutputShapes(
    DimsExprs const* inputs, DimsExprs* outputs, IExprBuilder& /*exprBuilder*/) const
{
    validate(constantOrUnknown(inputs[kKM].d[1]) != 0, kNAME, kNEEDS_MEDIUM_ROW);
    outputs[0] = inputs[kK]; // y [B,T,C]
    outputs[1] = inputs[kAA]; // aa_out [B,C]
    outputs[2] = inputs[kAA]; // bb_out [B,C]
    outputs[3] = inputs[kAA]; // pp_out [B,C]
}

bool Wkv4MediumPlugin::supportsTensor(
    int32_t pos, PluginTensorDesc const& desc, DynamicPluginTensorDesc const* inOut) const
{
    bool const isFloat = desc.type == DataType::kFLOAT;
    switch (pos)
    {
    case 0: return isFloat; // w [C]
    case 1: return isFloat; // u [C]
    case 2: return isFloat || desc.type == DataType::kHALF; // k [B,T,C]: the activation dtype
    case 3: return desc.type == inOut[kK].desc.type; // v [B,T,C]: same as k
    case 4: return isFloat; // k_m [B,M,C]: f32 (beta = -1e30)
    case 5: return isFloat; // v_m [B,M,C]
    case 6: return isFloat; // aa [B,C]
    case 7: return isFloat; // bb [B,C]
    case 8: return isFloat; // pp [B,C]
    case 9: return desc.type == DataType::kINT64; // pos0 [B]
    case 10: return desc.type == inOut[kK].desc.type; // y [B,T,C]: same as k
    case 11: return isFloat; // aa_out [B,C]
    case 12: return isFloat; // bb_out [B,C]
    case 13: return isFloat; // pp_out [B,C]
    default: return false;
    }
}

void Wkv4MediumPlugin::checkConfiguredShapes(DynamicPluginTensorDesc const* in) const
{
    validate(in[kKM].max.d[1] != 0, kNAME, kNEEDS_MEDIUM_ROW);
}

void Wkv4MediumPlugin::checkRuntimeShapes(PluginTensorDesc const* in) const
{
    validate(in[kKM].dims.d[1] >= 1, kNAME, kNEEDS_MEDIUM_ROW);
}

void Wkv4MediumPlugin::forward(PluginTensorDesc const* inputDesc, void const* const* inputs, void* const* outputs,
    void* /*workspace*/, cudaStream_t stream) const
{
    Dims const& kDims = inputDesc[kK].dims; // [B,T,C]; onShapeChange checked the rest
    int32_t const B = toInt32(kDims.d[0], kNAME, "B");
    int32_t const T = toInt32(kDims.d[1], kNAME, "T");
    int32_t const C = toInt32(kDims.d[2], kNAME, "C");
    int32_t const M = toInt32(inputDesc[kKM].dims.d[1], kNAME, "Mmax"); // k_m [B,M,C]
    cudaError_t const status = dispatchActivation(inputDesc[kK].type, [&](auto tag) {
        using Act = typename decltype(tag)::type; // k, v, y
        return wkv4MediumForward<Act>(stream, B, T, C, M, mS, mMediumDecays, static_cast<float const*>(inputs[kW]),
            static_cast<float const*>(inputs[kU]), static_cast<Act const*>(inputs[kK]),
            static_cast<Act const*>(inputs[kV]), static_cast<float const*>(inputs[kKM]),
            static_cast<float const*>(inputs[kVM]), static_cast<float const*>(inputs[kAA]),
            static_cast<float const*>(inputs[kBB]), static_cast<float const*>(inputs[kPP]),
            static_cast<int64_t const*>(inputs[kPOS0]), static_cast<Act*>(outputs[0]),
            static_cast<float*>(outputs[1]), static_cast<float*>(outputs[2]), static_cast<float*>(outputs[3]));
    });
    validate(status == cudaSuccess, kNAME, std::string("wkv4MediumForward failed: ") + cudaGetErrorName(status));
}

Wkv4MediumPluginCreator::Wkv4MediumPluginCreator()
    : RrwkvPluginCreatorBase({{kFIELD_S, nullptr, PluginFieldType::kINT32, 1},
        {kFIELD_MEDIUM_DECAYS, nullptr, PluginFieldType::kINT32, 1}})
{
}

Wkv4MediumPlugin* Wkv4MediumPluginCreator::create(PluginFieldCollection const* fc) const
{
    char const* const plugin = Wkv4MediumPlugin::kNAME;
    std::optional<int32_t> s;
    int32_t mediumDecays{0};
    readFields(fc, [&](PluginField const& field) {
        if (std::strcmp(field.name, kFIELD_S) == 0)
        {
            s = readInt32Field(field, plugin);
            return true;
        }
        if (std::strcmp(field.name, kFIELD_MEDIUM_DECAYS) == 0)
        {
            mediumDecays = readInt32Field(field, plugin);
            return true;
        }
        return false;
    });
    validate(s.has_value(), plugin, "required attribute 's' (medium interval, INT >= 1) is missing");
    return new Wkv4MediumPlugin(*s, mediumDecays);
}

} // namespace rrwkv
