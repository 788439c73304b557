"""TrtSession: bookkeeping on the CPU through stand-ins (fake_trt.py), sidecar and compatibility errors, and on a
GPU host with full TensorRT the golden comparison against OrtSession (docs/conventions.md §3.12)."""
from __future__ import annotations

import _ctypes
import importlib.util
import logging
import shutil

import numpy as np
import pytest
from fake_trt import FakeContext, FakeCudart, FakeTensorRT

from rrwkv_trt.runtime import engine as engine_mod
from rrwkv_trt.core import metadata
from rrwkv_trt.runtime import trt_loader
from rrwkv_trt.runtime.backends import trt as trt_backend
from rrwkv_trt.runtime.backends.ort import OrtSession
from rrwkv_trt.runtime.backends.trt import TrtSession
from rrwkv_trt.runtime.decode import Generator
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.metadata import from_metadata
from rrwkv_trt.core.sidecar import EngineSidecar, read_sidecar, sidecar_path, write_sidecar

MAX_BATCH, MAX_SEQ = 4, 3  # a small max_seq makes run() chunk every prompt longer than 3
ELF_LIBRARY = _ctypes.__file__  # any ELF shared library stands in for the plugin library here


def make_sidecar(model_dir, engine_path, **overrides) -> EngineSidecar:
    """The sidecar `rrwkv-trt build` would write; the "plugin library" is a copy of an ELF library in the engine's
    folder, a place a sidecar may load native code from."""
    import onnx

    library = engine_path.parent / trt_loader.PLUGIN_LIBRARY
    if not library.exists():
        shutil.copyfile(ELF_LIBRARY, library)
    proto = onnx.load(str(model_dir / "model.onnx"))
    fields = dict(
        info=from_metadata({p.key: p.value for p in proto.metadata_props}), tensorrt_product="TensorRT",
        tensorrt_version=FakeTensorRT.__version__, compute_capability="8.6", gpu_name="Fake GPU",
        plugin_library=str(library), plugin_sha256=metadata.file_sha256(library), max_batch=MAX_BATCH,
        max_seq=MAX_SEQ, profiles=dict(engine_mod.PROFILES), plugin_layers=(), engine_inspected=False,
        engine_bytes=engine_path.stat().st_size, source_model=str(model_dir / "model.onnx"), source_sha256="0" * 64)
    return EngineSidecar(**(fields | overrides))


@pytest.fixture
def fakes(monkeypatch):
    """Fake tensorrt + cudart in place of the real ones, a fake 8.6 GPU, and a fresh plugin-load record."""
    cudart = FakeCudart()
    trt = FakeTensorRT(cudart, MAX_BATCH, MAX_SEQ)
    monkeypatch.setattr(trt_backend, "_import_modules", lambda: (trt, cudart))
    monkeypatch.setattr(trt_backend, "gpu_compute_capability", lambda: ("8.6", "Fake GPU"))
    monkeypatch.setattr(trt_loader, "_loaded_library", {})
    monkeypatch.setattr(trt_loader, "_loggers", {})
    return trt, cudart


@pytest.fixture
def fake_engine(fake_model, tmp_path):
    """(export dir, engine path): the "engine" is the fake ONNX model, which FakeEngine runs with onnxruntime."""
    engine = tmp_path / "fake.plan"
    shutil.copyfile(fake_model / "model.onnx", engine)
    write_sidecar(sidecar_path(engine), make_sidecar(fake_model, engine))
    return fake_model, engine


