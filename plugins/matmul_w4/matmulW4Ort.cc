/*
 * rrwkv::MatMulW4 for ONNX Runtime (CPU): a lite custom op (struct form, for the attributes) over the two passes
 * of matmulW4Cpu.h (pass 1 is MatMulW8's row quantisation), each on ORT's intra-op thread pool. Attributes: N (INT,
 * required) and block_size (INT, default 128, even, 2..256); plugin_namespace / plugin_version are ignored. Invalid
 * attributes are reported at the first Compute (the constructor cannot return a status); shapes are checked against
 * x [..., K] with errors naming the input.
 */
#include "common/ortOps.h"
#include "matmul_w4/matmulW4Cpu.h"
#include "matmul_w4/matmulW4Math.h"

#include <memory>
#include <algorithm>
#include <string>
#include <thread>
#include <vector>

namespace rrwkv
{
namespace
{

using Ort::Custom::Tensor;

constexpr int64_t kDefaultBlock = 128;

struct MatMulW4Kernel
{
    MatMulW4Kernel(OrtApi const* api, OrtKernelInfo const* info)
    {
        bool hasN = false;
        bool hasBlock = false;
        std::string typeError;
        int64_t const n = intAttribute(api, info, "MatMulW4", "N", 0, hasN, typeError);
        int64_t const block = intAttribute(api, info, "MatMulW4", "block_size", kDefaultBlock, hasBlock, typeError);
        if (!typeError.empty())
        {
            mError = typeError;
        }
        else if (!hasN)
        {
            mError = "MatMulW4: required INT attribute 'N' (output features) is missing";
        }
        else if (n < 1 || n > kW4MaxN)
        {
            mError = "MatMulW4: attribute N = " + std::to_string(n) + " is invalid; expected 1 <= N <= "
                + std::to_string(kW4MaxN);
        }
        else if (block < 2 || block > kW4MaxBlock || block % 2 != 0)
        {
            mError = "MatMulW4: attribute block_size = " + std::to_string(block)
                + " is invalid; expected an even value in [2, " + std::to_string(kW4MaxBlock) + "]";
        }
        mN = static_cast<int32_t>(n);
        mBlock = static_cast<int32_t>(block);
    }

    Ort::Status Compute(OrtKernelContext* context, Tensor<float> const& x, Tensor<int8_t> const& w,
        Tensor<float> const& scale, Tensor<float>& y)
    {
        char const* op = "MatMulW4";
        if (!mError.empty())
        {
            return Ort::Status{mError.c_str(), ORT_INVALID_ARGUMENT};
        }
        return guardedCompute(op, [&]() {
            std::vector<int64_t> const& xShape = x.Shape();
            if (xShape.empty())
            {
                return Ort::Status{"MatMulW4: input 'x' is a scalar, expected [..., K]", ORT_INVALID_ARGUMENT};
            }
            int64_t const K = xShape.back();
            if (K < 1)
            {
                std::string const msg = "MatMulW4: input 'x' has shape " + shapeString(xShape)
                    + ", expected [..., K] with K >= 1 input features";
                return Ort::Status{msg.c_str(), ORT_INVALID_ARGUMENT};
            }
            int64_t const M = x.NumberOfElement() / K;
            // Before any size arithmetic: K, its padding and M within the kernels' int32 sizes.
            std::string const sizeError = matmulW8SizeError(M, K, mN, mBlock);
            if (!sizeError.empty())
            {
                std::string const msg = "MatMulW4: input 'x' has shape " + shapeString(xShape) + ": " + sizeError;
                return Ort::Status{msg.c_str(), ORT_INVALID_ARGUMENT};
            }
            int64_t const NB = w8BlockCount(static_cast<int32_t>(K), mBlock), G = w8GroupCount(mN);
            int64_t const Kpad = w8PaddedK(static_cast<int32_t>(K), mBlock);
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(op, "w", w.Shape(),
                {{"G = ceil(N / 64)", G}, {"Kpad / 2", Kpad / 2}, {"64", kW4PairBytes}}));
            RRWKV_ORT_RETURN_IF_ERROR(
                checkShape(op, "scale", scale.Shape(), {{"G", G}, {"NB = ceil(K / block_size)", NB}, {"64", 64}}));
            std::vector<int64_t> yShape(xShape);
            yShape.back() = mN;
            float* Y = y.Allocate(yShape);
            if (M == 0)
            {
                return Ort::Status{nullptr};
            }
            auto const m32 = static_cast<int32_t>(M), k32 = static_cast<int32_t>(K);
            auto const kpad32 = static_cast<int32_t>(Kpad);
            // The calling thread's buffers, grown to the largest call and reused: no allocation per decode step. The
            // lambdas take their pointers: a thread_local named inside them would be the pool thread's own.
            thread_local std::vector<int16_t> xqBuffer;
            thread_local std::vector<float> xScaleBuffer;
            xqBuffer.resize(std::max(xqBuffer.size(), static_cast<size_t>(M * Kpad)));
            xScaleBuffer.resize(std::max(xScaleBuffer.size(), static_cast<size_t>(M)));
            int16_t* const xq = xqBuffer.data();
            float* const xScale = xScaleBuffer.data();
            parallelSlices(context, M, [&](int64_t begin, int64_t end) {
                matmulW8QuantizeRowsCpu(
                    m32, k32, kpad32, x.Data(), xq, xScale, W8Isa::kAvx512Vnni, begin, end);
            });
            // One contiguous range of column groups per hardware thread, so each thread streams one run of the
            // packed weights: MatMulW8's split (plugins/matmul_w8/README.md "Performance").
            static auto const threads = static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()));
            parallelSlices(
                context, matmulW8CpuSliceCount(m32, mN),
                [&](int64_t begin, int64_t end) {
                    matmulW4ForwardCpu(m32, mN, kpad32, mBlock, xq, xScale, w.Data(), scale.Data(), Y,
                        W8Isa::kAvx512Vnni, begin, end);
                },
                threads);
            return Ort::Status{nullptr};
        });
    }

    std::string mError;
    int32_t mN = 1;
    int32_t mBlock = kDefaultBlock;
};

} // namespace

std::vector<OrtCustomOp const*> matMulW4OrtOps()
{
    static std::unique_ptr<Ort::Custom::OrtLiteCustomOp> const f32{
        Ort::Custom::CreateLiteCustomOp<MatMulW4Kernel>("MatMulW4", "CPUExecutionProvider")};
    return {f32.get()};
}

} // namespace rrwkv
