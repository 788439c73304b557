/*
 * TensorRT IPluginV3 for rrwkv::MatMulW4: the shared weight-only matmul plugin (common/weightOnlyMatmulPlugin.h)
 * over MatMulW4PluginTraits (matmulW4Plugin.h): shape/type contract on the host, matmulW4Forward on the device.
 * Instantiated here as well, so that this op's own translation unit compiles the template (compile_check.sh).
 */
#include "matmul_w4/matmulW4Plugin.h"

namespace rrwkv
{

template class WeightOnlyMatmulPlugin<MatMulW4PluginTraits>;
template class WeightOnlyMatmulPluginCreator<MatMulW4PluginTraits>;

} // namespace rrwkv
