/*
 * TensorRT IPluginV3 for rrwkv::WKV4: shape/type contract on the host, wkv4Forward<T> on the device.
 */
#include "wkv4/wkv4Plugin.h"

#include "common/pluginUtils.h"
#include "wkv4/wkv4Kernel.h"

#include <cuda_fp16.h>

#include <cstring>
#include <exception>

using namespace nvinfer1;

namespace rrwkv
{
namespace
{
// Rank and named axes of each input, in order (spec.yaml).
constexpr InputContract kWKV4_INPUTS[Wkv4Plugin::kNB_INPUTS]
    = {{"w", "C"}, {"u", "C"}, {"k", "BTC"}, {"v", "BTC"}, {"aa", "BC"}, {"bb", "BC"}, {"pp", "BC"}};

// Identity fields serialised with every engine; the values createPlugin accepts are not checked.
char const kIDENTITY_FIELDS[][17] = {"plugin_namespace", "plugin_version"};
} // namespace

Wkv4Plugin::Wkv4Plugin()
{
    initFieldsToSerialize();
}

Wkv4Plugin::Wkv4Plugin(Wkv4Plugin const& /*other*/)
    : Wkv4Plugin()
{
}

void Wkv4Plugin::initFieldsToSerialize()
{
    // Strings without a trailing NUL, the way the ONNX parser passes STRING attributes.
    mDataToSerialize.clear();
    mDataToSerialize.emplace_back(kIDENTITY_FIELDS[0], kPLUGIN_NAMESPACE, PluginFieldType::kCHAR,
        static_cast<int32_t>(std::strlen(kPLUGIN_NAMESPACE)));
    mDataToSerialize.emplace_back(kIDENTITY_FIELDS[1], kPLUGIN_VERSION, PluginFieldType::kCHAR,
        static_cast<int32_t>(std::strlen(kPLUGIN_VERSION)));
    mFCToSerialize.nbFields = static_cast<int32_t>(mDataToSerialize.size());
    mFCToSerialize.fields = mDataToSerialize.data();
}

IPluginCapability* Wkv4Plugin::getCapabilityInterface(PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    }
    return nullptr;
}

