"""Hostile engine folders: a sidecar, a plugin library or an engine/sidecar pair that is malformed, edited or half
written ends in a UserError naming the file and the field, never in another exception or in native code loaded
from a place the user did not choose (runtime/backends/trt.py, runtime/trt_loader.py, core/sidecar.py,
runtime/engine.py)."""
from __future__ import annotations

import _ctypes
import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

import onnx
import pytest
from fake_model import build_fake_model
from fake_trt import FakeCudart, FakeTensorRT
from hypothesis import given
from hypothesis import strategies as st

from rrwkv_trt.core import files as files_mod
from rrwkv_trt.core import sidecar as sidecar_mod
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.families.rrwkv import RrwkvConfig
from rrwkv_trt.core.metadata import ModelInfo, file_sha256, from_metadata
from rrwkv_trt.core.paths import BUILD_DIR
from rrwkv_trt.core.sidecar import EngineSidecar, read_sidecar, sidecar_path, write_sidecar
from rrwkv_trt.runtime import engine as engine_mod
from rrwkv_trt.runtime import trt_loader
from rrwkv_trt.runtime.backends import trt as trt_backend
from rrwkv_trt.runtime.backends.trt import TrtSession

ELF_LIBRARY = Path(_ctypes.__file__)  # a real ELF shared library with DT_NEEDED entries
CONFIG = RrwkvConfig(vocab_size=5, n_embd=4, n_layer=2, dim_att=4, dim_ffn=8)
VALID = EngineSidecar(
    info=ModelInfo(CONFIG, CONFIG.state_spec(), "fp16"), tensorrt_product="TensorRT", tensorrt_version="10.14.1",
    compute_capability="8.6", gpu_name="NVIDIA RTX A6000", plugin_library="/opt/x/librrwkv_trt_plugins_dyn.so",
    plugin_sha256="ab" * 32, max_batch=8, max_seq=1024, profiles={"decode": 0, "prefill": 1},
    plugin_layers=("node_wkv4", "node_wkv4_1"), engine_inspected=True, engine_bytes=123456,
    source_model="/models/x/model.onnx", source_sha256="0" * 64)
VALID_DICT = VALID.to_dict()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from([0, -1, 2**31, 2**63, 10**30]) | st.floats()
    | st.text(max_size=8) | st.sampled_from(["", "\0", "8.6", "ab" * 32, "../x.so"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


def _leaves(data, prefix=()):
    """Every path (tuple of keys and indices) into a JSON value, containers included."""
    yield prefix
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        yield from _leaves(value, (*prefix, key))


PATHS = [p for p in _leaves(VALID_DICT) if p]


def _mutate(data, path, action, value):
    """A deep copy of `data` with the element at `path` replaced, deleted, or given an extra sibling field."""
    data = json.loads(json.dumps(data))
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if action == "replace":
        parent[last] = value
    elif action == "delete":
        del parent[last]
    elif isinstance(parent, dict):
        parent["extra_field"] = value
    else:
        parent.append(value)
    return data


def _read(engine: Path, text: bytes):
    sidecar_path(engine).write_bytes(text)
    try:
        return read_sidecar(engine)
    except UserError as err:
        assert str(sidecar_path(engine)) in str(err), err  # the message names the file
        return None


def _check_accepted(sidecar: EngineSidecar | None) -> None:
    """An accepted sidecar is one `rrwkv-trt build` could have written: it round-trips through JSON."""
    if sidecar is not None:
        assert EngineSidecar.from_dict(json.loads(json.dumps(sidecar.to_dict()))) == sidecar


@pytest.mark.fuzz
@given(st.sampled_from(PATHS), st.sampled_from(["replace", "delete", "add"]), json_values)
def test_sidecar_with_a_field_mutated(path, action, value):
    with tempfile.TemporaryDirectory() as tmp:
        engine = Path(tmp) / "e.plan"
        _check_accepted(_read(engine, json.dumps(_mutate(VALID_DICT, path, action, value)).encode()))


@pytest.mark.fuzz
@given(st.data())
def test_sidecar_truncated_or_with_bytes_flipped(data):
    text = bytearray(sidecar_mod.sidecar_text(VALID).encode())
    cut = data.draw(st.integers(0, len(text)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(text) - 1), st.integers(1, 255)), max_size=4))
    for pos, bits in flips:
        text[pos] ^= bits
    with tempfile.TemporaryDirectory() as tmp:
        engine = Path(tmp) / "e.plan"
        _check_accepted(_read(engine, bytes(text[:cut] if data.draw(st.booleans()) else text)))


