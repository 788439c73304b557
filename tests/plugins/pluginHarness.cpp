/*
 * Host-only harness for librrwkv_trt_plugins_dyn.so: loads it with dlopen, hands it a recording ILoggerFinder, and
 * drives the creators and plugins through the TensorRT interfaces (no libnvinfer, no GPU). Checks the parts the
 * TensorRT-RTX Python bindings cannot reach: getFieldsToSerialize -> createPlugin round trips, the logger route of
 * setLoggerFinder, supportsFormatCombination position by position, and MatMulW8's, MatMulWF16's and GatedOuterScan's
 * configurePlugin / getWorkspaceSize / onShapeChange on hand-made tensor descriptions.
 * Usage: pluginHarness LIBRARY OP... (OP: every op name of the registry, core/ops.py). Prints "PASS <check>" / "FAIL <check>: <detail>"; exit status 1 on any failure.
 */
#include "NvInferRuntime.h"

#include <dlfcn.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

using namespace nvinfer1;

namespace
{
class RecordingLogger : public ILogger
{
public:
    void log(Severity severity, AsciiChar const* msg) noexcept override
    {
        if (severity <= Severity::kWARNING)
        {
            mText += std::string(msg) + "\n";
        }
    }
    std::string mText;
};

class Finder : public ILoggerFinder
{
public:
    ILogger* findLogger() override
    {
        return &mLogger;
    }
    RecordingLogger mLogger;
};

Finder gFinder;
int32_t gFailures{0};

void check(bool ok, std::string const& name, std::string const& detail = "")
{
    std::printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", name.c_str(), ok ? "" : ": ", ok ? "" : detail.c_str());
    gFailures += ok ? 0 : 1;
}

// A field set owned by value, so that PluginFields can point into it.
struct Fields
{
    Fields() = default;
    Fields(Fields const&) = delete; // fields point into data
    Fields& operator=(Fields const&) = delete;

    std::map<std::string, std::vector<char>> data;
    std::vector<PluginField> fields;
    PluginFieldCollection fc{};

