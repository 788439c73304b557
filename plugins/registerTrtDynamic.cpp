/*
 * Dynamic registration: linked into librrwkv_trt_plugins_dyn.so only (CONVENTIONS.md §4.4). Exposes the entry
 * points of IPluginRegistry::loadLibrary / trtexec --dynamicPlugins; needs no libnvinfer at link time.
 * No REGISTER_TENSORRT_PLUGIN here: loadLibrary fails on creators that are already registered.
 */
#include "NvInferRuntime.h"

#include "common/pluginUtils.h"
#include "matmul_w8/matmulW8Plugin.h"
#include "wkv4/wkv4Plugin.h"
#include "wkv4_medium/wkv4MediumPlugin.h"

#include <atomic>

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

extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) noexcept
{
    static rrwkv::Wkv4PluginCreator wkv4Creator;
    static rrwkv::Wkv4MediumPluginCreator wkv4MediumCreator;
    static rrwkv::MatMulW8PluginCreator matmulW8Creator;
    static nvinfer1::IPluginCreatorInterface* const kCREATORS[] = {&wkv4Creator, &wkv4MediumCreator, &matmulW8Creator};
    nbCreators = static_cast<int32_t>(sizeof(kCREATORS) / sizeof(kCREATORS[0]));
    return kCREATORS;
}
