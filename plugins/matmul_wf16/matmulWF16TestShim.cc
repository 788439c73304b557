/*
 * MatMulWF16's extern "C" entry points in librrwkv_cpu_testshim.so (tests/plugins/kernel_shim.py): the CPU kernels
 * of matmulWF16Cpu.h and the CUDA kernel of matmulWF16Kernel.cuh compiled for the CPU under tests/cudaEmulation.h.
 * Pointers are host buffers in the layouts of matmulWF16Kernel.h; fp16 weights cross as uint16 bits.
 */
#include "tests/cpuTestShim.h"

#include "matmul_wf16/matmulWF16Cpu.h"
#include "matmul_wf16/matmulWF16Kernel.cuh"
#include "tests/weightOnlyMatmulTestShim.h"

#include <cstdint>

extern "C"
{

    // y [M, N] on the CPU kernels, all slices, on the best path up to maxIsa (rrwkv::CpuIsa: 0 portable, 1 AVX2,
    // 2 AVX-512). Returns 0, or 1 (touching nothing) for the sizes matmulWF16SizeError refuses.
    int rrwkv_cpu_matmul_wf16(
        int32_t M, int32_t K, int32_t N, float const* x, uint16_t const* w, float* y, int32_t maxIsa)
    {
        if (!rrwkv::matmulWF16SizeError(M, K, N).empty())
        {
            return 1;
        }
        rrwkv::matmulWF16ForwardCpu(M, K, N, x, w, y, static_cast<rrwkv::CpuIsa>(maxIsa));
        return 0;
    }

    // The emulated CUDA launcher's cudaError_t.
    int rrwkv_emu_matmul_wf16(int32_t M, int32_t K, int32_t N, float const* x, uint16_t const* w, float* y)
    {
        return rrwkv::matmulWF16ForwardLaunch(nullptr, M, K, N, x, w, y);
    }

    // matmulWF16SizeError into msg (capacity bytes, NUL-terminated), returning its length (0: valid).
    int32_t rrwkv_wf16_size_error(int64_t M, int64_t K, int64_t N, char* msg, int32_t capacity)
    {
        return rrwkv::shimMessage(rrwkv::matmulWF16SizeError(M, K, N), msg, capacity);
    }

    // Slice s of matmulWF16CpuSlice and the slice count.
    int64_t rrwkv_wf16_cpu_slice(int64_t s, int32_t M, int32_t N, int32_t* g, int32_t* r0, int32_t* r1)
    {
        return rrwkv::shimSlice(
            rrwkv::matmulWF16CpuSlice(s, M, N), rrwkv::matmulWF16CpuSliceCount(M, N), g, r0, r1);
    }

    // The best path the CPU kernels take on this machine (rrwkv::CpuIsa).
    int32_t rrwkv_cpu_matmul_wf16_isa()
    {
        return static_cast<int32_t>(rrwkv::cpuIsa());
    }

    // wf16ToFloat over n weights (matmulWF16Math.h), for the conversion test against numpy.
    void rrwkv_wf16_to_float(uint16_t const* h, float* f, int64_t n)
    {
        for (int64_t i = 0; i < n; ++i)
        {
            f[i] = rrwkv::wf16ToFloat(h[i]);
        }
    }

    // Threads per block of the emulated MatMulWF16 kernel.
    int32_t rrwkv_emu_matmul_wf16_threads()
    {
        return rrwkv::kWF16_THREADS;
    }

} // extern "C"
