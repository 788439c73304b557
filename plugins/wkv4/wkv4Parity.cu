/*
 * WKV4's kernel-parity cases (tests/kernelParity.cu, GPU hosts): wkv4Forward<T> against wkv4ForwardCpu<T> in fp32
 * and fp16 I/O over kWKV4_PARITY_SHAPES, outputs poisoned.
 */
#include "wkv4/wkv4Cpu.h"
#include "wkv4/wkv4Kernel.h"
#include "wkv4/wkv4Parity.h"

#include <cuda_fp16.h>

namespace rrwkv
{
namespace
{

template <typename DevT, typename HostT>
bool wkv4Case(int32_t B, int32_t T, int32_t C, std::mt19937& rng)
{
    Wkv4ParityCase<DevT, HostT> c(B, T, C, rng);
    wkv4ForwardCpu<HostT>(B, T, C, c.w.data(), c.u.data(), c.k.data(), c.v.data(), c.aa.data(), c.bb.data(),
        c.pp.data(), c.yCpu.data(), c.aaCpu.data(), c.bbCpu.data(), c.ppCpu.data());
    PARITY_CHECK(wkv4Forward<DevT>(
        nullptr, B, T, C, c.dW, c.dU, c.dK, c.dV, c.dAA, c.dBB, c.dPP, c.dY, c.dAAo, c.dBBo, c.dPPo));
    return c.compare("WKV4", "");
}

} // namespace

bool wkv4KernelParity(std::mt19937& rng)
{
    bool ok = true;
    for (auto const& sh : kWKV4_PARITY_SHAPES)
    {
        ok = wkv4Case<float, float>(sh[0], sh[1], sh[2], rng) && ok;
        ok = wkv4Case<__half, HostHalf>(sh[0], sh[1], sh[2], rng) && ok;
    }
    return ok;
}

} // namespace rrwkv
