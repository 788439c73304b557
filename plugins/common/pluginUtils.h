/*
 * Host-side helpers shared by the rrwkv TensorRT plugins (IPluginV3): logging in TensorRT's caughtError
 * style, validation that throws, and PluginField parsing with type checks. Header only.
 * getPluginLogger() is defined by the registration file linked into each library:
 *   registerTrtStatic.cpp  -> ::getLogger() of libnvinfer;
 *   registerTrtDynamic.cpp -> the ILoggerFinder given to setLoggerFinder().
 */
#ifndef RRWKV_PLUGIN_UTILS_H
#define RRWKV_PLUGIN_UTILS_H

#include "NvInferRuntime.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <sstream>
#include <stdexcept>
#include <string>

namespace rrwkv
{

static constexpr char const* kPLUGIN_NAMESPACE{"rrwkv"};
static constexpr char const* kPLUGIN_VERSION{"1"};

//! The logger of the TensorRT object that called into the plugin; nullptr when none is known.
nvinfer1::ILogger* getPluginLogger() noexcept;

//! Thrown by plugin code on invalid input; its message names the plugin, what was expected and what was found.
class PluginError : public std::runtime_error
{
public:
    explicit PluginError(std::string const& msg)
        : std::runtime_error(msg)
    {
    }
};

inline void logPluginMessage(nvinfer1::ILogger::Severity severity, char const* msg) noexcept
{
    nvinfer1::ILogger* logger = getPluginLogger();
    if (logger != nullptr)
    {
        logger->log(severity, msg);
    }
    else
    {
        // No logger registered (e.g. a creator used before any builder exists): stderr rather than silence.
        std::fprintf(stderr, "[rrwkv] %s\n", msg);
    }
}

//! Log an exception caught at an interface boundary (TensorRT's caughtError pattern).
inline void caughtError(std::exception const& e) noexcept
{
    logPluginMessage(nvinfer1::ILogger::Severity::kERROR, e.what());
}

//! Throw a PluginError "<plugin>: <what>" when cond is false.
inline void validate(bool cond, char const* plugin, std::string const& what)
{
    if (!cond)
    {
        throw PluginError(std::string(plugin) + ": " + what);
    }
}

inline char const* fieldTypeName(nvinfer1::PluginFieldType type) noexcept
{
    using nvinfer1::PluginFieldType;
    switch (type)
    {
    case PluginFieldType::kFLOAT16: return "kFLOAT16";
    case PluginFieldType::kFLOAT32: return "kFLOAT32";
    case PluginFieldType::kFLOAT64: return "kFLOAT64";
    case PluginFieldType::kINT8: return "kINT8";
    case PluginFieldType::kINT16: return "kINT16";
    case PluginFieldType::kINT32: return "kINT32";
    case PluginFieldType::kCHAR: return "kCHAR";
    case PluginFieldType::kDIMS: return "kDIMS";
    case PluginFieldType::kBF16: return "kBF16";
    case PluginFieldType::kINT64: return "kINT64";
    default: return "another type";
    }
}

inline char const* dataTypeName(nvinfer1::DataType type) noexcept
{
    using nvinfer1::DataType;
    switch (type)
    {
    case DataType::kFLOAT: return "float32";
    case DataType::kHALF: return "float16";
    case DataType::kBF16: return "bfloat16";
    case DataType::kINT8: return "int8";
    case DataType::kINT32: return "int32";
    case DataType::kINT64: return "int64";
    case DataType::kBOOL: return "bool";
    case DataType::kUINT8: return "uint8";
    default: return "another type";
    }
}

//! Input i has dtype `expected`, else a PluginError naming the input.
inline void validateInputType(nvinfer1::DataType const* inputTypes, int32_t i, char const* name,
    nvinfer1::DataType expected, char const* plugin)
{
    std::ostringstream msg;
    msg << "input " << i << " '" << name << "' must be " << dataTypeName(expected) << ", got "
        << dataTypeName(inputTypes[i]);
    validate(inputTypes[i] == expected, plugin, msg.str());
}

//! The activation inputs k and v: float32 or float16, v the same as k.
inline void validateActivationTypes(
    nvinfer1::DataType const* inputTypes, int32_t kIndex, int32_t vIndex, char const* plugin)
{
    using nvinfer1::DataType;
    DataType const kType = inputTypes[kIndex];
    std::ostringstream msg;
    msg << "input " << kIndex << " 'k' must be float32 or float16, got " << dataTypeName(kType);
    validate(kType == DataType::kFLOAT || kType == DataType::kHALF, plugin, msg.str());
    validateInputType(inputTypes, vIndex, "v (same dtype as k)", kType, plugin);
}

//! One scalar kINT32 field (an ONNX INT attribute).
inline int32_t readInt32Field(nvinfer1::PluginField const& field, char const* plugin)
{
    std::ostringstream msg;
    msg << "attribute '" << field.name << "' must be one kINT32 value (ONNX INT), got " << fieldTypeName(field.type)
        << " x " << field.length;
    validate(field.type == nvinfer1::PluginFieldType::kINT32 && field.length == 1 && field.data != nullptr, plugin,
        msg.str());
    int32_t value{};
    std::memcpy(&value, field.data, sizeof(value));
    return value;
}

//! One scalar kFLOAT32 field (an ONNX FLOAT attribute).
inline float readFloat32Field(nvinfer1::PluginField const& field, char const* plugin)
{
    std::ostringstream msg;
    msg << "attribute '" << field.name << "' must be one kFLOAT32 value (ONNX FLOAT), got "
        << fieldTypeName(field.type) << " x " << field.length;
    validate(field.type == nvinfer1::PluginFieldType::kFLOAT32 && field.length == 1 && field.data != nullptr, plugin,
        msg.str());
    float value{};
    std::memcpy(&value, field.data, sizeof(value));
    return value;
}

//! One kCHAR field (an ONNX STRING attribute); a trailing NUL, if counted in length, is dropped.
inline std::string readStringField(nvinfer1::PluginField const& field, char const* plugin)
{
    std::ostringstream msg;
    msg << "attribute '" << field.name << "' must be a kCHAR string (ONNX STRING), got " << fieldTypeName(field.type);
    validate(field.type == nvinfer1::PluginFieldType::kCHAR && field.length >= 0
            && (field.length == 0 || field.data != nullptr),
        plugin, msg.str());
    std::string value(static_cast<char const*>(field.data), static_cast<size_t>(field.length));
    return value.substr(0, value.find('\0'));
}

//! True for the plugin_namespace / plugin_version fields every rrwkv node carries: type-checked, value ignored
//! (the registry already matched the creator on them).
inline bool readPluginIdentityField(nvinfer1::PluginField const& field, char const* plugin)
{
    if (std::strcmp(field.name, "plugin_namespace") != 0 && std::strcmp(field.name, "plugin_version") != 0)
    {
        return false;
    }
    readStringField(field, plugin);
    return true;
}

//! Track one named dimension (C, B, ...) across tensors: known extents must agree; -1 is unknown.
class DimAgreement
{
public:
    DimAgreement(char const* plugin, char dimName)
        : mPlugin(plugin)
        , mDimName(dimName)
    {
    }

