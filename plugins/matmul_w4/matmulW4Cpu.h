/*
 * CPU kernels for rrwkv::MatMulW4 over matmulW4Math.h, on host pointers, no ONNX Runtime or CUDA dependency.
 * The activations are MatMulW8's, so pass 1 is MatMulW8's own (matmulW8QuantizeRowsCpu, matmulW8Cpu.h), as are the
 * size limits (matmulW8SizeError), the paths (CpuIsa up to cpuIsaVnni(), common/cpuIsa.h) and the pass-2 slices
 * (matmulW8CpuSlice: a block of kW8_CPU_ROWS rows x one group of 64 columns). Pass 2 here reads the int4 weight:
 * AVX-512 VNNI (vpdpwssd on the int16 pairs that two shifts make of each nibble), AVX2 + FMA (vpmaddwd, the same pair
 * sums) or portable C++; all three give the same bits (exact int32 block sums, one fmaf per block in block order).
 */
#ifndef RRWKV_MATMUL_W4_CPU_H
#define RRWKV_MATMUL_W4_CPU_H

#include "matmul_w8/matmulW8Cpu.h"

#include <cstdint>

namespace rrwkv
{

// y [M, N] from xq [M, Kpad], xScale [M] (matmulW8QuantizeRowsCpu), w int8 [G, Kpad / 2, 64] (packed nibbles),
// scale fp32 [G, NB, 64]; Kpad = NB * blockSize, blockSize even in [2, kW4MaxBlock] (the caller validates with
// matmulW8SizeError). Slices as matmulW8ForwardCpu's: matmulW8CpuSliceCount(M, N) of them.
void matmulW4ForwardCpu(int32_t M, int32_t N, int32_t Kpad, int32_t blockSize, int16_t const* xq,
    float const* xScale, int8_t const* w, float const* scale, float* y, CpuIsa maxIsa = CpuIsa::kAvx512,
    int64_t sliceBegin = 0, int64_t sliceEnd = -1);

} // namespace rrwkv

#endif // RRWKV_MATMUL_W4_CPU_H
