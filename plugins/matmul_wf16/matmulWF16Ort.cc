/*
 * rrwkv::MatMulWF16 for ONNX Runtime (CPU): a lite custom op (struct form, for the attribute) over matmulWF16Cpu.h
 * on ORT's intra-op thread pool. Attribute: N (INT, required); plugin_namespace / plugin_version are ignored. An
 * invalid attribute is reported at the first Compute (the constructor cannot return a status); shapes are checked
 * against x [..., K] with errors naming the input. The weight is read in place from the tensor ORT holds (an
 * initializer; OrtSession hands it over in huge pages, runtime/backends/huge_pages.py).
 */
#include "common/ortOps.h"
#include "matmul_wf16/matmulWF16Cpu.h"
#include "matmul_wf16/matmulWF16Math.h"

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace rrwkv
{
namespace
{

using Ort::Custom::Tensor;

struct MatMulWF16Kernel
{
    MatMulWF16Kernel(OrtApi const* api, OrtKernelInfo const* info)
    {
        bool hasN = false;
        std::string typeError;
        int64_t const n = intAttribute(api, info, "MatMulWF16", "N", 0, hasN, typeError);
        if (!typeError.empty())
        {
            mError = typeError;
        }
        else if (!hasN)
        {
            mError = "MatMulWF16: required INT attribute 'N' (output features) is missing";
        }
        else if (n < 1 || n > kWF16MaxN)
        {
            mError = "MatMulWF16: attribute N = " + std::to_string(n) + " is invalid; expected 1 <= N <= "
                + std::to_string(kWF16MaxN);
        }
        mN = static_cast<int32_t>(n);
    }

    Ort::Status Compute(OrtKernelContext* context, Tensor<float> const& x, Tensor<Ort::Float16_t> const& w,
        Tensor<float>& y)
    {
        char const* op = "MatMulWF16";
        if (!mError.empty())
        {
            return Ort::Status{mError.c_str(), ORT_INVALID_ARGUMENT};
        }
        return guardedCompute(op, [&]() {
            std::vector<int64_t> const& xShape = x.Shape();
            if (xShape.empty())
            {
                return Ort::Status{"MatMulWF16: input 'x' is a scalar, expected [..., K]", ORT_INVALID_ARGUMENT};
            }
            int64_t const K = xShape.back();
            if (K < 1)
            {
                std::string const msg = "MatMulWF16: input 'x' has shape " + shapeString(xShape)
                    + ", expected [..., K] with K >= 1 input features";
                return Ort::Status{msg.c_str(), ORT_INVALID_ARGUMENT};
            }
            int64_t const M = x.NumberOfElement() / K;
            // Before any size arithmetic: K and M within the kernels' int32 sizes.
            std::string const sizeError = matmulWF16SizeError(M, K, mN);
            if (!sizeError.empty())
            {
                std::string const msg = "MatMulWF16: input 'x' has shape " + shapeString(xShape) + ": " + sizeError;
                return Ort::Status{msg.c_str(), ORT_INVALID_ARGUMENT};
            }
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(op, "w", w.Shape(),
                {{"G = ceil(N / 64)", wf16GroupCount(mN)}, {"K (x's last dim)", K}, {"64", kWF16GroupCols}}));
            std::vector<int64_t> yShape(xShape);
            yShape.back() = mN;
            float* Y = y.Allocate(yShape);
            if (M == 0)
            {
                return Ort::Status{nullptr};
            }
            auto const m32 = static_cast<int32_t>(M), k32 = static_cast<int32_t>(K);
            auto const* W = kernelData<uint16_t>(w);
            // One contiguous range of column groups per hardware thread, so each thread streams one run of the
            // packed weights (as MatMulW8 does: plugins/matmul_w8/README.md "Performance").
            static auto const threads = static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()));
            parallelSlices(
                context, matmulWF16CpuSliceCount(m32, mN),
                [&](int64_t begin, int64_t end) {
                    matmulWF16ForwardCpu(m32, k32, mN, x.Data(), W, Y, WF16Isa::kAvx512, begin, end);
                },
                threads);
            return Ort::Status{nullptr};
        });
    }

    std::string mError;
    int32_t mN = 1;
};

} // namespace

std::vector<OrtCustomOp const*> matMulWF16OrtOps()
{
    static std::unique_ptr<Ort::Custom::OrtLiteCustomOp> const f32{
        Ort::Custom::CreateLiteCustomOp<MatMulWF16Kernel>("MatMulWF16", "CPUExecutionProvider")};
    return {f32.get()};
}

} // namespace rrwkv
