/*
 * rrwkv::MatMulW4 for ONNX Runtime (CPU): the shared weight-only matmul op (common/weightOnlyMatmulOrt.h) over the
 * two passes of matmulW4Cpu.h (pass 1 is MatMulW8's row quantisation, as are the size limits and the pass-2 slices:
 * matmul_w8/matmulW8OrtTraits.h), each on ORT's intra-op thread pool. Attributes: N (INT, required) and block_size
 * (INT, default 128, even, 2..256); plugin_namespace / plugin_version are ignored.
 */
#include "common/weightOnlyMatmulOrt.h"
#include "matmul_w4/matmulW4Cpu.h"
#include "matmul_w4/matmulW4Traits.h"
#include "matmul_w8/matmulW8OrtTraits.h"

#include <vector>

namespace rrwkv
{

std::vector<OrtCustomOp const*> matMulW4OrtOps()
{
    return weightOnlyMatmulOrtOps<W8ActivationsOrtTraits<MatMulW4Traits, &matmulW4ForwardCpu>>();
}

} // namespace rrwkv