def test_prefill_and_steps_match_ort(fakes, fake_engine):
    trt, cudart = fakes
    model, engine = fake_engine
    ids = np.array([[1, 2, 3, 4, 5, 6, 7], [9, 8, 7, 6, 5, 4, 3]], np.int64)
    with OrtSession(model, use_custom_ops=False) as ort, TrtSession(engine) as sess:
        assert sess.vocab_size == ort.vocab_size and sess.spec == ort.spec and sess.info == ort.info
        state = sess.initial_state(2)
        logits, new = sess.run(ids, state)
        ref_logits, ref_new = ort.run(ids, state)
        np.testing.assert_array_equal(logits, ref_logits)
        assert list(new) == list(ref_new)
        for name in ref_new:
            np.testing.assert_array_equal(new[name], ref_new[name])
        # 7 tokens in chunks of max_seq = 3 on the prefill profile
        assert [(p, s) for p, s in trt.executions] == [(1, (2, 3)), (1, (2, 3)), (1, (2, 1))]
        sess.start_decode(new)
        ort.start_decode(ref_new)
        for token in ([5, 6], [7, 8], [9, 10]):
            np.testing.assert_array_equal(sess.step(np.array(token)), ort.step(np.array(token)))
        assert all(p == 0 and s == (2, 1) for p, s in trt.executions[3:])  # decode profile, seq 1
        for name, value in ort.decode_state().items():
            np.testing.assert_array_equal(sess.decode_state()[name], value)
        first, second = sess.step(np.array([1, 2])), sess.step(np.array([3, 4]))
        assert np.shares_memory(first, second)  # one pinned logits buffer, overwritten per step
    assert not cudart.device and not cudart.host and not cudart.streams, "close() leaked CUDA resources"


@pytest.mark.parametrize("cuda_graph", [False, True], ids=["stream", "cuda-graph"])
def test_greedy_ids_match_ort(fakes, fake_engine, cuda_graph):
    trt, cudart = fakes
    model, engine = fake_engine
    prompt = [3, 14, 15, 92, 65]
    with OrtSession(model, use_custom_ops=False) as ort, TrtSession(engine, cuda_graph=cuda_graph) as sess:
        want = Generator(ort).greedy_ids(prompt, 12)
        assert Generator(sess).greedy_ids(prompt, 12) == want
        generator = Generator(sess)
        list(generator.generate_ids(prompt, 4))
        ort_generator = Generator(ort)
        list(ort_generator.generate_ids(prompt, 4))
        for name, value in ort_generator.final_state().items():
            np.testing.assert_array_equal(generator.final_state()[name], value)
    if cuda_graph:  # one graph per ping-pong direction, kept across start_decode at the same batch size
        assert cudart.captures == 2 and cudart.graph_launches == 11 + 3 + 1  # + final_state's pending step
    else:
        assert cudart.captures == 0 and cudart.graph_launches == 0


def test_rebatch_and_limits(fakes, fake_engine):
    _, engine = fake_engine
    with TrtSession(engine) as sess:
        sess.start_decode(sess.initial_state(2))
        assert sess.step(np.array([1, 200])).argmax(-1).tolist() == [2, 201]
        sess.start_decode(sess.initial_state(1))
        assert sess.step(3).shape == (1, 256)
        with pytest.raises(UserError, match=r"step\(\) got 2 token ids, the decode state holds batch 1"):
            sess.step(np.array([1, 2]))
        with pytest.raises(UserError, match=f"batch 5 exceeds engine .* max batch {MAX_BATCH}; rebuild it with "
                                            r"`rrwkv-trt build \.\.\. --max-batch 5`"):
            sess.run(np.zeros((5, 2), np.int64))
        with pytest.raises(UserError, match="token id 256 is out of range for vocab size 256"):
            sess.run(np.array([[1, 256]]))
    with pytest.raises(RuntimeError, match="is closed"):
        sess.step(1)


def test_step_before_start_decode(fakes, fake_engine):
    with TrtSession(fake_engine[1]) as sess:
        with pytest.raises(RuntimeError, match="before start_decode"):
            sess.step(1)


def test_plugin_library_changed_warns(fakes, fake_engine, tmp_path, caplog):
    """A library the user passes is theirs to choose: a changed one loads, with a warning logged before loading."""
    trt, _ = fakes
    _, engine = fake_engine
    other = tmp_path / "libother.so"
    shutil.copyfile(ELF_LIBRARY, other)
    with open(other, "ab") as f:
        f.write(b"rebuilt")
    with caplog.at_level(logging.WARNING), TrtSession(engine, plugin_library=other) as sess:
        assert sess.plugin_library == other.resolve() and trt.loaded == [str(other.resolve())]
    assert "differs from the one engine" in caplog.text and "rebuild the engine if the plugins changed" in caplog.text


