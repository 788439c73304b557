/*
 * rrwkv::MatMulW8's weight format for the shared weight-only matmul code (common/weightOnlyMatmul.h): int8 weights
 * w [G, Kpad / 2, 64, 2] with per-block fp32 scales [G, NB, 64] (matmulW8Math.h). The plugin and ORT op add their
 * role's parts (matmulW8Plugin.h, matmulW8Ort.cc).
 */
#ifndef RRWKV_MATMUL_W8_TRAITS_H
#define RRWKV_MATMUL_W8_TRAITS_H

#include "common/weightOnlyMatmul.h"
#include "matmul_w8/matmulW8Math.h"

#include <cstdint>

namespace rrwkv
{

struct MatMulW8Traits
{
    static constexpr char const* kNAME{"MatMulW8"};
    static constexpr int32_t kGROUP_COLS{kW8GroupCols};
    static constexpr int32_t kMAX_N{kW8MaxN};
    static constexpr int32_t kMAX_BLOCK{kW8MaxBlock};
    //! w [G, Kpad / 2, 64, 2]: G groups, P row pairs, then these.
    static constexpr PackedDim kW_TAIL[]
        = {{kW8GroupCols, "64", "the columns of a group"}, {2, "2", "the rows of a pair"}};
};

} // namespace rrwkv

#endif // RRWKV_MATMUL_W8_TRAITS_H
