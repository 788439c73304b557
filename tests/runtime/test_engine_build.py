"""`rrwkv-trt build` (runtime/engine.py): the whole build path under TensorRT-RTX on the CPU (docs/toolchain.md §10):
strip, parse with the plugins bound, plugin-layer check, two profiles, SM86 engine, sidecar; and the errors for
models and plugin libraries TensorRT cannot use. Full TensorRT on a GPU: test_trt_backend.py."""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import onnx
import pytest
from click.testing import CliRunner

from rrwkv_trt.runtime import engine as engine_mod
from rrwkv_trt.core import metadata
from rrwkv_trt.core.graph import strip_functions
from rrwkv_trt.runtime import onnx_graph, trt_loader
from rrwkv_trt.cli.main import main
from rrwkv_trt.runtime.engine import build_engine
from rrwkv_trt.runtime.onnx_graph import PluginNode
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.metadata import from_metadata
from rrwkv_trt.core.ops import OP_NAMES
from rrwkv_trt.core.paths import REPO_ROOT
from rrwkv_trt.core.sidecar import read_sidecar, sidecar_path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))
import trt_rtx_support as rtx  # noqa: E402

OP_TYPE = {"rwkv4": "WKV4", "rrwkv": "WKV4Medium", "hgrn2": "GatedOuterScan"}
needs_rtx = pytest.mark.skipif(rtx.skip_reason() is not None, reason=str(rtx.skip_reason()))
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not on PATH: cannot make test libraries")


@pytest.fixture(scope="module")
def trt():
    reason = rtx.skip_reason()
    if reason:
        pytest.skip(reason)
    import tensorrt_rtx

    rtx.load_plugins(tensorrt_rtx)  # the process's one plugin load, shared with tests/plugins
    return tensorrt_rtx


@pytest.fixture(scope="module", params=list(OP_TYPE))
def exported(request, tmp_path_factory):
    """(family, export OUT_DIR) of a tiny random model."""
    pytest.importorskip("torch", reason="exporting the tiny models needs torch ([export] extra)")
    from safetensors.torch import save_file

    from rrwkv_trt.export.checkpoint import load_checkpoint
    from rrwkv_trt.export.models.random_init import (fla_hgrn2_config, random_blinkdl_state_dict,
                                                     random_fla_hgrn2_state_dict, write_fla_folder)
    from rrwkv_trt.export.onnx_export import export_checkpoint
    from rrwkv_trt.core.families.rrwkv import RrwkvConfig
    from rrwkv_trt.core.families.rwkv4 import Rwkv4Config

    src = tmp_path_factory.mktemp(f"{request.param}_ckpt")
    if request.param == "hgrn2":  # an fla folder: 2 layers, 3 heads of K = V = 8
        cfg = fla_hgrn2_config(hidden_size=24, num_hidden_layers=2, expand_ratio=8, vocab_size=61, intermediate_size=40)
        write_fla_folder(src, cfg, random_fla_hgrn2_state_dict(cfg, seed=5))
    else:
        sizes = dict(vocab_size=61, n_embd=16, n_layer=2, dim_att=12, dim_ffn=32)
        config = RrwkvConfig(**sizes, medium_interval=3) if request.param == "rrwkv" else Rwkv4Config(**sizes)
        save_file(random_blinkdl_state_dict(config, seed=5), str(src / "model.safetensors"))
    out = export_checkpoint(load_checkpoint(src, family=request.param), tmp_path_factory.mktemp("exp") / "onnx")
    return request.param, out


def _rrwkv_node_names(model_dir: Path) -> list[str]:
    proto = onnx.load(str(model_dir / "model.onnx"))
    return [n.name for n in proto.graph.node if n.domain == "rrwkv"]