def test_sidecar_library_changed_is_refused(fakes, fake_engine):
    """The library a sidecar names is hashed before it is loaded, and a changed one is not loaded."""
    _, engine = fake_engine
    library = engine.parent / trt_loader.PLUGIN_LIBRARY
    with open(library, "ab") as f:
        f.write(b"swapped")
    with pytest.raises(UserError, match=rf"plugin library {library} has sha256 \w{{12}}\.\.\., not the \w{{12}}\.\.\. "
                                        r"that engine sidecar .*fake\.plan\.json recorded: it is not the library the "
                                        rf"engine was built with; if you trust {library}, pass it with "
                                        rf"--plugin-library {library}; otherwise rebuild the engine with `rrwkv-trt "
                                        r"build .*model\.onnx -o .*fake\.plan`"):
        TrtSession(engine)
    assert not fakes[0].loaded


@pytest.mark.parametrize("where", ["absolute", "dotdot", "symlink"])
def test_sidecar_library_outside_trusted_folders_is_refused(fakes, fake_engine, tmp_path, where):
    """Editing the sidecar must not load native code from elsewhere, even with the right sha256."""
    model, engine = fake_engine
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    evil = outside / "libevil.so"
    shutil.copyfile(ELF_LIBRARY, evil)
    name = {"absolute": str(evil), "dotdot": "../elsewhere/libevil.so", "symlink": "liblink.so"}[where]
    if where == "dotdot":
        engine = _move_engine(model, engine, tmp_path / "engines")
    if where == "symlink":
        (engine.parent / name).symlink_to(evil)
    write_sidecar(sidecar_path(engine), make_sidecar(model, engine, plugin_library=name,
                                                     plugin_sha256=metadata.file_sha256(evil)))
    with pytest.raises(UserError, match=rf"names plugin library {evil}, which is neither in the engine's folder nor "
                                        r"in .*build, the only places a sidecar may load native code from; if you "
                                        rf"trust {evil}, pass it with --plugin-library {evil}"):
        TrtSession(engine)
    assert not fakes[0].loaded


def test_sidecar_library_in_engine_folder_by_plain_name(fakes, fake_engine):
    """A relative plugin_library counts from the engine's folder, whatever the working directory."""
    model, engine = fake_engine
    library = engine.parent / trt_loader.PLUGIN_LIBRARY
    write_sidecar(sidecar_path(engine), make_sidecar(model, engine, plugin_library=library.name))
    with TrtSession(engine) as sess:
        assert sess.plugin_library == library.resolve() and fakes[0].loaded == [str(library.resolve())]


def _move_engine(model, engine, folder):
    folder.mkdir()
    moved = folder / engine.name
    shutil.copyfile(engine, moved)
    write_sidecar(sidecar_path(moved), make_sidecar(model, moved))
    return moved


# ---- errors before anything is deserialised ----

@pytest.mark.parametrize("change, match", [
    (dict(tensorrt_version="10.3.0"), "was built with TensorRT 10.3.0; this is TensorRT 10.99.0 and engines only "
                                      "load into the TensorRT version that built them; rebuild the engine"),
    (dict(tensorrt_product="TensorRT-RTX", tensorrt_version="1.7.1.116"),
     "was built by TensorRT-RTX 1.7.1.116; this runtime is TensorRT 10.99.0, which cannot load it; rebuild"),
    (dict(compute_capability="9.0", gpu_name="NVIDIA H100"),
     r"was built for compute capability 9.0 \(NVIDIA H100\); this GPU is Fake GPU \(compute capability 8.6\); "
     r"rebuild the engine on this host with `rrwkv-trt build .*model.onnx -o .*fake.plan`"),
], ids=["trt-version", "product", "compute-capability"])
def test_mismatch_errors(fakes, fake_engine, change, match):
    model, engine = fake_engine
    write_sidecar(sidecar_path(engine), make_sidecar(model, engine, **change))
    with pytest.raises(UserError, match=match):
        TrtSession(engine)
    assert not fakes[0].loaded, "the plugin library was loaded before the engine was found incompatible"


