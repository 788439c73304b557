/*
 * TensorRT IPluginV3 for rrwkv::LTMUpdate: shape/type contract on the host, ltmUpdateForward on the device.
 */
#include "ltm_update/ltmUpdatePlugin.h"

#include "common/pluginUtils.h"
#include "ltm_update/ltmUpdateKernel.h"

#include <cstring>
#include <optional>
#include <sstream>
#include <string>

using namespace nvinfer1;

namespace rrwkv
{
namespace
{
char const kFIELD_STICKY[] = "sticky";

// G_inf's rows P must be S_samp's rows M plus X_new's L (each -1 when unknown), and M, NB >= 1.
void checkRows(int64_t P, int64_t M, int64_t L, int64_t NB)
{
    if (P >= 0 && M >= 0 && L >= 0 && P != M + L)
    {
        std::ostringstream msg;
        msg << "input 4 'G_inf' has " << P << " rows, expected M + L = " << M << " + " << L
            << " (S_samp's rows + X_new's L)";
        validate(false, LtmUpdatePlugin::kNAME, msg.str());
    }
    validate(M != 0, LtmUpdatePlugin::kNAME, "input 5 'S_samp' needs M >= 1 rows");
    validate(NB != 0, LtmUpdatePlugin::kNAME, "input 6 'hist' needs NB >= 1 bins");
}
} // namespace

InputContract const LtmUpdatePlugin::kINPUT_CONTRACT[LtmUpdatePlugin::kNB_INPUTS] = {{"B_past", "BNE"},
    {"X_new", "BLE"}, {"mode", "B"}, {"G", "LN"}, {"G_inf", "PN"}, {"S_samp", "MN"}, {"hist", "BH"},
    {"basis_mu", "N"}, {"basis_sigma", "N"}};

LtmUpdatePlugin::LtmUpdatePlugin(int32_t sticky)
    : mSticky(sticky)
{
    validate(mSticky == 0 || mSticky == 1, kNAME, "attribute 'sticky' must be 0 or 1, got " + std::to_string(mSticky));
    initFieldsToSerialize({{kFIELD_STICKY, &mSticky, PluginFieldType::kINT32, 1}});
}

LtmUpdatePlugin::LtmUpdatePlugin(LtmUpdatePlugin const& other)
    : LtmUpdatePlugin(other.mSticky)
{
}

void LtmUpdatePlugin::inferOutputTypes(DataType* outputTypes, DataType const* inputTypes) const
{
    validateInputType(inputTypes, kB_PAST, "B_past", DataType::kFLOAT, kNAME);
    validateInputType(inputTypes, kX_NEW, "X_new", DataType::kFLOAT, kNAME);
    validateInputType(inputTypes, kMODE, "mode", DataType::kINT64, kNAME);
    validateInputType(inputTypes, kG, "G", DataType::kFLOAT, kNAME);
    validateInputType(inputTypes, kG_INF, "G_inf", DataType::kFLOAT, kNAME);
    validateInputType(inputTypes, kS_SAMP, "S_samp", DataType::kFLOAT, kNAME);
    validateInputType(inputTypes, kHIST, "hist", DataType::kFLOAT, kNAME);
    validateInputType(inputTypes, kBASIS_MU, "basis_mu", DataType::kFLOAT, kNAME);
    validateInputType(inputTypes, kBASIS_SIGMA, "basis_sigma", DataType::kFLOAT, kNAME);
    outputTypes[0] = DataType::kFLOAT; // B_new
}

void LtmUpdatePlugin::inferOutputShapes(
    DimsExprs const* inputs, DimsExprs* outputs, IExprBuilder& /*exprBuilder*/) const
{
    checkRows(constantOrUnknown(inputs[kG_INF].d[0]), constantOrUnknown(inputs[kS_SAMP].d[0]),
        constantOrUnknown(inputs[kX_NEW].d[1]), constantOrUnknown(inputs[kHIST].d[1]));
    outputs[0] = inputs[kB_PAST]; // B_new [B,N,e]
}

bool LtmUpdatePlugin::supportsTensor(
    int32_t pos, PluginTensorDesc const& desc, DynamicPluginTensorDesc const* /*inOut*/) const
{
    switch (pos)
    {
    case kMODE: return desc.type == DataType::kINT64;     // mode [B]
    case kB_PAST:                                          // B_past [B,N,e]
    case kX_NEW:                                           // X_new [B,L,e]
    case kG:                                               // G [L,N]
    case kG_INF:                                           // G_inf [M+L,N]
    case kS_SAMP:                                          // S_samp [M,N]
    case kHIST:                                            // hist [B,NB]
    case kBASIS_MU:                                        // basis_mu [N]
    case kBASIS_SIGMA:                                     // basis_sigma [N]
    case kNB_INPUTS: return desc.type == DataType::kFLOAT; // B_new [B,N,e]
    default: return false;
    }
}

void LtmUpdatePlugin::checkConfiguredShapes(DynamicPluginTensorDesc const* in) const
{
    auto known = [&](int32_t i, int32_t a) { return in[i].min.d[a] == in[i].max.d[a] ? in[i].max.d[a] : int64_t{-1}; };
    checkRows(known(kG_INF, 0), known(kS_SAMP, 0), known(kX_NEW, 1), in[kHIST].max.d[1]);
}

void LtmUpdatePlugin::checkRuntimeShapes(PluginTensorDesc const* in) const
{
    checkRows(in[kG_INF].dims.d[0], in[kS_SAMP].dims.d[0], in[kX_NEW].dims.d[1], in[kHIST].dims.d[1]);
}

size_t LtmUpdatePlugin::workspaceBytes(DynamicPluginTensorDesc const* in) const
{
    int64_t const B = in[kB_PAST].max.d[0];
    int64_t const e = in[kB_PAST].max.d[2];
    int64_t const M = in[kS_SAMP].max.d[0];
    validate(B >= 0 && e >= 0 && M >= 0, kNAME, "inputs 'B_past' and 'S_samp' have no maximum shape in the profile");
    return ltmUpdateWorkspaceBytes(B, M, e);
}

void LtmUpdatePlugin::forward(PluginTensorDesc const* inputDesc, void const* const* inputs, void* const* outputs,
    void* workspace, cudaStream_t stream) const
{
    Dims const& pDims = inputDesc[kB_PAST].dims; // [B,N,e]; onShapeChange checked the rest
    int32_t const B = toInt32(pDims.d[0], kNAME, "B");
    int32_t const N = toInt32(pDims.d[1], kNAME, "N");
    int32_t const e = toInt32(pDims.d[2], kNAME, "e");
    int32_t const L = toInt32(inputDesc[kX_NEW].dims.d[1], kNAME, "L");
    int32_t const M = toInt32(inputDesc[kS_SAMP].dims.d[0], kNAME, "M");
    int32_t const NB = toInt32(inputDesc[kHIST].dims.d[1], kNAME, "NB");
    size_t const bytes = ltmUpdateWorkspaceBytes(B, M, e);
    validate(workspace != nullptr || bytes == 0, kNAME,
        "enqueue got no workspace; it needs " + std::to_string(bytes) + " bytes (getWorkspaceSize)");
    cudaError_t const status = ltmUpdateForward(stream, B, N, e, L, M, NB, mSticky,
        static_cast<float const*>(inputs[kB_PAST]), static_cast<float const*>(inputs[kX_NEW]),
        static_cast<int64_t const*>(inputs[kMODE]), static_cast<float const*>(inputs[kG]),
        static_cast<float const*>(inputs[kG_INF]), static_cast<float const*>(inputs[kS_SAMP]),
        static_cast<float const*>(inputs[kHIST]), static_cast<float const*>(inputs[kBASIS_MU]),
        static_cast<float const*>(inputs[kBASIS_SIGMA]), static_cast<float*>(workspace),
        static_cast<float*>(outputs[0]));
    validate(status == cudaSuccess, kNAME, std::string("ltmUpdateForward failed: ") + cudaGetErrorName(status));
}

LtmUpdatePluginCreator::LtmUpdatePluginCreator()
    : RrwkvPluginCreatorBase({{kFIELD_STICKY, nullptr, PluginFieldType::kINT32, 1}})
{
}

LtmUpdatePlugin* LtmUpdatePluginCreator::create(PluginFieldCollection const* fc) const
{
    char const* const plugin = LtmUpdatePlugin::kNAME;
    std::optional<int32_t> sticky;
    readFields(fc, [&](PluginField const& field) {
        if (std::strcmp(field.name, kFIELD_STICKY) == 0)
        {
            sticky = readInt32Field(field, plugin);
            return true;
        }
        return false;
    });
    return new LtmUpdatePlugin(sticky.value_or(0));
}

} // namespace rrwkv
