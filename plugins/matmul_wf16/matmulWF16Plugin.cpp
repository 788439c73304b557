/*
 * TensorRT IPluginV3 for rrwkv::MatMulWF16: shape/type contract on the host, matmulWF16Forward on the device.
 */
#include "matmul_wf16/matmulWF16Plugin.h"

#include "common/pluginUtils.h"
#include "matmul_wf16/matmulWF16Kernel.h"
#include "matmul_wf16/matmulWF16Math.h"

#include <cstring>
#include <optional>
#include <sstream>
#include <string>

using namespace nvinfer1;

namespace rrwkv
{
namespace
{
char const kFIELD_N[] = "N";

//! M: the product of x's leading dims.
int64_t rowsOf(Dims const& x)
{
    int64_t rows = 1;
    for (int32_t a = 0; a + 1 < x.nbDims; ++a)
    {
        rows *= x.d[a];
    }
    return rows;
}

//! A PluginError naming the input and the rule when both extents are known and differ.
void expectDim(int32_t input, char const* name, int32_t axis, int64_t got, int64_t want, std::string const& rule)
{
    if (got < 0 || want < 0 || got == want)
    {
        return;
    }
    std::ostringstream msg;
    msg << "input " << input << " '" << name << "' has dim " << axis << " = " << got << ", expected " << want << " ("
        << rule << ")";
    validate(false, MatMulWF16Plugin::kNAME, msg.str());
}
} // namespace

InputContract const MatMulWF16Plugin::kINPUT_CONTRACT[MatMulWF16Plugin::kNB_INPUTS] = {{"x", "...K"}, {"w", "GKL"}};

MatMulWF16Plugin::MatMulWF16Plugin(int32_t n)
    : mN(n)
{
    validate(mN >= 1, kNAME, "attribute 'N' (output features) must be >= 1, got " + std::to_string(mN));
    validate(mN <= kWF16MaxN, kNAME,
        "attribute 'N' (output features) must be <= " + std::to_string(kWF16MaxN) + ", got " + std::to_string(mN));
    initFieldsToSerialize({{kFIELD_N, &mN, PluginFieldType::kINT32, 1}});
}

MatMulWF16Plugin::MatMulWF16Plugin(MatMulWF16Plugin const& other)
    : MatMulWF16Plugin(other.mN)
{
}

template <typename ExtentFn>
void MatMulWF16Plugin::checkWeightShape(ExtentFn const& extent) const
{
    int64_t const G = (static_cast<int64_t>(mN) + kWF16GroupCols - 1) / kWF16GroupCols; // wf16GroupCount, in 64 bits
    expectDim(kW, "w", 0, extent(kW, 0), G, "G = ceil(N / 64) for N = " + std::to_string(mN));
    expectDim(kW, "w", 2, extent(kW, 2), kWF16GroupCols, "the columns of a group");
}

void MatMulWF16Plugin::inferOutputTypes(DataType* outputTypes, DataType const* inputTypes) const
{
    validateInputType(inputTypes, kX, "x", DataType::kFLOAT, kNAME);
    validateInputType(inputTypes, kW, "w", DataType::kHALF, kNAME);
    outputTypes[0] = DataType::kFLOAT; // y
}

void MatMulWF16Plugin::inferOutputShapes(DimsExprs const* inputs, DimsExprs* outputs, IExprBuilder& exprBuilder) const
{
    checkWeightShape([&](int32_t i, int32_t a) { return constantOrUnknown(inputs[i].d[a]); });
    int32_t const xRank = inputs[kX].nbDims;
    outputs[0] = inputs[kX]; // y [..., N]: x's leading dims
    outputs[0].d[xRank - 1] = exprBuilder.constant(mN);
}

bool MatMulWF16Plugin::supportsTensor(
    int32_t pos, PluginTensorDesc const& desc, DynamicPluginTensorDesc const* /*inOut*/) const
{
    switch (pos)
    {
    case 0: return desc.type == DataType::kFLOAT; // x [..., K]
    case 1: return desc.type == DataType::kHALF; // w [G, K, 64]: packed fp16 weight
    case 2: return desc.type == DataType::kFLOAT; // y [..., N]
    default: return false;
    }
}

void MatMulWF16Plugin::checkConfiguredShapes(DynamicPluginTensorDesc const* in) const
{
    checkWeightShape(
        [&](int32_t i, int32_t a) { return in[i].min.d[a] == in[i].max.d[a] ? in[i].max.d[a] : int64_t{-1}; });
}

void MatMulWF16Plugin::checkRuntimeShapes(PluginTensorDesc const* in) const
{
    checkWeightShape([&](int32_t i, int32_t a) { return in[i].dims.d[a]; });
}

void MatMulWF16Plugin::forward(PluginTensorDesc const* inputDesc, void const* const* inputs, void* const* outputs,
    void* /*workspace*/, cudaStream_t stream) const
{
    Dims const& xDims = inputDesc[kX].dims; // [..., K]; onShapeChange checked w against it
    int32_t const M = toInt32(rowsOf(xDims), kNAME, "M (the rows of x)");
    int32_t const K = toInt32(xDims.d[xDims.nbDims - 1], kNAME, "K");
    cudaError_t const status = matmulWF16Forward(stream, M, K, mN, static_cast<float const*>(inputs[kX]),
        static_cast<uint16_t const*>(inputs[kW]), static_cast<float*>(outputs[0]));
    validate(status == cudaSuccess, kNAME, std::string("matmulWF16Forward failed: ") + cudaGetErrorName(status));
}

MatMulWF16PluginCreator::MatMulWF16PluginCreator()
    : RrwkvPluginCreatorBase({{kFIELD_N, nullptr, PluginFieldType::kINT32, 1}})
{
}

MatMulWF16Plugin* MatMulWF16PluginCreator::create(PluginFieldCollection const* fc) const
{
    char const* const plugin = MatMulWF16Plugin::kNAME;
    std::optional<int32_t> n;
    readFields(fc, [&](PluginField const& field) {
        if (std::strcmp(field.name, kFIELD_N) == 0)
        {
            n = readInt32Field(field, plugin);
            return true;
        }
        return false;
    });
    validate(n.has_value(), plugin, "required attribute 'N' (output features, INT >= 1) is missing");
    return new MatMulWF16Plugin(*n);
}

} // namespace rrwkv
