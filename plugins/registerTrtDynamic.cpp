/*
 * Dynamic registration: linked into librrwkv_trt_plugins_dyn.so only (docs/conventions.md §4.4). Exposes the entry
 * points of IPluginRegistry::loadLibrary / trtexec --dynamicPlugins; needs no libnvinfer at link time.
 * No REGISTER_TENSORRT_PLUGIN here: loadLibrary fails on creators that are already registered.
 */
#include "NvInferRuntime.h"

#include "common/pluginUtils.h"
#include "rrwkvPlugins.h"

#include <atomic>
#include <string_view>

namespace rrwkv
{
namespace
{
std::atomic<nvinfer1::ILoggerFinder*> gLoggerFinder{nullptr};
} // namespace

nvinfer1::ILogger* getPluginLogger() noexcept
{
    nvinfer1::ILoggerFinder* finder = gLoggerFinder.load();
    return finder == nullptr ? nullptr : finder->findLogger();
}

} // namespace rrwkv

extern "C" void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept
{
    rrwkv::gLoggerFinder.store(finder);
}

// The ops of the generated list (rrwkvOps.inc, one line per op folder). Each creator must report the op name of its
// op.cmake, which tests/plugins/test_op_registry.py checks against core/ops.py.
#define RRWKV_OP(Name, Cxx, cxx)                                                                                       \
    static_assert(std::string_view{rrwkv::Cxx##Plugin::kNAME} == #Name, "plugin name differs from op.cmake's NAME");
#include "rrwkvOps.inc"
#undef RRWKV_OP

extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) noexcept
{
#define RRWKV_OP(Name, Cxx, cxx) static rrwkv::Cxx##PluginCreator cxx##Creator;
#include "rrwkvOps.inc"
#undef RRWKV_OP
    static nvinfer1::IPluginCreatorInterface* const kCREATORS[] = {
#define RRWKV_OP(Name, Cxx, cxx) &cxx##Creator,
#include "rrwkvOps.inc"
#undef RRWKV_OP
    };
    nbCreators = static_cast<int32_t>(sizeof(kCREATORS) / sizeof(kCREATORS[0]));
    return kCREATORS;
}
