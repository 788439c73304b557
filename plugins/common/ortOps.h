/*
 * Helpers shared by the ONNX Runtime custom-op wrappers (<op>Ort.cc) and registerOrt.cc. Requires the ORT
 * C++ headers and ORT_API_MANUAL_INIT (set for the whole library by CMakeLists.txt); nothing here is used by
 * the kernels themselves.
 */
#ifndef RRWKV_ORT_OPS_H
#define RRWKV_ORT_OPS_H

#include "onnxruntime_cxx_api.h"
#include "onnxruntime_lite_custom_op.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace rrwkv
{

// The lite custom ops of each op folder, <cxx>OrtOps() in its ORT_SOURCES, created once and alive for the whole
// process (ORT keeps pointers). rrwkvOps.inc is generated from the op folders (plugins/rrwkvOps.cmake).
#define RRWKV_OP(Name, Cxx, cxx) std::vector<OrtCustomOp const*> cxx##OrtOps();
#include "rrwkvOps.inc"
#undef RRWKV_OP

inline std::string shapeString(std::vector<int64_t> const& shape)
{
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i)
    {
        s += (i ? ", " : "") + std::to_string(shape[i]);
    }
    return s + "]";
}

// A named dimension of an expected shape: {"B", 3}.
using Dim = std::pair<char const*, int64_t>;

// OK, or an ORT_INVALID_ARGUMENT status naming the op, the input, its shape and the expected one,
// e.g. "WKV4: input 'aa' has shape [2, 5], expected [B, C] = [3, 5]".
inline Ort::Status checkShape(
    char const* op, char const* input, std::vector<int64_t> const& shape, std::vector<Dim> const& expected)
{
    bool ok = shape.size() == expected.size();
    std::string names = "[";
    std::vector<int64_t> values;
    for (size_t i = 0; i < expected.size(); ++i)
    {
        ok = ok && shape[i] == expected[i].second;
        names += (i ? ", " : "") + std::string(expected[i].first);
        values.push_back(expected[i].second);
    }
    if (ok)
    {
        return Ort::Status{nullptr};
    }
    std::string const msg = std::string(op) + ": input '" + input + "' has shape " + shapeString(shape)
        + ", expected " + names + "] = " + shapeString(values);
    return Ort::Status{msg.c_str(), ORT_INVALID_ARGUMENT};
}

// OK, or an error status unless `shape` has rank `layout.size()`, e.g. "WKV4: input 'k' has shape [2, 5],
// expected rank 3 [B, T, C]".
inline Ort::Status checkRank(
    char const* op, char const* input, std::vector<int64_t> const& shape, std::vector<char const*> const& layout)
{
    if (shape.size() == layout.size())
    {
        return Ort::Status{nullptr};
    }
    std::string names;
    for (size_t i = 0; i < layout.size(); ++i)
    {
        names += (i ? ", " : "") + std::string(layout[i]);
    }
    std::string const msg = std::string(op) + ": input '" + input + "' has shape " + shapeString(shape)
        + ", expected rank " + std::to_string(layout.size()) + " [" + names + "]";
    return Ort::Status{msg.c_str(), ORT_INVALID_ARGUMENT};
}

// OK, or an error status unless every dim fits the kernels' int32 sizes.
inline Ort::Status checkInt32Dims(char const* op, std::vector<Dim> const& dims)
{
    for (Dim const& d : dims)
    {
        if (d.second > std::numeric_limits<int32_t>::max())
        {
            std::string const msg
                = std::string(op) + ": dimension " + d.first + " = " + std::to_string(d.second) + " exceeds int32";
            return Ort::Status{msg.c_str(), ORT_INVALID_ARGUMENT};
        }
    }
    return Ort::Status{nullptr};
}

// The ONNX type of a node attribute that is not an INT ("FLOAT", "STRING", "INTS", "FLOATS", "a list"), or nullptr
// when the node carries no attribute `name` of those types. ORT's kernel info has no type query: each getter is tried.
inline char const* nonIntAttributeType(OrtApi const* api, OrtKernelInfo const* info, char const* name)
{
    auto ok = [api](OrtStatus* status) {
        bool const good = status == nullptr;
        api->ReleaseStatus(status); // null is allowed
        return good;
    };
    float f = 0.0F;
    size_t size = 0;
    if (ok(api->KernelInfoGetAttribute_float(info, name, &f)))
    {
        return "FLOAT";
    }
    if (ok(api->KernelInfoGetAttribute_string(info, name, nullptr, &size))) // the scalar getters check the type
    {
        return "STRING";
    }
    // The array getters do not check the type (ORT 1.2x answers an INTS query for a FLOATS attribute with its empty
    // int list): the non-empty list tells which it is.
    size_t ints = 0;
    size_t floats = 0;
    bool const isInts = ok(api->KernelInfoGetAttributeArray_int64(info, name, nullptr, &ints));
    bool const isFloats = ok(api->KernelInfoGetAttributeArray_float(info, name, nullptr, &floats));
    if (isInts && ints > 0)
    {
        return "INTS";
    }
    if (isFloats && floats > 0)
    {
        return "FLOATS";
    }
    if (isInts || isFloats)
    {
        return "a list"; // empty, or STRINGS / TENSORS / ... (no getter for those)
    }
    return nullptr;
}

