/*
 * The ONNX Runtime entry point of librrwkv_ort_ops.so: RegisterCustomOps adds every rrwkv custom op (domain
 * "rrwkv", opset 1) to the session options. Built with ORT_API_MANUAL_INIT against the C API version of the
 * fetched headers (21) and not linked to libonnxruntime; a newer runtime serves the older API version.
 */
#include "common/ortOps.h"

#include <exception>
#include <mutex>
#include <string>
#include <vector>

namespace
{

std::mutex gMutex;
std::vector<Ort::CustomOpDomain> gDomains; // must outlive every session that registered them

// The lite custom ops of every op, in the order of the generated list (rrwkvOps.inc, one line per op folder).
std::vector<OrtCustomOp const*> allOrtOps()
{
    std::vector<OrtCustomOp const*> all;
    for (auto const& ops : {
#define RRWKV_OP(Name, Cxx, cxx) rrwkv::cxx##OrtOps(),
#include "rrwkvOps.inc"
#undef RRWKV_OP
         })
    {
        all.insert(all.end(), ops.begin(), ops.end());
    }
    return all;
}

} // namespace

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL RegisterCustomOps(
    OrtSessionOptions* options, OrtApiBase const* api)
{
    OrtApi const* ortApi = api->GetApi(ORT_API_VERSION);
    if (ortApi == nullptr)
    {
        std::string const msg = "librrwkv_ort_ops: this onnxruntime (" + std::string(api->GetVersionString())
            + ") does not provide C API version " + std::to_string(ORT_API_VERSION) + "; use onnxruntime >= 1.21";
        return api->GetApi(1)->CreateStatus(ORT_FAIL, msg.c_str());
    }
    Ort::InitApi(ortApi);
    try
    {
        std::lock_guard<std::mutex> lock(gMutex);
        Ort::CustomOpDomain domain{"rrwkv"};
        for (OrtCustomOp const* op : allOrtOps())
        {
            domain.Add(op);
        }
        Ort::UnownedSessionOptions(options).Add(domain);
        gDomains.push_back(std::move(domain));
        return nullptr;
    }
    catch (Ort::Exception const& e)
    {
        return ortApi->CreateStatus(e.GetOrtErrorCode(), e.what());
    }
    catch (std::exception const& e)
    {
        return ortApi->CreateStatus(ORT_FAIL, e.what());
    }
}
