"""A family defined only in tests/ runs through export -> run -> --state-out/--state-in -> compare."""
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from rrwkv_trt.cli.main import main
from rrwkv_trt.core.paths import SHIPPED_MODEL
from rrwkv_trt.reference.writer import write_reference
from rrwkv_trt.runtime.backends.ort import OrtSession
from rrwkv_trt.runtime.state_file import load_state_file

from diag_rnn import DiagRnnConfig  # noqa: F401  registers the family

VOCAB, WIDTH, LAYERS = 256, 12, 2


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("diag-ckpt")
    g = torch.Generator().manual_seed(0)
    rand = lambda *shape: torch.randn(*shape, generator=g) * 0.3  # noqa: E731
    tensors = {"emb.weight": rand(VOCAB, WIDTH), "norm.weight": torch.ones(WIDTH), "norm.bias": torch.zeros(WIDTH),
               "head.weight": rand(VOCAB, WIDTH), **{f"layers.{i}.proj.weight": rand(WIDTH, WIDTH) * 0.3
                                                     for i in range(LAYERS)}}
    save_file(tensors, str(ckpt / "model.safetensors"))
    shutil.copyfile(SHIPPED_MODEL / "tokenizer.json", ckpt / "tokenizer.json")
    out = tmp_path_factory.mktemp("diag-export") / "model"
    result = CliRunner().invoke(main, ["export", str(ckpt), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return ckpt, out


def _run(*args):
    result = CliRunner().invoke(main, ["run", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_export_records_the_family(exported):
    _, out = exported
    with OrtSession(out) as session:
        assert session.info.config.family == "diag-rnn"
        assert session.spec.input_names() == ["state_in.0.h", "state_in.1.h"]
        assert session.spec.dims == {"width": WIDTH}


def test_state_out_then_in_continues_the_sequence(exported, tmp_path):
    _, out = exported
    whole, first, second = (tmp_path / name for name in ("whole.state", "first.state", "second.state"))
    _run(out, "--prompt", "abcd", "--max-new-tokens", 0, "--state-out", whole)
    _run(out, "--prompt", "ab", "--max-new-tokens", 0, "--state-out", first)
    _run(out, "--prompt", "cd", "--max-new-tokens", 0, "--state-in", first, "--state-out", second)
    with OrtSession(out) as session:
        a, b = load_state_file(whole, session.info), load_state_file(second, session.info)
    assert a.positions == b.positions == (4,)  # counted by the runtime: this family keeps no position
    a, b = a.state, b.state
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-5)
    continued = _run(out, "--prompt", "e", "--max-new-tokens", 4, "--state-in", whole)
    assert continued[1:] == _run(out, "--prompt", "abcde", "--max-new-tokens", 4)[5:]


def test_compare_against_pytorch(exported):
    ckpt, out = exported
    write_reference(ckpt, out, steps=8, prompt_len=6)
    result = CliRunner().invoke(main, ["compare", str(out), "--checkpoint", str(ckpt), "--steps", "50",
                                       "--window", "25"])
    assert result.exit_code == 0, result.output
    assert "compare: PASSED" in result.output and "100.0%" in result.output
