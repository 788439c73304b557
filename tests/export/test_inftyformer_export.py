"""A random 2-layer ∞-former (sticky memories) through `rrwkv-trt export`: one rrwkv::LTMUpdate and two
rrwkv::ContinuousGaussianAttention nodes per layer; ONNX Runtime (function bodies and, where built, the fused
kernels) against PyTorch over three segments; greedy ids identical in PyTorch step and sequence forms and ONNX
Runtime; `run --state-out/--state-in`, `compare`; the fp16 export and the plain (LTM-off) variant."""
import shutil

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from helpers import assert_close
from inftyformer_fixtures import SMALL, write_checkpoint

from rrwkv_trt.cli.main import main
from rrwkv_trt.core.metadata import from_metadata
from rrwkv_trt.core.paths import SHIPPED_MODEL
from rrwkv_trt.export.checkpoint import load_checkpoint
from rrwkv_trt.export.families import build_model
from rrwkv_trt.runtime.backends.ort import OrtSession, find_custom_ops_library
from rrwkv_trt.runtime.decode import Generator
from rrwkv_trt.runtime.state_file import load_state_file
from rrwkv_trt.runtime.tolerances import load_policy

VOCAB = 256  # the shipped byte tokenizer's
W, L, LAYERS = SMALL["window"], SMALL["segment_len"], SMALL["n_layer"]
THREE_SEGMENTS = W + 3 * L + 3
FP32 = load_policy("fp32")


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.stdout


def kernel_library():
    """librrwkv_ort_ops.so when it is built with both ∞-former ops (ORT would run the function body otherwise)."""
    library = find_custom_ops_library()
    data = library.read_bytes() if library is not None else b""
    return library if b"LTMUpdate" in data and b"ContinuousGaussianAttention" in data else None


BACKENDS = [pytest.param(False, id="function-bodies"),
            pytest.param(True, id="kernels", marks=pytest.mark.skipif(
                kernel_library() is None, reason="librrwkv_ort_ops.so with the ∞-former ops is not built "
                                                 "(`make plugins`)"))]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("inftyformer") / "ckpt", seed=31, vocab_size=VOCAB, sticky=1,
                            tokenizer=SHIPPED_MODEL / "tokenizer.json")


@pytest.fixture(scope="module")
def torch_model(checkpoint):
    ckpt = load_checkpoint(checkpoint)
    return build_model(ckpt.config, ckpt.state_dict)


def export(checkpoint, tmp_path_factory, precision: str = "fp32"):
    out = tmp_path_factory.mktemp(f"inftyformer_{precision}") / "model"
    invoke("export", checkpoint, "-o", out, "--precision", precision)
    return out


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    return export(checkpoint, tmp_path_factory)


