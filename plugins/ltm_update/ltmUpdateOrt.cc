/*
 * rrwkv::LTMUpdate for ONNX Runtime (CPU): a lite custom op (struct form, for the attribute) over the two phases of
 * ltmUpdateCpu.h. Inputs B_past, X_new, G, G_inf, S_samp, hist, basis_mu, basis_sigma float, mode int64; output
 * B_new float. Attribute sticky (INT 0 or 1, default 0); plugin_namespace / plugin_version are ignored. An invalid
 * attribute is reported at the first Compute (the constructor cannot return a status); shapes are checked against
 * B_past [B, N, e], X_new [B, L, e] and S_samp [M, N] with errors naming the input, and every mode must be 0 (keep),
 * 1 (first fit) or 2 (update). Both phases run their slices (blocks of output rows) on ORT's intra-op thread pool;
 * X_old is a per-call scratch buffer, allocated and filled only when some row updates (most calls keep every row: the
 * model calls the op at every token).
 */
#include "common/ortOps.h"
#include "ltm_update/ltmUpdateCpu.h"
#include "ltm_update/ltmUpdateMath.h"

#include <memory>
#include <string>
#include <vector>

namespace rrwkv
{
namespace
{

using Ort::Custom::Tensor;

char const kOP[] = "LTMUpdate";

struct LtmUpdateKernel
{
    LtmUpdateKernel(OrtApi const* api, OrtKernelInfo const* info)
    {
        bool present = false;
        std::string typeError;
        int64_t const sticky = intAttribute(api, info, kOP, "sticky", 0, present, typeError);
        if (!typeError.empty())
        {
            mError = typeError;
        }
        else if (sticky != 0 && sticky != 1)
        {
            mError = std::string(kOP) + ": attribute sticky = " + std::to_string(sticky)
                + " is invalid; expected 0 or 1";
        }
        mSticky = static_cast<int32_t>(sticky);
    }

    Ort::Status Compute(OrtKernelContext* context, Tensor<float> const& bPast, Tensor<float> const& xNew,
        Tensor<int64_t> const& mode, Tensor<float> const& G, Tensor<float> const& gInf, Tensor<float> const& sSamp,
        Tensor<float> const& hist, Tensor<float> const& basisMu, Tensor<float> const& basisSigma,
        Tensor<float>& bNewOut)
    {
        if (!mError.empty())
        {
            return Ort::Status{mError.c_str(), ORT_INVALID_ARGUMENT};
        }
        return guardedCompute(kOP, [&]() {
            std::vector<int64_t> const& pShape = bPast.Shape();
            std::vector<int64_t> const& xShape = xNew.Shape();
            std::vector<int64_t> const& sShape = sSamp.Shape();
            std::vector<int64_t> const& hShape = hist.Shape();
            RRWKV_ORT_RETURN_IF_ERROR(checkRank(kOP, "B_past", pShape, {"B", "N", "e"}));
            RRWKV_ORT_RETURN_IF_ERROR(checkRank(kOP, "X_new", xShape, {"B", "L", "e"}));
            RRWKV_ORT_RETURN_IF_ERROR(checkRank(kOP, "S_samp", sShape, {"M", "N"}));
            RRWKV_ORT_RETURN_IF_ERROR(checkRank(kOP, "hist", hShape, {"B", "NB"}));
            int64_t const B = pShape[0], N = pShape[1], e = pShape[2], L = xShape[1], M = sShape[0];
            int64_t const NB = hShape[1];
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(kOP, "X_new", xShape, {{"B", B}, {"L", L}, {"e", e}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(kOP, "mode", mode.Shape(), {{"B", B}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(kOP, "G", G.Shape(), {{"L", L}, {"N", N}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(kOP, "G_inf", gInf.Shape(), {{"M+L", M + L}, {"N", N}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(kOP, "S_samp", sShape, {{"M", M}, {"N", N}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(kOP, "hist", hShape, {{"B", B}, {"NB", NB}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(kOP, "basis_mu", basisMu.Shape(), {{"N", N}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkShape(kOP, "basis_sigma", basisSigma.Shape(), {{"N", N}}));
            RRWKV_ORT_RETURN_IF_ERROR(checkInt32Dims(
                kOP, {{"B", B}, {"N", N}, {"e", e}, {"L", L}, {"M", M}, {"M+L", M + L}, {"NB", NB}}));
            if (NB < 1 || M < 1)
            {
                return Ort::Status{"LTMUpdate: hist needs NB >= 1 bins and S_samp M >= 1 rows", ORT_INVALID_ARGUMENT};
            }
            int64_t const* modes = mode.Data();
            bool anyUpdate = false;
            for (int64_t b = 0; b < B; ++b)
            {
                if (modes[b] != kLTM_KEEP && modes[b] != kLTM_FIT && modes[b] != kLTM_UPDATE)
                {
                    std::string const msg = std::string(kOP) + ": input 'mode' holds " + std::to_string(modes[b])
                        + " in row " + std::to_string(b) + "; expected 0 (keep), 1 (first fit) or 2 (update)";
                    return Ort::Status{msg.c_str(), ORT_INVALID_ARGUMENT};
                }
                anyUpdate = anyUpdate || modes[b] == kLTM_UPDATE;
            }
            float* out = bNewOut.Allocate({B, N, e});
            auto const b32 = static_cast<int32_t>(B), n32 = static_cast<int32_t>(N), e32 = static_cast<int32_t>(e);
            auto const l32 = static_cast<int32_t>(L), m32 = static_cast<int32_t>(M), nb32 = static_cast<int32_t>(NB);
            std::vector<float> xOld(anyUpdate ? static_cast<size_t>(B * M * e) : 0);
            if (anyUpdate)
            {
                auto old = [&](int64_t begin, int64_t end) {
                    ltmUpdateOldCpu(b32, n32, e32, m32, nb32, mSticky, bPast.Data(), modes, sSamp.Data(),
                        hist.Data(), basisMu.Data(), basisSigma.Data(), xOld.data(), CpuIsa::kAvx512, begin, end);
                };
                parallelSlices(context, ltmUpdateOldSliceCount(b32, m32), old);
            }
            auto fresh = [&](int64_t begin, int64_t end) {
                ltmUpdateNewCpu(b32, n32, e32, l32, m32, bPast.Data(), xNew.Data(), modes, G.Data(), gInf.Data(),
                    xOld.data(), out, CpuIsa::kAvx512, begin, end);
            };
            parallelSlices(context, ltmUpdateNewSliceCount(b32, n32), fresh);
            return Ort::Status{nullptr};
        });
    }

    std::string mError;
    int32_t mSticky = 0;
};

} // namespace

std::vector<OrtCustomOp const*> ltmUpdateOrtOps()
{
    static std::unique_ptr<Ort::Custom::OrtLiteCustomOp> const op{
        Ort::Custom::CreateLiteCustomOp<LtmUpdateKernel>(kOP, "CPUExecutionProvider")};
    return {op.get()};
}

} // namespace rrwkv
