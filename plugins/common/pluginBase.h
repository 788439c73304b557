/*
 * The IPluginV3 boilerplate shared by the rrwkv TensorRT plugins, as CRTP bases (modelled on customHardmaxPlugin):
 *   RrwkvPluginBase<Derived>                 IPluginV3 + IPluginV3OneCore/Build/Runtime;
 *   RrwkvPluginCreatorBase<Derived, Plugin>  IPluginCreatorV3One;
 *   RrwkvPluginIdentity<Interface, Plugin>   the name/version/namespace getters both of them have.
 * The bases own what every op does the same way: identity (name, "rrwkv", "1"), capabilities, clone and
 * attachToContext, the input/output count checks, the rank and shared-axis checks of the input contract in every
 * phase, the serialised identity fields, and the noexcept boundary (each interface method catches and logs).
 * Each plugin keeps its op-specific parts; the base calls these members of Derived (they may throw PluginError):
 *   kNAME, kNB_INPUTS, kNB_OUTPUTS, kINPUT_CONTRACT[kNB_INPUTS] (rank and named axes of each input);
 *   inferOutputTypes(outputTypes, inputTypes): checks the input dtypes, sets the output dtypes;
 *   inferOutputShapes(inputs, outputs, exprBuilder): after the contract check, any further checks, then the output
 *     shapes;
 *   supportsTensor(pos, desc, inOut): the dtype at pos, one case per position (pos in range, format kLINEAR);
 *   forward(inputDesc, inputs, outputs, workspace, stream): the kernel launch;
 *   optionally checkConfiguredShapes(in) / checkRuntimeShapes(in): checks beyond the contract at build / run time,
 *     and workspaceBytes(in): the scratch memory forward needs for the profile's max shapes (default none).
 * A creator passes its op attributes to the base constructor and provides create(fc), which reads them with
 * readFields.
 */
#ifndef RRWKV_PLUGIN_BASE_H
#define RRWKV_PLUGIN_BASE_H

#include "NvInferRuntime.h"

#include "common/pluginUtils.h"

#include <cuda_fp16.h>

#include <cstring>
#include <exception>
#include <initializer_list>
#include <string>
#include <vector>

namespace rrwkv
{

//! Identity fields every rrwkv node carries, serialised with every engine; createPlugin type-checks them only.
static constexpr char const* kIDENTITY_FIELDS[] = {"plugin_namespace", "plugin_version"};

template <typename T>
struct TypeTag
{
    using type = T;
};

//! fn(TypeTag<__half>{}) for a kHALF activation, else fn(TypeTag<float>{}); returns what fn returns.
template <typename Fn>
auto dispatchActivation(nvinfer1::DataType type, Fn const& fn)
{
    return type == nvinfer1::DataType::kHALF ? fn(TypeTag<__half>{}) : fn(TypeTag<float>{});
}

//! The name, version and namespace of Plugin, for the interface that declares them (IPluginV3OneCore for the
//! plugin, IPluginCreatorV3One for its creator).
template <typename Interface, typename Plugin>
class RrwkvPluginIdentity : public Interface
{
public:
    char const* getPluginName() const noexcept override
    {
        return Plugin::kNAME;
    }

    char const* getPluginVersion() const noexcept override
    {
        return kPLUGIN_VERSION;
    }

