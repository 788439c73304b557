/*
 * The ONNX Runtime (CPU) op of the weight-only matmul ops (common/weightOnlyMatmul.h): a lite custom op (struct form,
 * for the attributes) over an op's CPU kernels, on ORT's intra-op thread pool. Attributes: N (INT, required) and,
 * for a block-quantised format, block_size (INT, default 128, even, 2..kMAX_BLOCK); plugin_namespace /
 * plugin_version are ignored. Invalid attributes are reported at the first Compute (the constructor cannot return a
 * status); shapes are checked against x [..., K] with errors naming the input. The weights are read in place from
 * the tensors ORT holds (initializers; OrtSession hands them over in huge pages, runtime/backends/huge_pages.py).
 *
 * ORT traits: the members of the op's <Op>Traits (weightOnlyMatmul.h), and
 *   Weights                  OrtWeightInputs<the ORT element types of w (and scale)>;
 *   sizeError(M, K, N, bs)   why the CPU kernels cannot take these sizes, "" when they can (<op>Cpu.h);
 *   sliceCount(M, N)         the forward pass's slices;
 *   a block-quantised format: quantizeRows(M, K, Kpad, x, xq, xScale, begin, end), the row quantisation (pass 1,
 *     one slice per row), and forwardCpu(M, N, Kpad, bs, xq, xScale, w, scale, y, begin, end) (pass 2);
 *   otherwise: forwardCpu(M, K, N, x, w, y, begin, end) over w's tensor.
 * Each op's <op>Ort.cc defines its traits and <cxx>OrtOps() as weightOnlyMatmulOrtOps<its traits>().
 */
#ifndef RRWKV_WEIGHT_ONLY_MATMUL_ORT_H
#define RRWKV_WEIGHT_ONLY_MATMUL_ORT_H