// An INT attribute, or `fallback` when the node does not carry it (present = false then). An attribute of that name
// with another type sets `error` ("WKV4Medium: attribute 's' must be an INT, got FLOAT") and returns `fallback`.
inline int64_t intAttribute(OrtApi const* api, OrtKernelInfo const* info, char const* op, char const* name,
    int64_t fallback, bool& present, std::string& error)
{
    int64_t value = 0;
    OrtStatus* status = api->KernelInfoGetAttribute_int64(info, name, &value);
    present = status == nullptr;
    if (status != nullptr)
    {
        api->ReleaseStatus(status);
        if (char const* type = nonIntAttributeType(api, info, name))
        {
            present = true;
            error = error.empty() ? std::string(op) + ": attribute '" + name + "' must be an INT, got " + type
                                  : error;
        }
        return fallback;
    }
    return value;
}

// A FLOAT attribute, or `fallback` when the node does not carry it (present = false then). An attribute of that name
// with another type sets `error` ("GatedOuterScan: attribute 'scale' must be a FLOAT, got INT") and returns
// `fallback`.
inline float floatAttribute(OrtApi const* api, OrtKernelInfo const* info, char const* op, char const* name,
    float fallback, bool& present, std::string& error)
{
    float value = 0.0F;
    OrtStatus* status = api->KernelInfoGetAttribute_float(info, name, &value);
    present = status == nullptr;
    if (status == nullptr)
    {
        return value;
    }
    api->ReleaseStatus(status);
    int64_t asInt = 0;
    OrtStatus* intStatus = api->KernelInfoGetAttribute_int64(info, name, &asInt);
    char const* type = intStatus == nullptr ? "INT" : nonIntAttributeType(api, info, name);
    api->ReleaseStatus(intStatus); // null is allowed
    if (type != nullptr)
    {
        present = true;
        error = error.empty() ? std::string(op) + ": attribute '" + name + "' must be a FLOAT, got " + type : error;
    }
    return fallback;
}

#define RRWKV_ORT_RETURN_IF_ERROR(expr)                                                                                \
    do                                                                                                                 \
    {                                                                                                                  \
        Ort::Status rrwkvStatus_ = (expr);                                                                             \
        if (!rrwkvStatus_.IsOK())                                                                                      \
        {                                                                                                              \
            return rrwkvStatus_;                                                                                       \
        }                                                                                                              \
    } while (0)

// body() -> Ort::Status, with an exception turned into an error status naming the op: Compute must not throw.
template <typename Body>
Ort::Status guardedCompute(char const* op, Body const& body)
{
    try
    {
        return body();
    }
    catch (Ort::Exception const& e)
    {
        return Ort::Status{e};
    }
    catch (std::exception const& e)
    {
        return Ort::Status{(std::string(op) + ": " + e.what()).c_str(), ORT_RUNTIME_EXCEPTION};
    }
}

// An ORT tensor's data as the kernel's element type of the same layout (HostHalf for Ort::Float16_t).
template <typename KernelT, typename OrtT>
KernelT const* kernelData(Ort::Custom::Tensor<OrtT> const& tensor)
{
    static_assert(sizeof(OrtT) == sizeof(KernelT), "ORT and kernel element types must have the same layout");
    return reinterpret_cast<KernelT const*>(tensor.Data());
}

// Allocate an output of `shape`, seen as the kernel's element type of the same layout.
template <typename KernelT, typename OrtT>
KernelT* kernelAllocate(Ort::Custom::Tensor<OrtT>& tensor, std::vector<int64_t> const& shape)
{
    static_assert(sizeof(OrtT) == sizeof(KernelT), "ORT and kernel element types must have the same layout");
    return reinterpret_cast<KernelT*>(tensor.Allocate(shape));
}

// Run fn(sliceBegin, sliceEnd) over [0, total) slices on ORT's intra-op thread pool, one slice per task.
// batches = 0: the pool hands out slices one by one; batches > 0: [0, total) is cut into that many contiguous
// ranges first (ORT's TryBatchParallelFor), so consecutive slices run on one thread (a kernel streaming its
// slices' data in order keeps one sequential stream per thread).
template <typename Fn>
void parallelSlices(OrtKernelContext* context, int64_t total, Fn const& fn, int64_t batches = 0)
{
    if (total <= 1)
    {
        fn(0, total);
        return;
    }
    auto trampoline = [](void* data, size_t i) {
        (*static_cast<Fn const*>(data))(static_cast<int64_t>(i), static_cast<int64_t>(i) + 1);
    };
    Ort::KernelContext(context).ParallelFor(trampoline, static_cast<size_t>(total),
        static_cast<size_t>(std::min(batches, total)), const_cast<void*>(static_cast<void const*>(&fn)));
}

} // namespace rrwkv

#endif // RRWKV_ORT_OPS_H
