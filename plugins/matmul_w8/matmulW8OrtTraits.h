/*
 * The ONNX Runtime traits (common/weightOnlyMatmulOrt.h) of a block-quantised format whose activations are
 * MatMulW8's: pass 1 is matmulW8QuantizeRowsCpu (int16 rows), the size limits are matmulW8SizeError and the pass-2
 * slices matmulW8CpuSliceCount's (matmulW8Cpu.h); only pass 2, the weight format's kernel, differs. MatMulW8 and
 * MatMulW4 instantiate it (matmulW8Ort.cc, matmul_w4/matmulW4Ort.cc). Both passes take the best path up to AVX-512
 * VNNI.
 */
#ifndef RRWKV_MATMUL_W8_ORT_TRAITS_H
#define RRWKV_MATMUL_W8_ORT_TRAITS_H

#include "common/weightOnlyMatmulOrt.h"
#include "matmul_w8/matmulW8Cpu.h"

#include <cstdint>
#include <string>

namespace rrwkv
{

//! Format: the op's traits (weightOnlyMatmul.h); forward: its pass-2 kernel, with matmulW8ForwardCpu's parameters
//! (w int8, scale fp32).
template <typename Format, auto forward>
struct W8ActivationsOrtTraits : Format
{
    using Weights = OrtWeightInputs<int8_t, float>; // w, scale

    static std::string sizeError(int64_t M, int64_t K, int64_t N, int64_t blockSize)
    {
        return matmulW8SizeError(M, K, N, blockSize);
    }

    static int64_t sliceCount(int32_t M, int32_t N)
    {
        return matmulW8CpuSliceCount(M, N);
    }

    static void quantizeRows(int32_t M, int32_t K, int32_t Kpad, float const* x, int16_t* xq, float* xScale,
        int64_t begin, int64_t end)
    {
        matmulW8QuantizeRowsCpu(M, K, Kpad, x, xq, xScale, CpuIsa::kAvx512, begin, end);
    }

    static void forwardCpu(int32_t M, int32_t N, int32_t Kpad, int32_t blockSize, int16_t const* xq,
        float const* xScale, int8_t const* w, float const* scale, float* y, int64_t begin, int64_t end)
    {
        forward(M, N, Kpad, blockSize, xq, xScale, w, scale, y, CpuIsa::kAvx512, begin, end);
    }
};

} // namespace rrwkv

#endif // RRWKV_MATMUL_W8_ORT_TRAITS_H
