/*
 * rrwkv::MatMulW8 for ONNX Runtime (CPU): the shared weight-only matmul op (common/weightOnlyMatmulOrt.h) over the
 * two passes of matmulW8Cpu.h (matmulW8OrtTraits.h), each on ORT's intra-op thread pool. Attributes: N (INT,
 * required) and block_size (INT, default 128, even, 2..256); plugin_namespace / plugin_version are ignored.
 */
#include "common/weightOnlyMatmulOrt.h"
#include "matmul_w8/matmulW8Cpu.h"
#include "matmul_w8/matmulW8OrtTraits.h"
#include "matmul_w8/matmulW8Traits.h"

#include <vector>

namespace rrwkv
{

std::vector<OrtCustomOp const*> matMulW8OrtOps()
{
    return weightOnlyMatmulOrtOps<W8ActivationsOrtTraits<MatMulW8Traits, &matmulW8ForwardCpu>>();
}

} // namespace rrwkv