    char const* getPluginNamespace() const noexcept override
    {
        return kPLUGIN_NAMESPACE;
    }
};

template <typename Derived>
class RrwkvPluginBase : public nvinfer1::IPluginV3,
                        public RrwkvPluginIdentity<nvinfer1::IPluginV3OneCore, Derived>,
                        public nvinfer1::IPluginV3OneBuild,
                        public nvinfer1::IPluginV3OneRuntime
{
public:
    ~RrwkvPluginBase() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override
    {
        switch (type)
        {
        case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
        case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
        case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
        }
        return nullptr;
    }

    nvinfer1::IPluginV3* clone() noexcept override
    {
        try
        {
            return new Derived(derived());
        }
        catch (std::exception const& e)
        {
            caughtError(e);
        }
        return nullptr;
    }

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept override
    {
        try
        {
            validateCounts(nbInputs, nbOutputs);
            // Build-time dims carry -1 for dynamic extents; min and max bound them from the profile.
            validateInputs([&](int32_t i) { return in[i].desc.dims.nbDims; },
                [&](int32_t i, int32_t a) { return in[i].desc.dims.d[a]; });
            validateInputs([&](int32_t i) { return in[i].max.nbDims; },
                [&](int32_t i, int32_t a) { return in[i].min.d[a] == in[i].max.d[a] ? in[i].max.d[a] : int64_t{-1}; });
            derived().checkConfiguredShapes(in);
            return 0;
        }
        catch (std::exception const& e)
        {
            caughtError(e);
        }
        return -1;
    }

    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override
    {
        try
        {
            validateCounts(nbInputs, nbOutputs);
            derived().inferOutputTypes(outputTypes, inputTypes);
            return 0;
        }
        catch (std::exception const& e)
        {
            caughtError(e);
        }
        return -1;
    }

    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
        nvinfer1::DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/, nvinfer1::DimsExprs* outputs,
        int32_t nbOutputs, nvinfer1::IExprBuilder& exprBuilder) noexcept override
    {
        try
        {
            validateCounts(nbInputs, nbOutputs);
            validateInputs([&](int32_t i) { return inputs[i].nbDims; },
                [&](int32_t i, int32_t a) { return constantOrUnknown(inputs[i].d[a]); });
            derived().inferOutputShapes(inputs, outputs, exprBuilder);
            return 0;
        }
        catch (std::exception const& e)
        {
            caughtError(e);
        }
        return -1;
    }

    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override
    {
        if (nbInputs != Derived::kNB_INPUTS || nbOutputs != Derived::kNB_OUTPUTS || pos < 0
            || pos >= Derived::kNB_INPUTS + Derived::kNB_OUTPUTS)
        {
            return false;
        }
        nvinfer1::PluginTensorDesc const& desc = inOut[pos].desc;
        if (desc.format != nvinfer1::TensorFormat::kLINEAR)
        {
            return false; // every tensor is dense row-major
        }
        return derived().supportsTensor(pos, desc, inOut);
    }

    int32_t getNbOutputs() const noexcept override
    {
        return Derived::kNB_OUTPUTS;
    }

    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* /*outputs*/, int32_t nbOutputs) const noexcept override
    {
        try
        {
            validateCounts(nbInputs, nbOutputs);
            return derived().workspaceBytes(inputs);
        }
        catch (std::exception const& e)
        {
            caughtError(e); // no way to fail here: forward checks that it got a workspace
        }
        return 0;
    }

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::PluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept override
    {
        try
        {
            validateCounts(nbInputs, nbOutputs);
            validateInputs([&](int32_t i) { return in[i].dims.nbDims; },
                [&](int32_t i, int32_t a) { return in[i].dims.d[a]; });
            derived().checkRuntimeShapes(in);
            return 0;
        }
        catch (std::exception const& e)
        {
            caughtError(e);
        }
        return -1;
    }

    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* /*outputDesc*/,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override
    {
        try
        {
            derived().forward(inputDesc, inputs, outputs, workspace, stream);
            return 0;
        }
        catch (std::exception const& e)
        {
            caughtError(e);
        }
        return -1;
    }

    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* /*context*/) noexcept override
    {
        return clone();
    }

    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override
    {
        return &mFCToSerialize;
    }

protected:
    RrwkvPluginBase() = default;
    // The serialised fields point into the plugin's own members: a copy rebuilds them (initFieldsToSerialize).
    RrwkvPluginBase(RrwkvPluginBase const& /*other*/) {}
    RrwkvPluginBase& operator=(RrwkvPluginBase const&) = delete;

    //! The same fields createPlugin reads: the op's attributes, then the identity fields. Call it at the end of
    //! every Derived constructor; the op fields may point into Derived's members.
    void initFieldsToSerialize(std::initializer_list<nvinfer1::PluginField> opFields)
    {
        mDataToSerialize.assign(opFields);
        // Strings without a trailing NUL, the way the ONNX parser passes STRING attributes.
        mDataToSerialize.emplace_back(kIDENTITY_FIELDS[0], kPLUGIN_NAMESPACE, nvinfer1::PluginFieldType::kCHAR,
            static_cast<int32_t>(std::strlen(kPLUGIN_NAMESPACE)));
        mDataToSerialize.emplace_back(kIDENTITY_FIELDS[1], kPLUGIN_VERSION, nvinfer1::PluginFieldType::kCHAR,
            static_cast<int32_t>(std::strlen(kPLUGIN_VERSION)));
        mFCToSerialize.nbFields = static_cast<int32_t>(mDataToSerialize.size());
        mFCToSerialize.fields = mDataToSerialize.data();
    }

    // Default hooks: no checks beyond the input contract, no workspace.
    void checkConfiguredShapes(nvinfer1::DynamicPluginTensorDesc const* /*in*/) const {}
    void checkRuntimeShapes(nvinfer1::PluginTensorDesc const* /*in*/) const {}
    size_t workspaceBytes(nvinfer1::DynamicPluginTensorDesc const* /*in*/) const
    {
        return 0;
    }

