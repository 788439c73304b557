import subprocess
import sys

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import numpy_helper

from rrwkv_trt.cli.main import EXIT_BROKEN_PIPE, main
from rrwkv_trt.runtime.backends.ort import OrtSession
from rrwkv_trt.runtime.state_file import load_state_file


def _run(*args):
    return CliRunner().invoke(main, ["run", *map(str, args)])


def _assert_user_error(result, match):
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert match in lines[0]
    assert "Traceback" not in result.output


def test_run_streams_text(make_fake_model):
    out_dir = make_fake_model(next_token={ord("x"): 0xC3, 0xC3: 0xA9, 0xA9: ord("y")})
    result = _run(out_dir, "--prompt", "x", "--max-new-tokens", 4, "--threads", 1)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "xéyz\n"  # the prompt, then the continuation


def test_run_sampling_options(make_fake_model):
    out_dir = make_fake_model()
    args = (out_dir, "--prompt", "a", "--max-new-tokens", 6, "--temperature", 30.0, "--top-p", 0.9, "--seed", 1)
    first, second = _run(*args), _run(*args)
    assert first.exit_code == 0 and first.stdout == second.stdout


def test_tokenizer_larger_than_vocab_exits_2(make_fake_model):
    """Before, the mismatch surfaced only when a prompt held an id >= 128, as an out-of-range token id."""
    out_dir = make_fake_model(vocab_size=128)  # the byte tokenizer emits ids up to 255
    _assert_user_error(_run(out_dir, "--prompt", "a", "--max-new-tokens", 2),
                       "tokenizer.json has 256 tokens with ids up to 255, but the model's vocab_size is 128")


def test_tokenizer_smaller_than_vocab_runs(make_fake_model):
    out_dir = make_fake_model(vocab_size=300)  # the byte tokenizer under a larger vocabulary: fine
    result = _run(out_dir, "--prompt", "a", "--max-new-tokens", 2)
    assert result.exit_code == 0 and result.stdout == "abc\n", result.stderr


@pytest.mark.parametrize("seed", [-1, 2**64])
def test_seed_out_of_range_exits_2(make_fake_model, seed):
    """Before, --seed -1 reached numpy and ended in a ValueError traceback."""
    result = _run(make_fake_model(), "--prompt", "a", "--seed", seed)
    assert result.exit_code == 2 and "Invalid value for '--seed'" in result.stderr
    assert isinstance(result.exception, SystemExit)


def test_tiny_temperature_exits_2(make_fake_model):
    """Before, 1e-320 divided to inf and the sampler emitted token V-1 forever."""
    _assert_user_error(_run(make_fake_model(), "--prompt", "a", "--temperature", 1e-320),
                       "temperature must be 0 (greedy) or a finite number >= 1e-06, got 1e-320")


def test_nan_logits_stop_generation(make_fake_model, tmp_path):
    """Before, greedy decoding emitted token 0 forever after NaN logits, with no warning; now nothing is emitted for
    them, the state is not saved and the exit code is 2."""
    out_dir = make_fake_model()
    _poison_logits(out_dir / "model.onnx", row=ord("b"))  # the logits after token "b"
    state_out = tmp_path / "s.state"
    result = _run(out_dir, "--prompt", "a", "--max-new-tokens", 5, "--state-out", state_out)
    _assert_user_error(result, "the model produced NaN or Inf logits for new token 2 (batch rows [0])")
    assert result.stdout == "ab"  # the prompt and the one token predicted from finite logits
    assert not state_out.exists()


def _poison_logits(model_path, row):
    model = onnx.load(model_path)
    (table,) = [t for t in model.graph.initializer if t.name == "table"]
    values = numpy_helper.to_array(table).copy()
    values[row, :3] = [np.nan, np.inf, -np.inf]
    table.CopyFrom(numpy_helper.from_array(values, "table"))
    onnx.save(model, model_path)