def _run_python(code: str) -> subprocess.CompletedProcess:
    """A fresh process: its plugin registry holds nothing yet (this process's holds the real library)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300, cwd=REPO_ROOT)


def test_build_writes_engine_and_sidecar(trt, exported, tmp_path):
    family, model_dir = exported
    engine = tmp_path / "engines" / "tiny.plan"
    lines = []
    sidecar = build_engine(model_dir, engine, max_batch=3, max_seq=16, plugin_library=rtx.LIBRARY,
                           compute_capability="8.6", progress=lines.append, trt=trt)
    assert engine.stat().st_size == sidecar.engine_bytes > 0
    assert sorted(p.name for p in engine.parent.iterdir()) == ["tiny.plan", "tiny.plan.json"]  # no temp files
    assert read_sidecar(engine) == sidecar
    data = json.loads(sidecar_path(engine).read_text())
    proto = onnx.load(str(model_dir / "model.onnx"))
    info = from_metadata({p.key: p.value for p in proto.metadata_props})
    assert data["config"] == info.config.to_dict() and data["state_spec"] == info.state.to_dict()
    assert data["precision"] == "fp32" and sidecar.info == info
    assert info.fingerprint is not None and data["fingerprint"] == info.fingerprint  # state files check it
    assert data["tensorrt"] == {"product": "TensorRT-RTX", "version": trt.__version__}
    assert data["gpu"] == {"compute_capability": "8.6", "name": None}
    assert data["plugin_library"] == {"path": str(rtx.LIBRARY.resolve()),
                                      "sha256": metadata.file_sha256(rtx.LIBRARY)}
    assert (data["max_batch"], data["max_seq"], data["profiles"]) == (3, 16, {"decode": 0, "prefill": 1})
    assert data["plugin_layers"] == _rrwkv_node_names(model_dir) and len(data["plugin_layers"]) == 2
    assert data["engine_inspected"] is False  # TensorRT-RTX engines cannot be deserialised without a GPU
    assert data["source_model"]["sha256"] == metadata.file_sha256(model_dir / "model.onnx")
    text = "\n".join(lines)
    assert "parsing" in text and "2 rrwkv nodes, functions stripped" in text
    assert "building for compute capability 8.6: batch 1..3, prefill seq 1..16" in text
    assert f"wrote {engine}" in text


def test_parsed_network_binds_plugins_with_profiles(trt, exported):
    """The stripped model parses into PLUGIN_V3 layers (op, rrwkv, 1); an rrwkv node missing among them is called
    an inlined function body."""
    family, model_dir = exported
    proto, info, path, nodes = onnx_graph.load_model(model_dir)
    assert [n.op_type for n in nodes] == [OP_TYPE[family]] * 2
    parsed = engine_mod.ParsedNetwork(trt, onnx_graph.tensorrt_graph(proto).SerializeToString(), path, nodes)
    assert engine_mod.check_plugin_layers(trt, parsed.network, nodes) == [n.name for n in nodes]
    with pytest.raises(UserError, match=f"TensorRT inlined the function body of rrwkv::{OP_TYPE[family]} "
                                        r"\(node 'ghost'\) instead of using the plugin"):
        engine_mod.check_plugin_layers(trt, parsed.network, [*nodes, PluginNode("ghost", OP_TYPE[family])])
    config = parsed.builder.create_builder_config()
    profiles = engine_mod.add_profiles(trt, parsed.builder, config, parsed.network, info, max_batch=2, max_seq=5)
    assert profiles == {"decode": 0, "prefill": 1} and config.num_optimization_profiles == 2


@needs_rtx
def test_unbound_plugin_fails_loudly_in_fresh_process(exported):
    """No plugin library loaded: the model with its functions inlines them (caught by the plugin-layer check);
    the stripped model fails the parse with 'no plugin'. Neither builds silently."""
    family, model_dir = exported
    proc = _run_python(f"""
        import tensorrt_rtx as trt
        from rrwkv_trt.runtime import engine as e
        from rrwkv_trt.runtime.onnx_graph import freeze_logits_from, load_model, tensorrt_graph
        proto, info, path, nodes = load_model({str(model_dir)!r})
        for variant, model in (("functions", freeze_logits_from(proto)), ("stripped", tensorrt_graph(proto))):
            try:
                parsed = e.ParsedNetwork(trt, model.SerializeToString(), path, nodes)
                e.check_plugin_layers(trt, parsed.network, nodes)
                print(variant, "BUILT")
            except e.UserError as err:
                print(variant, "ERROR", err)
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    op = OP_TYPE[family]
    assert f"functions ERROR TensorRT inlined the function body of rrwkv::{op}" in out, out
    assert (f"stripped ERROR TensorRT-RTX found no plugin for rrwkv::{op} while parsing" in out
            and "run `make plugins`" in out), out


