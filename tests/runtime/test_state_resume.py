"""State files across backends and precisions on the shipped model (models/rrwkv-pystdlib, an RRWKV with a medium
every 16 tokens, so a resumed position that is off by one changes the continuation).

A state saved after a prompt and BEFORE generated tokens by any backend resumes on any other, and the greedy
continuation equals that of a run that never stopped. "Equals" means the same token ids within a precision: fp32
(PyTorch, ONNX Runtime on the function bodies and on the fused kernels, TensorRT where present) and fp16 (the ONNX
Runtime backends and TensorRT, which compute in fp16; PyTorch computes in fp32 at every precision). Across precisions
of one checkpoint, which share the fingerprint, a state loads and runs; the tokens may differ as the precisions'
own runs may.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("torch", reason="exporting the shipped model and the PyTorch backend need torch ([export] extra)")

from rrwkv_trt.cli.main import main  # noqa: E402
from rrwkv_trt.core.errors import UserError  # noqa: E402
from rrwkv_trt.core.paths import SHIPPED_MODEL  # noqa: E402
from rrwkv_trt.export.checkpoint import load_checkpoint  # noqa: E402
from rrwkv_trt.export.fingerprint import model_fingerprint  # noqa: E402
from rrwkv_trt.export.onnx_export import export_checkpoint  # noqa: E402
from rrwkv_trt.export.quantize import quantize_export  # noqa: E402
from rrwkv_trt.reference.torch_session import TorchSession  # noqa: E402
from rrwkv_trt.runtime.backends.ort import OrtSession, find_custom_ops_library  # noqa: E402
from rrwkv_trt.runtime.decode import Generator  # noqa: E402
from rrwkv_trt.runtime.resume import Resume  # noqa: E402
from rrwkv_trt.runtime.state_file import load_state_file  # noqa: E402
from rrwkv_trt.runtime.tokenizer import Tokenizer  # noqa: E402

pytestmark = pytest.mark.slow

PROMPT = "class Parser:\n    def __init__(self"
BEFORE, AFTER = 8, 24  # tokens generated before the state is saved, and after it is resumed
FP32_BACKENDS = ["pytorch", "ort-function", "ort-kernel", "tensorrt"]
FP16_BACKENDS = ["ort-function", "ort-kernel", "tensorrt"]


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    """The shipped checkpoint's exports by precision: fp32, fp16, and int8 quantized from the fp32 one."""
    root = tmp_path_factory.mktemp("shipped")
    out = {p: export_checkpoint(load_checkpoint(SHIPPED_MODEL), root / p, precision=p) for p in ("fp32", "fp16")}
    out["int8"] = quantize_export(out["fp32"], root / "int8", "int8")
    return out


@pytest.fixture(scope="module")
def prompt_ids() -> list[int]:
    return Tokenizer.from_dir(SHIPPED_MODEL).encode(PROMPT)


@pytest.fixture(scope="module")
def engines(tmp_path_factory) -> dict[str, Path]:
    """TensorRT engines built on first use, by precision."""
    return {}


def _session(backend: str, precision: str, exports: dict[str, Path], engines: dict[str, Path]):
    if backend == "pytorch":
        return TorchSession(SHIPPED_MODEL, precision)
    if backend == "ort-function":
        return OrtSession(exports[precision], use_custom_ops=False)
    if backend == "ort-kernel":
        library = find_custom_ops_library()
        if library is None:
            pytest.skip("build/librrwkv_ort_ops.so not built (`make plugins`)")
        return OrtSession(exports[precision], custom_ops_library=library)
    return _trt_session(precision, exports, engines)


def _trt_session(precision: str, exports: dict[str, Path], engines: dict[str, Path]):
    from test_trt_backend import _gpu_skip_reason

    reason = _gpu_skip_reason()
    if reason:
        pytest.skip(reason)
    from rrwkv_trt.runtime.backends.trt import TrtSession
    from rrwkv_trt.runtime.engine import build_engine

    if precision not in engines:
        engines[precision] = exports[precision].parent / f"{precision}.plan"
        build_engine(exports[precision], engines[precision], max_batch=1, max_seq=64)
    return TrtSession(engines[precision])


def _never_stopped(session, prompt_ids: list[int]) -> list[int]:
    return list(Generator(session).generate_ids(prompt_ids, BEFORE + 1 + AFTER))


def _save_after(session, prompt_ids: list[int], path: Path) -> list[int]:
    """Decode BEFORE tokens after the prompt and save the state after them (what `run --state-out` does)."""
    resume = Resume(session, None, path)
    generator = Generator(resume.session)
    ids = list(generator.generate_ids(prompt_ids, BEFORE))
    resume.save(generator.final_state())
    return ids


def _resume(session, path: Path, first: int, path_out: Path | None = None) -> list[int]:
    """Resume from `path`, feed `first` (the token the uninterrupted run generated next) and decode AFTER tokens."""
    resume = Resume(session, path, path_out)
    generator = Generator(resume.session)
    ids = list(generator.generate_ids([first], AFTER, resume.state))
    if path_out is not None:
        resume.save(generator.final_state())
    return ids


