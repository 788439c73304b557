"""A random 4-layer fla HGRN2 checkpoint through `rrwkv-trt export` (fp32, fp16, int8, w16): the graph contract (one
rrwkv::GatedOuterScan per layer), ONNX Runtime on the function bodies against PyTorch, greedy ids identical in
PyTorch step mode, PyTorch sequence mode and ONNX Runtime, and `run --state-out/--state-in` / `compare`.

ONNX Runtime runs here as a plain InferenceSession (stock ORT, function bodies). The tests through OrtSession (the
CLI's `run` and `compare`, the kernel library) need the runtime's GatedOuterScan attribute contract
(runtime/onnx_graph.py ATTRIBUTES) and skip, saying so, until it has one.
"""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner
from helpers import assert_close
from hgrn2_fixtures import fla_config, random_fla_state_dict, write_fla_folder

from rrwkv_trt.cli.main import main
from rrwkv_trt.core.metadata import from_metadata
from rrwkv_trt.core.paths import SHIPPED_MODEL
from rrwkv_trt.export.checkpoint import load_checkpoint
from rrwkv_trt.export.families import build_model
from rrwkv_trt.runtime.backends.ort import find_custom_ops_library
from rrwkv_trt.runtime.onnx_graph import ATTRIBUTES
from rrwkv_trt.runtime.state_file import load_state_file
from rrwkv_trt.runtime.tolerances import load_policy

VOCAB, LAYERS, HEADS, K = 256, 4, 4, 16  # the shipped tokenizer's 256 tokens; D = 64, expand_ratio 16
FP32 = load_policy("fp32")
needs_runtime = pytest.mark.skipif(
    "GatedOuterScan" not in ATTRIBUTES,
    reason="runtime/onnx_graph.py ATTRIBUTES has no GatedOuterScan contract yet, so OrtSession refuses the export")


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    cfg = fla_config(num_hidden_layers=LAYERS, vocab_size=VOCAB)
    folder = tmp_path_factory.mktemp("hgrn2") / "ckpt"
    raw = random_fla_state_dict(cfg, seed=21)
    return write_fla_folder(folder, cfg, raw, tokenizer=SHIPPED_MODEL / "tokenizer.json")


@pytest.fixture(scope="module")
def torch_model(checkpoint):
    ckpt = load_checkpoint(checkpoint)
    return build_model(ckpt.config, ckpt.state_dict)


def export_with_cli(checkpoint, tmp_path_factory, precision: str):
    out = tmp_path_factory.mktemp(f"hgrn2_{precision}") / "model"
    invoke("export", checkpoint, "-o", out, "--precision", precision)
    return out


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    return export_with_cli(checkpoint, tmp_path_factory, "fp32")


class StockOrt:
    """An export on stock ONNX Runtime (its function bodies, no custom-op library), state by input name."""

    def __init__(self, out):
        self.sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
        self.info = from_metadata(self.sess.get_modelmeta().custom_metadata_map)
        self.spec = self.info.state
        self.outputs = [o.name for o in self.sess.get_outputs()]

    def initial_state(self, batch: int) -> dict[str, np.ndarray]:
        return {t.input_name: np.zeros(self.spec.concrete_shape(t.slot, batch), t.slot.dtype)
                for t in self.spec.tensors()}

    def run(self, ids, state, logits_from: int = 0):
        """ids [B, T] -> logits [B, T - logits_from, V] and the new state (state_in.* names)."""
        feed = {"input_ids": np.asarray(ids, np.int64), "logits_from": np.array([logits_from]), **state}
        out = dict(zip(self.outputs, self.sess.run(None, feed)))
        return out["logits"], {t.input_name: out[t.output_name] for t in self.spec.tensors()}


def torch_state(state: dict) -> dict[str, torch.Tensor]:
    return {k.removeprefix("state_in."): torch.from_numpy(np.array(v)) for k, v in state.items()}