def _gcc_library(tmp: Path, name: str, source: str, *extra: str) -> Path:
    (tmp / f"{name}.c").write_text(source)
    out = tmp / f"{name}.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(out), str(tmp / f"{name}.c"), *extra], check=True)
    return out


@needs_rtx
@needs_gcc
def test_plugin_libraries_without_the_plugins(exported, tmp_path):
    """A library whose getCreators returns none, and one exporting no getCreators: clear errors, no build."""
    _, model_dir = exported
    empty = _gcc_library(tmp_path, "libempty_creators", "#include <stdint.h>\n"
                         "void setLoggerFinder(void* f) { (void)f; }\n"
                         "void* const* getCreators(int32_t* n) { static void* const k[1] = {0}; *n = 0; return k; }\n")
    plain = _gcc_library(tmp_path, "libplain", "int rrwkvNothing(void) { return 0; }\n")
    proc = _run_python(f"""
        import sys
        sys.path.insert(0, "tests/plugins")
        import tensorrt_rtx as trt
        import trt_rtx_support as rtx
        from rrwkv_trt.runtime import engine as e
        rtx.ensure_unversioned_lib()
        for lib in ({str(empty)!r}, {str(plain)!r}):
            try:
                e.build_engine({str(model_dir)!r}, {str(tmp_path / 'x.plan')!r}, plugin_library=lib,
                               compute_capability="8.6", trt=trt)
                print("BUILT")
            except e.UserError as err:
                print("ERROR", err)
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout.splitlines()
    assert len(out) == 2, proc.stdout
    assert out[0].startswith("ERROR") and "could not load plugin library" in out[0], out[0]
    assert "No creator returned" in out[0] and "rebuild it with `make plugins`" in out[0]
    assert out[1].startswith("ERROR") and "could not load plugin library" in out[1], out[1]
    assert "it exports no getCreators: pass the dynamic-registration library librrwkv_trt_plugins_dyn.so" in out[1]
    assert not (tmp_path / "x.plan").exists()


@needs_gcc
def test_plugin_library_linked_to_another_tensorrt(tmp_path):
    stub = tmp_path / "stub"
    stub.mkdir()
    _gcc_library(stub, "libnvinfer", "int nvinferStub(void) { return 0; }\n", "-Wl,-soname,libnvinfer.so.9")
    lib = _gcc_library(tmp_path, "libplugins9", "int nvinferStub(void);\nint f(void) { return nvinferStub(); }\n",
                       f"-L{stub}", "-lnvinfer", "-Wl,--no-as-needed")
    assert "libnvinfer.so.9" in trt_loader.elf_needed(lib)
    with pytest.raises(UserError, match=r"was built for TensorRT 9 \(it links libnvinfer\.so\.9\); this is TensorRT "
                                        r"10\.14\.1; rebuild it against this TensorRT with `make plugins`"):
        trt_loader.check_plugin_library(lib, SimpleNamespace(__name__="tensorrt", __version__="10.14.1"))
    trt_loader.check_plugin_library(lib, SimpleNamespace(__name__="tensorrt", __version__="9.3.0"))
    (tmp_path / "text.so").write_text("not a library")
    with pytest.raises(UserError, match="is not a 64-bit ELF shared library; run `make plugins`"):
        trt_loader.check_plugin_library(tmp_path / "text.so", SimpleNamespace(__name__="tensorrt", __version__="10"))


def test_second_plugin_library_refused(trt, tmp_path):
    other = tmp_path / "librrwkv_trt_plugins_dyn.so"
    shutil.copyfile(rtx.LIBRARY, other)
    assert trt_loader.load_plugin_library(trt, rtx.LIBRARY) == rtx.LIBRARY.resolve()  # same file: a no-op
    with pytest.raises(UserError, match="is already loaded in this process and a process loads one rrwkv plugin "
                                        "library; cannot also load"):
        trt_loader.load_plugin_library(trt, other)


def test_default_plugin_library_missing(trt, exported, tmp_path, monkeypatch):
    _, model_dir = exported
    monkeypatch.setattr(trt_loader, "plugin_search_path", lambda: [tmp_path / "build" / trt_loader.PLUGIN_LIBRARY])
    with pytest.raises(UserError, match=r"plugin library librrwkv_trt_plugins_dyn\.so not found in \[.*build/"
                                        r"librrwkv_trt_plugins_dyn\.so'\]; run `make plugins`"):
        build_engine(model_dir, tmp_path / "x.plan", compute_capability="8.6", trt=trt)


def test_compute_capability_rtx_cannot_target(trt, exported, tmp_path):
    _, model_dir = exported
    with pytest.raises(UserError, match=r"TensorRT-RTX cannot target compute capability 9\.0; it knows \[.*'8\.6'"):
        build_engine(model_dir, tmp_path / "x.plan", plugin_library=rtx.LIBRARY, compute_capability="9.0", trt=trt)
    assert not (tmp_path / "x.plan").exists()


def test_model_without_rrwkv_nodes(make_fake_model, tmp_path):
    """Checked before TensorRT is imported, so this runs everywhere."""
    out = make_fake_model()
    ops = re.escape(str(list(OP_NAMES)))
    with pytest.raises(UserError, match=rf"has no rrwkv nodes \(domain 'rrwkv', ops {ops}\)"):
        build_engine(out, tmp_path / "x.plan")
    result = CliRunner().invoke(main, ["build", str(out), "-o", str(tmp_path / "x.plan")])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "has no rrwkv nodes" in result.stderr
    assert not (tmp_path / "x.plan").exists()


def test_rrwkv_node_checks(exported):
    family, model_dir = exported
    proto = onnx.load(str(model_dir / "model.onnx"))
    node = next(n for n in proto.graph.node if n.domain == "rrwkv")
    node.op_type = "NoSuchOp"
    with pytest.raises(UserError, match=r"is rrwkv::NoSuchOp, which has no TensorRT plugin"):
        onnx_graph.rrwkv_nodes(proto)
    node.op_type = OP_TYPE[family]
    for attr in node.attribute:
        if attr.name == "plugin_version":
            attr.s = b"2"
    with pytest.raises(UserError, match=r"has \{'plugin_version': b'2'\}, expected plugin_namespace='rrwkv' and "
                                        r"plugin_version='1'; re-export"):
        onnx_graph.rrwkv_nodes(proto)
    stripped = strip_functions(proto)
    assert [f.name for f in proto.functions] == [OP_TYPE[family]] and not list(stripped.functions)


@pytest.mark.parametrize("name", ["engine.bin", "dir.plan/"])
def test_bad_engine_name(tmp_path, name, make_fake_model):
    (tmp_path / "dir.plan").mkdir()
    with pytest.raises(UserError, match="must end in .plan or .engine|is a folder"):
        build_engine(make_fake_model(), tmp_path / name)


def test_missing_model(tmp_path):
    with pytest.raises(UserError, match="has no model.onnx; export a model into it"):
        build_engine(tmp_path, tmp_path / "x.plan")


def test_cli_build_with_rtx_then_refused_by_tensorrt_runtime(trt, exported, tmp_path, monkeypatch):
    """The CLI builds with --tensorrt-rtx; TrtSession (full TensorRT, here a stand-in) refuses that engine before
    deserialising it."""
    from fake_trt import FakeCudart, FakeTensorRT

    from rrwkv_trt.runtime.backends import trt as trt_backend
    from rrwkv_trt.runtime.backends.trt import TrtSession

    _, model_dir = exported
    engine = tmp_path / "rtx.engine"
    result = CliRunner().invoke(main, ["build", str(model_dir), "-o", str(engine), "--tensorrt-rtx",
                                       "--compute-capability", "8.6", "--plugin-library", str(rtx.LIBRARY),
                                       "--max-batch", "2", "--max-seq", "8"])
    assert result.exit_code == 0, result.output
    assert f"wrote {engine}" in result.stderr and "Building engine" in result.stderr  # IProgressMonitor phases
    cudart = FakeCudart()
    monkeypatch.setattr(trt_backend, "_import_modules", lambda: (FakeTensorRT(cudart, 2, 8), cudart))
    monkeypatch.setattr(trt_backend, "gpu_compute_capability", lambda: ("8.6", "Fake GPU"))
    with pytest.raises(UserError, match=f"engine {engine} was built by TensorRT-RTX {trt.__version__}; this runtime "
                                        "is TensorRT 10.99.0, which cannot load it; rebuild the engine on this host"):
        TrtSession(engine)


def test_cli_build_without_tensorrt(exported, tmp_path):
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    _, model_dir = exported
    result = CliRunner().invoke(main, ["build", str(model_dir), "-o", str(tmp_path / "x.plan")])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert "error: TensorRT is not installed" in result.stderr and "pip install 'rrwkv-trt[trt]'" in result.stderr


def test_missing_plugin_layers_reads_inspector_json():
    nodes = [PluginNode("node_wkv4__3", "WKV4"), PluginNode("node_wkv4_1__3", "WKV4")]
    detailed = {"Layers": [{"Name": "node_wkv4__3", "LayerType": "PluginV3"},
                           {"Name": "node_wkv4_1__3 + copy", "LayerType": "Reformat"}]}
    assert engine_mod.missing_plugin_layers(json.dumps(detailed), nodes) == ["node_wkv4_1__3"]
    names_only = {"Layers": ["node_wkv4__3", "{ForeignNode[x...node_wkv4_1__3]}"]}
    assert engine_mod.missing_plugin_layers(json.dumps(names_only), nodes) == []
    assert engine_mod.missing_plugin_layers(json.dumps({"Layers": []}), nodes) == [n.name for n in nodes]


def test_build_from_an_external_data_export(trt, tmp_path, monkeypatch):
    """Large exports keep their weights in model.onnx.data: the build reads them, and the sidecar's source sha256
    covers them."""
    pytest.importorskip("torch", reason="exporting the tiny model needs torch ([export] extra)")
    import torch

    from rrwkv_trt.export import model_folder, onnx_export
    from rrwkv_trt.export.checkpoint import load_checkpoint
    from rrwkv_trt.export.models.random_init import (fla_hgrn2_config, random_blinkdl_state_dict,
                                                     random_fla_hgrn2_state_dict, write_fla_folder)
    from rrwkv_trt.core.families.rwkv4 import Rwkv4Config

    config = Rwkv4Config(vocab_size=61, n_embd=16, n_layer=1, dim_att=16, dim_ffn=32)
    torch.save(random_blinkdl_state_dict(config, seed=2), tmp_path / "m.pth")
    monkeypatch.setattr(model_folder, "EXTERNAL_DATA_MIN_BYTES", 0)
    out = onnx_export.export_checkpoint(load_checkpoint(tmp_path / "m.pth"), tmp_path / "onnx")
    assert (out / "model.onnx.data").is_file()
    sidecar = build_engine(out, tmp_path / "m.plan", max_batch=2, max_seq=8, plugin_library=rtx.LIBRARY,
                           compute_capability="8.6", progress=lambda line: None, trt=trt)
    assert sidecar.engine_bytes > 0 and sidecar.plugin_layers
    assert sidecar.source_sha256 == metadata.model_sha256(out / "model.onnx")
    assert sidecar.source_sha256 != metadata.file_sha256(out / "model.onnx")
