/*
 * The TensorRT IPluginV3 of the weight-only matmul ops (common/weightOnlyMatmul.h), one class template over an op's
 * plugin traits; the IPluginV3 interface itself is common/pluginBase.h. Each op's <op>Plugin.h defines its traits
 * and names the instantiations <Op>Plugin and <Op>PluginCreator (the names the registration lists use).
 * Inputs:  x [..., K] f32; w (the format's packed weight); scale [G, NB, 64] f32 (block-quantised formats only).
 * Outputs: y [..., N] f32.
 * Attributes: N (INT >= 1, required), block_size (block-quantised formats: INT, even in [2, kMAX_BLOCK], default
 * 128), plugin_namespace, plugin_version.
 * Workspace (block-quantised formats): the quantised rows of x, xq int16 [M, Kpad] at offset 0, then xScale fp32
 * [M] at the next 256-byte boundary, sized for the profile's largest x.
 *
 * Plugin traits: the members of the op's <Op>Traits (weightOnlyMatmul.h), and
 *   kINPUT_CONTRACT[]  rank and named axes of each input, in order (spec.yaml); its size is the input count;
 *   kINPUT_TYPES[]     the dtype of each input, in order;
 *   Weight             the element type of w that the launcher takes;
 *   kFORWARD           the CUDA launcher (<op>Kernel.h): (stream, M, K, N, blockSize, x, w, scale, xq, xScale, y)
 *                      for a block-quantised format, else (stream, M, K, N, x, w, y);
 *   kFORWARD_NAME      its name, for the error message.
 */
#ifndef RRWKV_WEIGHT_ONLY_MATMUL_PLUGIN_H
#define RRWKV_WEIGHT_ONLY_MATMUL_PLUGIN_H

#include "NvInferRuntime.h"

#include "common/pluginBase.h"
#include "common/pluginUtils.h"
#include "common/weightOnlyMatmul.h"

#include <cstring>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>

namespace rrwkv
{

template <typename Traits>
class WeightOnlyMatmulPlugin : public RrwkvPluginBase<WeightOnlyMatmulPlugin<Traits>>
{
public:
    static constexpr bool kBLOCKED{kBLOCK_QUANTIZED<Traits>};
    static constexpr char const* kNAME{Traits::kNAME};
    static constexpr int32_t kNB_INPUTS{static_cast<int32_t>(std::size(Traits::kINPUT_CONTRACT))};
    static constexpr int32_t kNB_OUTPUTS{1};
    // Input indices.
    static constexpr int32_t kX{0};
    static constexpr int32_t kW{1};
    static constexpr int32_t kSCALE{2}; // block-quantised formats only
    static constexpr InputContract const* kINPUT_CONTRACT{Traits::kINPUT_CONTRACT};
    static_assert(kNB_INPUTS == (kBLOCKED ? 3 : 2), "x, w and (block-quantised formats only) scale");
    static_assert(std::size(Traits::kINPUT_TYPES) == std::size(Traits::kINPUT_CONTRACT), "one dtype per input");

    //! n: output features N (>= 1); blockSize: rows per scale block (block-quantised formats: even, 2..kMAX_BLOCK;
    //! ignored otherwise). Throws PluginError otherwise.
    explicit WeightOnlyMatmulPlugin(int32_t n, int32_t blockSize = kWEIGHT_ONLY_DEFAULT_BLOCK)
        : mN(n)
        , mBlockSize(blockSize)
    {
        validate(mN >= 1, kNAME, "attribute 'N' (output features) must be >= 1, got " + std::to_string(mN));
        validate(mN <= Traits::kMAX_N, kNAME,
            "attribute 'N' (output features) must be <= " + std::to_string(Traits::kMAX_N) + ", got "
                + std::to_string(mN));
        if constexpr (kBLOCKED)
        {
            validate(mBlockSize >= 2 && mBlockSize <= Traits::kMAX_BLOCK && mBlockSize % 2 == 0, kNAME,
                "attribute 'block_size' must be an even value in [2, " + std::to_string(Traits::kMAX_BLOCK) + "], got "
                    + std::to_string(mBlockSize));
            this->initFieldsToSerialize({{kFIELD_N, &mN, nvinfer1::PluginFieldType::kINT32, 1},
                {kFIELD_BLOCK_SIZE, &mBlockSize, nvinfer1::PluginFieldType::kINT32, 1}});
        }
        else
        {
            this->initFieldsToSerialize({{kFIELD_N, &mN, nvinfer1::PluginFieldType::kINT32, 1}});
        }
    }

    WeightOnlyMatmulPlugin(WeightOnlyMatmulPlugin const& other)
        : WeightOnlyMatmulPlugin(other.mN, other.mBlockSize)
    {
    }

    ~WeightOnlyMatmulPlugin() override = default;

    static constexpr char const* kFIELD_N{"N"};
    static constexpr char const* kFIELD_BLOCK_SIZE{"block_size"};

private:
    friend class RrwkvPluginBase<WeightOnlyMatmulPlugin>;

