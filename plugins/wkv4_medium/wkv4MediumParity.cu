/*
 * WKV4Medium's kernel-parity cases (tests/kernelParity.cu, GPU hosts): wkv4MediumForward<T> against
 * wkv4MediumForwardCpu<T> in fp32 and fp16 I/O over WKV4's parity shapes, both medium_decays, per-batch pos0 (one
 * of them past the int32 range), outputs poisoned.
 */
#include "wkv4/wkv4Parity.h"
#include "wkv4_medium/wkv4MediumCpu.h"
#include "wkv4_medium/wkv4MediumKernel.h"

#include <cuda_fp16.h>

#include <algorithm>
#include <string>
#include <vector>

namespace rrwkv
{
namespace
{

template <typename DevT, typename HostT>
bool wkv4MediumCase(int32_t B, int32_t T, int32_t C, int32_t s, int32_t md, std::mt19937& rng)
{
    Wkv4ParityCase<DevT, HostT> c(B, T, C, rng);
    std::normal_distribution<float> normal;
    int32_t const M = std::max(1, (T + s - 1) / s);
    size_t const nm = size_t(B) * M * C;
    std::vector<float> kM(nm), vM(nm);
    for (size_t i = 0; i < nm; ++i)
    {
        kM[i] = 1.5f * normal(rng) - 1.f;
        vM[i] = normal(rng);
    }
    std::vector<int64_t> pos0(B);
    for (int32_t b = 0; b < B; ++b)
    {
        pos0[b] = (s - 1 + 3 * b) + (b == 2 ? 3000000000LL * s : 0);
    }
    wkv4MediumForwardCpu<HostT>(B, T, C, M, s, md, c.w.data(), c.u.data(), c.k.data(), c.v.data(), kM.data(),
        vM.data(), c.aa.data(), c.bb.data(), c.pp.data(), pos0.data(), c.yCpu.data(), c.aaCpu.data(), c.bbCpu.data(),
        c.ppCpu.data());
    float* dKM = parity::toDevice(kM);
    float* dVM = parity::toDevice(vM);
    int64_t* dPos = parity::toDevice(pos0);
    PARITY_CHECK(wkv4MediumForward<DevT>(nullptr, B, T, C, M, s, md, c.dW, c.dU, c.dK, c.dV, dKM, dVM, c.dAA, c.dBB,
        c.dPP, dPos, c.dY, c.dAAo, c.dBBo, c.dPPo));
    bool const ok = c.compare("WKV4Medium", "s=" + std::to_string(s) + " md=" + std::to_string(md));
    parity::freeAll({dKM, dVM, dPos});
    return ok;
}

} // namespace

bool wkv4MediumKernelParity(std::mt19937& rng)
{
    bool ok = true;
    for (auto const& sh : kWKV4_PARITY_SHAPES)
    {
        int32_t const s = sh[1] % 3 == 0 ? 16 : 4;
        for (int32_t md : {0, 1})
        {
            ok = wkv4MediumCase<float, float>(sh[0], sh[1], sh[2], s, md, rng) && ok;
            ok = wkv4MediumCase<__half, HostHalf>(sh[0], sh[1], sh[2], s, md, rng) && ok;
        }
    }
    return ok;
}

} // namespace rrwkv
