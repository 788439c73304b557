"""Hostile attributes on rrwkv nodes: OrtSession checks them against the op contracts (runtime/onnx_graph.py
ATTRIBUTES, from plugins/<op>/spec.yaml) before ONNX Runtime sees the model, without importing onnx; ORT's own
errors at load and at run are UserErrors naming the model (and the node, at run)."""
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, strategies as st
from safetensors.torch import save_file

from helpers import op_spec
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.families.rrwkv import RrwkvConfig
from rrwkv_trt.core.ops import OPS
from rrwkv_trt.core.paths import REPO_ROOT
from rrwkv_trt.export.checkpoint import load_checkpoint
from rrwkv_trt.export.models.random_init import random_blinkdl_state_dict
from rrwkv_trt.export.onnx_export import export_checkpoint
from rrwkv_trt.export.quantize import quantize_export
from rrwkv_trt.runtime.backends.ort import OrtSession, find_custom_ops_library
from rrwkv_trt.runtime.onnx_graph import ATTRIBUTES, W8_MAX_BLOCK, IntAttribute, check_rrwkv_attributes
from rrwkv_trt.runtime.onnx_reader import read_graph

CFG = RrwkvConfig(vocab_size=40, n_embd=16, n_layer=1, dim_att=16, dim_ffn=64, medium_interval=3)
IDS = np.array([[1, 5, 9, 2, 7]], dtype=np.int64)
KERNELS = find_custom_ops_library() is not None
PATHS = {"function": dict(use_custom_ops=False), **({"kernel": dict(use_custom_ops=True)} if KERNELS else {})}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> onnx.ModelProto:
    """An int8 RRWKV export in one file: WKV4Medium and MatMulW8 nodes."""
    src = tmp_path_factory.mktemp("ckpt")
    save_file(random_blinkdl_state_dict(CFG, seed=4), str(src / "model.safetensors"))
    fp32 = export_checkpoint(load_checkpoint(src, family="rrwkv"), tmp_path_factory.mktemp("fp32") / "onnx")
    out = quantize_export(fp32, tmp_path_factory.mktemp("int8") / "onnx", "int8")
    return onnx.load(str(out / "model.onnx"))


def _save(proto: onnx.ModelProto, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(folder / "model.onnx"))
    return folder / "model.onnx"


def _with(model, op_type: str, **attrs) -> onnx.ModelProto:
    """A copy of `model` whose first `op_type` node has `attrs` (None removes one; a value sets or adds it)."""
    proto = onnx.ModelProto()
    proto.CopyFrom(model)
    node = next(n for n in proto.graph.node if n.op_type == op_type)
    for name, value in attrs.items():
        keep = [a for a in node.attribute if a.name != name]
        del node.attribute[:]
        node.attribute.extend(keep + ([] if value is None else [onnx.helper.make_attribute(name, value)]))
    return proto


def test_the_contracts_are_the_specs():
    """ATTRIBUTES holds what plugins/<op>/spec.yaml says of each attribute (names, required, allowed values)."""
    assert set(ATTRIBUTES) == {op.name for op in OPS}
    for op in OPS:
        spec = op_spec(op.folder).get("attributes", {})
        assert set(spec) == set(ATTRIBUTES[op.name]), op.name
        for name, rule in ATTRIBUTES[op.name].items():
            assert spec[name]["required"] == rule.required and spec[name]["type"] == type(rule).__name__[:-9].upper()
    medium, w8 = ATTRIBUTES["WKV4Medium"], ATTRIBUTES["MatMulW8"]
    assert op_spec("wkv4_medium")["attributes"]["s"]["allowed"] == f">= {medium['s'].low}"
    assert op_spec("wkv4_medium")["attributes"]["medium_decays"]["allowed"] == [0, 1] == [
        medium["medium_decays"].low, medium["medium_decays"].high]
    assert op_spec("matmul_w8")["attributes"]["block_size"]["range"] == f"even, 2..{W8_MAX_BLOCK}"
    assert w8["block_size"] == IntAttribute(False, 2, W8_MAX_BLOCK, even=True)
    header = (REPO_ROOT / "plugins/matmul_w8/matmulW8Math.h").read_text()
    assert f"constexpr int32_t kW8MaxBlock = {W8_MAX_BLOCK};" in header