@pytest.mark.parametrize("path, value, match", [
    (("max_batch",), "8", r"field max_batch must be an int in \[1, 2147483647\], got '8'"),
    (("max_batch",), True, r"field max_batch must be an int in \[1, 2147483647\], got True"),
    (("max_seq",), 0, r"field max_seq must be an int in \[1, 2147483647\], got 0"),
    (("engine_bytes",), -5, r"field engine_bytes must be an int in \[1, \d+\], got -5"),
    (("engine_inspected",), "yes", "field engine_inspected must be true or false, got 'yes'"),
    (("profiles",), {"decode": "0"}, r"field profiles must be an object of ints in \[0, 2147483647\]"),
    (("profiles",), [0, 1], r"field profiles must be an object of ints"),
    (("plugin_layers",), "node", "field plugin_layers must be a list of non-empty strings, got 'node'"),
    (("plugin_layers",), [1], "field plugin_layers must be a list of non-empty strings, got \\[1\\]"),
    (("plugin_library", "sha256"), "AB" * 32, "field plugin_library.sha256 must be 64 hex digits"),
    (("plugin_library", "sha256"), "ab", "field plugin_library.sha256 must be 64 hex digits, got 'ab'"),
    (("plugin_library", "path"), 7, "field plugin_library.path must be a non-empty file path, got 7"),
    (("plugin_library", "path"), "a\0b", "field plugin_library.path must be a non-empty file path"),
    (("plugin_library",), "x.so", "field plugin_library must be a JSON object, got str"),
    (("source_model", "sha256"), None, "field source_model.sha256 must be 64 hex digits, got None"),
    (("tensorrt", "product"), "ONNX", r"field tensorrt.product must be one of \['TensorRT', 'TensorRT-RTX'\]"),
    (("tensorrt", "version"), 10, "field tensorrt.version must be a non-empty string, got 10"),
    (("gpu", "compute_capability"), 8.6, "field gpu.compute_capability must be major.minor or null, got 8.6"),
    (("gpu", "name"), ["x"], r"field gpu.name must be a string or null, got \['x'\]"),
    (("precision",), "int8", r"field precision must be one of \['fp32', 'fp16'\], got 'int8'"),
    (("transforms",), [3], "field transforms must be a list of strings"),
    (("config", "n_layer"), 3, "field state_spec has 2 layers, field config 3"),
    (("gpu", "name"), {"add": 1}, "unknown field gpu.extra_field"),
], ids=lambda v: None)
def test_sidecar_field_errors_name_the_field(tmp_path, path, value, match):
    """Before, each of these was accepted (str(), int(), bool() coerced them) or ended in a traceback later."""
    action, value = ("add", value["add"]) if isinstance(value, dict) and "add" in value else ("replace", value)
    text = json.dumps(_mutate(VALID_DICT, path, action, value))
    sidecar_path(tmp_path / "e.plan").write_text(text)
    with pytest.raises(UserError, match=rf"engine sidecar .*e\.plan\.json: {match}.*; rebuild the engine with "
                                        r"`rrwkv-trt build`"):
        read_sidecar(tmp_path / "e.plan")


