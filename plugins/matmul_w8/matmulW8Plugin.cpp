/*
 * TensorRT IPluginV3 for rrwkv::MatMulW8: the shared weight-only matmul plugin (common/weightOnlyMatmulPlugin.h)
 * over MatMulW8PluginTraits (matmulW8Plugin.h): shape/type contract on the host, matmulW8Forward on the device.
 * Instantiated here as well, so that this op's own translation unit compiles the template (compile_check.sh).
 */
#include "matmul_w8/matmulW8Plugin.h"

namespace rrwkv
{

template class WeightOnlyMatmulPlugin<MatMulW8PluginTraits>;
template class WeightOnlyMatmulPluginCreator<MatMulW8PluginTraits>;

} // namespace rrwkv
