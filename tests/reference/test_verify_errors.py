"""python -m rrwkv_trt.reference.verify turns a user error into one `error:` line and exit code 2, as the CLI does."""
import pytest

from rrwkv_trt.reference.verify import main


@pytest.mark.parametrize("make_model", [lambda tmp: tmp / "missing", lambda tmp: tmp])
def test_user_errors_exit_2_with_one_line(tmp_path, capsys, make_model):
    (tmp_path / "model.safetensors").write_bytes(b"\x10\0\0\0\0\0\0\0{not json at all}")
    assert main([str(tmp_path / "model.safetensors"), str(make_model(tmp_path)), "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
