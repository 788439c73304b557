"""`rrwkv-trt compare`, the Polygraphy data loader and the README's `polygraphy run` command, on a tiny exported
RRWKV model with its PyTorch reference (docs/conventions.md §3.13, §4.5). Tolerances: runtime/tolerances.json only."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from helpers import REPO, op_spec
from test_trt_backend import fakes, make_sidecar  # noqa: F401 - `fakes` is a fixture

from rrwkv_trt.core import reference_format as fmt
from rrwkv_trt.runtime import reference_files
from rrwkv_trt.core.names import INPUT_IDS, LOGITS, LOGITS_FROM
from rrwkv_trt.runtime import compare as cmp
from rrwkv_trt.runtime import drift as drift_mod
from rrwkv_trt.runtime import onnx_graph
from rrwkv_trt.runtime.backends import ort as ort_backend
from rrwkv_trt.cli.main import main
from rrwkv_trt.core.families.rrwkv import RrwkvConfig
from rrwkv_trt.core.sidecar import sidecar_path, write_sidecar
from rrwkv_trt.runtime.state import allocate_state
from rrwkv_trt.runtime.tolerances import POLICY_FILE, load_policy

torch = pytest.importorskip("torch", reason="exporting the tiny model and its reference needs torch ([export] extra)")

CONFIG = RrwkvConfig(vocab_size=97, n_embd=32, n_layer=2, dim_att=24, dim_ffn=96, medium_interval=8)
PROMPT_LEN, STEPS = 21, 8  # the prompt closes two medium windows, the decode steps a third
OP_FOLDERS = ("wkv4", "wkv4_medium")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(checkpoint folder, model folder with model.onnx and reference/)."""
    from safetensors.torch import save_file

    from rrwkv_trt.export.checkpoint import load_checkpoint
    from rrwkv_trt.export.models.random_init import random_blinkdl_state_dict
    from rrwkv_trt.export.onnx_export import export_checkpoint
    from rrwkv_trt.reference.writer import write_reference

    ckpt = tmp_path_factory.mktemp("ckpt")
    save_file(random_blinkdl_state_dict(CONFIG, seed=11), str(ckpt / "model.safetensors"))
    out = export_checkpoint(load_checkpoint(ckpt, family="rrwkv"), tmp_path_factory.mktemp("cmp") / "onnx")
    write_reference(ckpt, out, steps=STEPS, prompt_len=PROMPT_LEN)
    return ckpt, out


def _compare(*args):
    return CliRunner().invoke(main, ["compare", *map(str, args)])


def _readme_polygraphy_command() -> str:
    """The `polygraphy run` command of the README (backslash continuations joined)."""
    text = (REPO / "README.md").read_text()
    match = re.search(r"^polygraphy run build/demo/.*?(?<!\\)$", text, flags=re.M | re.S)
    assert match, "README.md has no `polygraphy run build/demo/...` command"
    return " ".join(match.group(0).replace("\\\n", " ").split())


def test_reference_layout_and_feeds(exported):
    _, out = exported
    ref = fmt.load_reference(out)
    assert len(ref.prompt_ids) == PROMPT_LEN and len(ref.decode_ids) == STEPS and ref.iterations == STEPS + 1
    outputs = reference_files.read_outputs(ref)
    # The generated loader binds the reference folder; polygraphy calls it with no argument.
    namespace = {"__file__": str(ref.folder / fmt.LOADER_FILE)}
    exec(compile((ref.folder / fmt.LOADER_FILE).read_text(), fmt.LOADER_FILE, "exec"), namespace)
    feeds = namespace["load_data"]()
    from polygraphy.json import load_json

    saved = load_json(str(ref.folder / fmt.INPUTS_FILE))
    assert len(feeds) == len(saved) == ref.iterations
    initial = allocate_state(ref.spec, 1)
    for k, (feed, want) in enumerate(zip(feeds, saved)):
        assert list(feed) == list(want) == [INPUT_IDS, LOGITS_FROM, *ref.spec.input_names()]
        assert feed[LOGITS_FROM].tolist() == [0]  # every position's logits, as outputs.json holds them
        for name in feed:
            np.testing.assert_array_equal(feed[name], want[name], err_msg=f"iteration {k} {name}")
        for t in ref.spec.tensors():  # state chains from PyTorch's previous outputs, by spec name
            expected = initial[t.input_name] if k == 0 else outputs[k - 1][t.output_name]
            np.testing.assert_array_equal(feed[t.input_name], expected)
    assert feeds[1][INPUT_IDS].tolist() == [[int(outputs[0][LOGITS][0, -1].argmax())]]  # greedy