    Fields& i32(char const* name, int32_t v)
    {
        return raw(name, &v, sizeof(v), PluginFieldType::kINT32, 1);
    }
    Fields& f32(char const* name, float v)
    {
        return raw(name, &v, sizeof(v), PluginFieldType::kFLOAT32, 1);
    }
    Fields& str(char const* name, char const* v)
    {
        return raw(name, v, std::strlen(v), PluginFieldType::kCHAR, static_cast<int32_t>(std::strlen(v)));
    }
    Fields& raw(char const* name, void const* v, size_t bytes, PluginFieldType type, int32_t length)
    {
        auto& buf = data[name];
        buf.assign(static_cast<char const*>(v), static_cast<char const*>(v) + bytes);
        fields.emplace_back(data.find(name)->first.c_str(), buf.data(), type, length);
        fc.nbFields = static_cast<int32_t>(fields.size());
        fc.fields = fields.data();
        return *this;
    }
};

// "name:type;..." of a field collection (getFieldNames has no data).
std::string names(PluginFieldCollection const* fc)
{
    std::string out;
    for (int32_t i = 0; i < fc->nbFields; ++i)
    {
        out += std::string(fc->fields[i].name) + ":" + std::to_string(static_cast<int32_t>(fc->fields[i].type)) + ";";
    }
    return out;
}

// "name=value;..." of a field collection: int32 and float32 scalars (%g) and strings.
std::string describe(PluginFieldCollection const* fc)
{
    if (fc == nullptr)
    {
        return "<null>";
    }
    std::string out;
    for (int32_t i = 0; i < fc->nbFields; ++i)
    {
        PluginField const& f = fc->fields[i];
        out += std::string(f.name) + "=";
        if (f.type == PluginFieldType::kINT32 && f.length == 1)
        {
            int32_t v{};
            std::memcpy(&v, f.data, sizeof(v));
            out += std::to_string(v);
        }
        else if (f.type == PluginFieldType::kFLOAT32 && f.length == 1)
        {
            float v{};
            std::memcpy(&v, f.data, sizeof(v));
            char text[32];
            std::snprintf(text, sizeof(text), "%g", static_cast<double>(v));
            out += text;
        }
        else if (f.type == PluginFieldType::kCHAR)
        {
            out += "'" + std::string(static_cast<char const*>(f.data), static_cast<size_t>(f.length)) + "'";
        }
        else
        {
            out += "<type " + std::to_string(static_cast<int32_t>(f.type)) + ">";
        }
        out += ";";
    }
    return out;
}

std::string serialized(IPluginV3* plugin)
{
    auto* runtime = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    return runtime == nullptr ? "<no runtime>" : describe(runtime->getFieldsToSerialize());
}

IPluginCreatorV3One* findCreator(IPluginCreatorInterface* const* creators, int32_t n, char const* name)
{
    for (int32_t i = 0; i < n; ++i)
    {
        auto* c = static_cast<IPluginCreatorV3One*>(creators[i]);
        if (std::strcmp(c->getPluginName(), name) == 0)
        {
            return c;
        }
    }
    return nullptr;
}

// createPlugin must fail and log a message containing `expected`.
void expectRejected(IPluginCreatorV3One* creator, Fields const& fields, std::string const& name, char const* expected)
{
    gFinder.mLogger.mText.clear();
    IPluginV3* plugin = creator->createPlugin("bad", &fields.fc, TensorRTPhase::kBUILD);
    bool const logged = gFinder.mLogger.mText.find(expected) != std::string::npos;
    check(plugin == nullptr && logged, name, "plugin=" + std::to_string(plugin != nullptr) + " log='"
        + gFinder.mLogger.mText + "' expected '" + expected + "'");
    delete plugin;
}

// The round trip: create from `fields`, serialise, re-create (runtime phase) from the serialised fields, compare;
// clone and attachToContext keep the fields too.
void roundTrip(IPluginCreatorV3One* creator, Fields const& fields, std::string const& name, std::string const& expected)
{
    gFinder.mLogger.mText.clear();
    IPluginV3* plugin = creator->createPlugin("a", &fields.fc, TensorRTPhase::kBUILD);
    check(plugin != nullptr, name + ".create", gFinder.mLogger.mText);
    if (plugin == nullptr)
    {
        return;
    }
    std::string const first = serialized(plugin);
    check(first == expected, name + ".fields", "got " + first + " expected " + expected);
    auto* runtime = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    IPluginV3* again = creator->createPlugin("b", runtime->getFieldsToSerialize(), TensorRTPhase::kRUNTIME);
    std::string const againFields = again == nullptr ? "<null>: " + gFinder.mLogger.mText : serialized(again);
    check(againFields == first, name + ".recreate", againFields);
    IPluginV3* cloned = plugin->clone();
    check(cloned != nullptr && serialized(cloned) == first, name + ".clone");
    IPluginV3* attached = runtime->attachToContext(nullptr);
    check(attached != nullptr && attached != plugin && serialized(attached) == first, name + ".attachToContext");
    auto* core = static_cast<IPluginV3OneCore*>(plugin->getCapabilityInterface(PluginCapabilityType::kCORE));
    check(std::string(core->getPluginName()) == creator->getPluginName()
            && std::string(core->getPluginNamespace()) == "rrwkv" && std::string(core->getPluginVersion()) == "1",
        name + ".core");
    delete attached;
    delete cloned;
    delete again;
    delete plugin;
}

// supportsFormatCombination for every position of `types` (inputs then outputs), all linear unless `format` given.
bool formats(IPluginV3* plugin, int32_t nbInputs, std::vector<DataType> const& types, int32_t* rejectedPos,
    int32_t formatPos = -1)
{
    auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
    std::vector<DynamicPluginTensorDesc> descs(types.size());
    for (size_t i = 0; i < types.size(); ++i)
    {
        descs[i].desc.type = types[i];
        descs[i].desc.format = static_cast<int32_t>(i) == formatPos ? TensorFormat::kCHW32 : TensorFormat::kLINEAR;
    }
    int32_t const nbOutputs = static_cast<int32_t>(types.size()) - nbInputs;
    for (int32_t pos = 0; pos < static_cast<int32_t>(types.size()); ++pos)
    {
        if (!build->supportsFormatCombination(pos, descs.data(), nbInputs, nbOutputs))
        {
            *rejectedPos = pos;
            return false;
        }
    }
    *rejectedPos = -1;
    return true;
}

// Each change of `base` must be rejected at the changed position.
void formatRejections(IPluginV3* plugin, std::string const& name, std::vector<DataType> const& base, int32_t nbInputs,
    std::map<std::string, std::pair<int32_t, DataType>> const& rejectedWith)
{
    int32_t rejected{};
    for (auto const& [label, change] : rejectedWith)
    {
        std::vector<DataType> types = base;
        types[change.first] = change.second;
        bool const accepted = formats(plugin, nbInputs, types, &rejected);
        check(!accepted && rejected == change.first, name + ".formats.reject." + label,
            "expected a rejection at position " + std::to_string(change.first) + ", got "
                + (accepted ? std::string("all accepted") : "position " + std::to_string(rejected)));
    }
}

void formatChecks(IPluginV3* plugin, std::string const& name, std::vector<DataType> const& base, int32_t nbInputs,
    std::map<std::string, std::pair<int32_t, DataType>> const& rejectedWith, int32_t kPos, int32_t yPos)
{
    int32_t rejected{};
    bool const f32 = formats(plugin, nbInputs, base, &rejected);
    check(f32, name + ".formats.float32", "rejected at " + std::to_string(rejected));
    std::vector<DataType> half = base;
    half[kPos] = half[kPos + 1] = half[yPos] = DataType::kHALF;
    bool const f16 = formats(plugin, nbInputs, half, &rejected);
    check(f16, name + ".formats.float16", "rejected at " + std::to_string(rejected));
    bool const nonLinear = formats(plugin, nbInputs, base, &rejected, 0);
    check(!nonLinear && rejected == 0, name + ".formats.nonlinear");
    formatRejections(plugin, name, base, nbInputs, rejectedWith);
}

Dims dims(std::initializer_list<int64_t> extents)
{
    Dims d{};
    d.nbDims = static_cast<int32_t>(extents.size());
    int32_t a = 0;
    for (int64_t const e : extents)
    {
        d.d[a++] = e;
    }
    return d;
}

// A build-time tensor: `desc` dims (-1 where dynamic) with the profile's min and max.
DynamicPluginTensorDesc tensor(DataType type, Dims const& desc, Dims const& min, Dims const& max)
{
    DynamicPluginTensorDesc t{};
    t.desc.type = type;
    t.desc.format = TensorFormat::kLINEAR;
    t.desc.dims = desc;
    t.min = t.opt = min;
    t.max = max;
    return t;
}

// MatMulW8 (N = 65, block_size = 32: G = 2; K = 130: NB = 5, Kpad = 160) with x [B, T, 130], B in 1..4, T in 1..64:
// configurePlugin, getWorkspaceSize (xq int16 [256, 160] = 81920 bytes, 256-aligned, then xScale fp32 [256]),
// onShapeChange, each also with an x whose K does not fit the weights.
void matmulW8BuildChecks(IPluginV3* plugin)
{
    auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* runtime = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    DataType const F = DataType::kFLOAT;
    Dims const w = dims({2, 80, 64, 2});
    Dims const scale = dims({2, 5, 64});
    auto inputs = [&](int64_t K) {
        return std::vector<DynamicPluginTensorDesc>{tensor(F, dims({-1, -1, K}), dims({1, 1, K}), dims({4, 64, K})),
            tensor(DataType::kINT8, w, w, w), tensor(F, scale, scale, scale)};
    };
    std::vector<DynamicPluginTensorDesc> out{tensor(F, dims({-1, -1, 65}), dims({1, 1, 65}), dims({4, 64, 65}))};
    std::vector<DynamicPluginTensorDesc> in = inputs(130);
    gFinder.mLogger.mText.clear();
    check(build->configurePlugin(in.data(), 3, out.data(), 1) == 0, "MatMulW8.configure", gFinder.mLogger.mText);
    size_t const bytes = build->getWorkspaceSize(in.data(), 3, out.data(), 1);
    check(bytes == 81920 + 256 * 4, "MatMulW8.workspace", std::to_string(bytes));

    std::vector<DynamicPluginTensorDesc> const badK = inputs(100); // NB = 4: w needs Kpad / 2 = 64 pairs
    gFinder.mLogger.mText.clear();
    bool const rejected = build->configurePlugin(badK.data(), 3, out.data(), 1) != 0;
    char const* const expected = "MatMulW8: input 1 'w' has dim 1 = 80, expected 64";
    check(rejected && gFinder.mLogger.mText.find(expected) != std::string::npos, "MatMulW8.configure.rejectK",
        gFinder.mLogger.mText);

    std::vector<PluginTensorDesc> run{in[0].desc, in[1].desc, in[2].desc};
    PluginTensorDesc y = out[0].desc;
    run[0].dims = dims({3, 7, 130});
    y.dims = dims({3, 7, 65});
    gFinder.mLogger.mText.clear();
    check(runtime->onShapeChange(run.data(), 3, &y, 1) == 0, "MatMulW8.onShapeChange", gFinder.mLogger.mText);
    run[0].dims = dims({3, 7, 100});
    gFinder.mLogger.mText.clear();
    bool const runtimeRejected = runtime->onShapeChange(run.data(), 3, &y, 1) != 0;
    check(runtimeRejected && gFinder.mLogger.mText.find(expected) != std::string::npos,
        "MatMulW8.onShapeChange.rejectK", gFinder.mLogger.mText);
}
// GatedOuterScan (scale 0.5) with q, f [B, T, 3, 5], v [B, T, 3, 7], S0 [B, 3, 5, 7], B in 1..4, T in 1..64:
// configurePlugin (and with an S0 whose V is not v's), getWorkspaceSize (none), onShapeChange.
void gatedOuterScanBuildChecks(IPluginV3* plugin)
{
    auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* runtime = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    DataType const F = DataType::kFLOAT;
    Dims const lb = dims({3, 5});
    auto inputs = [&](int64_t sV) {
        return std::vector<DynamicPluginTensorDesc>{
            tensor(F, dims({-1, -1, 3, 5}), dims({1, 1, 3, 5}), dims({4, 64, 3, 5})),
            tensor(F, dims({-1, -1, 3, 5}), dims({1, 1, 3, 5}), dims({4, 64, 3, 5})), tensor(F, lb, lb, lb),
            tensor(F, dims({-1, -1, 3, 7}), dims({1, 1, 3, 7}), dims({4, 64, 3, 7})),
            tensor(F, dims({-1, 3, 5, sV}), dims({1, 3, 5, sV}), dims({4, 3, 5, sV}))};
    };
    std::vector<DynamicPluginTensorDesc> out{tensor(F, dims({-1, -1, 3, 7}), dims({1, 1, 3, 7}), dims({4, 64, 3, 7})),
        tensor(F, dims({-1, 3, 5, 7}), dims({1, 3, 5, 7}), dims({4, 3, 5, 7}))};
    std::vector<DynamicPluginTensorDesc> in = inputs(7);
    gFinder.mLogger.mText.clear();
    check(build->configurePlugin(in.data(), 5, out.data(), 2) == 0, "GatedOuterScan.configure", gFinder.mLogger.mText);
    size_t const bytes = build->getWorkspaceSize(in.data(), 5, out.data(), 2);
    check(bytes == 0, "GatedOuterScan.workspace", std::to_string(bytes));
    std::vector<DynamicPluginTensorDesc> const badV = inputs(8);
    gFinder.mLogger.mText.clear();
    bool const rejected = build->configurePlugin(badV.data(), 5, out.data(), 2) != 0;
    char const* const expected = "GatedOuterScan: dimension V of input 'S0' is 8 but 7 in input 'v'";
    check(rejected && gFinder.mLogger.mText.find(expected) != std::string::npos, "GatedOuterScan.configure.rejectV",
        gFinder.mLogger.mText);

    std::vector<PluginTensorDesc> run;
    for (DynamicPluginTensorDesc const& t : in)
    {
        run.push_back(t.desc);
    }
    run[0].dims = run[1].dims = dims({2, 9, 3, 5});
    run[3].dims = dims({2, 9, 3, 7});
    run[4].dims = dims({2, 3, 5, 7});
    std::vector<PluginTensorDesc> outs{out[0].desc, out[1].desc};
    gFinder.mLogger.mText.clear();
    check(runtime->onShapeChange(run.data(), 5, outs.data(), 2) == 0, "GatedOuterScan.onShapeChange",
        gFinder.mLogger.mText);
    run[1].dims = dims({2, 8, 3, 5}); // f's T is not q's
    gFinder.mLogger.mText.clear();
    bool const runtimeRejected = runtime->onShapeChange(run.data(), 5, outs.data(), 2) != 0;
    check(runtimeRejected
            && gFinder.mLogger.mText.find("dimension T of input 'f' is 8 but 9 in input 'q'") != std::string::npos,
        "GatedOuterScan.onShapeChange.rejectT", gFinder.mLogger.mText);
}

// GatedOuterScan's fields: the FLOAT scale round trips as kFLOAT32, chunk_size defaults to 64, and what is rejected.
void gatedOuterScanFieldChecks(IPluginCreatorV3One* gos, std::string const& ids)
{
    std::string const gosNames = names(gos->getFieldNames());
    check(gosNames == "scale:1;chunk_size:5;plugin_namespace:6;plugin_version:6;", "GatedOuterScan.fieldNames",
        gosNames);
    roundTrip(gos,
        Fields{}.f32("scale", 0.125F).i32("chunk_size", 16).str("plugin_namespace", "rrwkv").str("plugin_version", "1"),
        "GatedOuterScan.scale", "scale=0.125;chunk_size=16;" + ids);
    roundTrip(gos, Fields{}.f32("scale", 0.0883883F), "GatedOuterScan.defaults", "scale=0.0883883;chunk_size=64;" + ids);
    double const scale64{0.5};
    float const twoScales[2]{0.5F, 0.25F};
    expectRejected(gos, Fields{}.i32("chunk_size", 8), "GatedOuterScan.reject.missingScale",
        "required attribute 'scale' (query scale, FLOAT, finite and > 0) is missing");
    expectRejected(gos, Fields{}.f32("scale", 0.F), "GatedOuterScan.reject.scale0",
        "attribute 'scale' must be finite and > 0, got 0");
    expectRejected(gos, Fields{}.f32("scale", -2.F), "GatedOuterScan.reject.scaleNegative", "got -2");
    expectRejected(gos, Fields{}.f32("scale", __builtin_nanf("")), "GatedOuterScan.reject.scaleNaN", "got nan");
    expectRejected(gos, Fields{}.f32("scale", __builtin_inff()), "GatedOuterScan.reject.scaleInf", "got inf");
    expectRejected(gos, Fields{}.i32("scale", 1), "GatedOuterScan.reject.scaleInt32",
        "attribute 'scale' must be one kFLOAT32 value (ONNX FLOAT), got kINT32 x 1");
    expectRejected(gos, Fields{}.raw("scale", &scale64, sizeof(scale64), PluginFieldType::kFLOAT64, 1),
        "GatedOuterScan.reject.scaleFloat64", "got kFLOAT64 x 1");
    expectRejected(gos, Fields{}.raw("scale", twoScales, sizeof(twoScales), PluginFieldType::kFLOAT32, 2),
        "GatedOuterScan.reject.scaleTwoValues", "got kFLOAT32 x 2");
    expectRejected(gos, Fields{}.f32("scale", 1.F).i32("chunk_size", 0), "GatedOuterScan.reject.chunk0",
        "attribute 'chunk_size' must be >= 1, got 0");
    expectRejected(gos, Fields{}.f32("scale", 1.F).f32("chunk_size", 64.F), "GatedOuterScan.reject.chunkFloat",
        "attribute 'chunk_size' must be one kINT32 value (ONNX INT), got kFLOAT32");
    expectRejected(gos, Fields{}.f32("scale", 1.F).i32("s", 1), "GatedOuterScan.reject.unknown",
        "unknown attribute 's'; accepted: scale, chunk_size, plugin_namespace, plugin_version");
    Fields nullFloat;
    nullFloat.raw("scale", "", 0, PluginFieldType::kFLOAT32, 1);
    nullFloat.fields[0].data = nullptr;
    expectRejected(gos, nullFloat, "GatedOuterScan.reject.nullFloatData", "attribute 'scale' must be one kFLOAT32");
}

// GatedOuterScan's formats: q, f, v, o one activation dtype (f32 or f16); lb, S0, S_out f32.
void gatedOuterScanFormatChecks(IPluginV3* plugin)
{
    DataType const F = DataType::kFLOAT;
    DataType const Hf = DataType::kHALF;
    std::vector<DataType> const f32{F, F, F, F, F, F, F};
    std::vector<DataType> const f16{Hf, Hf, F, Hf, F, Hf, F};
    int32_t rejected{};
    bool const ok32 = formats(plugin, 5, f32, &rejected);
    check(ok32, "GatedOuterScan.formats.float32", "rejected at " + std::to_string(rejected));
    bool const ok16 = formats(plugin, 5, f16, &rejected);
    check(ok16, "GatedOuterScan.formats.float16", "rejected at " + std::to_string(rejected));
    bool const nonLinear = formats(plugin, 5, f16, &rejected, 3);
    check(!nonLinear && rejected == 3, "GatedOuterScan.formats.nonlinear");
    formatRejections(plugin, "GatedOuterScan", f16, 5,
        {{"qBf16", {0, DataType::kBF16}}, {"fFloat", {1, F}}, {"lbHalf", {2, Hf}}, {"vFloat", {3, F}},
            {"s0Half", {4, Hf}}, {"oFloat", {5, F}}, {"sOutHalf", {6, Hf}}});
}

// ContinuousGaussianAttention: the two required FLOAT fields round trip as kFLOAT32, what is rejected, and the formats
// (q, K, V, ctx one activation dtype; w_mu, w_sigma, basis_mu, basis_sigma, mu, sigma2 f32).
void continuousGaussianAttentionChecks(IPluginCreatorV3One* cga, std::string const& ids)
{
    std::string const cgaNames = names(cga->getFieldNames());
    check(cgaNames == "sigma2_min:1;scale:1;plugin_namespace:6;plugin_version:6;",
        "ContinuousGaussianAttention.fieldNames", cgaNames);
    roundTrip(cga,
        Fields{}.f32("sigma2_min", 1e-4F).f32("scale", 0.125F).str("plugin_namespace", "rrwkv").str(
            "plugin_version", "1"),
        "ContinuousGaussianAttention.attrs", "sigma2_min=0.0001;scale=0.125;" + ids);
    expectRejected(cga, Fields{}.f32("scale", 0.125F), "ContinuousGaussianAttention.reject.missingSigma2Min",
        "required attribute 'sigma2_min' (variance floor, FLOAT, finite and > 0) is missing");
    expectRejected(cga, Fields{}.f32("sigma2_min", 1e-6F), "ContinuousGaussianAttention.reject.missingScale",
        "required attribute 'scale' (score scale, FLOAT, finite and > 0) is missing");
    expectRejected(cga, Fields{}.f32("sigma2_min", 0.F).f32("scale", 1.F), "ContinuousGaussianAttention.reject.floor0",
        "attribute 'sigma2_min' must be finite and > 0, got 0");
    expectRejected(cga, Fields{}.f32("sigma2_min", 1e-6F).f32("scale", __builtin_nanf("")),
        "ContinuousGaussianAttention.reject.scaleNaN", "attribute 'scale' must be finite and > 0, got nan");
    expectRejected(cga, Fields{}.i32("sigma2_min", 1).f32("scale", 1.F),
        "ContinuousGaussianAttention.reject.floorInt32",
        "attribute 'sigma2_min' must be one kFLOAT32 value (ONNX FLOAT), got kINT32 x 1");
    expectRejected(cga, Fields{}.f32("sigma2_min", 1e-6F).f32("scale", 1.F).i32("s", 1),
        "ContinuousGaussianAttention.reject.unknown",
        "unknown attribute 's'; accepted: sigma2_min, scale, plugin_namespace, plugin_version");
    Fields attrs;
    attrs.f32("sigma2_min", 1e-4F).f32("scale", 0.125F);
    IPluginV3* plugin = cga->createPlugin("f", &attrs.fc, TensorRTPhase::kBUILD);
    check(plugin != nullptr, "ContinuousGaussianAttention.create");
    if (plugin == nullptr)
    {
        return;
    }
    DataType const F = DataType::kFLOAT;
    DataType const Hf = DataType::kHALF;
    std::vector<DataType> const f32(10, F);
    std::vector<DataType> const f16{Hf, Hf, Hf, F, F, F, F, Hf, F, F};
    int32_t rejected{};
    bool const ok32 = formats(plugin, 7, f32, &rejected);
    check(ok32, "ContinuousGaussianAttention.formats.float32", "rejected at " + std::to_string(rejected));
    bool const ok16 = formats(plugin, 7, f16, &rejected);
    check(ok16, "ContinuousGaussianAttention.formats.float16", "rejected at " + std::to_string(rejected));
    formatRejections(plugin, "ContinuousGaussianAttention", f16, 7,
        {{"qBf16", {0, DataType::kBF16}}, {"kFloat", {1, F}}, {"vFloat", {2, F}}, {"wMuHalf", {3, Hf}},
            {"basisSigmaHalf", {6, Hf}}, {"ctxFloat", {7, F}}, {"muHalf", {8, Hf}}, {"sigma2Half", {9, Hf}}});
    delete plugin;
}
// MatMulWF16: fields, round trip and rejections; formats (x f32, w f16, y f32) position by position; with N = 65
// (G = 2) and x [B, T, 130], B in 1..4, T in 1..64: configurePlugin, no workspace, onShapeChange, each also with a w
// of the wrong G.
void matmulWF16Checks(IPluginCreatorV3One* wf16, std::string const& ids)
{
    std::string const fieldNames = names(wf16->getFieldNames());
    check(fieldNames == "N:5;plugin_namespace:6;plugin_version:6;", "MatMulWF16.fieldNames", fieldNames);
    roundTrip(wf16, Fields{}.i32("N", 65).str("plugin_namespace", "rrwkv").str("plugin_version", "1"),
        "MatMulWF16.n65", "N=65;" + ids);
    int64_t const n64{4};
    expectRejected(wf16, Fields{}, "MatMulWF16.reject.missingN",
        "required attribute 'N' (output features, INT >= 1) is missing");
    expectRejected(
        wf16, Fields{}.i32("N", 0), "MatMulWF16.reject.n0", "attribute 'N' (output features) must be >= 1, got 0");
    expectRejected(wf16, Fields{}.i32("N", 0x7FFFFFC1), "MatMulWF16.reject.nHuge",
        "attribute 'N' (output features) must be <= 2147483584, got 2147483585");
    expectRejected(wf16, Fields{}.raw("N", &n64, sizeof(n64), PluginFieldType::kINT64, 1), "MatMulWF16.reject.nInt64",
        "attribute 'N' must be one kINT32 value (ONNX INT), got kINT64");
    expectRejected(wf16, Fields{}.i32("N", 4).i32("block_size", 32), "MatMulWF16.reject.unknown",
        "unknown attribute 'block_size'; accepted: N, plugin_namespace, plugin_version");

    Fields n65;
    n65.i32("N", 65);
    IPluginV3* plugin = wf16->createPlugin("f", &n65.fc, TensorRTPhase::kBUILD);
    check(plugin != nullptr, "MatMulWF16.create");
    if (plugin == nullptr)
    {
        return;
    }
    DataType const F = DataType::kFLOAT;
    DataType const Hf = DataType::kHALF;
    int32_t rejected{};
    bool const ok = formats(plugin, 2, {F, Hf, F}, &rejected);
    check(ok, "MatMulWF16.formats.halfWeight", "rejected at " + std::to_string(rejected));
    bool const nonLinear = formats(plugin, 2, {F, Hf, F}, &rejected, 1);
    check(!nonLinear && rejected == 1, "MatMulWF16.formats.nonlinear");
    formatRejections(plugin, "MatMulWF16", {F, Hf, F}, 2,
        {{"xHalf", {0, Hf}}, {"wFloat", {1, F}}, {"wBf16", {1, DataType::kBF16}}, {"yHalf", {2, Hf}}});

    auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* runtime = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    auto inputs = [&](int64_t G) {
        Dims const w = dims({G, 130, 64});
        return std::vector<DynamicPluginTensorDesc>{
            tensor(F, dims({-1, -1, 130}), dims({1, 1, 130}), dims({4, 64, 130})), tensor(Hf, w, w, w)};
    };
    std::vector<DynamicPluginTensorDesc> out{tensor(F, dims({-1, -1, 65}), dims({1, 1, 65}), dims({4, 64, 65}))};
    std::vector<DynamicPluginTensorDesc> in = inputs(2);
    gFinder.mLogger.mText.clear();
    check(build->configurePlugin(in.data(), 2, out.data(), 1) == 0, "MatMulWF16.configure", gFinder.mLogger.mText);
    size_t const bytes = build->getWorkspaceSize(in.data(), 2, out.data(), 1);
    check(bytes == 0, "MatMulWF16.workspace", std::to_string(bytes));
    std::vector<DynamicPluginTensorDesc> const badG = inputs(3);
    char const* const expected = "MatMulWF16: input 1 'w' has dim 0 = 3, expected 2 (G = ceil(N / 64) for N = 65)";
    gFinder.mLogger.mText.clear();
    bool const rejectedG = build->configurePlugin(badG.data(), 2, out.data(), 1) != 0;
    check(rejectedG && gFinder.mLogger.mText.find(expected) != std::string::npos, "MatMulWF16.configure.rejectG",
        gFinder.mLogger.mText);

    std::vector<PluginTensorDesc> run{in[0].desc, in[1].desc};
    PluginTensorDesc y = out[0].desc;
    run[0].dims = dims({3, 7, 130});
    y.dims = dims({3, 7, 65});
    gFinder.mLogger.mText.clear();
    check(runtime->onShapeChange(run.data(), 2, &y, 1) == 0, "MatMulWF16.onShapeChange", gFinder.mLogger.mText);
    run[1].dims = dims({3, 130, 64});
    gFinder.mLogger.mText.clear();
    bool const runtimeRejected = runtime->onShapeChange(run.data(), 2, &y, 1) != 0;
    check(runtimeRejected && gFinder.mLogger.mText.find(expected) != std::string::npos,
        "MatMulWF16.onShapeChange.rejectG", gFinder.mLogger.mText);
    delete plugin;
}
} // namespace

