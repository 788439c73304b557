/*
 * The shared harness of build/plugins/rrwkv_kernel_parity (tests/kernelParity.cu): device buffers, checked CUDA
 * calls and the comparisons that every op folder's PARITY_SOURCES (<op>Parity.cu) use to test its CUDA kernels
 * against its CPU kernels on a GPU host.
 */
#ifndef RRWKV_KERNEL_PARITY_H
#define RRWKV_KERNEL_PARITY_H

#include "common/hostHalf.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <vector>

// A failed CUDA call ends the run (exit code 2): the remaining cases could not be trusted.
#define PARITY_CHECK(call)                                                                                             \
    do                                                                                                                 \
    {                                                                                                                  \
        cudaError_t const e_ = (call);                                                                                 \
        if (e_ != cudaSuccess)                                                                                         \
        {                                                                                                              \
            std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));             \
            std::exit(2);                                                                                              \
        }                                                                                                              \
    } while (0)

namespace rrwkv
{
namespace parity
{

// A device copy of h (one spare byte, so an empty vector still gets a distinct allocation).
template <typename T>
T* toDevice(std::vector<T> const& h)
{
    T* d = nullptr;
    PARITY_CHECK(cudaMalloc(&d, h.size() * sizeof(T) + 1));
    PARITY_CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
    return d;
}

template <typename T>
std::vector<T> toHost(T const* d, size_t n)
{
    std::vector<T> h(n);
    PARITY_CHECK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
}

inline void freeAll(std::initializer_list<void*> buffers)
{
    for (void* p : buffers)
    {
        PARITY_CHECK(cudaFree(p));
    }
}

inline float asFloat(float x)
{
    return x;
}

inline float asFloat(HostHalf x)
{
    return toFloat(x);
}

// max over elements of |a - b| - (atol + rtol |b|); > 0 means out of tolerance. NaN counts as failure.
template <typename A, typename B>
double excess(std::vector<A> const& gpu, std::vector<B> const& cpu, double atol, double rtol, double& maxAbs)
{
    double worst = -1.0;
    for (size_t i = 0; i < gpu.size(); ++i)
    {
        double const g = asFloat(gpu[i]);
        double const c = asFloat(cpu[i]);
        double const d = std::fabs(g - c);
        if (std::isnan(d))
        {
            return std::numeric_limits<double>::infinity();
        }
        maxAbs = std::max(maxAbs, d);
        worst = std::max(worst, d - (atol + rtol * std::fabs(c)));
    }
    return worst;
}

// Elements of gpu that are not cpu's bits; two NaNs count as equal (a CUDA NaN result is canonical, x86 keeps the
// operand's payload).
template <typename T>
size_t differing(std::vector<T> const& gpu, std::vector<T> const& cpu)
{
    size_t n = 0;
    for (size_t i = 0; i < gpu.size(); ++i)
    {
        bool const bothNan = std::isnan(static_cast<double>(gpu[i])) && std::isnan(static_cast<double>(cpu[i]));
        n += (bothNan || std::memcmp(&gpu[i], &cpu[i], sizeof(T)) == 0) ? 0 : 1;
    }
    return n;
}

} // namespace parity
} // namespace rrwkv

#endif // RRWKV_KERNEL_PARITY_H