def test_graph_contract(exported, checkpoint):
    model = onnx.load(exported / "model.onnx")
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node if n.domain == "rrwkv"]
    assert sorted(ops) == ["ContinuousGaussianAttention"] * 2 * LAYERS + ["LTMUpdate"] * LAYERS
    assert {f.name for f in model.functions} == {"ContinuousGaussianAttention", "LTMUpdate"}
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "LTMUpdate":
            assert attrs["sticky"] == 1
        if node.op_type == "ContinuousGaussianAttention":
            assert attrs["scale"] == pytest.approx((SMALL["d_model"] // SMALL["n_head"]) ** -0.5)
            assert attrs["sigma2_min"] == pytest.approx(1e-6)
    info = from_metadata({p.key: p.value for p in model.metadata_props})
    assert info.config == load_checkpoint(checkpoint).config and info.config.max_call_tokens == L
    assert [i.name for i in model.graph.input][1:4] == ["state_in.0.stm_k", "state_in.0.stm_v", "state_in.0.stm_x"]


@pytest.mark.parametrize("kernels", BACKENDS)
@torch.no_grad()
def test_ort_matches_pytorch_over_three_segments(exported, torch_model, kernels):
    """A prefill of W + 3L + 3 tokens (three updates; the session splits it into calls of L), then 12 decode steps
    on ORT's own state, logits and every state slot within the fp32 policy."""
    tol = FP32.call("ort-kernel" if kernels else "ort-function")
    ids = np.random.default_rng(0).integers(0, VOCAB, (2, THREE_SEGMENTS))
    with OrtSession(exported, use_custom_ops=kernels) as sess:
        logits, state = sess.run(ids)
        ref, ref_state = torch_model(torch.from_numpy(ids), torch_model.init_state(2))
        assert_close("prefill logits", ref, logits, tol.logits.atol, tol.logits.rtol)
        for t in sess.spec.tensors():
            assert_close(t.input_name, ref_state[t.key], state[t.input_name], tol.state.atol, tol.state.rtol)
        sess.start_decode(state)
        token = ref[:, -1].argmax(-1)
        for i in range(12):
            out = sess.step(token.numpy())
            ref_step, ref_state = torch_model.step(token, ref_state)
            assert_close(f"step {i} logits", ref_step, out, tol.logits.atol, tol.logits.rtol)
            token = ref_step.argmax(-1)
        final = sess.decode_state()
    for t in sess.spec.tensors():
        assert_close(f"decoded {t.input_name}", ref_state[t.key], final[t.input_name], tol.state.atol,
                     tol.state.rtol)
    assert ref_state["0.ltm_b"].abs().max() > 0.1 and ref_state["1.hist"].sum() > 0


@pytest.mark.parametrize("kernels", BACKENDS)
@torch.no_grad()
def test_greedy_ids_identical_in_pytorch_and_ort(exported, torch_model, kernels):
    prompt, n = [3, 14, 15, 92, 65, 35, 89, 79], 40  # 48 tokens: eight updates
    logits, state = torch_model(torch.tensor([prompt]), torch_model.init_state(1))
    step_ids = [int(logits[0, -1].argmax())]
    for _ in range(n - 1):
        out, state = torch_model.step(torch.tensor([step_ids[-1]]), state)
        step_ids.append(int(out[0].argmax()))
    whole, _ = torch_model(torch.tensor([prompt + step_ids[:-1]]), torch_model.init_state(1))
    seq_ids = whole[0, len(prompt) - 1:].argmax(-1).tolist()
    with OrtSession(exported, use_custom_ops=kernels) as sess:
        ort_ids = Generator(sess).greedy_ids(prompt, n)
    assert step_ids == seq_ids == ort_ids
    assert len(set(step_ids)) > 3  # not a degenerate loop on one token


def test_state_out_then_in_continues_the_sequence(exported, tmp_path):
    whole, first = tmp_path / "whole.state", tmp_path / "first.state"
    run = lambda *args: invoke("run", exported, "--no-custom-ops", *args)  # noqa: E731
    text = "the quick brown fox"  # 19 bytes: two updates before the state is saved
    run("--prompt", text, "--max-new-tokens", 0, "--state-out", whole)
    run("--prompt", text[:7], "--max-new-tokens", 0, "--state-out", first)
    with OrtSession(exported, use_custom_ops=False) as sess:
        saved = load_state_file(whole, sess.info)
        assert saved.positions == (19,)
        np.testing.assert_array_equal(saved.state["state_in.pos"], [19])
    continued = run("--prompt", text[7:], "--max-new-tokens", 12, "--state-in", first)
    assert continued == run("--prompt", text, "--max-new-tokens", 12)[7:]


def test_compare_against_pytorch(exported, checkpoint, tmp_path):
    from rrwkv_trt.reference.writer import write_reference

    work = tmp_path / "model"
    shutil.copytree(exported, work)
    write_reference(checkpoint, work, steps=8, prompt_len=20)
    result = CliRunner().invoke(main, ["compare", str(work), "--checkpoint", str(checkpoint), "--steps", "60",
                                       "--window", "30"])
    assert result.exit_code == 0, result.output
    assert "compare: PASSED" in result.output


def test_fp16_export_keeps_the_memory_fp32(checkpoint, torch_model, tmp_path_factory):
    out = export(checkpoint, tmp_path_factory, "fp16")
    model = onnx.load(out / "model.onnx")
    onnx.checker.check_model(model, full_check=True)
    info = from_metadata({p.key: p.value for p in model.metadata_props})
    dtypes = {t.slot.name: t.slot.dtype for t in info.state.tensors()}
    assert dtypes == {"stm_k": "float16", "stm_v": "float16", "stm_x": "float16", "ltm_b": "float32",
                      "pending": "float32", "hist": "float32", "pos": "int64"}
    kept = {t.name: t.data_type for t in model.graph.initializer if t.name.endswith(("w_mu", "w_sigma"))}
    assert len(kept) == 2 * LAYERS and set(kept.values()) == {onnx.TensorProto.FLOAT}
    tol = load_policy("fp16").call("ort-function")
    ids = np.random.default_rng(5).integers(0, VOCAB, (2, THREE_SEGMENTS))
    with OrtSession(out, use_custom_ops=False) as sess:
        logits, _ = sess.run(ids)
    with torch.no_grad():
        ref, _ = torch_model(torch.from_numpy(ids), torch_model.init_state(2))
    assert_close("fp16 logits", ref, logits, tol.logits.atol, tol.logits.rtol)


def test_plain_variant_exports_and_matches(tmp_path_factory):
    ckpt = write_checkpoint(tmp_path_factory.mktemp("plain") / "ckpt", seed=4, use_ltm=0, window=9)
    out = export(ckpt, tmp_path_factory)
    model = onnx.load(out / "model.onnx")
    assert not [n for n in model.graph.node if n.domain == "rrwkv"]
    ids = np.random.default_rng(6).integers(0, SMALL["vocab_size"], (1, 40))
    with OrtSession(out, use_custom_ops=False, prefill_chunk=None) as sess:
        logits, _ = sess.run(ids)  # calls of at most the window, 9 tokens
    ref_model = build_model(load_checkpoint(ckpt).config, load_checkpoint(ckpt).state_dict)
    with torch.no_grad():
        ref, _ = ref_model(torch.from_numpy(ids), ref_model.init_state(1))
    tol = FP32.call("ort-function")
    assert_close("plain logits", ref, logits, tol.logits.atol, tol.logits.rtol)


def test_prompts_file_by_continuous_batching_equals_single_runs(exported, tmp_path):
    """Three prompts over two slots: sequences at different positions decode in one batched step, each crossing
    memory updates at its own positions, and each prints what it prints alone."""
    import json

    prompts = ["the quick brown fox jumps", "a", "over the lazy dog, twice over"]
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(prompts))
    options = ("--no-custom-ops", "--max-new-tokens", 20)
    lines = [json.loads(line) for line in invoke("run", exported, "--prompts-file", path, "--slots", 2,
                                                 *options).splitlines()]
    alone = [invoke("run", exported, "--prompt", p, *options).removeprefix(p).removesuffix("\n") for p in prompts]
    assert [line["text"] for line in lines] == alone


@pytest.mark.parametrize("precision, op_type", [("int8", "MatMulW8"), ("int4", "MatMulW4"), ("w16", "MatMulWF16")])
def test_weight_only_exports_follow_fp32(checkpoint, torch_model, tmp_path_factory, precision, op_type):
    """The CPU weight-only precisions rewrite the projections' and the head's MatMuls and leave the memory ops and
    the state alone; their logits over three segments stay within the precision's policy."""
    out = export(checkpoint, tmp_path_factory, precision)
    model = onnx.load(out / "model.onnx")
    ops = [n.op_type for n in model.graph.node]
    assert ops.count(op_type) == 7 * LAYERS + 1  # q, k, v, o, the LTM output, MLP fc and proj per layer; the head
    assert ops.count("LTMUpdate") == LAYERS and ops.count("ContinuousGaussianAttention") == 2 * LAYERS
    info = from_metadata({p.key: p.value for p in model.metadata_props})
    assert info.precision == precision and info.state == info.config.state_spec("float32")
    tol = load_policy(precision).call("ort-function")
    ids = np.random.default_rng(7).integers(0, VOCAB, (1, THREE_SEGMENTS))
    with OrtSession(out, use_custom_ops=False) as sess:
        logits, _ = sess.run(ids)
    with torch.no_grad():
        ref, _ = torch_model(torch.from_numpy(ids), torch_model.init_state(1))
    assert_close(f"{precision} logits", ref, logits, tol.logits.atol, tol.logits.rtol)