    static constexpr size_t kWORKSPACE_ALIGN{256};

    //! The workspace of one enqueue (block-quantised formats): xq int16 [M, Kpad] at offset 0, then xScale fp32 [M]
    //! at the next kWORKSPACE_ALIGN-byte boundary.
    struct Workspace
    {
        size_t xScaleOffset;
        size_t bytes;
    };

    static Workspace workspaceOf(int64_t M, int64_t Kpad)
    {
        size_t const xqBytes = static_cast<size_t>(M * Kpad) * sizeof(int16_t);
        size_t const xScaleOffset = (xqBytes + kWORKSPACE_ALIGN - 1) / kWORKSPACE_ALIGN * kWORKSPACE_ALIGN;
        return Workspace{xScaleOffset, xScaleOffset + static_cast<size_t>(M) * sizeof(float)};
    }

    //! M: the product of x's leading dims.
    static int64_t rowsOf(nvinfer1::Dims const& x)
    {
        int64_t rows = 1;
        for (int32_t a = 0; a + 1 < x.nbDims; ++a)
        {
            rows *= x.d[a];
        }
        return rows;
    }

    //! A PluginError naming the input and the rule when both extents are known and differ.
    static void expectDim(int32_t input, char const* name, int32_t axis, int64_t got, int64_t want,
        std::string const& rule)
    {
        if (got < 0 || want < 0 || got == want)
        {
            return;
        }
        std::ostringstream msg;
        msg << "input " << input << " '" << name << "' has dim " << axis << " = " << got << ", expected " << want
            << " (" << rule << ")";
        validate(false, kNAME, msg.str());
    }

    //! The dims of w (and scale) that N, block_size and x's K fix, wherever the extents are known (the contract
    //! already ties the shared axes). extent(i, axis) -> int64_t, -1 when unknown; xRank: the rank of x.
    template <typename ExtentFn>
    void checkWeightShapes(int32_t xRank, ExtentFn const& extent) const
    {
        int64_t const G = weightOnlyGroupCount(mN, Traits::kGROUP_COLS);
        std::string const forN = " for N = " + std::to_string(mN);
        expectDim(kW, "w", 0, extent(kW, 0), G, "G = ceil(N / 64)" + forN);
        int64_t NB = -1;
        std::string forK;
        if constexpr (kBLOCKED)
        {
            int64_t const K = extent(kX, xRank - 1);
            NB = K < 0 ? -1 : weightOnlyPaddedK(K, mBlockSize) / mBlockSize;
            forK = " for x's last dim K = " + std::to_string(K) + " and block_size = " + std::to_string(mBlockSize);
            expectDim(
                kW, "w", 1, extent(kW, 1), NB < 0 ? -1 : NB * mBlockSize / 2, "Kpad / 2 = NB * block_size / 2" + forK);
        }
        int32_t axis = 2;
        for (PackedDim const& dim : Traits::kW_TAIL)
        {
            expectDim(kW, "w", axis, extent(kW, axis), dim.size, dim.rule);
            ++axis;
        }
        if constexpr (kBLOCKED)
        {
            expectDim(kSCALE, "scale", 0, extent(kSCALE, 0), G, "G = ceil(N / 64)" + forN);
            expectDim(kSCALE, "scale", 1, extent(kSCALE, 1), NB, "NB = ceil(K / block_size)" + forK);
            expectDim(kSCALE, "scale", 2, extent(kSCALE, 2), Traits::kGROUP_COLS, "the columns of a group");
        }
    }

    void inferOutputTypes(nvinfer1::DataType* outputTypes, nvinfer1::DataType const* inputTypes) const
    {
        for (int32_t i = 0; i < kNB_INPUTS; ++i)
        {
            validateInputType(inputTypes, i, Traits::kINPUT_CONTRACT[i].name, Traits::kINPUT_TYPES[i], kNAME);
        }
        outputTypes[0] = nvinfer1::DataType::kFLOAT; // y
    }

    void inferOutputShapes(
        nvinfer1::DimsExprs const* inputs, nvinfer1::DimsExprs* outputs, nvinfer1::IExprBuilder& exprBuilder) const
    {
        int32_t const xRank = inputs[kX].nbDims;
        checkWeightShapes(xRank, [&](int32_t i, int32_t a) { return constantOrUnknown(inputs[i].d[a]); });
        outputs[0] = inputs[kX]; // y [..., N]: x's leading dims
        outputs[0].d[xRank - 1] = exprBuilder.constant(mN);
    }

    bool supportsTensor(int32_t pos, nvinfer1::PluginTensorDesc const& desc,
        nvinfer1::DynamicPluginTensorDesc const* /*inOut*/) const
    {
        if (pos < kNB_INPUTS)
        {
            return desc.type == Traits::kINPUT_TYPES[pos]; // x, w, (scale): one fixed dtype each (the traits)
        }
        return pos == kNB_INPUTS && desc.type == nvinfer1::DataType::kFLOAT; // y [..., N]
    }

