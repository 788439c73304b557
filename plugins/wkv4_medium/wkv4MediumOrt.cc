/*
 * rrwkv::WKV4Medium for ONNX Runtime (CPU): lite custom ops (struct form, for the attributes) over
 * wkv4MediumForwardCpu, one per activation dtype (k, v, y float or float16) under the same name. Attributes:
 * s (INT, required, >= 1) and medium_decays (INT, default 0, 0 or 1); plugin_namespace / plugin_version are
 * ignored. Invalid attributes are reported at the first Compute (the constructor cannot return a status).
 */
#include "common/ortOps.h"
#include "wkv4_medium/wkv4MediumCpu.h"

#include <memory>
#include <string>

namespace rrwkv
{
namespace
{

using Ort::Custom::Tensor;

template <typename OrtT, typename KernelT>
struct Wkv4MediumKernel
{
    Wkv4MediumKernel(OrtApi const* api, OrtKernelInfo const* info)
    {
        bool hasS = false;
        bool hasDecays = false;
        std::string typeError;
        int64_t const s = intAttribute(api, info, "WKV4Medium", "s", 0, hasS, typeError);
        int64_t const decays = intAttribute(api, info, "WKV4Medium", "medium_decays", 0, hasDecays, typeError);
        if (!typeError.empty())
        {
            mError = typeError;
        }
        else if (!hasS)
        {
            mError = "WKV4Medium: required INT attribute 's' (medium interval) is missing";
        }
        else if (s < 1 || s > std::numeric_limits<int32_t>::max())
        {
            mError = "WKV4Medium: attribute s = " + std::to_string(s) + " is invalid; expected s >= 1";
        }
        else if (decays != 0 && decays != 1)
        {
            mError = "WKV4Medium: attribute medium_decays = " + std::to_string(decays)
                + " is invalid; expected 0 or 1";
        }
        mS = static_cast<int32_t>(s);
        mMediumDecays = static_cast<int32_t>(decays);
    }

    Ort::Status Compute(OrtKernelContext* context, Tensor<float> const& w, Tensor<float> const& u,
        Tensor<OrtT> const& k, Tensor<OrtT> const& v, Tensor<float> const& kM, Tensor<float> const& vM,
        Tensor<float> const& aa, Tensor<float> const& bb, Tensor<float> const& pp, Tensor<int64_t> const& pos0,
        Tensor<OrtT>& y, Tensor<float>& aaOut, Tensor<float>& bbOut, Tensor<float>& ppOut)
    {
        char const* op = "WKV4Medium";
        if (!mError.empty())
        {
            return Ort::Status{mError.c_str(), ORT_INVALID_ARGUMENT};
        }
        return guardedCompute(op, [&]() {
            std::vector<int64_t> const& kShape = k.Shape();
            RRWKV_ORT_RETURN_IF_ERROR(checkRank(op, "k", kShape, {"B", "T", "C"}));
            int64_t const B = kShape[0], T = kShape[1], C = kShape[2];
            std::vector<int64_t> const& mShape = kM.Shape();
            RRWKV_ORT_RETURN_IF_ERROR(checkRank(op, "k_m", mShape, {"B", "Mmax", "C"}));
            int64_t const M = mShape[1];
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(op, "v", v.Shape(), {{"B", B}, {"T", T}, {"C", C}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(op, "w", w.Shape(), {{"C", C}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(op, "u", u.Shape(), {{"C", C}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(op, "k_m", mShape, {{"B", B}, {"Mmax", M}, {"C", C}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(op, "v_m", vM.Shape(), {{"B", B}, {"Mmax", M}, {"C", C}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(op, "aa", aa.Shape(), {{"B", B}, {"C", C}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(op, "bb", bb.Shape(), {{"B", B}, {"C", C}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(op, "pp", pp.Shape(), {{"B", B}, {"C", C}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(op, "pos0", pos0.Shape(), {{"B", B}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkInt32Dims(op, {{"B", B}, {"T", T}, {"C", C}, {"Mmax", M}}));
            if (M < 1)
            {
                std::string const msg = std::string(op) + ": input 'k_m' has shape " + shapeString(mShape)
                    + ", expected Mmax >= 1 rows (ceil(T / s) always suffices)";
                return Ort::Status{msg.c_str(), ORT_INVALID_ARGUMENT};
            }
            KernelT* Y = kernelAllocate<KernelT>(y, {B, T, C});
            float* AA = aaOut.Allocate({B, C});
            float* BB = bbOut.Allocate({B, C});
            float* PP = ppOut.Allocate({B, C});
            auto const b32 = static_cast<int32_t>(B), t32 = static_cast<int32_t>(T);
            auto const c32 = static_cast<int32_t>(C), m32 = static_cast<int32_t>(M);
            auto run = [&](int64_t begin, int64_t end) {
                wkv4MediumForwardCpu<KernelT>(b32, t32, c32, m32, mS, mMediumDecays, w.Data(), u.Data(),
                    kernelData<KernelT>(k), kernelData<KernelT>(v), kM.Data(), vM.Data(), aa.Data(), bb.Data(),
                    pp.Data(), pos0.Data(), Y, AA, BB, PP, begin, end);
            };
            parallelSlices(context, wkv4CpuSliceCount(b32, c32), run);
            return Ort::Status{nullptr};
        });
    }

    std::string mError;
    int32_t mS = 1;
    int32_t mMediumDecays = 0;
};

} // namespace

std::vector<OrtCustomOp const*> wkv4MediumOrtOps()
{
    static std::unique_ptr<Ort::Custom::OrtLiteCustomOp> const f32{
        Ort::Custom::CreateLiteCustomOp<Wkv4MediumKernel<float, float>>("WKV4Medium", "CPUExecutionProvider")};
    static std::unique_ptr<Ort::Custom::OrtLiteCustomOp> const f16{
        Ort::Custom::CreateLiteCustomOp<Wkv4MediumKernel<Ort::Float16_t, HostHalf>>(
            "WKV4Medium", "CPUExecutionProvider")};
    return {f32.get(), f16.get()};
}

} // namespace rrwkv
