/*
 * rrwkv::ContinuousGaussianAttention for ONNX Runtime (CPU): lite custom ops (struct form, for the attributes) over
 * continuousGaussianAttentionForwardCpu, one per activation dtype (q, K, V, ctx float or float16) under the same name;
 * w_mu, w_sigma, basis_mu, basis_sigma, mu and sigma2 are float. Attributes: sigma2_min and scale (FLOAT, required,
 * finite and > 0); plugin_namespace / plugin_version are ignored. Invalid attributes are reported at the first
 * Compute (the constructor cannot return a status); shapes are checked against q [B, H, T, d] and K [B, H, N, d] with
 * errors naming the input. The three phases of the CPU kernel (scores per block of keys, r per query row, ctx per
 * block of columns) run on ORT's intra-op thread pool, over a per-call scratch [B, H, T, N] fp32.
 */
#include "common/ortOps.h"
#include "continuous_gaussian_attention/continuousGaussianAttentionCpu.h"

#include <cmath>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace rrwkv
{
namespace
{

using Ort::Custom::Tensor;

char const kOP[] = "ContinuousGaussianAttention";

// "" when attribute `name` is present and finite and > 0, else the message.
std::string positiveFloatError(char const* name, char const* what, bool present, float value)
{
    if (!present)
    {
        return std::string(kOP) + ": required FLOAT attribute '" + name + "' (" + what
            + ", finite and > 0) is missing";
    }
    if (!(value > 0.0F) || !std::isfinite(value))
    {
        std::ostringstream msg;
        msg << kOP << ": attribute " << name << " = " << value << " is invalid; expected a finite value > 0";
        return msg.str();
    }
    return "";
}

// "" when the attributes are valid, else the message the first Compute returns.
std::string attributeError(OrtApi const* api, OrtKernelInfo const* info, float& sigma2Min, float& scale)
{
    bool hasSigma2Min = false;
    bool hasScale = false;
    std::string typeError;
    sigma2Min = floatAttribute(api, info, kOP, "sigma2_min", 0.0F, hasSigma2Min, typeError);
    scale = floatAttribute(api, info, kOP, "scale", 0.0F, hasScale, typeError);
    if (!typeError.empty())
    {
        return typeError;
    }
    std::string const error = positiveFloatError("sigma2_min", "variance floor", hasSigma2Min, sigma2Min);
    return error.empty() ? positiveFloatError("scale", "score scale", hasScale, scale) : error;
}

template <typename OrtT, typename KernelT>
struct ContinuousGaussianAttentionKernel
{
    ContinuousGaussianAttentionKernel(OrtApi const* api, OrtKernelInfo const* info)
    {
        mError = attributeError(api, info, mSigma2Min, mScale);
    }

    Ort::Status Compute(OrtKernelContext* context, Tensor<OrtT> const& q, Tensor<OrtT> const& K,
        Tensor<OrtT> const& V, Tensor<float> const& wMu, Tensor<float> const& wSigma, Tensor<float> const& basisMu,
        Tensor<float> const& basisSigma, Tensor<OrtT>& ctx, Tensor<float>& muOut, Tensor<float>& sigma2Out)
    {
        if (!mError.empty())
        {
            return Ort::Status{mError.c_str(), ORT_INVALID_ARGUMENT};
        }
        return guardedCompute(kOP, [&]() {
            std::vector<int64_t> const& qShape = q.Shape();
            std::vector<int64_t> const& kShape = K.Shape();
            RRWKV_ORT_RETURN_IF_ERROR(checkRank(kOP, "q", qShape, {"B", "H", "T", "d"}));
            RRWKV_ORT_RETURN_IF_ERROR(checkRank(kOP, "K", kShape, {"B", "H", "N", "d"}));
            int64_t const B = qShape[0], H = qShape[1], T = qShape[2], d = qShape[3], N = kShape[2];
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(kOP, "K", kShape, {{"B", B}, {"H", H}, {"N", N}, {"d", d}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(kOP, "V", V.Shape(), {{"B", B}, {"H", H}, {"N", N}, {"d", d}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(kOP, "w_mu", wMu.Shape(), {{"N", N}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(kOP, "w_sigma", wSigma.Shape(), {{"N", N}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(kOP, "basis_mu", basisMu.Shape(), {{"N", N}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(kOP, "basis_sigma", basisSigma.Shape(), {{"N", N}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkInt32Dims(kOP, {{"B", B}, {"H", H}, {"T", T}, {"N", N}, {"d", d}}));
            KernelT* C = kernelAllocate<KernelT>(ctx, {B, H, T, d});
            float* M = muOut.Allocate({B, H, T});
            float* S2 = sigma2Out.Allocate({B, H, T});
            auto const b32 = static_cast<int32_t>(B), h32 = static_cast<int32_t>(H), t32 = static_cast<int32_t>(T);
            auto const n32 = static_cast<int32_t>(N), d32 = static_cast<int32_t>(d);
            int64_t const rows = continuousGaussianAttentionCpuRowCount(b32, h32, t32);
            if (rows == 0)
            {
                return Ort::Status{nullptr};
            }
            std::vector<float> w(static_cast<size_t>(rows * N));
            auto scores = [&](int64_t begin, int64_t end) {
                continuousGaussianAttentionScoresCpu<KernelT>(b32, h32, t32, n32, d32, mScale, kernelData<KernelT>(q),
                    kernelData<KernelT>(K), w.data(), CpuIsa::kAvx512, begin, end);
            };
            parallelSlices(context, continuousGaussianAttentionCpuScoreSliceCount(b32, h32, n32), scores);
            auto weights = [&](int64_t begin, int64_t end) {
                continuousGaussianAttentionWeightsCpu(b32, h32, t32, n32, mSigma2Min, wMu.Data(), wSigma.Data(),
                    basisMu.Data(), basisSigma.Data(), w.data(), M, S2, CpuIsa::kAvx512, begin, end);
            };
            parallelSlices(context, rows, weights);
            auto ctxBlocks = [&](int64_t begin, int64_t end) {
                continuousGaussianAttentionContextCpu<KernelT>(
                    b32, h32, t32, n32, d32, kernelData<KernelT>(V), w.data(), C, CpuIsa::kAvx512, begin, end);
            };
            parallelSlices(context, continuousGaussianAttentionCpuContextSliceCount(b32, h32, d32), ctxBlocks);
            return Ort::Status{nullptr};
        });
    }

    std::string mError;
    float mSigma2Min = 0.0F;
    float mScale = 0.0F;
};

} // namespace

std::vector<OrtCustomOp const*> continuousGaussianAttentionOrtOps()
{
    static std::unique_ptr<Ort::Custom::OrtLiteCustomOp> const f32{
        Ort::Custom::CreateLiteCustomOp<ContinuousGaussianAttentionKernel<float, float>>(kOP, "CPUExecutionProvider")};
    static std::unique_ptr<Ort::Custom::OrtLiteCustomOp> const f16{
        Ort::Custom::CreateLiteCustomOp<ContinuousGaussianAttentionKernel<Ort::Float16_t, HostHalf>>(
            kOP, "CPUExecutionProvider")};
    return {f32.get(), f16.get()};
}

} // namespace rrwkv