int main(int argc, char** argv)
{
    if (argc < 3)
    {
        std::fprintf(stderr, "usage: %s librrwkv_trt_plugins_dyn.so OP...\n", argv[0]);
        return 2;
    }
    void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr)
    {
        std::fprintf(stderr, "dlopen failed: %s\n", dlerror());
        return 2;
    }
    using SetFinder = void (*)(ILoggerFinder*);
    using GetCreators = IPluginCreatorInterface* const* (*) (int32_t&);
    auto setLoggerFinder = reinterpret_cast<SetFinder>(dlsym(lib, "setLoggerFinder"));
    auto getCreators = reinterpret_cast<GetCreators>(dlsym(lib, "getCreators"));
    check(setLoggerFinder != nullptr && getCreators != nullptr, "exports");
    if (setLoggerFinder == nullptr || getCreators == nullptr)
    {
        return 1;
    }
    setLoggerFinder(&gFinder);
    int32_t n{};
    IPluginCreatorInterface* const* creators = getCreators(n);
    // Exactly the ops named on the command line, once each, all in namespace rrwkv.
    std::vector<std::string> expected(argv + 2, argv + argc);
    std::vector<std::string> found;
    for (int32_t i = 0; i < n; ++i)
    {
        auto* c = static_cast<IPluginCreatorV3One*>(creators[i]);
        std::string name = c->getPluginName();
        if (std::strcmp(c->getPluginNamespace(), "rrwkv") != 0)
        {
            name += std::string("@") + c->getPluginNamespace(); // fails the comparison, and shows why
        }
        found.push_back(name);
    }
    std::sort(expected.begin(), expected.end());
    std::sort(found.begin(), found.end());
    std::string listed;
    for (std::string const& name : found)
    {
        listed += name + ";";
    }
    check(found == expected, "creators", listed);
    IPluginCreatorV3One* wkv4 = findCreator(creators, n, "WKV4");
    IPluginCreatorV3One* medium = findCreator(creators, n, "WKV4Medium");
    IPluginCreatorV3One* w8 = findCreator(creators, n, "MatMulW8");
    IPluginCreatorV3One* gos = findCreator(creators, n, "GatedOuterScan");
    IPluginCreatorV3One* wf16 = findCreator(creators, n, "MatMulWF16");
    if (wkv4 == nullptr || medium == nullptr || w8 == nullptr || gos == nullptr || wf16 == nullptr)
    {
        return 1;
    }
    // kINT32 = 5, kCHAR = 6: what the ONNX parser passes for INT and STRING attributes.
    std::string const medNames = names(medium->getFieldNames());
    check(medNames == "s:5;medium_decays:5;plugin_namespace:6;plugin_version:6;", "WKV4Medium.fieldNames", medNames);
    std::string const wkvNames = names(wkv4->getFieldNames());
    check(wkvNames == "plugin_namespace:6;plugin_version:6;", "WKV4.fieldNames", wkvNames);
    std::string const w8Names = names(w8->getFieldNames());
    check(w8Names == "N:5;block_size:5;plugin_namespace:6;plugin_version:6;", "MatMulW8.fieldNames", w8Names);

    std::string const ids = "plugin_namespace='rrwkv';plugin_version='1';";
    roundTrip(wkv4, Fields{}, "WKV4.noFields", ids);
    roundTrip(wkv4, Fields{}.str("plugin_namespace", "rrwkv").str("plugin_version", "1"), "WKV4.idFields", ids);
    roundTrip(medium,
        Fields{}.i32("s", 5).i32("medium_decays", 1).str("plugin_namespace", "rrwkv").str("plugin_version", "1"),
        "WKV4Medium.s5", "s=5;medium_decays=1;" + ids);
    roundTrip(medium, Fields{}.i32("s", 3), "WKV4Medium.defaults", "s=3;medium_decays=0;" + ids);
    roundTrip(w8,
        Fields{}.i32("N", 65).i32("block_size", 32).str("plugin_namespace", "rrwkv").str("plugin_version", "1"),
        "MatMulW8.n65", "N=65;block_size=32;" + ids);
    roundTrip(w8, Fields{}.i32("N", 3), "MatMulW8.defaults", "N=3;block_size=128;" + ids);
    gatedOuterScanFieldChecks(gos, ids);
    if (IPluginCreatorV3One* cga = findCreator(creators, n, "ContinuousGaussianAttention"))
    {
        continuousGaussianAttentionChecks(cga, ids);
    }
    matmulWF16Checks(wf16, ids);

    int64_t const s64{4};
    float const sF{4.F};
    expectRejected(medium, Fields{}, "WKV4Medium.reject.missingS", "required attribute 's'");
    expectRejected(medium, Fields{}.i32("s", 0), "WKV4Medium.reject.s0", "'s' (medium interval) must be >= 1, got 0");
    expectRejected(medium, Fields{}.i32("s", 2).i32("medium_decays", 2), "WKV4Medium.reject.decays2",
        "'medium_decays' must be 0 or 1, got 2");
    expectRejected(medium, Fields{}.raw("s", &s64, sizeof(s64), PluginFieldType::kINT64, 1),
        "WKV4Medium.reject.sInt64", "attribute 's' must be one kINT32 value (ONNX INT), got kINT64");
    expectRejected(medium, Fields{}.raw("s", &sF, sizeof(sF), PluginFieldType::kFLOAT32, 1),
        "WKV4Medium.reject.sFloat", "got kFLOAT32");
    expectRejected(medium, Fields{}.i32("s", 2).i32("foo", 1), "WKV4Medium.reject.unknown", "unknown attribute 'foo'");
    expectRejected(wkv4, Fields{}.i32("plugin_namespace", 1), "WKV4.reject.namespaceType",
        "attribute 'plugin_namespace' must be a kCHAR string");
    expectRejected(wkv4, Fields{}.i32("s", 1), "WKV4.reject.unknown", "unknown attribute 's'");
    expectRejected(w8, Fields{}.i32("block_size", 32), "MatMulW8.reject.missingN",
        "required attribute 'N' (output features, INT >= 1) is missing");
    expectRejected(
        w8, Fields{}.i32("N", 0), "MatMulW8.reject.n0", "attribute 'N' (output features) must be >= 1, got 0");
    for (int32_t const bad : {0, 3, 258, -2})
    {
        std::string const expected
            = "attribute 'block_size' must be an even value in [2, 256], got " + std::to_string(bad);
        expectRejected(w8, Fields{}.i32("N", 4).i32("block_size", bad),
            "MatMulW8.reject.blockSize" + std::to_string(bad), expected.c_str());
    }
    expectRejected(w8, Fields{}.raw("N", &s64, sizeof(s64), PluginFieldType::kINT64, 1), "MatMulW8.reject.nInt64",
        "attribute 'N' must be one kINT32 value (ONNX INT), got kINT64");
    expectRejected(w8, Fields{}.i32("N", 4).i32("s", 1), "MatMulW8.reject.unknown",
        "unknown attribute 's'; accepted: N, block_size, plugin_namespace, plugin_version");

    // Malformed field collections: fields null with nbFields > 0, a negative count, a null name, null data.
    for (auto const& [label, creator] : {std::pair<char const*, IPluginCreatorV3One*>{"WKV4", wkv4},
             {"WKV4Medium", medium}, {"MatMulW8", w8}, {"GatedOuterScan", gos}, {"MatMulWF16", wf16}})
    {
        PluginFieldCollection nullFields{};
        nullFields.nbFields = 2;
        nullFields.fields = nullptr;
        gFinder.mLogger.mText.clear();
        IPluginV3* p = creator->createPlugin("bad", &nullFields, TensorRTPhase::kBUILD);
        std::string const& log = gFinder.mLogger.mText;
        bool const logged = log.find("nbFields = 2 but no fields (null pointer)") != std::string::npos;
        check(p == nullptr && logged, std::string(label) + ".reject.nullFields", log);
        delete p;
        Fields negative;
        negative.str("plugin_namespace", "rrwkv");
        negative.fc.nbFields = -1;
        expectRejected(creator, negative, std::string(label) + ".reject.negativeNbFields", "nbFields = -1");
        Fields unnamed;
        unnamed.str("plugin_version", "1");
        unnamed.fields[0].name = nullptr;
        expectRejected(creator, unnamed, std::string(label) + ".reject.nullName", "a plugin field has no name");
        Fields nullString;
        nullString.raw("plugin_namespace", "", 0, PluginFieldType::kCHAR, 5);
        nullString.fields[0].data = nullptr;
        expectRejected(creator, nullString, std::string(label) + ".reject.nullStringData",
            "attribute 'plugin_namespace' must be a kCHAR string");
    }
    Fields nullInt;
    nullInt.raw("s", "", 0, PluginFieldType::kINT32, 1);
    nullInt.fields[0].data = nullptr;
    expectRejected(medium, nullInt, "WKV4Medium.reject.nullIntData", "attribute 's' must be one kINT32 value");
    int32_t const hugeN = 0x7FFFFFC1;
    expectRejected(w8, Fields{}.i32("N", hugeN), "MatMulW8.reject.nHuge",
        "attribute 'N' (output features) must be <= 2147483584, got 2147483585");
    expectRejected(w8, Fields{}.i32("N", INT32_MAX), "MatMulW8.reject.nInt32Max",
        "attribute 'N' (output features) must be <= 2147483584, got 2147483647");

    // supportsFormatCombination, position by position (inputs then outputs).
    DataType const F = DataType::kFLOAT;
    DataType const I = DataType::kINT64;
    Fields none;
    IPluginV3* p4 = wkv4->createPlugin("f", &none.fc, TensorRTPhase::kBUILD);
    formatChecks(p4, "WKV4", {F, F, F, F, F, F, F, F, F, F, F}, 7,
        {{"wHalf", {0, DataType::kHALF}}, {"kBf16", {2, DataType::kBF16}}, {"vHalf", {3, DataType::kHALF}},
            {"ppHalf", {6, DataType::kHALF}}, {"yHalf", {7, DataType::kHALF}}, {"aaOutHalf", {8, DataType::kHALF}}},
        2, 7);
    delete p4;
    Fields s2;
    s2.i32("s", 2);
    IPluginV3* pm = medium->createPlugin("f", &s2.fc, TensorRTPhase::kBUILD);
    formatChecks(pm, "WKV4Medium", {F, F, F, F, F, F, F, F, F, I, F, F, F, F}, 10,
        {{"kmHalf", {4, DataType::kHALF}}, {"pos0Int32", {9, DataType::kINT32}}, {"kInt32", {2, DataType::kINT32}},
            {"yHalf", {10, DataType::kHALF}}, {"ppOutHalf", {13, DataType::kHALF}}},
        2, 10);
    delete pm;
    Fields n65;
    n65.i32("N", 65).i32("block_size", 32);
    IPluginV3* pw = w8->createPlugin("f", &n65.fc, TensorRTPhase::kBUILD);
    DataType const I8 = DataType::kINT8;
    int32_t rejected{};
    bool const w8Formats = formats(pw, 3, {F, I8, F, F}, &rejected);
    check(w8Formats, "MatMulW8.formats.int8Weight", "rejected at " + std::to_string(rejected));
    bool const nonLinear = formats(pw, 3, {F, I8, F, F}, &rejected, 1);
    check(!nonLinear && rejected == 1, "MatMulW8.formats.nonlinear");
    formatRejections(pw, "MatMulW8", {F, I8, F, F}, 3,
        {{"xHalf", {0, DataType::kHALF}}, {"wFloat", {1, F}}, {"wUint8", {1, DataType::kUINT8}},
            {"wInt32", {1, DataType::kINT32}}, {"scaleHalf", {2, DataType::kHALF}}, {"yHalf", {3, DataType::kHALF}}});
    matmulW8BuildChecks(pw);
    delete pw;
    Fields scaleOnly;
    scaleOnly.f32("scale", 0.5F);
    IPluginV3* pg = gos->createPlugin("f", &scaleOnly.fc, TensorRTPhase::kBUILD);
    gatedOuterScanFormatChecks(pg);
    gatedOuterScanBuildChecks(pg);
    delete pg;

    std::printf("%d failure(s)\n", gFailures);
    return gFailures == 0 ? 0 : 1;
}
