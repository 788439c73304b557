/*
 * TensorRT IPluginV3 for rrwkv::ContinuousGaussianAttention: shape/type contract on the host,
 * continuousGaussianAttentionForward<T> on the device.
 */
#include "continuous_gaussian_attention/continuousGaussianAttentionPlugin.h"

#include "common/pluginUtils.h"
#include "continuous_gaussian_attention/continuousGaussianAttentionKernel.h"

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
char const kFIELD_SIGMA2_MIN[] = "sigma2_min";
char const kFIELD_SCALE[] = "scale";

void validatePositive(float value, char const* field)
{
    std::ostringstream msg;
    msg << "attribute '" << field << "' must be finite and > 0, got " << value;
    validate(value > 0.F && std::isfinite(value), ContinuousGaussianAttentionPlugin::kNAME, msg.str());
}
} // namespace

InputContract const ContinuousGaussianAttentionPlugin::kINPUT_CONTRACT[ContinuousGaussianAttentionPlugin::kNB_INPUTS]
    = {{"q", "BHTD"}, {"K", "BHND"}, {"V", "BHND"}, {"w_mu", "N"}, {"w_sigma", "N"}, {"basis_mu", "N"},
        {"basis_sigma", "N"}};

ContinuousGaussianAttentionPlugin::ContinuousGaussianAttentionPlugin(float sigma2Min, float scale)
    : mSigma2Min(sigma2Min)
    , mScale(scale)
{
    validatePositive(mSigma2Min, kFIELD_SIGMA2_MIN);
    validatePositive(mScale, kFIELD_SCALE);
    initFieldsToSerialize({{kFIELD_SIGMA2_MIN, &mSigma2Min, PluginFieldType::kFLOAT32, 1},
        {kFIELD_SCALE, &mScale, PluginFieldType::kFLOAT32, 1}});
}

ContinuousGaussianAttentionPlugin::ContinuousGaussianAttentionPlugin(ContinuousGaussianAttentionPlugin const& other)
    : ContinuousGaussianAttentionPlugin(other.mSigma2Min, other.mScale)
{
}

void ContinuousGaussianAttentionPlugin::inferOutputTypes(DataType* outputTypes, DataType const* inputTypes) const
{
    DataType const act = inputTypes[kQ];
    std::ostringstream msg;
    msg << "input " << kQ << " 'q' must be float32 or float16, got " << dataTypeName(act);
    validate(act == DataType::kFLOAT || act == DataType::kHALF, kNAME, msg.str());
    validateInputType(inputTypes, kK, "K (same dtype as q)", act, kNAME);
    validateInputType(inputTypes, kV, "V (same dtype as q)", act, kNAME);
    validateInputType(inputTypes, kW_MU, "w_mu", DataType::kFLOAT, kNAME);
    validateInputType(inputTypes, kW_SIGMA, "w_sigma", DataType::kFLOAT, kNAME);
    validateInputType(inputTypes, kBASIS_MU, "basis_mu", DataType::kFLOAT, kNAME);
    validateInputType(inputTypes, kBASIS_SIGMA, "basis_sigma", DataType::kFLOAT, kNAME);
    outputTypes[0] = act;              // ctx: dtype of q
    outputTypes[1] = DataType::kFLOAT; // mu
    outputTypes[2] = DataType::kFLOAT; // sigma2
}

void ContinuousGaussianAttentionPlugin::inferOutputShapes(
    DimsExprs const* inputs, DimsExprs* outputs, IExprBuilder& /*exprBuilder*/) const
{
    outputs[0] = inputs[kQ]; // ctx [B,H,T,d]
    DimsExprs rows{};       // mu, sigma2 [B,H,T]
    rows.nbDims = 3;
    for (int32_t a = 0; a < 3; ++a)
    {
        rows.d[a] = inputs[kQ].d[a];
    }
    outputs[1] = rows;
    outputs[2] = rows;
}

