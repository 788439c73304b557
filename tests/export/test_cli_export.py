"""`rrwkv-trt export`: one-line errors with exit code 2, and no half-written output folder."""
import pytest
import torch
from click.testing import CliRunner

from rrwkv_trt.export import onnx_export
from rrwkv_trt.export.models.random_init import random_blinkdl_state_dict
from rrwkv_trt.cli.main import main
from rrwkv_trt.core.families.rwkv4 import Rwkv4Config

CFG = Rwkv4Config(vocab_size=50, n_embd=16, n_layer=1, dim_att=16, dim_ffn=64)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth"
    torch.save(random_blinkdl_state_dict(CFG, seed=0), path)
    return path


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_user_error(result, text):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and text in lines[0], result.output
    assert "Traceback" not in result.output


def test_export_then_run_without_tokenizer(checkpoint, tmp_path):
    out = tmp_path / "out"
    result = invoke("export", checkpoint, "-o", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.onnx"]
    assert_user_error(invoke("run", out, "--prompt", "hi"), "tokenizer.json")


def test_export_errors(checkpoint, tmp_path):
    garbled = tmp_path / "garbled.pth"
    garbled.write_bytes(b"\x00garbage")
    assert_user_error(invoke("export", tmp_path / "nope.pth", "-o", tmp_path / "a"), "does not exist")
    assert_user_error(invoke("export", garbled, "-o", tmp_path / "b"), "cannot read checkpoint")
    assert_user_error(invoke("export", checkpoint, "--family", "gpt2", "-o", tmp_path / "c"), "unknown model family")
    assert_user_error(invoke("export", checkpoint, "--tokenizer", tmp_path / "none.json", "-o", tmp_path / "d"),
                      "tokenizer file")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "keep.txt").write_text("x")
    assert_user_error(invoke("export", checkpoint, "-o", tmp_path / "e"), "not empty")
    assert not any((tmp_path / name).exists() for name in "abcd")


def test_failed_write_leaves_nothing(checkpoint, tmp_path, monkeypatch):
    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(onnx_export.onnx, "save", broken_save)
    result = invoke("export", checkpoint, "-o", tmp_path / "out")
    assert_user_error(result, "cannot write")
    assert list(tmp_path.iterdir()) == []
