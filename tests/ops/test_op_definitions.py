"""The Python side of every op against the op registry (core/ops.py `OPS`); tests/plugins/test_op_registry.py
holds the C++ side against the same list."""
import importlib

import pytest
import yaml
from onnx import defs

from rrwkv_trt.core.ops import DOMAIN, DOMAIN_VERSION, OP_NAMES, OPS, op_spec
from rrwkv_trt.core.paths import REPO_ROOT
from rrwkv_trt.export.ops import custom_translation_table, op_definitions, register_schemas, rrwkv_functions


def test_every_registry_entry_has_a_definition_in_its_own_module():
    assert list(op_definitions()) == list(OP_NAMES)
    for op in OPS:
        assert op.module == f"rrwkv_trt.export.ops.{op.folder}", op
        assert importlib.import_module(op.module).OP is op_definitions()[op.name]


@pytest.mark.parametrize("name", OP_NAMES)
def test_schema_and_function_carry_the_registry_name(name):
    register_schemas()
    schema = defs.get_schema(name, DOMAIN_VERSION, DOMAIN)
    assert (schema.name, schema.domain, schema.since_version) == (name, DOMAIN, DOMAIN_VERSION)
    assert {"plugin_namespace", "plugin_version"} <= set(schema.attributes)
    (function,) = rrwkv_functions(18, {name})
    assert (function.name, function.domain) == (name, DOMAIN)
    assert {"plugin_namespace", "plugin_version"} <= set(function.attribute)


@pytest.mark.parametrize("name", OP_NAMES)
def test_traced_ops_translate_to_their_node(name):
    op = op_definitions()[name]
    assert (op.torch_op is None) == (op.translation is None), "a torch op needs its translation and vice versa"
    if op.torch_op is not None:
        assert custom_translation_table()[op.torch_op] is op.translation


@pytest.mark.parametrize("name", OP_NAMES)
def test_spec_yaml_holds_the_tolerances(name):
    spec = yaml.safe_load((REPO_ROOT / op_spec(name).spec_path).read_text())
    assert spec["op"] == name and spec["domain"] == DOMAIN
    assert spec["tolerances"], f"{op_spec(name).spec_path} has no tolerances"
    for case in spec["tolerances"].values():
        bounds = [b for b in case.values() if isinstance(b, dict)] or [case]
        assert all({"atol", "rtol"} <= set(b) for b in bounds), case


def test_unknown_op_names_the_registry():
    with pytest.raises(KeyError, match="WKV4Medium"):
        op_spec("WKV5")