def test_graph_contract(exported, checkpoint):
    model = onnx.load(exported / "model.onnx")
    onnx.checker.check_model(model, full_check=True)
    custom = [n for n in model.graph.node if n.domain == "rrwkv"]
    assert len(custom) == LAYERS and {n.op_type for n in custom} == {"GatedOuterScan"}
    for node in custom:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["scale"] == pytest.approx(K ** -0.5, rel=1e-7)  # fla's default scale
        assert attrs["plugin_namespace"] == b"rrwkv" and attrs["plugin_version"] == b"1"
    assert {(f.domain, f.name) for f in model.functions} == {("rrwkv", "GatedOuterScan")}
    assert {(o.domain, o.version) for o in model.opset_import} == {("", 18), ("rrwkv", 1)}
    info = from_metadata({p.key: p.value for p in model.metadata_props})
    assert info.config == load_checkpoint(checkpoint).config and info.precision == "fp32"
    assert any("lower_bound" in t for t in info.transforms)
    inputs = {i.name: i.type.tensor_type for i in model.graph.input}
    assert list(inputs) == ["input_ids", *info.state.input_names(), "logits_from"]
    assert [o.name for o in model.graph.output] == ["logits", *info.state.output_names()]
    state = inputs["state_in.3.recurrent_state"]
    assert state.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_param or d.dim_value for d in state.shape.dim] == ["batch", HEADS, K, 16]
    assert (exported / "tokenizer.json").is_file()


@torch.no_grad()
def test_function_bodies_match_pytorch_over_100_tokens(exported, torch_model):
    """A prefill of 100 tokens from a non-zero state, then decode steps on ORT's own state."""
    sess, tol = StockOrt(exported), FP32.call("ort-function")
    rng = np.random.default_rng(0)
    _, start = torch_model(torch.from_numpy(rng.integers(0, VOCAB, (2, 7))), torch_model.init_state(2))
    state = {f"state_in.{k}": v.numpy() for k, v in start.items()}
    ids = rng.integers(0, VOCAB, (2, 100))
    logits, new = sess.run(ids, state)
    ref, ref_state = torch_model(torch.from_numpy(ids), torch_state(state))
    assert_close("prefill logits", ref, logits, tol.logits.atol, tol.logits.rtol)
    for key, value in ref_state.items():
        assert_close(f"state {key}", value, new[f"state_in.{key}"], tol.state.atol, tol.state.rtol)
    token = ref[:, -1].argmax(-1)
    for t in range(20):
        step, new = sess.run(token[:, None].numpy(), new)
        ref_step, ref_state = torch_model.step(token, ref_state)
        assert_close(f"step {t} logits", ref_step, step[:, 0], tol.logits.atol, tol.logits.rtol)
        token = ref_step.argmax(-1)


def test_logits_from_selects_positions(exported):
    sess = StockOrt(exported)
    ids = np.random.default_rng(3).integers(0, VOCAB, (2, 11))
    full, state = sess.run(ids, sess.initial_state(2))
    tail, tail_state = sess.run(ids, sess.initial_state(2), logits_from=4)
    assert tail.shape == (2, 7, VOCAB)
    assert_close("logits_from=4", full[:, 4:], tail, atol=1e-6, rtol=1e-6)
    for name in state:
        np.testing.assert_array_equal(state[name], tail_state[name], err_msg=name)


@torch.no_grad()
def test_greedy_ids_identical_in_torch_step_torch_sequence_and_ort(exported, torch_model):
    prompt, n = [3, 14, 15, 92, 65, 35], 64
    logits, state = torch_model(torch.tensor([prompt]), torch_model.init_state(1))
    step_ids = [int(logits[0, -1].argmax())]
    for _ in range(n - 1):
        out, state = torch_model.step(torch.tensor([step_ids[-1]]), state)
        step_ids.append(int(out[0].argmax()))
    seq_ids = []  # the sequence form on the whole text so far, from the initial state, every time
    for _ in range(n):
        out, _ = torch_model(torch.tensor([prompt + seq_ids]), torch_model.init_state(1))
        seq_ids.append(int(out[0, -1].argmax()))
    sess = StockOrt(exported)
    logits, state = sess.run([prompt], sess.initial_state(1), logits_from=len(prompt) - 1)
    ort_ids = [int(logits[0, -1].argmax())]
    for _ in range(n - 1):
        logits, state = sess.run([[ort_ids[-1]]], state)
        ort_ids.append(int(logits[0, -1].argmax()))
    assert step_ids == seq_ids == ort_ids
    assert len(set(step_ids)) > 3  # not a degenerate loop on one token


