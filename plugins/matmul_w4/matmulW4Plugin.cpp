/*
 * TensorRT IPluginV3 for rrwkv::MatMulW4: shape/type contract on the host, matmulW4Forward on the device.
 */
#include "matmul_w4/matmulW4Plugin.h"

#include "common/pluginUtils.h"
#include "matmul_w4/matmulW4Kernel.h"
#include "matmul_w4/matmulW4Math.h"

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
char const kFIELD_BLOCK_SIZE[] = "block_size";
constexpr int32_t kDEFAULT_BLOCK_SIZE{128};
constexpr size_t kWORKSPACE_ALIGN{256};

//! The workspace of one enqueue (matmulW4Kernel.h): xq int16 [M, Kpad] at offset 0, then xScale fp32 [M] at the
//! next 256-byte boundary.
struct W4Workspace
{
    size_t xScaleOffset;
    size_t bytes;
};

W4Workspace w4Workspace(int64_t M, int64_t Kpad)
{
    size_t const xqBytes = static_cast<size_t>(M * Kpad) * sizeof(int16_t);
    size_t const xScaleOffset = (xqBytes + kWORKSPACE_ALIGN - 1) / kWORKSPACE_ALIGN * kWORKSPACE_ALIGN;
    return W4Workspace{xScaleOffset, xScaleOffset + static_cast<size_t>(M) * sizeof(float)};
}

//! NB * blockSize for K >= 0 rows (64-bit: K is any extent TensorRT passes).
int64_t paddedK(int64_t K, int32_t blockSize)
{
    return (K + blockSize - 1) / blockSize * blockSize;
}

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
    validate(false, MatMulW4Plugin::kNAME, msg.str());
}
} // namespace

InputContract const MatMulW4Plugin::kINPUT_CONTRACT[MatMulW4Plugin::kNB_INPUTS]
    = {{"x", "...K"}, {"w", "GPY"}, {"scale", "GBL"}};

MatMulW4Plugin::MatMulW4Plugin(int32_t n, int32_t blockSize)
    : mN(n)
    , mBlockSize(blockSize)
{
    validate(mN >= 1, kNAME, "attribute 'N' (output features) must be >= 1, got " + std::to_string(mN));
    validate(mN <= kW4MaxN, kNAME,
        "attribute 'N' (output features) must be <= " + std::to_string(kW4MaxN) + ", got " + std::to_string(mN));
    validate(mBlockSize >= 2 && mBlockSize <= kW4MaxBlock && mBlockSize % 2 == 0, kNAME,
        "attribute 'block_size' must be an even value in [2, " + std::to_string(kW4MaxBlock) + "], got "
            + std::to_string(mBlockSize));
    initFieldsToSerialize({{kFIELD_N, &mN, PluginFieldType::kINT32, 1},
        {kFIELD_BLOCK_SIZE, &mBlockSize, PluginFieldType::kINT32, 1}});
}

MatMulW4Plugin::MatMulW4Plugin(MatMulW4Plugin const& other)
    : MatMulW4Plugin(other.mN, other.mBlockSize)
{
}

template <typename ExtentFn>
void MatMulW4Plugin::checkWeightShapes(int32_t xRank, ExtentFn const& extent) const
{
    int64_t const K = extent(kX, xRank - 1);
    int64_t const NB = K < 0 ? -1 : paddedK(K, mBlockSize) / mBlockSize;
    int64_t const G = (static_cast<int64_t>(mN) + kW4GroupCols - 1) / kW4GroupCols; // w8GroupCount, in 64 bits
    std::string const forN = " for N = " + std::to_string(mN);
    std::string const forK
        = " for x's last dim K = " + std::to_string(K) + " and block_size = " + std::to_string(mBlockSize);
    expectDim(kW, "w", 0, extent(kW, 0), G, "G = ceil(N / 64)" + forN);
    expectDim(kW, "w", 1, extent(kW, 1), NB < 0 ? -1 : NB * mBlockSize / 2, "Kpad / 2 = NB * block_size / 2" + forK);
    expectDim(kW, "w", 2, extent(kW, 2), kW4PairBytes, "the bytes of a row pair of a group");
    expectDim(kSCALE, "scale", 0, extent(kSCALE, 0), G, "G = ceil(N / 64)" + forN);
    expectDim(kSCALE, "scale", 1, extent(kSCALE, 1), NB, "NB = ceil(K / block_size)" + forK);
    expectDim(kSCALE, "scale", 2, extent(kSCALE, 2), kW4GroupCols, "the columns of a group");
}

void MatMulW4Plugin::inferOutputTypes(DataType* outputTypes, DataType const* inputTypes) const
{
    validateInputType(inputTypes, kX, "x", DataType::kFLOAT, kNAME);
    validateInputType(inputTypes, kW, "w", DataType::kINT8, kNAME);
    validateInputType(inputTypes, kSCALE, "scale", DataType::kFLOAT, kNAME);
    outputTypes[0] = DataType::kFLOAT; // y
}