@pytest.mark.parametrize("raw, match", [
    (b"\xff\xfe{}", r"is not UTF-8 text \(byte 0\)"),
    (b"[" * 100_000 + b"]" * 100_000, "too deeply"),
    (b"[1]", "must hold a JSON object, got list"),
])
def test_sidecar_bytes_that_are_no_json_object(tmp_path, raw, match):
    """Invalid UTF-8 used to escape as a UnicodeDecodeError traceback."""
    sidecar_path(tmp_path / "e.plan").write_bytes(raw)
    with pytest.raises(UserError, match=match):
        read_sidecar(tmp_path / "e.plan")


def test_sidecar_too_large_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(sidecar_mod, "MAX_SIDECAR_BYTES", 100)
    sidecar_path(tmp_path / "e.plan").write_text(" " * 101)
    with pytest.raises(UserError, match="has more than 100 bytes, which no sidecar has"):
        read_sidecar(tmp_path / "e.plan")


# ---- ELF parsing of plugin libraries (trt_loader.elf_needed) ----

def _elf_result(data: bytes):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lib.so"
        path.write_bytes(data)
        try:
            return trt_loader.elf_needed(path)
        except UserError as err:
            assert str(path) in str(err) and "rebuild it with `make plugins`" in str(err), err
            return UserError


ELF_BYTES = ELF_LIBRARY.read_bytes()
ELF_NEEDED = trt_loader.elf_needed(ELF_LIBRARY)


def test_elf_needed_of_real_libraries():
    assert ELF_NEEDED and "libc.so.6" in ELF_NEEDED
    assert _elf_result(ELF_BYTES) == ELF_NEEDED


