/*
 * TensorRT IPluginV3 for rrwkv::MatMulWF16: the shared weight-only matmul plugin (common/weightOnlyMatmulPlugin.h)
 * over MatMulWF16PluginTraits (matmulWF16Plugin.h): shape/type contract on the host, matmulWF16Forward on the device.
 * Instantiated here as well, so that this op's own translation unit compiles the template (compile_check.sh).
 */
#include "matmul_wf16/matmulWF16Plugin.h"

namespace rrwkv
{

template class WeightOnlyMatmulPlugin<MatMulWF16PluginTraits>;
template class WeightOnlyMatmulPluginCreator<MatMulWF16PluginTraits>;

} // namespace rrwkv