def test_check_engine_compatible_no_gpu(fake_engine):
    model, engine = fake_engine
    sidecar = read_sidecar(engine)
    with pytest.raises(UserError, match="no CUDA GPU found .* needs one of compute capability 8.6"):
        engine_mod.check_engine_compatible(engine, sidecar, "TensorRT", FakeTensorRT.__version__, None)
    engine_mod.check_engine_compatible(engine, sidecar, "TensorRT", FakeTensorRT.__version__, ("8.6", "x"))


def test_sidecar_round_trip_and_errors(fake_engine):
    model, engine = fake_engine
    sidecar = make_sidecar(model, engine)
    assert read_sidecar(engine) == sidecar
    assert sidecar_path(engine).name == "fake.plan.json"
    sidecar_path(engine).write_text('{"format_version": 1}')
    with pytest.raises(UserError, match=r"fake\.plan\.json: missing fields config, engine_bytes, .*; rebuild the "
                                        r"engine with `rrwkv-trt build`"):
        read_sidecar(engine)
    sidecar_path(engine).write_text('{"format_version": 99}')
    with pytest.raises(UserError, match=r"unsupported format_version 99; this rrwkv-trt reads \[1\]"):
        read_sidecar(engine)
    sidecar_path(engine).write_text("not json")
    with pytest.raises(UserError, match="is not valid JSON"):
        read_sidecar(engine)
    sidecar_path(engine).unlink()
    with pytest.raises(UserError, match=r"has no sidecar .*fake\.plan\.json; rebuild the engine with `rrwkv-trt "
                                        r"build`"):
        TrtSession(engine)


def test_engine_and_sidecar_disagree(fakes, fake_engine):
    model, engine = fake_engine
    write_sidecar(sidecar_path(engine), make_sidecar(model, engine, engine_bytes=12))
    with pytest.raises(UserError, match="has .* bytes but its sidecar describes one of 12; the two do not belong"):
        TrtSession(engine)


@pytest.mark.parametrize("name, match", [("model.onnx", "is not an engine file"), ("nope.plan", "not found")])
def test_bad_engine_path(tmp_path, name, match):
    (tmp_path / "model.onnx").write_bytes(b"")
    with pytest.raises(UserError, match=match):
        TrtSession(tmp_path / name)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_no_tensorrt_is_a_user_error(fake_engine):
    with pytest.raises(UserError, match=r"TensorRT is not installed .*pip install 'rrwkv-trt\[trt\]'"):
        TrtSession(fake_engine[1])