def test_fp16_export_keeps_the_declared_fp32_tensors(checkpoint, torch_model, tmp_path_factory):
    out = export_with_cli(checkpoint, tmp_path_factory, "fp16")
    model = onnx.load(out / "model.onnx")
    onnx.checker.check_model(model, full_check=True)
    info = from_metadata({p.key: p.value for p in model.metadata_props})
    assert info.precision == "fp16" and info.state == info.config.state_spec("float16")
    kept = [t for t in model.graph.initializer if t.name.endswith((".gain", ".lower_bound"))]
    assert len(kept) == 4 * LAYERS + 1  # attn_norm, g_norm, mlp_norm, lower_bound per layer; the final norm
    assert all(t.data_type == onnx.TensorProto.FLOAT for t in kept)
    matrices = [t for t in model.graph.initializer if len(t.dims) == 2 and not t.name.endswith(".lower_bound")]
    assert matrices and all(t.data_type == onnx.TensorProto.FLOAT16 for t in matrices)
    io = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
    assert io["logits"] == onnx.TensorProto.FLOAT
    assert all(io[n] == onnx.TensorProto.FLOAT for n in info.state.input_names() + info.state.output_names())
    lb = {n.input[2] for n in model.graph.node if n.op_type == "GatedOuterScan"}
    assert lb == {f"model.layers.{i}.attn.lower_bound" for i in range(LAYERS)}
    # fp16 activations on stock ORT against the fp32 PyTorch model, within the fp16 policy
    tol = load_policy("fp16").call("ort-function")
    sess = StockOrt(out)
    ids = np.random.default_rng(5).integers(0, VOCAB, (2, 40))
    logits, new = sess.run(ids, sess.initial_state(2))
    with torch.no_grad():
        ref, ref_state = torch_model(torch.from_numpy(ids), torch_model.init_state(2))
    assert_close("fp16 prefill logits", ref, logits, tol.logits.atol, tol.logits.rtol)
    for key, value in ref_state.items():
        assert_close(f"fp16 state {key}", value, new[f"state_in.{key}"], tol.state.atol, tol.state.rtol)
    last, _ = sess.run(ids, sess.initial_state(2), logits_from=39)  # the slice before the final norm's gain
    np.testing.assert_array_equal(last, logits[:, -1:])