def test_readme_polygraphy_command_runs(exported):
    """The README's command, with build/demo replaced by the tiny model's folder, exits 0 (stock ONNX Runtime)."""
    _, out = exported
    command = _readme_polygraphy_command()
    assert command == cmp.polygraphy_command("build/demo", load_policy("fp32").call("ort-function")), \
        "README command out of date with runtime/tolerances.json"
    args = [a.replace("build/demo", str(out)) for a in shlex.split(command)]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"vs. {fmt.REFERENCE_RUNNER} | Passed: {STEPS + 1}/{STEPS + 1} iterations" in result.stdout


def test_compare_passes(exported):
    _, out = exported
    result = _compare(out, "--steps", 120, "--window", 50)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    kernel = ort_backend.find_custom_ops_library() is not None
    for backend in ("ort-function", "ort-kernel") if kernel else ("ort-function",):
        rows = [ln for ln in lines if ln.split()[:1] == [backend]]  # logits, then each slot's worst layer
        assert len(rows) == 1 + len(fmt.load_reference(out).spec.slots), rows
        assert all(ln.endswith(" ok") for ln in rows)
    assert any(ln.startswith("tensorrt") and "skipped: no --engine given" in ln for ln in lines)
    for span in ("1-50", "51-100", "101-120"):
        assert any(ln.startswith(span + " ") for ln in lines), span
    assert "reference: ort-function" in result.stdout  # no --checkpoint: stock ONNX Runtime is the reference
    assert "compare: PASSED" in result.stdout


def test_mismatch_exits_1_with_table(exported, tmp_path):
    """Logits of one reference iteration moved 10x beyond the policy: exit 1, that output marked FAIL."""
    from polygraphy.comparator import RunResults

    _, out = exported
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    tol = load_policy("fp32").call("ort-function").logits
    results = RunResults.load(str(bad / "reference" / fmt.OUTPUTS_FILE))
    logits = np.array(results[0][1][3][LOGITS])
    logits[0, 0, 5] += 10 * (tol.atol + tol.rtol * abs(logits[0, 0, 5]))
    results[0][1][3][LOGITS] = logits
    results.save(str(bad / "reference" / fmt.OUTPUTS_FILE))
    result = _compare(bad, "--steps", 0)
    assert result.exit_code == 1, result.output
    fails = [ln.split() for ln in result.stdout.splitlines() if ln.endswith("FAIL")]
    assert fails and all(f[1] == LOGITS and f[2] == "3" for f in fails), result.stdout
    assert "compare: FAILED (ort-function per call" in result.stdout


def test_missing_or_stale_reference_exits_2(exported, tmp_path, make_fake_model):
    result = _compare(make_fake_model(), "--steps", 0)
    assert result.exit_code == 2
    assert "no PyTorch reference" in result.stderr and "python -m rrwkv_trt.reference.writer CHECKPOINT" in \
        result.stderr and "make compare" in result.stderr
    _, out = exported
    stale = tmp_path / "stale"
    shutil.copytree(out, stale)
    with open(stale / "model.onnx", "ab") as f:  # any change of model.onnx makes the reference stale
        f.write(b"\0")
    result = _compare(stale, "--steps", 0)
    assert result.exit_code == 2 and "was written for another model.onnx" in result.stderr


def test_load_data_without_folder_explains():
    with pytest.raises(ValueError, match=r"data_loader\.py:load_data"):
        reference_files.load_data()


