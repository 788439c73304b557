/*
 * rrwkv::MatMulW4's weight format for the shared weight-only matmul code (common/weightOnlyMatmul.h): int4 weights
 * packed in bytes, w [G, Kpad / 2, 64], with per-block fp32 scales [G, NB, 64] (matmulW4Math.h). The plugin and ORT
 * op add their role's parts (matmulW4Plugin.h, matmulW4Ort.cc).
 */
#ifndef RRWKV_MATMUL_W4_TRAITS_H
#define RRWKV_MATMUL_W4_TRAITS_H

#include "common/weightOnlyMatmul.h"
#include "matmul_w4/matmulW4Math.h"

#include <cstdint>

namespace rrwkv
{

struct MatMulW4Traits
{
    static constexpr char const* kNAME{"MatMulW4"};
    static constexpr int32_t kGROUP_COLS{kW4GroupCols};
    static constexpr int32_t kMAX_N{kW4MaxN};
    static constexpr int32_t kMAX_BLOCK{kW4MaxBlock};
    //! w [G, Kpad / 2, 64]: G groups, P row pairs, then the 64 bytes of a row pair (Y is not the scale's L: both are
    //! 64 but count different things, and a wrong w must be reported as its own dim).
    static constexpr PackedDim kW_TAIL[] = {{kW4PairBytes, "64", "the bytes of a row pair of a group"}};
};

} // namespace rrwkv

#endif // RRWKV_MATMUL_W4_TRAITS_H
