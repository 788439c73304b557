/*
 * rrwkv::WKV4 for ONNX Runtime (CPU): lite custom ops over wkv4ForwardCpu, one per activation dtype
 * (k, v, y float or float16) under the same name; state and w, u are float. Shapes are validated against
 * k [B, T, C] with an error naming the input; the slices of the CPU kernel run on ORT's intra-op thread pool.
 */
#include "common/ortOps.h"
#include "wkv4/wkv4Cpu.h"

#include <memory>

namespace rrwkv
{
namespace
{

using Ort::Custom::Tensor;

template <typename OrtT, typename KernelT>
Ort::Status wkv4Compute(OrtKernelContext* context, Tensor<float> const& w, Tensor<float> const& u,
    Tensor<OrtT> const& k, Tensor<OrtT> const& v, Tensor<float> const& aa, Tensor<float> const& bb,
    Tensor<float> const& pp, Tensor<OrtT>& y, Tensor<float>& aaOut, Tensor<float>& bbOut, Tensor<float>& ppOut)
{
    char const* op = "WKV4";
    return guardedCompute(op, [&]() {
        std::vector<int64_t> const& kShape = k.Shape();
        RRWKV_ORT_RETURN_IF_ERROR(checkRank(op, "k", kShape, {"B", "T", "C"}));
        int64_t const B = kShape[0], T = kShape[1], C = kShape[2];
        RRWKV_ORT_RETURN_IF_ERROR(checkShape(op, "v", v.Shape(), {{"B", B}, {"T", T}, {"C", C}}));
        RRWKV_ORT_RETURN_IF_ERROR(checkShape(op, "w", w.Shape(), {{"C", C}}));
        RRWKV_ORT_RETURN_IF_ERROR(checkShape(op, "u", u.Shape(), {{"C", C}}));
        RRWKV_ORT_RETURN_IF_ERROR(checkShape(op, "aa", aa.Shape(), {{"B", B}, {"C", C}}));
        RRWKV_ORT_RETURN_IF_ERROR(checkShape(op, "bb", bb.Shape(), {{"B", B}, {"C", C}}));
        RRWKV_ORT_RETURN_IF_ERROR(checkShape(op, "pp", pp.Shape(), {{"B", B}, {"C", C}}));
        RRWKV_ORT_RETURN_IF_ERROR(checkInt32Dims(op, {{"B", B}, {"T", T}, {"C", C}}));
        KernelT* Y = kernelAllocate<KernelT>(y, {B, T, C});
        float* AA = aaOut.Allocate({B, C});
        float* BB = bbOut.Allocate({B, C});
        float* PP = ppOut.Allocate({B, C});
        auto const b32 = static_cast<int32_t>(B), t32 = static_cast<int32_t>(T), c32 = static_cast<int32_t>(C);
        auto run = [&](int64_t begin, int64_t end) {
            wkv4ForwardCpu<KernelT>(b32, t32, c32, w.Data(), u.Data(), kernelData<KernelT>(k), kernelData<KernelT>(v),
                aa.Data(), bb.Data(), pp.Data(), Y, AA, BB, PP, CpuIsa::kAvx512, begin, end);
        };
        parallelSlices(context, wkv4CpuSliceCount(b32, c32), run);
        return Ort::Status{nullptr};
    });
}

} // namespace

std::vector<OrtCustomOp const*> wkv4OrtOps()
{
    static std::unique_ptr<Ort::Custom::OrtLiteCustomOp> const f32{
        Ort::Custom::CreateLiteCustomOp("WKV4", "CPUExecutionProvider", &wkv4Compute<float, float>)};
    static std::unique_ptr<Ort::Custom::OrtLiteCustomOp> const f16{
        Ort::Custom::CreateLiteCustomOp("WKV4", "CPUExecutionProvider", &wkv4Compute<Ort::Float16_t, HostHalf>)};
    return {f32.get(), f16.get()};
}

} // namespace rrwkv
