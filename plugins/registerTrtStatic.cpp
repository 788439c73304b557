/*
 * Static registration: linked into librrwkv_trt_plugins.so only (docs/conventions.md §4.4). Loading the library
 * registers every rrwkv creator with libnvinfer's registry; the route for Polygraphy --plugins, ctypes.CDLL and
 * trtexec --staticPlugins. References getPluginRegistry()/getLogger() from libnvinfer.
 */
#include "NvInferRuntime.h"

#include "common/pluginUtils.h"
#include "rrwkvPlugins.h"

namespace rrwkv
{

nvinfer1::ILogger* getPluginLogger() noexcept
{
    return ::getLogger();
}

} // namespace rrwkv

// One registrar per op of the generated list (rrwkvOps.inc, one line per op folder). REGISTER_TENSORRT_PLUGIN pastes
// its argument into a variable name, so it takes the unqualified class name.
#define RRWKV_OP(Name, Cxx, cxx)                                                                                       \
    using rrwkv::Cxx##PluginCreator;                                                                                   \
    REGISTER_TENSORRT_PLUGIN(Cxx##PluginCreator);
#include "rrwkvOps.inc"
#undef RRWKV_OP