    void add(int64_t value, char const* tensor)
    {
        if (value < 0)
        {
            return;
        }
        if (mValue < 0)
        {
            mValue = value;
            mTensor = tensor;
            return;
        }
        std::ostringstream msg;
        msg << "dimension " << mDimName << " of input '" << tensor << "' is " << value << " but " << mValue
            << " in input '" << mTensor << "'; all inputs must agree";
        validate(value == mValue, mPlugin, msg.str());
    }

private:
    char const* mPlugin;
    char mDimName;
    int64_t mValue{-1};
    char const* mTensor{""};
};

//! One input of an op contract: its name and one letter per axis, e.g. {"k", "BTC"}. A leading "..." stands for
//! any number of leading axes, which are not checked: {"x", "...K"} is rank >= 1 with K the last axis.
struct InputContract
{
    char const* name;
    char const* dims;
};

//! The axis letters of a contract entry, without the "..." of an open-rank entry.
inline std::string contractAxes(InputContract const& input)
{
    std::string const dims{input.dims};
    return dims.rfind("...", 0) == 0 ? dims.substr(3) : dims;
}

//! Check every input's rank against the contract, then that the axes sharing a letter agree wherever both
//! extents are known. rank(i) -> int32_t; extent(i, axis) -> int64_t, -1 when unknown (dynamic).
template <typename RankFn, typename ExtentFn>
void validateContract(
    char const* plugin, InputContract const* contract, int32_t nbInputs, RankFn const& rank, ExtentFn const& extent)
{
    std::string letters;
    for (int32_t i = 0; i < nbInputs; ++i)
    {
        std::string const axes = contractAxes(contract[i]);
        bool const open = axes.size() != std::strlen(contract[i].dims);
        std::ostringstream msg;
        msg << "input " << i << " '" << contract[i].name << "' must have rank " << (open ? ">= " : "") << axes.size()
            << " [" << (open ? "...," : "");
        for (size_t a = 0; a < axes.size(); ++a)
        {
            msg << (a ? "," : "") << axes[a];
            if (letters.find(axes[a]) == std::string::npos)
            {
                letters.push_back(axes[a]);
            }
        }
        msg << "], got rank " << rank(i);
        auto const need = static_cast<int32_t>(axes.size());
        validate(open ? rank(i) >= need : rank(i) == need, plugin, msg.str());
    }
    for (char const letter : letters)
    {
        DimAgreement agree(plugin, letter);
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            std::string const axes = contractAxes(contract[i]);
            int32_t const first = rank(i) - static_cast<int32_t>(axes.size()); // the axis of axes[0]
            for (size_t a = 0; a < axes.size(); ++a)
            {
                if (axes[a] == letter)
                {
                    agree.add(extent(i, first + static_cast<int32_t>(a)), contract[i].name);
                }
            }
        }
    }
}

//! Extent of a build-time dimension expression, -1 unless it is a constant.
inline int64_t constantOrUnknown(nvinfer1::IDimensionExpr const* expr) noexcept
{
    return expr != nullptr && expr->isConstant() ? expr->getConstantValue() : -1;
}

//! Sizes reach the CUDA launchers as int32_t.
inline int32_t toInt32(int64_t value, char const* plugin, char const* what)
{
    std::ostringstream msg;
    msg << what << " = " << value << " is outside [0, 2^31)";
    validate(value >= 0 && value <= INT32_MAX, plugin, msg.str());
    return static_cast<int32_t>(value);
}

} // namespace rrwkv

#endif // RRWKV_PLUGIN_UTILS_H