def _check_resume(saver, resumer, prompt_ids: list[int], tmp_path: Path) -> None:
    expected = _never_stopped(resumer, prompt_ids)
    path, again = tmp_path / "s.state", tmp_path / "again.state"
    assert _save_after(saver, prompt_ids, path) == expected[:BEFORE]
    saved = load_state_file(path, resumer.info)
    assert saved.positions == (len(prompt_ids) + BEFORE,)
    assert _resume(resumer, path, expected[BEFORE], again) == expected[BEFORE + 1:]
    assert load_state_file(again, saver.info).positions == (len(prompt_ids) + BEFORE + 1 + AFTER,)


@pytest.mark.parametrize("resumer", FP32_BACKENDS)
@pytest.mark.parametrize("saver", FP32_BACKENDS)
def test_fp32_state_resumes_on_every_backend(saver, resumer, exports, engines, prompt_ids, tmp_path):
    with _session(saver, "fp32", exports, engines) as s, _session(resumer, "fp32", exports, engines) as r:
        _check_resume(s, r, prompt_ids, tmp_path)


@pytest.mark.parametrize("resumer", FP16_BACKENDS)
@pytest.mark.parametrize("saver", FP16_BACKENDS)
def test_fp16_state_resumes_on_every_fp16_backend(saver, resumer, exports, engines, prompt_ids, tmp_path):
    with _session(saver, "fp16", exports, engines) as s, _session(resumer, "fp16", exports, engines) as r:
        _check_resume(s, r, prompt_ids, tmp_path)


def test_fp32_backends_agree_without_stopping(exports, engines, prompt_ids):
    """The reference the pairs are held to is one continuation, whichever backend ran it."""
    runs = {}
    for backend in ("pytorch", "ort-function"):
        with _session(backend, "fp32", exports, engines) as session:
            runs[backend] = _never_stopped(session, prompt_ids)
    assert runs["pytorch"] == runs["ort-function"]


def test_precisions_of_one_checkpoint_share_the_fingerprint(exports):
    ckpt = load_checkpoint(SHIPPED_MODEL)
    expected = model_fingerprint(ckpt.config, ckpt.state_dict)
    for precision, folder in exports.items():
        with OrtSession(folder, use_custom_ops=False) as session:
            assert (session.info.precision, session.info.fingerprint) == (precision, expected)
    with TorchSession(SHIPPED_MODEL, "fp16") as session:
        assert session.info.fingerprint == expected


@pytest.mark.parametrize("saver, resumer", [("fp32", "fp16"), ("fp16", "fp32"), ("fp32", "int8"), ("int8", "fp16")])
def test_state_moves_between_precisions(saver, resumer, exports, prompt_ids, tmp_path):
    """Loads (float16 slots narrowed or widened) and runs; the tokens are the resuming precision's business."""
    path = tmp_path / "s.state"
    with OrtSession(exports[saver], use_custom_ops=False) as s, OrtSession(exports[resumer], use_custom_ops=False) as r:
        _save_after(s, prompt_ids, path)
        saved = load_state_file(path, r.info)
        assert saved.precision == saver and saved.positions == (len(prompt_ids) + BEFORE,)
        for t in r.spec.tensors():
            assert saved.state[t.input_name].dtype == np.dtype(t.slot.dtype)
        ids = _resume(r, path, prompt_ids[-1])
    assert len(ids) == AFTER


def test_another_checkpoint_of_equal_shapes_is_refused(exports, prompt_ids, tmp_path):
    """A random checkpoint of the shipped model's config: equal shapes, another fingerprint, refused both ways, and
    by the CLI with one error line."""
    from safetensors.torch import save_file

    from rrwkv_trt.export.models.random_init import random_blinkdl_state_dict

    ckpt = load_checkpoint(SHIPPED_MODEL)
    other = tmp_path / "other"
    other.mkdir()
    save_file(random_blinkdl_state_dict(ckpt.config, seed=3), str(other / "model.safetensors"))
    (other / "config.json").write_text((SHIPPED_MODEL / "config.json").read_text())
    foreign, ours = tmp_path / "foreign.state", tmp_path / "ours.state"
    with TorchSession(other) as stranger, OrtSession(exports["fp32"], use_custom_ops=False) as shipped:
        assert stranger.spec == shipped.spec and stranger.info.fingerprint != shipped.info.fingerprint
        _save_after(stranger, prompt_ids, foreign)
        _save_after(shipped, prompt_ids, ours)
        with pytest.raises(UserError, match="was saved from another model"):
            Resume(shipped, foreign, None)
        with pytest.raises(UserError, match="was saved from another model"):
            Resume(stranger, ours, None)
    result = CliRunner().invoke(main, ["run", str(exports["fp32"]), "--prompt", "x", "--state-in", str(foreign)])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"error: state file {foreign} was saved from another model")