IPluginV3* Wkv4Plugin::clone() noexcept
{
    try
    {
        return new Wkv4Plugin(*this);
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return nullptr;
}

char const* Wkv4Plugin::getPluginName() const noexcept
{
    return kNAME;
}

char const* Wkv4Plugin::getPluginVersion() const noexcept
{
    return kPLUGIN_VERSION;
}

char const* Wkv4Plugin::getPluginNamespace() const noexcept
{
    return kPLUGIN_NAMESPACE;
}

int32_t Wkv4Plugin::getNbOutputs() const noexcept
{
    return kNB_OUTPUTS;
}

int32_t Wkv4Plugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    try
    {
        validate(nbInputs == kNB_INPUTS && nbOutputs == kNB_OUTPUTS, kNAME, "expects 7 inputs and 4 outputs");
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
        return 0;
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return -1;
}

int32_t Wkv4Plugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
    int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& /*exprBuilder*/) noexcept
{
    try
    {
        validate(nbInputs == kNB_INPUTS && nbOutputs == kNB_OUTPUTS, kNAME, "expects 7 inputs and 4 outputs");
        validateContract(
            kNAME, kWKV4_INPUTS, kNB_INPUTS, [&](int32_t i) { return inputs[i].nbDims; },
            [&](int32_t i, int32_t a) { return constantOrUnknown(inputs[i].d[a]); });
        outputs[0] = inputs[kK]; // y [B,T,C]
        outputs[1] = inputs[kAA]; // aa_out [B,C]
        outputs[2] = inputs[kAA]; // bb_out [B,C]
        outputs[3] = inputs[kAA]; // pp_out [B,C]
        return 0;
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return -1;
}

bool Wkv4Plugin::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    if (nbInputs != kNB_INPUTS || nbOutputs != kNB_OUTPUTS || pos < 0 || pos >= kNB_INPUTS + kNB_OUTPUTS)
    {
        return false;
    }
    PluginTensorDesc const& desc = inOut[pos].desc;
    if (desc.format != TensorFormat::kLINEAR)
    {
        return false; // every tensor is dense row-major
    }
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

int32_t Wkv4Plugin::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept
{
    try
    {
        validate(nbInputs == kNB_INPUTS && nbOutputs == kNB_OUTPUTS, kNAME, "expects 7 inputs and 4 outputs");
        // Build-time dims carry -1 for dynamic extents; min and max bound them from the profile.
        validateContract(
            kNAME, kWKV4_INPUTS, kNB_INPUTS, [&](int32_t i) { return in[i].desc.dims.nbDims; },
            [&](int32_t i, int32_t a) { return in[i].desc.dims.d[a]; });
        validateContract(
            kNAME, kWKV4_INPUTS, kNB_INPUTS, [&](int32_t i) { return in[i].max.nbDims; },
            [&](int32_t i, int32_t a) { return in[i].min.d[a] == in[i].max.d[a] ? in[i].max.d[a] : int64_t{-1}; });
        return 0;
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return -1;
}

size_t Wkv4Plugin::getWorkspaceSize(DynamicPluginTensorDesc const* /*inputs*/, int32_t /*nbInputs*/,
    DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept
{
    return 0;
}

int32_t Wkv4Plugin::onShapeChange(
    PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept
{
    try
    {
        validate(nbInputs == kNB_INPUTS && nbOutputs == kNB_OUTPUTS, kNAME, "expects 7 inputs and 4 outputs");
        validateContract(
            kNAME, kWKV4_INPUTS, kNB_INPUTS, [&](int32_t i) { return in[i].dims.nbDims; },
            [&](int32_t i, int32_t a) { return in[i].dims.d[a]; });
        return 0;
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return -1;
}

int32_t Wkv4Plugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
    void const* const* inputs, void* const* outputs, void* /*workspace*/, cudaStream_t stream) noexcept
{
    try
    {
        Dims const& kDims = inputDesc[kK].dims; // [B,T,C]; onShapeChange checked the rest
        int32_t const B = toInt32(kDims.d[0], kNAME, "B");
        int32_t const T = toInt32(kDims.d[1], kNAME, "T");
        int32_t const C = toInt32(kDims.d[2], kNAME, "C");
        auto const* w = static_cast<float const*>(inputs[kW]);
        auto const* u = static_cast<float const*>(inputs[kU]);
        auto const* aa = static_cast<float const*>(inputs[kAA]);
        auto const* bb = static_cast<float const*>(inputs[kBB]);
        auto const* pp = static_cast<float const*>(inputs[kPP]);
        auto* aaOut = static_cast<float*>(outputs[1]);
        auto* bbOut = static_cast<float*>(outputs[2]);
        auto* ppOut = static_cast<float*>(outputs[3]);
        cudaError_t status{cudaSuccess};
        if (inputDesc[kK].type == DataType::kHALF)
        {
            status = wkv4Forward<__half>(stream, B, T, C, w, u, static_cast<__half const*>(inputs[kK]),
                static_cast<__half const*>(inputs[kV]), aa, bb, pp, static_cast<__half*>(outputs[0]), aaOut, bbOut,
                ppOut);
        }
        else
        {
            status = wkv4Forward<float>(stream, B, T, C, w, u, static_cast<float const*>(inputs[kK]),
                static_cast<float const*>(inputs[kV]), aa, bb, pp, static_cast<float*>(outputs[0]), aaOut, bbOut,
                ppOut);
        }
        validate(status == cudaSuccess, kNAME, std::string("wkv4Forward failed: ") + cudaGetErrorName(status));
        return 0;
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return -1;
}

IPluginV3* Wkv4Plugin::attachToContext(IPluginResourceContext* /*context*/) noexcept
{
    return clone();
}

PluginFieldCollection const* Wkv4Plugin::getFieldsToSerialize() noexcept
{
    return &mFCToSerialize;
}

Wkv4PluginCreator::Wkv4PluginCreator()
{
    mPluginAttributes.emplace_back(kIDENTITY_FIELDS[0], nullptr, PluginFieldType::kCHAR, 0);
    mPluginAttributes.emplace_back(kIDENTITY_FIELDS[1], nullptr, PluginFieldType::kCHAR, 0);
    mFC.nbFields = static_cast<int32_t>(mPluginAttributes.size());
    mFC.fields = mPluginAttributes.data();
}

char const* Wkv4PluginCreator::getPluginName() const noexcept
{
    return Wkv4Plugin::kNAME;
}

char const* Wkv4PluginCreator::getPluginVersion() const noexcept
{
    return kPLUGIN_VERSION;
}

char const* Wkv4PluginCreator::getPluginNamespace() const noexcept
{
    return kPLUGIN_NAMESPACE;
}

PluginFieldCollection const* Wkv4PluginCreator::getFieldNames() noexcept
{
    return &mFC;
}

IPluginV3* Wkv4PluginCreator::createPlugin(
    char const* /*name*/, PluginFieldCollection const* fc, TensorRTPhase /*phase*/) noexcept
{
    try
    {
        char const* const plugin = Wkv4Plugin::kNAME;
        int32_t const nbFields = fc == nullptr ? 0 : fc->nbFields;
        for (int32_t i = 0; i < nbFields; ++i)
        {
            PluginField const& field = fc->fields[i];
            validate(field.name != nullptr, plugin, "a plugin field has no name");
            validate(readPluginIdentityField(field, plugin), plugin,
                std::string("unknown attribute '") + field.name + "'; accepted: plugin_namespace, plugin_version");
        }
        return new Wkv4Plugin();
    }
    catch (std::exception const& e)
    {
        caughtError(e);
    }
    return nullptr;
}

} // namespace rrwkv