    void checkConfiguredShapes(nvinfer1::DynamicPluginTensorDesc const* in) const
    {
        checkWeightShapes(in[kX].max.nbDims,
            [&](int32_t i, int32_t a) { return in[i].min.d[a] == in[i].max.d[a] ? in[i].max.d[a] : int64_t{-1}; });
    }

    void checkRuntimeShapes(nvinfer1::PluginTensorDesc const* in) const
    {
        checkWeightShapes(in[kX].dims.nbDims, [&](int32_t i, int32_t a) { return in[i].dims.d[a]; });
    }

    size_t workspaceBytes(nvinfer1::DynamicPluginTensorDesc const* in) const
    {
        if constexpr (!kBLOCKED)
        {
            return 0;
        }
        else
        {
            nvinfer1::Dims const& xMax = in[kX].max; // the profile's largest x; configurePlugin checked the rank
            int64_t const K = xMax.d[xMax.nbDims - 1];
            int64_t const M = rowsOf(xMax);
            validate(K >= 0 && M >= 0, kNAME, "input 'x' has no maximum shape in the optimisation profile");
            return workspaceOf(M, weightOnlyPaddedK(K, mBlockSize)).bytes;
        }
    }

    void forward(nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs, void* const* outputs,
        void* workspace, cudaStream_t stream) const
    {
        nvinfer1::Dims const& xDims = inputDesc[kX].dims; // [..., K]; onShapeChange checked the weights against it
        int32_t const M = toInt32(rowsOf(xDims), kNAME, "M (the rows of x)");
        int32_t const K = toInt32(xDims.d[xDims.nbDims - 1], kNAME, "K");
        auto const* x = static_cast<float const*>(inputs[kX]);
        auto const* w = static_cast<typename Traits::Weight const*>(inputs[kW]);
        auto* y = static_cast<float*>(outputs[0]);
        cudaError_t status = cudaSuccess;
        if constexpr (kBLOCKED)
        {
            Workspace const ws = workspaceOf(M, weightOnlyPaddedK(K, mBlockSize));
            validate(workspace != nullptr || ws.bytes == 0, kNAME,
                "enqueue got no workspace; it needs " + std::to_string(ws.bytes) + " bytes (getWorkspaceSize)");
            auto* const scratch = static_cast<char*>(workspace);
            status = Traits::kFORWARD(stream, M, K, mN, mBlockSize, x, w, static_cast<float const*>(inputs[kSCALE]),
                reinterpret_cast<int16_t*>(scratch), reinterpret_cast<float*>(scratch + ws.xScaleOffset), y);
        }
        else
        {
            static_cast<void>(workspace);
            status = Traits::kFORWARD(stream, M, K, mN, x, w, y);
        }
        validate(status == cudaSuccess, kNAME,
            std::string(Traits::kFORWARD_NAME) + " failed: " + cudaGetErrorName(status));
    }

    int32_t mN;
    int32_t mBlockSize;
};

template <typename Traits>
class WeightOnlyMatmulPluginCreator
    : public RrwkvPluginCreatorBase<WeightOnlyMatmulPluginCreator<Traits>, WeightOnlyMatmulPlugin<Traits>>
{
    using Plugin = WeightOnlyMatmulPlugin<Traits>;
    using Base = RrwkvPluginCreatorBase<WeightOnlyMatmulPluginCreator<Traits>, Plugin>;

public:
    WeightOnlyMatmulPluginCreator()
        : Base(Plugin::kBLOCKED
                ? std::initializer_list<nvinfer1::PluginField>{{Plugin::kFIELD_N, nullptr,
                                                                   nvinfer1::PluginFieldType::kINT32, 1},
                    {Plugin::kFIELD_BLOCK_SIZE, nullptr, nvinfer1::PluginFieldType::kINT32, 1}}
                : std::initializer_list<nvinfer1::PluginField>{
                    {Plugin::kFIELD_N, nullptr, nvinfer1::PluginFieldType::kINT32, 1}})
    {
    }

    ~WeightOnlyMatmulPluginCreator() override = default;

private:
    friend Base;

    Plugin* create(nvinfer1::PluginFieldCollection const* fc) const
    {
        char const* const plugin = Plugin::kNAME;
        std::optional<int32_t> n;
        int32_t blockSize{kWEIGHT_ONLY_DEFAULT_BLOCK};
        this->readFields(fc, [&](nvinfer1::PluginField const& field) {
            if (std::strcmp(field.name, Plugin::kFIELD_N) == 0)
            {
                n = readInt32Field(field, plugin);
                return true;
            }
            if (Plugin::kBLOCKED && std::strcmp(field.name, Plugin::kFIELD_BLOCK_SIZE) == 0)
            {
                blockSize = readInt32Field(field, plugin);
                return true;
            }
            return false;
        });
        validate(n.has_value(), plugin, "required attribute 'N' (output features, INT >= 1) is missing");
        return new Plugin(*n, blockSize);
    }
};

} // namespace rrwkv

#endif // RRWKV_WEIGHT_ONLY_MATMUL_PLUGIN_H
