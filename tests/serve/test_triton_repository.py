"""`rrwkv-trt triton-repo`: every config.pbtxt parses as Triton's ModelConfig, the full-Triton configs declare exactly
the model's state spec (names, dims, dtypes, initial values), and the onnxruntime model computes what the export
does."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

text_format = pytest.importorskip("google.protobuf.text_format")
model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2",
                                       reason="parsing configs needs tritonclient (Makefile venv step)")

from rrwkv_trt.cli.main import main  # noqa: E402
from rrwkv_trt.core.metadata import from_metadata  # noqa: E402
from rrwkv_trt.core.names import INPUT_IDS, LOGITS  # noqa: E402
from rrwkv_trt.core.paths import REPO_ROOT  # noqa: E402
from rrwkv_trt.serve.client import client_example  # noqa: E402
from rrwkv_trt.serve.protocol import SAMPLING_INPUTS, STATE_DTYPES  # noqa: E402
from triton_settings import IDLE_TIMEOUT_S, SLOTS  # noqa: E402

Config = model_config_pb2.ModelConfig
DTYPE = {v: k for k, v in STATE_DTYPES.items()}  # TYPE_FP32 -> float32


def parse(path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), Config())


def type_name(value: int) -> str:
    return model_config_pb2.DataType.Name(value)


@pytest.fixture(scope="module")
def info(shipped_export):
    onnx = pytest.importorskip("onnx")
    proto = onnx.load(str(shipped_export / "model.onnx"), load_external_data=False)
    return from_metadata({p.key: p.value for p in proto.metadata_props})


def test_python_model_config(triton_repo, info):
    config = parse(triton_repo / "rrwkv" / "config.pbtxt")
    assert config.backend == "python" and config.max_batch_size == SLOTS
    batching = config.sequence_batching
    assert batching.max_sequence_idle_microseconds == IDLE_TIMEOUT_S * 1e6
    assert batching.WhichOneof("strategy_choice") == "oldest"
    assert batching.oldest.max_candidate_sequences == 2 * SLOTS  # a start beyond the slots reaches the model
    kinds = {c.name: model_config_pb2.ModelSequenceBatching.Control.Kind.Name(c.control[0].kind)
             for c in batching.control_input}
    assert kinds == {"START": "CONTROL_SEQUENCE_START", "END": "CONTROL_SEQUENCE_END",
                     "READY": "CONTROL_SEQUENCE_READY", "CORRID": "CONTROL_SEQUENCE_CORRID"}
    inputs = {i.name: i for i in config.input}
    assert inputs[INPUT_IDS].allow_ragged_batch and list(inputs[INPUT_IDS].dims) == [-1]
    assert {n: type_name(inputs[n].data_type) for n in SAMPLING_INPUTS} == SAMPLING_INPUTS
    assert all(inputs[n].optional for n in SAMPLING_INPUTS)
    outputs = {o.name: list(o.dims) for o in config.output}
    assert outputs == {"token": [1], "logits": [info.config.vocab_size]}
    assert (triton_repo / "rrwkv" / "1" / "export" / "model.onnx").is_file()


@pytest.mark.parametrize("name", ["rrwkv_onnx", "rrwkv_trt"])
def test_full_triton_states_match_the_state_spec(triton_repo, info, name):
    model_dir = triton_repo / name
    config = parse(model_dir / "config.pbtxt")
    spec = info.state
    states = list(config.sequence_batching.state)
    assert [(s.input_name, s.output_name) for s in states] == list(zip(spec.input_names(), spec.output_names()))
    for state, tensor in zip(states, spec.tensors()):
        dims = list(spec.concrete_shape(tensor.slot, 1))[1:]  # one sequence's; Triton adds the batch dim
        assert list(state.dims) == dims and DTYPE[type_name(state.data_type)] == tensor.slot.dtype
        (initial,) = state.initial_state  # a repeated field; one initial value per state
        assert list(initial.dims) == dims and initial.data_type == state.data_type
        if tensor.slot.init == 0:
            assert initial.WhichOneof("state_data") == "zero_data" and initial.zero_data
        else:  # att_pp = -1e30, from a file of one sequence's values
            data = (model_dir / "initial_state" / initial.data_file).read_bytes()
            want = np.full(dims, tensor.slot.init, dtype=np.dtype(tensor.slot.dtype).newbyteorder("<"))
            assert data == want.tobytes()
    assert any(t.slot.init != 0 for t in spec.tensors())  # the file case is covered
    assert [(i.name, list(i.dims)) for i in config.input] == [(INPUT_IDS, [-1])]
    assert [(o.name, list(o.dims)) for o in config.output] == [(LOGITS, [-1, info.config.vocab_size])]
    assert not config.sequence_batching.control_input  # Triton resets implicit state at start itself


def test_the_onnxruntime_model_is_the_export_with_logits_from_frozen(triton_repo, shipped_export):
    from rrwkv_trt.runtime.backends.ort import OrtSession

    ids = np.array([[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]], dtype=np.int64)
    with OrtSession(shipped_export) as export, OrtSession(triton_repo / "rrwkv_onnx" / "1") as frozen:
        want, want_state = export.run(ids)
        got, got_state = frozen.run(ids)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for name, value in want_state.items():
        np.testing.assert_allclose(got_state[name], value, rtol=1e-5, atol=1e-5)


def test_the_repository_names_no_absolute_path(triton_repo):
    for config in triton_repo.glob("*/config.pbtxt"):
        assert str(triton_repo) not in config.read_text() and '"/' not in config.read_text()


def test_cli_refuses_a_used_folder_and_writes_nothing_on_error(shipped_export, tmp_path):
    used = tmp_path / "used"
    used.mkdir()
    (used / "x").write_text("")
    result = CliRunner().invoke(main, ["triton-repo", str(shipped_export), "-o", str(used)])
    assert result.exit_code == 2 and "not an empty folder" in result.output
    result = CliRunner().invoke(main, ["triton-repo", str(shipped_export), "-o", str(tmp_path / "r"),
                                       "--name", "bad name"])
    assert result.exit_code == 2 and "model name" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["used"]


def test_the_readme_shows_the_client_triton_serve_prints():
    readme = (REPO_ROOT / "README.md").read_text()
    assert client_example("127.0.0.1:8001", "rrwkv", "build/demo") in readme
