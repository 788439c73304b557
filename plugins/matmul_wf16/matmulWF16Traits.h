/*
 * rrwkv::MatMulWF16's weight format for the shared weight-only matmul code (common/weightOnlyMatmul.h): fp16 weights
 * w [G, K, 64], no block_size, no scales, no workspace (matmulWF16Math.h). The plugin and ORT op add their role's
 * parts (matmulWF16Plugin.h, matmulWF16Ort.cc).
 */
#ifndef RRWKV_MATMUL_WF16_TRAITS_H
#define RRWKV_MATMUL_WF16_TRAITS_H

#include "common/weightOnlyMatmul.h"
#include "matmul_wf16/matmulWF16Math.h"

#include <cstdint>

namespace rrwkv
{

struct MatMulWF16Traits
{
    static constexpr char const* kNAME{"MatMulWF16"};
    static constexpr int32_t kGROUP_COLS{kWF16GroupCols};
    static constexpr int32_t kMAX_N{kWF16MaxN};
    static constexpr int32_t kMAX_BLOCK{0}; // no block_size: not block-quantised
    //! w [G, K, 64]: G groups, K the rows of W (x's last axis), then the 64 lanes of a group.
    static constexpr PackedDim kW_TAIL[] = {{kWF16GroupCols, "64", "the columns of a group"}};
};

} // namespace rrwkv

#endif // RRWKV_MATMUL_WF16_TRAITS_H