@pytest.mark.parametrize("precision,op_type", [("int8", "MatMulW8"), ("int4", "MatMulW4"), ("w16", "MatMulWF16")])
def test_weight_only_export_runs(checkpoint, exported, torch_model, tmp_path_factory, precision, op_type):
    out = export_with_cli(checkpoint, tmp_path_factory, precision)
    model, fp32 = onnx.load(out / "model.onnx"), onnx.load(exported / "model.onnx")
    weights = {i.name for i in fp32.graph.initializer}
    matmuls = [n for n in fp32.graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    assert len(matmuls) == 7 * LAYERS + 1  # q, f, i, o, gate, up, down per layer; the head
    assert sum(n.op_type == op_type for n in model.graph.node) == len(matmuls)
    assert sum(n.op_type == "GatedOuterScan" for n in model.graph.node) == LAYERS
    info = from_metadata({p.key: p.value for p in model.metadata_props})
    assert info.precision == precision and info.state == info.config.state_spec("float32")
    tol = load_policy(precision).call("ort-function")
    sess = StockOrt(out)
    ids = np.random.default_rng(6).integers(0, VOCAB, (1, 30))
    logits, _ = sess.run(ids, sess.initial_state(1))
    with torch.no_grad():
        ref, _ = torch_model(torch.from_numpy(ids), torch_model.init_state(1))
    assert_close(f"{precision} logits", ref, logits, tol.logits.atol, tol.logits.rtol)
    last, _ = sess.run(ids, sess.initial_state(1), logits_from=29)
    assert_close(f"{precision} last-only logits", logits[:, -1:], last, atol=1e-6, rtol=1e-6)


@needs_runtime
def test_state_out_then_in_continues_the_sequence(exported, tmp_path):
    whole, first, second = (tmp_path / name for name in ("whole.state", "first.state", "second.state"))
    run = lambda *args: invoke("run", exported, "--no-custom-ops", *args)  # noqa: E731
    run("--prompt", "abcd", "--max-new-tokens", 0, "--state-out", whole)
    run("--prompt", "ab", "--max-new-tokens", 0, "--state-out", first)
    run("--prompt", "cd", "--max-new-tokens", 0, "--state-in", first, "--state-out", second)
    sess = StockOrt(exported)
    a, b = load_state_file(whole, sess.info), load_state_file(second, sess.info)
    assert a.positions == b.positions == (4,)  # counted by the runtime: HGRN2 keeps no position
    a, b = a.state, b.state
    assert sorted(a) == sess.spec.input_names() and sorted(b) == sess.spec.input_names()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=name)
    continued = run("--prompt", "e", "--max-new-tokens", 8, "--state-in", whole)
    assert continued[1:] == run("--prompt", "abcde", "--max-new-tokens", 8)[5:]


@needs_runtime
def test_ort_session_greedy_ids_match_pytorch(exported, torch_model):
    from rrwkv_trt.runtime.backends.ort import OrtSession
    from rrwkv_trt.runtime.decode import Generator

    prompt = [3, 14, 15, 92, 65, 35]
    with torch.no_grad():
        logits, state = torch_model(torch.tensor([prompt]), torch_model.init_state(1))
        ids = [int(logits[0, -1].argmax())]
        for _ in range(31):
            out, state = torch_model.step(torch.tensor([ids[-1]]), state)
            ids.append(int(out[0].argmax()))
    with OrtSession(exported, use_custom_ops=False) as sess:
        assert sess.spec.dims == {"num_heads": HEADS, "head_k_dim": K, "head_v_dim": 16}
        assert Generator(sess).greedy_ids(prompt, 32) == ids


@needs_runtime
def test_compare_against_pytorch(exported, checkpoint, tmp_path):
    import shutil

    from rrwkv_trt.reference.writer import write_reference

    work = tmp_path / "model"
    shutil.copytree(exported, work)
    write_reference(checkpoint, work, steps=8, prompt_len=20)
    result = CliRunner().invoke(main, ["compare", str(work), "--checkpoint", str(checkpoint), "--steps", "60",
                                       "--window", "30"])
    assert result.exit_code == 0, result.output
    assert "compare: PASSED" in result.output


def kernel_library_with_op():
    """librrwkv_ort_ops.so when it is built and registers GatedOuterScan (ORT would run the function body for an
    op the library lacks)."""
    library = find_custom_ops_library()
    return library if library is not None and b"GatedOuterScan" in library.read_bytes() else None


@needs_runtime
def test_kernel_library_matches_function_bodies(exported):
    library = kernel_library_with_op()
    if library is None:
        pytest.skip("build/librrwkv_ort_ops.so is not built or has no GatedOuterScan kernel (`make plugins`)")
    from rrwkv_trt.runtime.backends.ort import OrtSession

    tol = FP32.call("ort-kernel")
    ids = np.random.default_rng(8).integers(0, VOCAB, (2, 100))
    with OrtSession(exported, custom_ops_library=library) as kernel, \
            OrtSession(exported, use_custom_ops=False) as body:
        got, got_state = kernel.run(ids)
        ref, ref_state = body.run(ids)
    assert_close("kernel logits", ref, got, tol.logits.atol, tol.logits.rtol)
    for name in ref_state:
        assert_close(name, ref_state[name], got_state[name], tol.state.atol, tol.state.rtol)
