/*
 * What the weight-only matmul ops' test-shim entry points (matmul_w8/matmulW8TestShim.cc, matmul_w4/...,
 * matmul_wf16/...; tests/plugins/kernel_shim.py) share: both CPU passes of a block-quantised format, the size-error
 * message copy and the pass-2 slice query. Host code; include after tests/cpuTestShim.h.
 */
#ifndef RRWKV_WEIGHT_ONLY_MATMUL_TEST_SHIM_H
#define RRWKV_WEIGHT_ONLY_MATMUL_TEST_SHIM_H

#include "matmul_w8/matmulW8Cpu.h"
#include "matmul_w8/matmulW8Math.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

namespace rrwkv
{

// y [M, N] and the quantised rows xq [M, Kpad], xScale [M] on the CPU kernels of a block-quantised format: MatMulW8's
// row quantisation, then forward (pass 2, matmulW8ForwardCpu's parameters), all slices, on the best path up to
// maxIsa (CpuIsa). Returns 0, or 1 (cudaErrorInvalidValue) for the sizes matmulW8SizeError refuses, touching nothing.
template <typename Forward>
int blockQuantizedCpuShim(Forward const& forward, int32_t M, int32_t K, int32_t N, int32_t blockSize, float const* x,
    int8_t const* w, float const* scale, int16_t* xq, float* xScale, float* y, int32_t maxIsa)
{
    if (!matmulW8SizeError(M, K, N, blockSize).empty())
    {
        return 1;
    }
    auto const Kpad = static_cast<int32_t>(w8PaddedK(K, blockSize));
    auto const isa = static_cast<CpuIsa>(maxIsa);
    matmulW8QuantizeRowsCpu(M, K, Kpad, x, xq, xScale, isa);
    forward(M, N, Kpad, blockSize, xq, xScale, w, scale, y, isa, 0, -1);
    return 0;
}

// error into msg (capacity bytes, NUL-terminated), returning its length (0: valid).
inline int32_t shimMessage(std::string const& error, char* msg, int32_t capacity)
{
    if (capacity > 0)
    {
        size_t const n = std::min(error.size(), static_cast<size_t>(capacity - 1));
        std::memcpy(msg, error.data(), n);
        msg[n] = '\0';
    }
    return static_cast<int32_t>(error.size());
}

// Slice s (a struct with g, r0, r1) into the out-parameters, returning the slice count.
template <typename Slice>
int64_t shimSlice(Slice const& slice, int64_t count, int32_t* g, int32_t* r0, int32_t* r1)
{
    *g = slice.g;
    *r0 = slice.r0;
    *r1 = slice.r1;
    return count;
}

} // namespace rrwkv

#endif // RRWKV_WEIGHT_ONLY_MATMUL_TEST_SHIM_H
