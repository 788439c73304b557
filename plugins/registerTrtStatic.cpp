/*
 * Static registration: linked into librrwkv_trt_plugins.so only (CONVENTIONS.md §4.4). Loading the library
 * registers every rrwkv creator with libnvinfer's registry; the route for Polygraphy --plugins, ctypes.CDLL and
 * trtexec --staticPlugins. References getPluginRegistry()/getLogger() from libnvinfer.
 */
#include "NvInferRuntime.h"

#include "common/pluginUtils.h"
#include "matmul_w8/matmulW8Plugin.h"
#include "wkv4/wkv4Plugin.h"
#include "wkv4_medium/wkv4MediumPlugin.h"

namespace rrwkv
{

nvinfer1::ILogger* getPluginLogger() noexcept
{
    return ::getLogger();
}

} // namespace rrwkv

using rrwkv::MatMulW8PluginCreator;
using rrwkv::Wkv4MediumPluginCreator;
using rrwkv::Wkv4PluginCreator;

REGISTER_TENSORRT_PLUGIN(Wkv4PluginCreator);
REGISTER_TENSORRT_PLUGIN(Wkv4MediumPluginCreator);
REGISTER_TENSORRT_PLUGIN(MatMulW8PluginCreator);
