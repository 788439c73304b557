/*
 * rrwkv::GatedOuterScan for ONNX Runtime (CPU): lite custom ops (struct form, for the attributes) over
 * gatedOuterScanForwardCpu, one per activation dtype (q, f, v, o float or float16) under the same name; lb and the
 * state are float. Attributes: scale (FLOAT, required, finite and > 0) and chunk_size (INT, default 64, >= 1; the CPU
 * kernel runs the per-token recurrence, so it only validates it); plugin_namespace / plugin_version are ignored.
 * Invalid attributes are reported at the first Compute (the constructor cannot return a status); shapes are checked
 * against q [B, T, H, K] and v [B, T, H, V] with errors naming the input. The (b, h) slices run on ORT's intra-op
 * thread pool.
 */
#include "common/ortOps.h"
#include "gated_outer_scan/gatedOuterScanCpu.h"

#include <cmath>
#include <memory>
#include <sstream>
#include <string>

namespace rrwkv
{
namespace
{

using Ort::Custom::Tensor;

char const kOP[] = "GatedOuterScan";
constexpr int64_t kDefaultChunkSize = 64;

// "" when the attributes are valid, else the message the first Compute returns.
std::string attributeError(OrtApi const* api, OrtKernelInfo const* info, float& scale)
{
    bool hasScale = false;
    bool hasChunk = false;
    std::string typeError;
    scale = floatAttribute(api, info, kOP, "scale", 0.0F, hasScale, typeError);
    int64_t const chunk = intAttribute(api, info, kOP, "chunk_size", kDefaultChunkSize, hasChunk, typeError);
    if (!typeError.empty())
    {
        return typeError;
    }
    if (!hasScale)
    {
        return std::string(kOP) + ": required FLOAT attribute 'scale' (query scale, finite and > 0) is missing";
    }
    if (!(scale > 0.0F) || !std::isfinite(scale))
    {
        std::ostringstream msg;
        msg << kOP << ": attribute scale = " << scale << " is invalid; expected a finite value > 0";
        return msg.str();
    }
    if (chunk < 1)
    {
        return std::string(kOP) + ": attribute chunk_size = " + std::to_string(chunk)
            + " is invalid; expected chunk_size >= 1";
    }
    return "";
}

template <typename OrtT, typename KernelT>
struct GatedOuterScanKernel
{
    GatedOuterScanKernel(OrtApi const* api, OrtKernelInfo const* info)
    {
        mError = attributeError(api, info, mScale);
    }

    Ort::Status Compute(OrtKernelContext* context, Tensor<OrtT> const& q, Tensor<OrtT> const& f,
        Tensor<float> const& lb, Tensor<OrtT> const& v, Tensor<float> const& S0, Tensor<OrtT>& o, Tensor<float>& Sout)
    {
        if (!mError.empty())
        {
            return Ort::Status{mError.c_str(), ORT_INVALID_ARGUMENT};
        }
        return guardedCompute(kOP, [&]() {
            std::vector<int64_t> const& qShape = q.Shape();
            std::vector<int64_t> const& vShape = v.Shape();
            RRWKV_ORT_RETURN_IF_ERROR(checkRank(kOP, "q", qShape, {"B", "T", "H", "K"}));
            RRWKV_ORT_RETURN_IF_ERROR(checkRank(kOP, "v", vShape, {"B", "T", "H", "V"}));
            int64_t const B = qShape[0], T = qShape[1], H = qShape[2], K = qShape[3], V = vShape[3];
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(kOP, "f", f.Shape(), {{"B", B}, {"T", T}, {"H", H}, {"K", K}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(kOP, "lb", lb.Shape(), {{"H", H}, {"K", K}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(kOP, "v", vShape, {{"B", B}, {"T", T}, {"H", H}, {"V", V}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(kOP, "S0", S0.Shape(), {{"B", B}, {"H", H}, {"K", K}, {"V", V}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkInt32Dims(kOP, {{"B", B}, {"T", T}, {"H", H}, {"K", K}, {"V", V}}));
            KernelT* O = kernelAllocate<KernelT>(o, {B, T, H, V});
            float* S = Sout.Allocate({B, H, K, V});
            auto const b32 = static_cast<int32_t>(B), t32 = static_cast<int32_t>(T), h32 = static_cast<int32_t>(H);
            auto const k32 = static_cast<int32_t>(K), v32 = static_cast<int32_t>(V);
            auto run = [&](int64_t begin, int64_t end) {
                gatedOuterScanForwardCpu<KernelT>(b32, t32, h32, k32, v32, mScale, kernelData<KernelT>(q),
                    kernelData<KernelT>(f), lb.Data(), kernelData<KernelT>(v), S0.Data(), O, S, begin, end);
            };
            parallelSlices(context, gatedOuterScanCpuSliceCount(b32, h32), run);
            return Ort::Status{nullptr};
        });
    }

    std::string mError;
    float mScale = 0.0F;
};

} // namespace

std::vector<OrtCustomOp const*> gatedOuterScanOrtOps()
{
    static std::unique_ptr<Ort::Custom::OrtLiteCustomOp> const f32{
        Ort::Custom::CreateLiteCustomOp<GatedOuterScanKernel<float, float>>(kOP, "CPUExecutionProvider")};
    static std::unique_ptr<Ort::Custom::OrtLiteCustomOp> const f16{
        Ort::Custom::CreateLiteCustomOp<GatedOuterScanKernel<Ort::Float16_t, HostHalf>>(kOP, "CPUExecutionProvider")};
    return {f32.get(), f16.get()};
}

} // namespace rrwkv