def test_closed_pipe_stops_quietly(make_fake_model):
    """`rrwkv-trt run ... | head -c 1`: no traceback and no "Exception ignored" line; 141 as for `yes | head`."""
    out_dir = make_fake_model()
    cmd = [sys.executable, "-m", "rrwkv_trt.cli.main", "run", str(out_dir), "--prompt", "a" * 100_000,
           "--max-new-tokens", "1000"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout.read(1) == b"a"
        proc.stdout.close()  # the reader goes away while the command still writes the prompt
        stderr = proc.stderr.read().decode()
    assert proc.returncode == EXIT_BROKEN_PIPE and stderr == ""


def test_wrong_state_shape_exits_2(make_fake_model, tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    out_dir = make_fake_model()
    path = tmp_path / "bad.state"
    assert _run(out_dir, "--prompt", "a", "--max-new-tokens", 0, "--state-out", path).exit_code == 0
    with safe_open(path, "np") as f:
        metadata = f.metadata()
    save_file(load_file(path) | {"state_in.0.att_aa": np.zeros((1, 3), np.float32)}, path, metadata=metadata)
    _assert_user_error(_run(out_dir, "--prompt", "a", "--state-in", path),
                       "state input state_in.0.att_aa has shape [1, 3], spec expects [1, 4]")


def test_state_out_then_in(fake_model, tmp_path):
    path = tmp_path / "s.state"
    first = _run(fake_model, "--prompt", "ab", "--max-new-tokens", 3, "--state-out", path)
    assert first.exit_code == 0 and first.stdout == "abcde\n"
    with OrtSession(fake_model) as session:
        saved = load_state_file(path, session.info)
    assert (saved.state["state_in.1.att_xx"] == 5).all()  # 2 prompt + 3 generated tokens
    assert saved.state.get("state_in.pos", np.array([5])).tolist() == [5] and saved.positions == (5,)
    second = _run(fake_model, "--prompt", "z", "--max-new-tokens", 1, "--state-in", path, "--state-out", path)
    assert second.exit_code == 0 and second.stdout == "z{\n"
    with OrtSession(fake_model) as session:
        saved = load_state_file(path, session.info)
    assert (saved.state["state_in.0.ffn_xx"] == 7).all() and saved.positions == (7,)


@pytest.mark.parametrize("case", ["no_dir", "no_model", "no_tokenizer"])
def test_missing_files_exit_2(case, tmp_path, make_fake_model):
    if case == "no_dir":
        _assert_user_error(_run(tmp_path / "nope", "--prompt", "a"), "not found")
    elif case == "no_model":
        _assert_user_error(_run(tmp_path, "--prompt", "a"), "has no model.onnx")
    else:
        out_dir = make_fake_model(tokenizer=False)
        _assert_user_error(_run(out_dir, "--prompt", "a"), "has no tokenizer.json; re-export with --tokenizer FILE")


def test_empty_prompt_exits_2(make_fake_model):
    _assert_user_error(_run(make_fake_model(), "--prompt", ""), "the prompt is empty")


def test_help_lists_run():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0 and "run" in result.stdout


def test_no_custom_ops_flag(make_fake_model, monkeypatch):
    """--no-custom-ops reaches OrtSession(use_custom_ops=False); the default lets it find librrwkv_ort_ops.so."""
    from rrwkv_trt.runtime.backends import ort as ort_backend

    seen = []
    init = ort_backend.OrtSession.__init__

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("use_custom_ops", True))
        init(self, *args, **kwargs)

    monkeypatch.setattr(ort_backend.OrtSession, "__init__", spy)
    out_dir = make_fake_model()
    plain = _run(out_dir, "--prompt", "a", "--max-new-tokens", 3, "--no-custom-ops")
    default = _run(out_dir, "--prompt", "a", "--max-new-tokens", 3)
    assert plain.exit_code == default.exit_code == 0, (plain.stderr, default.stderr)
    assert plain.stdout == default.stdout and seen == [False, True]
