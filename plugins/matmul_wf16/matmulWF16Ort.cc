/*
 * rrwkv::MatMulWF16 for ONNX Runtime (CPU): the shared weight-only matmul op (common/weightOnlyMatmulOrt.h) over
 * matmulWF16Cpu.h on ORT's intra-op thread pool. Attribute: N (INT, required); plugin_namespace / plugin_version are
 * ignored. The weight is read in place from the tensor ORT holds (an initializer; OrtSession hands it over in huge
 * pages, runtime/backends/huge_pages.py).
 */
#include "common/weightOnlyMatmulOrt.h"
#include "matmul_wf16/matmulWF16Cpu.h"
#include "matmul_wf16/matmulWF16Traits.h"

#include <string>
#include <vector>

namespace rrwkv
{
namespace
{

struct MatMulWF16OrtTraits : MatMulWF16Traits
{
    using Weights = OrtWeightInputs<Ort::Float16_t>; // w [G, K, 64]

    static std::string sizeError(int64_t M, int64_t K, int64_t N, int64_t /*blockSize*/)
    {
        return matmulWF16SizeError(M, K, N);
    }

    static int64_t sliceCount(int32_t M, int32_t N)
    {
        return matmulWF16CpuSliceCount(M, N);
    }

    static void forwardCpu(int32_t M, int32_t K, int32_t N, float const* x,
        Ort::Custom::Tensor<Ort::Float16_t> const& w, float* y, int64_t begin, int64_t end)
    {
        matmulWF16ForwardCpu(M, K, N, x, kernelData<uint16_t>(w), y, CpuIsa::kAvx512, begin, end);
    }
};

} // namespace

std::vector<OrtCustomOp const*> matMulWF16OrtOps()
{
    return weightOnlyMatmulOrtOps<MatMulWF16OrtTraits>();
}

} // namespace rrwkv