#include "common/ortOps.h"
#include "common/weightOnlyMatmul.h"

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace rrwkv
{

//! The ORT element types of the weight inputs (after x), in order.
template <typename... Weights>
struct OrtWeightInputs
{
};

template <typename Traits, typename Weights = typename Traits::Weights>
struct WeightOnlyMatmulOrtKernel;

template <typename Traits, typename... Weights>
struct WeightOnlyMatmulOrtKernel<Traits, OrtWeightInputs<Weights...>>
{
    static constexpr bool kBLOCKED = kBLOCK_QUANTIZED<Traits>;
    static_assert(sizeof...(Weights) == (kBLOCKED ? 2 : 1), "w and (block-quantised formats only) scale");

    WeightOnlyMatmulOrtKernel(OrtApi const* api, OrtKernelInfo const* info)
    {
        std::string const op = Traits::kNAME;
        bool hasN = false;
        std::string typeError;
        int64_t const n = intAttribute(api, info, Traits::kNAME, "N", 0, hasN, typeError);
        int64_t block = kWEIGHT_ONLY_DEFAULT_BLOCK;
        if constexpr (kBLOCKED)
        {
            bool hasBlock = false;
            block = intAttribute(api, info, Traits::kNAME, "block_size", block, hasBlock, typeError);
        }
        if (!typeError.empty())
        {
            mError = typeError;
        }
        else if (!hasN)
        {
            mError = op + ": required INT attribute 'N' (output features) is missing";
        }
        else if (n < 1 || n > Traits::kMAX_N)
        {
            mError = op + ": attribute N = " + std::to_string(n) + " is invalid; expected 1 <= N <= "
                + std::to_string(Traits::kMAX_N);
        }
        else if (kBLOCKED && (block < 2 || block > Traits::kMAX_BLOCK || block % 2 != 0))
        {
            mError = op + ": attribute block_size = " + std::to_string(block)
                + " is invalid; expected an even value in [2, " + std::to_string(Traits::kMAX_BLOCK) + "]";
        }
        mN = static_cast<int32_t>(n);
        mBlock = static_cast<int32_t>(block);
    }

    Ort::Status Compute(OrtKernelContext* context, Ort::Custom::Tensor<float> const& x,
        Ort::Custom::Tensor<Weights> const&... weights, Ort::Custom::Tensor<float>& y)
    {
        char const* op = Traits::kNAME;
        if (!mError.empty())
        {
            return Ort::Status{mError.c_str(), ORT_INVALID_ARGUMENT};
        }
        return guardedCompute(op, [&]() {
            std::vector<int64_t> const& xShape = x.Shape();
            if (xShape.empty())
            {
                std::string const msg = std::string(op) + ": input 'x' is a scalar, expected [..., K]";
                return Ort::Status{msg.c_str(), ORT_INVALID_ARGUMENT};
            }
            int64_t const K = xShape.back();
            if (K < 1)
            {
                std::string const msg = std::string(op) + ": input 'x' has shape " + shapeString(xShape)
                    + ", expected [..., K] with K >= 1 input features";
                return Ort::Status{msg.c_str(), ORT_INVALID_ARGUMENT};
            }
            int64_t const M = x.NumberOfElement() / K;
            // Before any size arithmetic: K (and its padding) and M within the kernels' int32 sizes.
            std::string const sizeError = Traits::sizeError(M, K, mN, mBlock);
            if (!sizeError.empty())
            {
                std::string const msg
                    = std::string(op) + ": input 'x' has shape " + shapeString(xShape) + ": " + sizeError;
                return Ort::Status{msg.c_str(), ORT_INVALID_ARGUMENT};
            }
            auto const tensors = std::forward_as_tuple(weights...);
            auto const& w = std::get<0>(tensors);
            int64_t const G = weightOnlyGroupCount(mN, Traits::kGROUP_COLS);
            int64_t const Kpad = kBLOCKED ? weightOnlyPaddedK(K, mBlock) : K;
            // w [G, rows, kW_TAIL...]: rows = Kpad / 2 row pairs of a block-quantised format, else K.
            std::vector<Dim> wDims{
                {"G = ceil(N / 64)", G}, kBLOCKED ? Dim{"Kpad / 2", Kpad / 2} : Dim{"K (x's last dim)", K}};
            for (PackedDim const& dim : Traits::kW_TAIL)
            {
                wDims.emplace_back(dim.name, dim.size);
            }
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(op, "w", w.Shape(), wDims));
            if constexpr (kBLOCKED)
            {
                auto const& scale = std::get<1>(tensors);
                RRWKV_ORT_RETURN_IF_ERROR(checkShape(op, "scale", scale.Shape(),
                    {{"G", G}, {"NB = ceil(K / block_size)", Kpad / mBlock}, {"64", 64}}));
            }
            std::vector<int64_t> yShape(xShape);
            yShape.back() = mN;
            float* Y = y.Allocate(yShape);
            if (M == 0)
            {
                return Ort::Status{nullptr};
            }
            auto const m32 = static_cast<int32_t>(M), k32 = static_cast<int32_t>(K);
            // One contiguous range of column groups per hardware thread, so each thread streams one run of the
            // packed weights: faster at one row than handing the groups out one by one (plugins/matmul_w8/README.md
            // "Performance").
            static auto const threads = static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()));
            if constexpr (kBLOCKED)
            {
                auto const& scale = std::get<1>(tensors);
                auto const kpad32 = static_cast<int32_t>(Kpad);
                // The calling thread's buffers, grown to the largest call and reused: no allocation per decode step.
                // The lambdas take their pointers: a thread_local named inside them would be the pool thread's own.
                thread_local std::vector<int16_t> xqBuffer;
                thread_local std::vector<float> xScaleBuffer;
                xqBuffer.resize(std::max(xqBuffer.size(), static_cast<size_t>(M * Kpad)));
                xScaleBuffer.resize(std::max(xScaleBuffer.size(), static_cast<size_t>(M)));
                int16_t* const xq = xqBuffer.data();
                float* const xScale = xScaleBuffer.data();
                parallelSlices(context, M, [&](int64_t begin, int64_t end) {
                    Traits::quantizeRows(m32, k32, kpad32, x.Data(), xq, xScale, begin, end);
                });
                parallelSlices(
                    context, Traits::sliceCount(m32, mN),
                    [&](int64_t begin, int64_t end) {
                        Traits::forwardCpu(
                            m32, mN, kpad32, mBlock, xq, xScale, w.Data(), scale.Data(), Y, begin, end);
                    },
                    threads);
            }
            else
            {
                parallelSlices(
                    context, Traits::sliceCount(m32, mN),
                    [&](int64_t begin, int64_t end) { Traits::forwardCpu(m32, k32, mN, x.Data(), w, Y, begin, end); },
                    threads);
            }
            return Ort::Status{nullptr};
        });
    }

    std::string mError;
    int32_t mN = 1;
    int32_t mBlock = kWEIGHT_ONLY_DEFAULT_BLOCK;
};

//! The op's lite custom op, created once and alive for the whole process (ORT keeps pointers).
template <typename Traits>
std::vector<OrtCustomOp const*> weightOnlyMatmulOrtOps()
{
    static std::unique_ptr<Ort::Custom::OrtLiteCustomOp> const f32{
        Ort::Custom::CreateLiteCustomOp<WeightOnlyMatmulOrtKernel<Traits>>(Traits::kNAME, "CPUExecutionProvider")};
    return {f32.get()};
}

} // namespace rrwkv

#endif // RRWKV_WEIGHT_ONLY_MATMUL_ORT_H