bool ContinuousGaussianAttentionPlugin::supportsTensor(
    int32_t pos, PluginTensorDesc const& desc, DynamicPluginTensorDesc const* inOut) const
{
    bool const isFloat = desc.type == DataType::kFLOAT;
    switch (pos)
    {
    case 0: return isFloat || desc.type == DataType::kHALF; // q [B,H,T,d]: the activation dtype
    case 1: return desc.type == inOut[kQ].desc.type;        // K [B,H,N,d]: same as q
    case 2: return desc.type == inOut[kQ].desc.type;        // V [B,H,N,d]: same as q
    case 3: return isFloat;                                  // w_mu [N]
    case 4: return isFloat;                                  // w_sigma [N]
    case 5: return isFloat;                                  // basis_mu [N]
    case 6: return isFloat;                                  // basis_sigma [N]
    case 7: return desc.type == inOut[kQ].desc.type;        // ctx [B,H,T,d]: same as q
    case 8: return isFloat;                                  // mu [B,H,T]
    case 9: return isFloat;                                  // sigma2 [B,H,T]
    default: return false;
    }
}

void ContinuousGaussianAttentionPlugin::forward(PluginTensorDesc const* inputDesc, void const* const* inputs,
    void* const* outputs, void* /*workspace*/, cudaStream_t stream) const
{
    Dims const& qDims = inputDesc[kQ].dims; // [B,H,T,d]; onShapeChange checked the rest
    int32_t const B = toInt32(qDims.d[0], kNAME, "B");
    int32_t const H = toInt32(qDims.d[1], kNAME, "H");
    int32_t const T = toInt32(qDims.d[2], kNAME, "T");
    int32_t const d = toInt32(qDims.d[3], kNAME, "d");
    int32_t const N = toInt32(inputDesc[kK].dims.d[2], kNAME, "N"); // K [B,H,N,d]
    cudaError_t const status = dispatchActivation(inputDesc[kQ].type, [&](auto tag) {
        using Act = typename decltype(tag)::type; // q, K, V, ctx
        return continuousGaussianAttentionForward<Act>(stream, B, H, T, N, d, mSigma2Min, mScale,
            static_cast<Act const*>(inputs[kQ]), static_cast<Act const*>(inputs[kK]),
            static_cast<Act const*>(inputs[kV]), static_cast<float const*>(inputs[kW_MU]),
            static_cast<float const*>(inputs[kW_SIGMA]), static_cast<float const*>(inputs[kBASIS_MU]),
            static_cast<float const*>(inputs[kBASIS_SIGMA]), static_cast<Act*>(outputs[0]),
            static_cast<float*>(outputs[1]), static_cast<float*>(outputs[2]));
    });
    validate(status == cudaSuccess, kNAME,
        std::string("continuousGaussianAttentionForward failed: ") + cudaGetErrorName(status));
}

ContinuousGaussianAttentionPluginCreator::ContinuousGaussianAttentionPluginCreator()
    : RrwkvPluginCreatorBase({{kFIELD_SIGMA2_MIN, nullptr, PluginFieldType::kFLOAT32, 1},
        {kFIELD_SCALE, nullptr, PluginFieldType::kFLOAT32, 1}})
{
}

ContinuousGaussianAttentionPlugin* ContinuousGaussianAttentionPluginCreator::create(
    PluginFieldCollection const* fc) const
{
    char const* const plugin = ContinuousGaussianAttentionPlugin::kNAME;
    std::optional<float> sigma2Min;
    std::optional<float> scale;
    readFields(fc, [&](PluginField const& field) {
        if (std::strcmp(field.name, kFIELD_SIGMA2_MIN) == 0)
        {
            sigma2Min = readFloat32Field(field, plugin);
            return true;
        }
        if (std::strcmp(field.name, kFIELD_SCALE) == 0)
        {
            scale = readFloat32Field(field, plugin);
            return true;
        }
        return false;
    });
    validate(sigma2Min.has_value(), plugin,
        "required attribute 'sigma2_min' (variance floor, FLOAT, finite and > 0) is missing");
    validate(scale.has_value(), plugin, "required attribute 'scale' (score scale, FLOAT, finite and > 0) is missing");
    return new ContinuousGaussianAttentionPlugin(*sigma2Min, *scale);
}

} // namespace rrwkv