void MatMulW4Plugin::inferOutputShapes(DimsExprs const* inputs, DimsExprs* outputs, IExprBuilder& exprBuilder) const
{
    int32_t const xRank = inputs[kX].nbDims;
    checkWeightShapes(xRank, [&](int32_t i, int32_t a) { return constantOrUnknown(inputs[i].d[a]); });
    outputs[0] = inputs[kX]; // y [..., N]: x's leading dims
    outputs[0].d[xRank - 1] = exprBuilder.constant(mN);
}

bool MatMulW4Plugin::supportsTensor(
    int32_t pos, PluginTensorDesc const& desc, DynamicPluginTensorDesc const* /*inOut*/) const
{
    switch (pos)
    {
    case 0: return desc.type == DataType::kFLOAT; // x [..., K]
    case 1: return desc.type == DataType::kINT8; // w [G, Kpad/2, 64]: packed int4 weight
    case 2: return desc.type == DataType::kFLOAT; // scale [G, NB, 64]
    case 3: return desc.type == DataType::kFLOAT; // y [..., N]
    default: return false;
    }
}

void MatMulW4Plugin::checkConfiguredShapes(DynamicPluginTensorDesc const* in) const
{
    checkWeightShapes(in[kX].max.nbDims,
        [&](int32_t i, int32_t a) { return in[i].min.d[a] == in[i].max.d[a] ? in[i].max.d[a] : int64_t{-1}; });
}

void MatMulW4Plugin::checkRuntimeShapes(PluginTensorDesc const* in) const
{
    checkWeightShapes(in[kX].dims.nbDims, [&](int32_t i, int32_t a) { return in[i].dims.d[a]; });
}

size_t MatMulW4Plugin::workspaceBytes(DynamicPluginTensorDesc const* in) const
{
    Dims const& xMax = in[kX].max; // the profile's largest x; configurePlugin checked the rank
    int64_t const K = xMax.d[xMax.nbDims - 1];
    int64_t const M = rowsOf(xMax);
    validate(K >= 0 && M >= 0, kNAME, "input 'x' has no maximum shape in the optimisation profile");
    return w4Workspace(M, paddedK(K, mBlockSize)).bytes;
}

void MatMulW4Plugin::forward(PluginTensorDesc const* inputDesc, void const* const* inputs, void* const* outputs,
    void* workspace, cudaStream_t stream) const
{
    Dims const& xDims = inputDesc[kX].dims; // [..., K]; onShapeChange checked w and scale against it
    int32_t const M = toInt32(rowsOf(xDims), kNAME, "M (the rows of x)");
    int32_t const K = toInt32(xDims.d[xDims.nbDims - 1], kNAME, "K");
    W4Workspace const ws = w4Workspace(M, paddedK(K, mBlockSize));
    validate(workspace != nullptr || ws.bytes == 0, kNAME,
        "enqueue got no workspace; it needs " + std::to_string(ws.bytes) + " bytes (getWorkspaceSize)");
    auto* const scratch = static_cast<char*>(workspace);
    cudaError_t const status = matmulW4Forward(stream, M, K, mN, mBlockSize, static_cast<float const*>(inputs[kX]),
        static_cast<int8_t const*>(inputs[kW]), static_cast<float const*>(inputs[kSCALE]),
        reinterpret_cast<int16_t*>(scratch), reinterpret_cast<float*>(scratch + ws.xScaleOffset),
        static_cast<float*>(outputs[0]));
    validate(status == cudaSuccess, kNAME, std::string("matmulW4Forward failed: ") + cudaGetErrorName(status));
}

MatMulW4PluginCreator::MatMulW4PluginCreator()
    : RrwkvPluginCreatorBase({{kFIELD_N, nullptr, PluginFieldType::kINT32, 1},
        {kFIELD_BLOCK_SIZE, nullptr, PluginFieldType::kINT32, 1}})
{
}

MatMulW4Plugin* MatMulW4PluginCreator::create(PluginFieldCollection const* fc) const
{
    char const* const plugin = MatMulW4Plugin::kNAME;
    std::optional<int32_t> n;
    int32_t blockSize{kDEFAULT_BLOCK_SIZE};
    readFields(fc, [&](PluginField const& field) {
        if (std::strcmp(field.name, kFIELD_N) == 0)
        {
            n = readInt32Field(field, plugin);
            return true;
        }
        if (std::strcmp(field.name, kFIELD_BLOCK_SIZE) == 0)
        {
            blockSize = readInt32Field(field, plugin);
            return true;
        }
        return false;
    });
    validate(n.has_value(), plugin, "required attribute 'N' (output features, INT >= 1) is missing");
    return new MatMulW4Plugin(*n, blockSize);
}

} // namespace rrwkv
