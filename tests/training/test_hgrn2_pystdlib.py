"""The shipped HGRN2, models/hgrn2-pystdlib (training/train_hgrn2.py): an fla folder of about the shipped RRWKV-R1's
size that loads through the adapter and in fla itself, reproduces its recorded held-out bits per byte exactly,
exports with `rrwkv-trt export`, and decodes greedily the same 64 tokens of a held-out prompt in PyTorch and ONNX
Runtime."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import REPO
from safetensors.torch import load_file

from rrwkv_trt.cli.main import main
from rrwkv_trt.export.checkpoint import load_checkpoint
from rrwkv_trt.export.families import build_model
from rrwkv_trt.reference.torch_session import TorchSession
from rrwkv_trt.runtime.backends.ort import OrtSession, find_custom_ops_library
from rrwkv_trt.training.corpus import held_out_bpb, stdlib_corpus

MODEL = REPO / "models" / "hgrn2-pystdlib"
RRWKV = REPO / "models" / "rrwkv-pystdlib"
STEPS = 64


def report():
    return json.loads((MODEL / "training.json").read_text())


@pytest.fixture(scope="module")
def held():
    return stdlib_corpus()[1]


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    out = tmp_path_factory.mktemp("hgrn2-pystdlib") / "fp32"
    result = CliRunner().invoke(main, ["export", str(MODEL), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def held_out_prompt(held: np.ndarray) -> list[int]:
    """128 held-out bytes from a `def` line on (a held-out file: the trainer never saw it)."""
    start = held.tobytes().index(b"\ndef ", len(held) // 2) + 1
    return held[start:start + 128].tolist()


def greedy(session, prompt: list[int], steps: int) -> list[int]:
    """Prefill, then `steps` tokens each the argmax of the previous step's logits (the session's own)."""
    logits, state = session.run(np.asarray([prompt], dtype=np.int64), None, last_only=True)
    session.start_decode(state)
    tokens = [int(np.argmax(logits[0, -1]))]
    while len(tokens) < steps:
        tokens.append(int(np.argmax(session.step(np.array([tokens[-1]])))))
    return tokens


def parameter_count(folder) -> int:
    return sum(t.numel() for t in load_file(folder / "model.safetensors").values())


def test_the_folder_is_fla_s_and_the_size_is_rrwkv_s():
    cfg, rec = json.loads((MODEL / "config.json").read_text()), report()
    assert (cfg["model_type"], cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]) == ("hgrn2", 128, 4,
                                                                                                    256)
    assert rec["parameters"] == parameter_count(MODEL)
    assert abs(rec["parameters"] / parameter_count(RRWKV) - 1) < 0.01
    assert (MODEL / "tokenizer.json").read_bytes() == (RRWKV / "tokenizer.json").read_bytes()
    assert rec["held_out_bits_per_byte"] < rec["unigram_bits_per_byte"] / 2  # trained, not a random init
    ckpt = load_checkpoint(MODEL)
    assert (ckpt.config.num_heads, ckpt.config.head_k_dim, ckpt.config.scale) == (4, 32, 32 ** -0.5)


def test_loads_in_fla():
    fla_models = pytest.importorskip("fla.models")
    # fused norms and SwiGLU need Triton; the keys are the same either way
    model, info = fla_models.HGRN2ForCausalLM.from_pretrained(
        MODEL, fuse_norm=False, fuse_swiglu=False, fuse_cross_entropy=False, output_loading_info=True)
    assert not any(info.values()), info  # no missing, unexpected or mismatched keys
    raw = load_file(MODEL / "model.safetensors")
    assert all(torch.equal(t, raw[k]) for k, t in model.state_dict().items())


@pytest.fixture
def one_thread():
    """One torch thread, as the trainer evaluates: two oversubscribe the 2-core machine when other jobs run (10x
    slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_reproduces_the_recorded_held_out_bits_per_byte(held, one_thread):
    """The trainer's last evaluation, through the fla folder and the adapter: the same number."""
    ckpt = load_checkpoint(MODEL)
    assert round(held_out_bpb(build_model(ckpt.config, ckpt.state_dict), held, 256), 4) == \
        report()["held_out_bits_per_byte"]


@pytest.mark.parametrize("kernels", [False, True], ids=["ort-function", "ort-kernel"])
def test_greedy_decode_matches_pytorch(export, held, kernels):
    if kernels and find_custom_ops_library() is None:
        pytest.skip("build/librrwkv_ort_ops.so not built (make plugins)")
    prompt = held_out_prompt(held)
    with TorchSession(MODEL) as ref, OrtSession(export, use_custom_ops=kernels) as ort_session:
        expected = greedy(ref, prompt, STEPS)
        assert greedy(ort_session, prompt, STEPS) == expected
    assert len(set(expected)) > 4  # a trained model's continuation, not one repeated byte