class _Offset:
    """A session whose step logits are another's plus `offset` from decode step `start` on."""

    def __init__(self, inner, offset, start):
        self.inner, self.offset, self.start, self.n = inner, offset, start, 0

    def run(self, ids, state=None, last_only=False):
        return self.inner.run(ids, state, last_only)

    def start_decode(self, state):
        self.inner.start_decode(state)

    def step(self, ids):
        self.n += 1
        row = np.array(self.inner.step(ids), dtype=np.float64)
        if self.n >= self.start:
            row[..., int(np.argmin(row))] += self.offset  # the lowest logit becomes the argmax
        return row


def test_drift_windows(exported):
    _, out = exported
    ref = fmt.load_reference(out)
    tol = load_policy("fp32").drift_for("ort-kernel")
    with ort_backend.OrtSession(out, use_custom_ops=False) as a, ort_backend.OrtSession(out, use_custom_ops=False) as b:
        report = drift_mod.drift({"ort-function": a, "ort-kernel": _Offset(b, 1e3, start=25)}, "ort-function",
                           ref.prompt_ids, steps=30, window=10)
    assert [(w.first, w.last) for w in report.windows] == [(1, 10), (11, 20), (21, 30)]
    assert report.windows[0].max_abs["ort-kernel"] == 0.0 and report.windows[1].agree["ort-kernel"] == 10
    assert report.windows[2].max_abs["ort-kernel"] == pytest.approx(1e3) and report.windows[2].agree["ort-kernel"] == 4
    assert report.agreement("ort-kernel") == pytest.approx(24 / 30)
    assert drift_mod.drift_passed(report, {"ort-kernel": tol}) == {"ort-kernel": False}


def test_tensorrt_backend_through_fakes(exported, fakes, tmp_path, monkeypatch):  # noqa: F811
    """--engine on the CPU: the fake TensorRT runs the function-body model, so it matches like ort-function."""
    _, out = exported
    engine = tmp_path / "fake.plan"
    # The fake engine runs the graph `rrwkv-trt build` hands TensorRT: logits_from frozen to 0.
    engine.write_bytes(onnx_graph.freeze_logits_from(onnx.load(str(out / "model.onnx"))).SerializeToString())
    write_sidecar(sidecar_path(engine), make_sidecar(out, engine))
    monkeypatch.setattr(ort_backend, "find_custom_ops_library", lambda: None)
    result = _compare(out, "--engine", engine, "--steps", 20, "--window", 10)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any(ln.startswith("ort-kernel") and "skipped: librrwkv_ort_ops.so not found" in ln for ln in lines)
    assert any(ln.startswith("tensorrt ") and " logits " in ln and ln.endswith(" ok") for ln in lines)
    assert "tensorrt max abs" in result.stdout and "compare: PASSED" in result.stdout


@pytest.mark.gpu
@pytest.mark.trt
def test_tensorrt_engine_on_gpu(exported, tmp_path):
    from test_trt_backend import _gpu_skip_reason

    reason = _gpu_skip_reason()
    if reason:
        pytest.skip(reason)
    from rrwkv_trt.runtime.engine import build_engine

    _, out = exported
    engine = tmp_path / "model.plan"
    build_engine(out, engine, max_batch=2, max_seq=16)
    result = _compare(out, "--engine", engine, "--steps", 1000)
    assert result.exit_code == 0, result.output


def test_policy_is_not_tighter_than_the_op_specs():
    """Every per-call entry is at least as loose as the plugins/<op>/spec.yaml entry it cites, for every op."""
    import json

    policy = json.loads(POLICY_FILE.read_text())
    for precision in policy["precisions"]:
        loaded = load_policy(precision)
        for backend, entry in loaded.per_call.items():
            for op in OP_FOLDERS:
                spec = op_spec(op)["tolerances"][entry.op_spec_entry]
                for ours, theirs in ((entry.logits, spec["y"]), (entry.state, spec["state"])):
                    assert ours.atol >= float(theirs["atol"]) and ours.rtol >= float(theirs["rtol"]), \
                        (precision, backend, op)
            assert 0 < loaded.drift_for(backend).min_greedy_agreement <= 1