def test_read_graph_sees_what_onnx_sees(model, tmp_path):
    path = _save(model, tmp_path / "m")
    graph = read_graph(path)
    assert [(n.name, n.op_type, n.domain, n.input) for n in graph.nodes] == [
        (n.name, n.op_type, n.domain, list(n.input)) for n in model.graph.node]
    for mine, theirs in zip(graph.nodes, model.graph.node):
        assert [(a.name, a.type, a.i, a.s) for a in mine.attribute] == [
            (a.name, a.type, a.i, a.s) for a in theirs.attribute]
    assert {k: (i.data_type, i.dims) for k, i in graph.initializers.items()} == {
        i.name: (i.data_type, list(i.dims)) for i in model.graph.initializer}


def test_a_medium_interval_of_zero_is_refused_not_sigfpe(model, tmp_path):
    """Before the check the function body divided by zero (SIGFPE, the process killed): run it in a child."""
    path = _save(_with(model, "WKV4Medium", s=0), tmp_path / "m")
    code = f"""
        import numpy as np
        from rrwkv_trt.core.errors import UserError
        from rrwkv_trt.runtime.backends.ort import OrtSession
        try:
            OrtSession({str(path)!r}, use_custom_ops=False).run(np.array([[1, 2]]))
        except UserError as err:
            print(err)
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "attribute s is 0, expected an INT in [1, 2147483647]" in result.stdout


@pytest.mark.parametrize("path_kind", list(PATHS))
@pytest.mark.parametrize("op_type, attrs, message", [
    ("WKV4Medium", dict(s=0), r"attribute s is 0, expected an INT in \[1, 2147483647\]"),
    ("WKV4Medium", dict(s=2**31), r"attribute s is 2147483648"),
    ("WKV4Medium", dict(s=None), r"lacks the required attribute\(s\) \['s'\]"),
    ("WKV4Medium", dict(s=3.0), r"attribute s has AttributeProto type 1, expected an INT in \[1, "),
    ("WKV4Medium", dict(medium_decays=2), r"attribute medium_decays is 2, expected an INT in \[0, 1\]"),
    ("WKV4Medium", dict(extra=1), "has attribute 'extra', which the op does not take"),
    ("WKV4Medium", dict(plugin_version="2"), "attribute plugin_version is b'2', expected the STRING '1'"),
    ("MatMulW8", dict(N=0), r"attribute N is 0, expected an INT in \[1, "),
    ("MatMulW8", dict(N=-5), r"attribute N is -5"),
    ("MatMulW8", dict(block_size=3), r"attribute block_size is 3, expected an even INT in \[2, 256\]"),
    ("MatMulW8", dict(block_size=512), r"attribute block_size is 512"),
])
def test_hostile_attributes_are_refused_before_ort(model, tmp_path, path_kind, op_type, attrs, message):
    path = _save(_with(model, op_type, **attrs), tmp_path / "m")
    with pytest.raises(UserError, match=rf"model.onnx: node '[^']+' \(rrwkv::{op_type}\).*{message}"):
        OrtSession(path, **PATHS[path_kind])


def test_an_unknown_rrwkv_op_is_refused(model, tmp_path):
    proto = _with(model, "MatMulW8")
    next(n for n in proto.graph.node if n.op_type == "MatMulW8").op_type = "NoSuchOp"
    with pytest.raises(UserError, match=r"is rrwkv::NoSuchOp, which this rrwkv-trt does not provide"):
        OrtSession(_save(proto, tmp_path / "m"), use_custom_ops=False)


@pytest.mark.skipif(not KERNELS, reason="build/librrwkv_ort_ops.so not built (`make plugins`)")
def test_an_ort_run_error_is_a_user_error_naming_the_node(model, tmp_path):
    """N = 65 passes the contract but not the weights' shape (64 columns): the kernel refuses it at run."""
    proto = _with(model, "MatMulW8", N=65)
    node = next(n for n in proto.graph.node if n.op_type == "MatMulW8")
    with OrtSession(_save(proto, tmp_path / "m")) as session:
        with pytest.raises(UserError, match=rf"onnxruntime failed to run .*model.onnx: .*{node.name}"):
            session.run(IDS)
        session.start_decode(session.initial_state())
        with pytest.raises(UserError, match="onnxruntime failed to run"):
            session.step(1)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_head_attribute_that_fits_the_weights_but_not_the_metadata(model, tmp_path, path):
    """The head's N edited from the vocabulary size to 1 still fits its packed weights (one 64-column group), so
    the function body computed [1, T, 1] logits and handed them on; found by `make fuzz`."""
    proto = onnx.ModelProto()
    proto.CopyFrom(model)
    head = next(n for n in proto.graph.node if n.op_type == "MatMulW8"
                and any(a.name == "N" and a.i == CFG.vocab_size for a in n.attribute))
    kept = [a for a in head.attribute if a.name != "N"]
    del head.attribute[:]
    head.attribute.extend([*kept, onnx.helper.make_attribute("N", 1)])
    with OrtSession(_save(proto, tmp_path / "m"), **PATHS[path]) as session:
        with pytest.raises(UserError, match=r"computed logits of shape \[1, 5, 1\], its metadata says \[1, T, 40\]"):
            session.run(IDS)