@pytest.mark.parametrize("cut", [63, 64, 0x200, len(ELF_BYTES) // 2, len(ELF_BYTES) - 1])
def test_truncated_elf_is_a_user_error(cut):
    """A truncated ELF used to raise struct.error from elf_needed."""
    result = _elf_result(ELF_BYTES[:cut])
    assert result is UserError or (cut < 64 and result is None)


@pytest.mark.fuzz
@given(st.data())
def test_elf_truncated_or_with_bytes_flipped(data):
    """Truncations and byte flips, often in the headers the parser reads: the DT_NEEDED list, None for a file that
    is no 64-bit ELF shared library, or a UserError."""
    blob = bytearray(ELF_BYTES)
    header_end = max(0x40, min(len(blob), 0x200))
    for _ in range(data.draw(st.integers(0, 4))):
        pos = data.draw(st.integers(0, header_end - 1) | st.integers(0, len(blob) - 1))
        blob[pos] ^= data.draw(st.integers(1, 255))
    if data.draw(st.booleans()):
        blob = blob[:data.draw(st.integers(0, len(blob)))]
    result = _elf_result(bytes(blob))
    assert result is None or result is UserError or (isinstance(result, list)
                                                     and all(isinstance(n, str) for n in result))


# ---- plugin libraries named by a sidecar (TrtSession) ----

@pytest.fixture(scope="module")
def engine_template(tmp_path_factory):
    """(model folder, engine bytes) of the fake model, which the fake TensorRT runs as an engine."""
    model = build_fake_model(tmp_path_factory.mktemp("hostile") / "model")
    return model, (model / "model.onnx").read_bytes()


def _fake_engine(folder: Path, template) -> Path:
    model, plan = template
    engine = folder / "e.plan"
    engine.write_bytes(plan)
    library = folder / trt_loader.PLUGIN_LIBRARY
    shutil.copyfile(ELF_LIBRARY, library)
    shutil.copyfile(model / "tokenizer.json", engine_mod.engine_tokenizer_path(engine))  # as `build` writes it
    proto = onnx.load(str(model / "model.onnx"))
    info = from_metadata({p.key: p.value for p in proto.metadata_props})
    write_sidecar(sidecar_path(engine), EngineSidecar(
        info=info, tensorrt_product="TensorRT", tensorrt_version=FakeTensorRT.__version__, compute_capability="8.6",
        gpu_name=None, plugin_library=str(library), plugin_sha256=file_sha256(library), max_batch=2, max_seq=4,
        profiles=dict(engine_mod.PROFILES), plugin_layers=(), engine_inspected=False, engine_bytes=len(plan),
        source_model=str(model / "model.onnx"), source_sha256="0" * 64))
    return engine


def _open_with_fakes(engine: Path, plugin_library=None) -> tuple[FakeTensorRT, Path | type]:
    cudart = FakeCudart()
    trt = FakeTensorRT(cudart, 2, 4)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trt_backend, "_import_modules", lambda: (trt, cudart))
        mp.setattr(trt_backend, "gpu_compute_capability", lambda: ("8.6", "Fake GPU"))
        mp.setattr(trt_loader, "_loaded_library", {})
        mp.setattr(trt_loader, "_loggers", {})
        try:
            with TrtSession(engine, plugin_library=plugin_library) as sess:
                return trt, sess.plugin_library
        except UserError:
            return trt, UserError


@pytest.mark.fuzz
@given(path=st.sampled_from(["abs", "dotdot", "link-out", "link-in", "plain", "missing", "dir"]),
       same_hash=st.booleans(), tail=st.sampled_from(["", "/", "/.", "/../" + trt_loader.PLUGIN_LIBRARY]))
def test_sidecar_plugin_library_is_loaded_only_from_trusted_places(engine_template, path, same_hash, tail):
    """Whatever the sidecar names, a library is loaded only when it sits (symlinks resolved) in the engine's folder
    or build/ with the recorded sha256, or is build/'s own when the named file is gone; else a UserError, before
    anything is loaded."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "engines").mkdir()
        engine = _fake_engine(root / "engines", engine_template)
        evil = root / "libevil.so"
        shutil.copyfile(ELF_LIBRARY, evil)
        if not same_hash:
            with open(evil, "ab") as f:
                f.write(b"x")
            with open(engine.parent / trt_loader.PLUGIN_LIBRARY, "ab") as f:
                f.write(b"x")
        (engine.parent / "link-out.so").symlink_to(evil)
        (engine.parent / "link-in.so").symlink_to(engine.parent / trt_loader.PLUGIN_LIBRARY)
        (engine.parent / "dir").mkdir()
        name = {"abs": str(evil), "dotdot": "../libevil.so", "link-out": "link-out.so", "link-in": "link-in.so",
                "plain": trt_loader.PLUGIN_LIBRARY, "missing": "nothing.so", "dir": "dir"}[path] + tail
        sidecar = read_sidecar(engine)
        write_sidecar(sidecar_path(engine), dataclasses.replace(sidecar, plugin_library=name))
        trt, loaded = _open_with_fakes(engine)
        recorded = sidecar.plugin_sha256
        if loaded is UserError:
            assert trt.loaded == []
            return
        assert trt.loaded == [str(loaded)]
        default = (BUILD_DIR / trt_loader.PLUGIN_LIBRARY).resolve()
        assert loaded == default or (loaded.parent == engine.parent.resolve() and file_sha256(loaded) == recorded)


def test_cli_run_refuses_a_sidecar_library_from_elsewhere(engine_template, tmp_path, monkeypatch):
    """`rrwkv-trt run` on an engine whose sidecar was edited to name another library: one error line, exit code 2,
    nothing loaded; --plugin-library is the user's choice and loads."""
    from click.testing import CliRunner

    from rrwkv_trt.cli.main import main

    engine = _fake_engine(tmp_path, engine_template)
    evil = tmp_path.parent / f"{tmp_path.name}-libevil.so"
    shutil.copyfile(ELF_LIBRARY, evil)
    write_sidecar(sidecar_path(engine), dataclasses.replace(read_sidecar(engine), plugin_library=str(evil)))
    cudart = FakeCudart()
    trt = FakeTensorRT(cudart, 2, 4)
    monkeypatch.setattr(trt_backend, "_import_modules", lambda: (trt, cudart))
    monkeypatch.setattr(trt_backend, "gpu_compute_capability", lambda: ("8.6", "Fake GPU"))
    monkeypatch.setattr(trt_loader, "_loaded_library", {})
    result = CliRunner().invoke(main, ["run", str(engine), "--prompt", "a", "--max-new-tokens", "2"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert result.stderr.startswith(f"error: engine sidecar {sidecar_path(engine)} names plugin library {evil}")
    assert trt.loaded == [] and result.stdout == ""
    result = CliRunner().invoke(main, ["run", str(engine), "--prompt", "a", "--max-new-tokens", "2",
                                       "--plugin-library", str(evil)])
    assert result.exit_code == 0 and trt.loaded == [str(evil)], result.output


# ---- engine and sidecar written together (runtime/engine.py write_engine) ----

class Crash(BaseException):
    """A process killed between two renames: nothing after it runs, no except clause catches it."""


def _write_pair(folder: Path, plan: bytes, engine_bytes: int) -> Path:
    engine = folder / "m.plan"
    engine_mod.write_engine(engine, plan, dataclasses.replace(VALID, engine_bytes=engine_bytes))
    return engine


def test_engine_tokenizer_is_written_beside_the_engine_and_read_only_from_there(tmp_path):
    tokenizer = tmp_path / "model-tokenizer.json"
    tokenizer.write_text('{"stand-in": true}')
    engine = tmp_path / "out" / "m.plan"
    engine_mod.write_engine(engine, b"plan", dataclasses.replace(VALID, engine_bytes=4), tokenizer)
    assert sorted(p.name for p in engine.parent.iterdir()) == ["m.plan", "m.plan.json", "m.plan.tokenizer.json"]
    assert engine_mod.engine_tokenizer(engine).read_bytes() == tokenizer.read_bytes()
    engine_mod.engine_tokenizer_path(engine).unlink()
    with pytest.raises(UserError, match="has no tokenizer beside it"):
        engine_mod.engine_tokenizer(engine)  # the sidecar's source_model is never followed


@pytest.mark.parametrize("crash_at", [1, 2, 3], ids=["before-engine", "before-sidecar", "after-both"])
def test_crash_while_replacing_never_pairs_mismatched_files(tmp_path, monkeypatch, crash_at):
    """Before, the engine was renamed over the old one while the old sidecar stayed: a crash between the renames
    left a new engine beside a sidecar describing the old one. Now the old sidecar goes first."""
    engine = _write_pair(tmp_path, b"old engine", 10)
    calls, real_replace = [], os.replace

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == crash_at:
            raise Crash
        real_replace(src, dst)

    monkeypatch.setattr(engine_mod.os, "replace", replace)
    with pytest.raises(Crash):
        _write_pair(tmp_path, b"the new, longer engine", 22)
        raise Crash  # crash_at 3: the process dies right after writing both
    monkeypatch.undo()
    try:
        sidecar = read_sidecar(engine)
    except UserError as err:
        assert "has no sidecar" in str(err) and "rebuild the engine" in str(err)
        return
    assert sidecar.engine_bytes == engine.stat().st_size  # whatever survived belongs together


def test_failed_staging_keeps_the_old_pair(tmp_path, monkeypatch):
    """A full disk while writing the new files leaves the old engine and sidecar as they were, and no temp file."""
    engine = _write_pair(tmp_path, b"old engine", 10)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real = files_mod.stage_file

    def stage(path, data):
        if path.suffix == ".json":
            raise OSError(28, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(engine_mod, "stage_file", stage)
    with pytest.raises(UserError, match=r"cannot write engine .*m\.plan: \[Errno 28\] No space left on device"):
        _write_pair(tmp_path, b"new engine!", 11)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert read_sidecar(engine).engine_bytes == 10


def test_write_sidecar_is_atomic(tmp_path, monkeypatch):
    path = sidecar_path(tmp_path / "m.plan")
    write_sidecar(path, VALID)
    before = path.read_bytes()
    monkeypatch.setattr(sidecar_mod.os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError(5, "I/O error")))
    with pytest.raises(OSError):
        write_sidecar(path, dataclasses.replace(VALID, max_batch=2))
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]
