/*
 * GPU hosts: every op's CUDA kernels against its CPU kernels on random inputs, no TensorRT or ONNX Runtime. The
 * cases are in each op folder's PARITY_SOURCES (<op>Parity.cu, plugins/<folder>/op.cmake), listed by the generated
 * rrwkvKernelParity.inc; the shared harness is kernelParity.h. Prints one line per case; exit code 0 when every
 * case is within tolerance.
 * Build: cmake --build build/plugins --target rrwkv_kernel_parity; run: build/plugins/rrwkv_kernel_parity.
 */
#include <cstdio>
#include <random>

namespace rrwkv
{
#define RRWKV_KERNEL_PARITY(Name, cxx) bool cxx##KernelParity(std::mt19937& rng);
#include "rrwkvKernelParity.inc"
#undef RRWKV_KERNEL_PARITY
} // namespace rrwkv

int main()
{
    std::mt19937 rng(0);
    bool ok = true;
#define RRWKV_KERNEL_PARITY(Name, cxx) ok = rrwkv::cxx##KernelParity(rng) && ok;
#include "rrwkvKernelParity.inc"
#undef RRWKV_KERNEL_PARITY
    std::printf("%s\n", ok ? "kernel parity: all cases within tolerance" : "kernel parity: FAILED");
    return ok ? 0 : 1;
}
