/*
 * TensorRT IPluginV3 for rrwkv::MatMulW4 (plugins/matmul_w4/README.md, plugins/matmul_w4/spec.yaml).
 * Inputs:  x [..., K] f32; w [G, Kpad/2, 64] i8 (packed nibbles); scale [G, NB, 64] f32
 *          (G = ceil(N / 64), NB = ceil(K / block_size), Kpad = NB * block_size).
 * Outputs: y [..., N] f32.
 * Attributes: N (INT >= 1, required), block_size (INT, even in [2, 256], default 128), plugin_namespace,
 * plugin_version.
 * Workspace: the quantised rows of x (matmulW4Kernel.h), sized for the profile's largest x.
 * The IPluginV3 interface itself is common/pluginBase.h; this file holds the op-specific parts.
 */
#ifndef RRWKV_MATMUL_W4_PLUGIN_H
#define RRWKV_MATMUL_W4_PLUGIN_H

#include "NvInferRuntime.h"

#include "common/pluginBase.h"

namespace rrwkv
{

class MatMulW4Plugin : public RrwkvPluginBase<MatMulW4Plugin>
{
public:
    static constexpr char const* kNAME{"MatMulW4"};
    static constexpr int32_t kNB_INPUTS{3};
    static constexpr int32_t kNB_OUTPUTS{1};
    // Input indices.
    static constexpr int32_t kX{0};
    static constexpr int32_t kW{1};
    static constexpr int32_t kSCALE{2};
    //! Rank and named axes of each input, in order (spec.yaml): G groups, P row pairs, Y the 64 bytes of a row pair
    //! (w), B blocks along K, L the 64 lanes of a group (scale); x is [..., K]. Y is not L: the two are both 64
    //! but count different things, and a wrong w must be reported as its own dim.
    static InputContract const kINPUT_CONTRACT[kNB_INPUTS];

    //! n: output features N (>= 1); blockSize: rows per scale block (even, 2..256). Throws PluginError otherwise.
    MatMulW4Plugin(int32_t n, int32_t blockSize);
    MatMulW4Plugin(MatMulW4Plugin const& other);
    ~MatMulW4Plugin() override = default;

private:
    friend class RrwkvPluginBase<MatMulW4Plugin>;

    void inferOutputTypes(nvinfer1::DataType* outputTypes, nvinfer1::DataType const* inputTypes) const;
    void inferOutputShapes(
        nvinfer1::DimsExprs const* inputs, nvinfer1::DimsExprs* outputs, nvinfer1::IExprBuilder& exprBuilder) const;
    bool supportsTensor(
        int32_t pos, nvinfer1::PluginTensorDesc const& desc, nvinfer1::DynamicPluginTensorDesc const* inOut) const;
    void checkConfiguredShapes(nvinfer1::DynamicPluginTensorDesc const* in) const;
    void checkRuntimeShapes(nvinfer1::PluginTensorDesc const* in) const;
    size_t workspaceBytes(nvinfer1::DynamicPluginTensorDesc const* in) const;
    void forward(nvinfer1::PluginTensorDesc const* inputDesc, void const* const* inputs, void* const* outputs,
        void* workspace, cudaStream_t stream) const;

    //! The dims of w and scale that N, block_size and x's K fix, wherever the extents are known.
    //! extent(i, axis) -> int64_t, -1 when unknown; xRank: the rank of x.
    template <typename ExtentFn>
    void checkWeightShapes(int32_t xRank, ExtentFn const& extent) const;

    int32_t mN;
    int32_t mBlockSize;
};

class MatMulW4PluginCreator : public RrwkvPluginCreatorBase<MatMulW4PluginCreator, MatMulW4Plugin>
{
public:
    MatMulW4PluginCreator();
    ~MatMulW4PluginCreator() override = default;

private:
    friend class RrwkvPluginCreatorBase<MatMulW4PluginCreator, MatMulW4Plugin>;

    MatMulW4Plugin* create(nvinfer1::PluginFieldCollection const* fc) const;
};

} // namespace rrwkv

#endif // RRWKV_MATMUL_W4_PLUGIN_H