# --- Property-based: mutate the rrwkv nodes' attributes; each run gives logits or a UserError ---

_VALUES = (st.integers(-2**63, 2**63 - 1) | st.sampled_from([0, 1, 2, 3, 64, 128, 256, 258, 2**31 - 1, 2**31])
           | st.floats(allow_nan=False) | st.binary(max_size=4) | st.lists(st.integers(-3, 3), min_size=1, max_size=2))
_NAMES = st.sampled_from(["s", "medium_decays", "N", "block_size", "plugin_namespace", "plugin_version", "other"])


@st.composite
def _mutation(draw):
    return draw(st.sampled_from(["WKV4Medium", "MatMulW8"])), draw(st.integers(0, 2**16)), draw(_NAMES), \
        draw(st.none() | _VALUES)


@pytest.mark.fuzz
@given(mutations=st.lists(_mutation(), min_size=1, max_size=3), kernel=st.booleans())
def test_fuzz_rrwkv_node_attributes(model, mutations, kernel):
    proto = onnx.ModelProto()
    proto.CopyFrom(model)
    for op_type, k, name, value in mutations:
        nodes = [n for n in proto.graph.node if n.op_type == op_type]
        node = nodes[k % len(nodes)]
        keep = [a for a in node.attribute if a.name != name]
        del node.attribute[:]
        node.attribute.extend(keep + ([] if value is None else [onnx.helper.make_attribute(name, value)]))
    with tempfile.TemporaryDirectory() as tmp:
        try:
            with OrtSession(_save(proto, Path(tmp)), use_custom_ops=kernel and KERNELS) as session:
                logits, _ = session.run(IDS)
        except UserError:
            return
    assert logits.shape == (1, IDS.shape[1], CFG.vocab_size)


@pytest.mark.parametrize("attrs,message", [
    (dict(scale=0.0), r"attribute scale is 0.0, expected a finite FLOAT > 0"),
    (dict(scale=-1.0), r"attribute scale is -1.0"),
    (dict(scale=float("inf")), r"attribute scale is inf"),
    (dict(scale=float("nan")), r"attribute scale is nan"),
    (dict(scale=1), r"attribute scale has AttributeProto type 2, expected a finite FLOAT > 0"),
    (dict(scale=0.5, chunk_size=0), r"attribute chunk_size is 0, expected an INT in \[1, "),
    (dict(chunk_size=64), r"lacks the required attribute\(s\) \['scale'\]"),
], ids=["zero", "negative", "inf", "nan", "int-typed", "chunk-zero", "no-scale"])
def test_hostile_gated_outer_scan_attributes_are_refused(tmp_path, attrs, message):
    """The FLOAT rule, read back by onnx_reader (fixed32 bits) as well as from onnx's NodeProto."""
    node = onnx.helper.make_node("GatedOuterScan", ["q", "f", "lb", "v", "S0"], ["o", "S_out"], name="gos",
                                 domain="rrwkv", **attrs)
    graph = onnx.helper.make_graph([node], "g", [], [])
    path = tmp_path / "m.onnx"
    onnx.save(onnx.helper.make_model(graph), path)
    for seen in (node, read_graph(path).nodes[0]):
        with pytest.raises(UserError, match=rf"node 'gos' \(rrwkv::GatedOuterScan\).*{message}"):
            check_rrwkv_attributes(seen, "m")


def test_a_valid_scale_is_read_back_exactly(tmp_path):
    node = onnx.helper.make_node("GatedOuterScan", ["q"], ["o"], name="gos", domain="rrwkv", scale=128 ** -0.5)
    path = tmp_path / "m.onnx"
    onnx.save(onnx.helper.make_model(onnx.helper.make_graph([node], "g", [], [])), path)
    (attr,) = read_graph(path).nodes[0].attribute
    assert attr.f == node.attribute[0].f
    check_rrwkv_attributes(read_graph(path).nodes[0], "m")