private:
    Derived& derived() noexcept
    {
        return static_cast<Derived&>(*this);
    }

    Derived const& derived() const noexcept
    {
        return static_cast<Derived const&>(*this);
    }

    static void validateCounts(int32_t nbInputs, int32_t nbOutputs)
    {
        validate(nbInputs == Derived::kNB_INPUTS && nbOutputs == Derived::kNB_OUTPUTS, Derived::kNAME,
            "expects " + std::to_string(Derived::kNB_INPUTS) + " inputs and " + std::to_string(Derived::kNB_OUTPUTS)
                + " outputs");
    }

    template <typename RankFn, typename ExtentFn>
    static void validateInputs(RankFn const& rank, ExtentFn const& extent)
    {
        validateContract(Derived::kNAME, Derived::kINPUT_CONTRACT, Derived::kNB_INPUTS, rank, extent);
    }

    std::vector<nvinfer1::PluginField> mDataToSerialize;
    nvinfer1::PluginFieldCollection mFCToSerialize{};
};

template <typename Derived, typename Plugin>
class RrwkvPluginCreatorBase : public RrwkvPluginIdentity<nvinfer1::IPluginCreatorV3One, Plugin>
{
public:
    ~RrwkvPluginCreatorBase() override = default;

    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override
    {
        return &mFC;
    }

    nvinfer1::IPluginV3* createPlugin(char const* /*name*/, nvinfer1::PluginFieldCollection const* fc,
        nvinfer1::TensorRTPhase /*phase*/) noexcept override
    {
        try
        {
            return static_cast<Derived const&>(*this).create(fc);
        }
        catch (std::exception const& e)
        {
            caughtError(e);
        }
        return nullptr;
    }

protected:
    //! opFields: the op's attributes (name, nullptr, type, length); the identity fields follow.
    explicit RrwkvPluginCreatorBase(std::initializer_list<nvinfer1::PluginField> opFields)
        : mPluginAttributes(opFields)
    {
        mPluginAttributes.emplace_back(kIDENTITY_FIELDS[0], nullptr, nvinfer1::PluginFieldType::kCHAR, 0);
        mPluginAttributes.emplace_back(kIDENTITY_FIELDS[1], nullptr, nvinfer1::PluginFieldType::kCHAR, 0);
        mFC.nbFields = static_cast<int32_t>(mPluginAttributes.size());
        mFC.fields = mPluginAttributes.data();
    }

    //! For each field of fc: readOpField(field) returns true when it took the field as an op attribute; the
    //! identity fields are type-checked; any other name is an error that lists the accepted ones.
    template <typename ReadOpField>
    void readFields(nvinfer1::PluginFieldCollection const* fc, ReadOpField const& readOpField) const
    {
        char const* const plugin = Plugin::kNAME;
        int32_t const nbFields = fc == nullptr ? 0 : fc->nbFields;
        validate(nbFields >= 0, plugin, "the plugin field collection has nbFields = " + std::to_string(nbFields));
        validate(nbFields == 0 || fc->fields != nullptr, plugin,
            "the plugin field collection has nbFields = " + std::to_string(nbFields) + " but no fields (null pointer)");
        for (int32_t i = 0; i < nbFields; ++i)
        {
            nvinfer1::PluginField const& field = fc->fields[i];
            validate(field.name != nullptr, plugin, "a plugin field has no name");
            if (!readOpField(field) && !readPluginIdentityField(field, plugin))
            {
                std::string accepted;
                for (nvinfer1::PluginField const& known : mPluginAttributes)
                {
                    accepted += (accepted.empty() ? "" : ", ") + std::string(known.name);
                }
                validate(false, plugin, std::string("unknown attribute '") + field.name + "'; accepted: " + accepted);
            }
        }
    }

private:
    std::vector<nvinfer1::PluginField> mPluginAttributes;
    nvinfer1::PluginFieldCollection mFC{};
};

} // namespace rrwkv

#endif // RRWKV_PLUGIN_BASE_H