def test_cli_run_engine(fakes, fake_engine):
    from click.testing import CliRunner

    from rrwkv_trt.cli.main import main

    model, engine = fake_engine
    result = CliRunner().invoke(main, ["run", str(engine), "--prompt", "a"])
    assert result.exit_code == 2 and "has no tokenizer beside it; rebuild it with `rrwkv-trt build MODEL" in \
        result.stderr  # never from the export folder the (untrusted) sidecar names
    shutil.copyfile(model / "tokenizer.json", engine_mod.engine_tokenizer_path(engine))  # what `build` writes
    result = CliRunner().invoke(main, ["run", str(engine), "--prompt", "a", "--max-new-tokens", "3", "--cuda-graph"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "abcd\n"
    result = CliRunner().invoke(main, ["run", str(engine), "--prompt", "a", "--threads", "2"])
    assert result.exit_code == 2 and "--threads and --no-custom-ops apply to ONNX Runtime" in result.stderr
    result = CliRunner().invoke(main, ["run", str(engine.parent), "--prompt", "a", "--cuda-graph"])
    assert result.exit_code == 2 and "--cuda-graph and --plugin-library apply to TensorRT engines" in result.stderr


# ---- GPU hosts: full TensorRT, real plugins, golden decode against ONNX Runtime ----

def _gpu_skip_reason() -> str | None:
    if importlib.util.find_spec("tensorrt") is None or engine_mod.gpu_compute_capability() is None:
        return "needs full TensorRT and a CUDA GPU (pip install 'rrwkv-trt[trt]' on a GPU host)"
    if importlib.util.find_spec("cuda") is None:
        return "needs cuda-python (pip install 'rrwkv-trt[trt]')"
    if not any(p.is_file() for p in trt_loader.plugin_search_path()):
        return f"needs {trt_loader.PLUGIN_LIBRARY}: run `make plugins` on this GPU host"
    if importlib.util.find_spec("torch") is None:
        return "needs torch to export the tiny models ([export] extra)"
    return None


@pytest.fixture(scope="module", params=["rwkv4", "rrwkv"])
def gpu_engine(request, tmp_path_factory):
    reason = _gpu_skip_reason()
    if reason:
        pytest.skip(reason)
    from safetensors.torch import save_file

    from rrwkv_trt.export.checkpoint import load_checkpoint
    from rrwkv_trt.export.models.random_init import random_blinkdl_state_dict
    from rrwkv_trt.export.onnx_export import export_checkpoint
    from rrwkv_trt.core.families.rrwkv import RrwkvConfig
    from rrwkv_trt.core.families.rwkv4 import Rwkv4Config

    sizes = dict(vocab_size=97, n_embd=32, n_layer=2, dim_att=24, dim_ffn=96)
    config = RrwkvConfig(**sizes, medium_interval=4) if request.param == "rrwkv" else Rwkv4Config(**sizes)
    src = tmp_path_factory.mktemp(f"{request.param}_ckpt")
    save_file(random_blinkdl_state_dict(config, seed=3), str(src / "model.safetensors"))
    out = export_checkpoint(load_checkpoint(src, family=request.param), tmp_path_factory.mktemp("gpu") / "onnx")
    engine = out.parent / "model.plan"
    sidecar = engine_mod.build_engine(out, engine, max_batch=2, max_seq=16)
    assert sidecar.engine_inspected, "the engine inspector check did not run on a GPU host"
    return out, engine


@pytest.mark.gpu
@pytest.mark.trt
@pytest.mark.parametrize("cuda_graph", [False, True], ids=["stream", "cuda-graph"])
def test_gpu_greedy_and_logits_match_ort(gpu_engine, cuda_graph):
    from helpers import assert_close, tolerance

    model, engine = gpu_engine
    atol, rtol = tolerance("wkv4", "kernel_fp32", "y")
    prompt = np.random.default_rng(0).integers(0, 97, (2, 40))  # 40 > max_seq: chunked prefill
    with OrtSession(model, use_custom_ops=False) as ort, TrtSession(engine, cuda_graph=cuda_graph) as sess:
        logits, state = sess.run(prompt)
        ref_logits, ref_state = ort.run(prompt)
        assert_close("prefill logits", ref_logits, logits, atol, rtol)
        s_atol, s_rtol = tolerance("wkv4", "kernel_fp32", "state")
        for name, value in ref_state.items():
            assert_close(name, value, state[name], s_atol, s_rtol)
        sess.start_decode(ref_state)
        ort.start_decode(ref_state)
        for t in range(24):
            ids = prompt[:, t]
            assert_close(f"step {t} logits", ort.step(ids), sess.step(ids), atol, rtol)
        assert Generator(sess).greedy_ids(prompt[0, :7].tolist(), 32) == Generator(ort).greedy_ids(
            prompt[0, :7].tolist(), 32)


def test_tensorrt_run_failures_are_user_errors(fakes, fake_engine, monkeypatch):
    """A failed enqueue (TensorRT's own error, a GPU fault) ends in one error line, not a traceback."""

    monkeypatch.setattr(FakeContext, "execute_async_v3", lambda self, stream: False)
    _, engine = fake_engine
    with TrtSession(engine) as sess:
        with pytest.raises(UserError, match=r"TensorRT failed to run .*fake\.plan \(prefill"):
            sess.run(np.array([[1, 2]]))
        sess.start_decode(sess.initial_state(1))
        with pytest.raises(UserError, match=r"TensorRT failed to run .*fake\.plan \(decode step, batch 1\)"):
            sess.step(3)
