"""fp16 export (export/precision.py): graph and state dtypes, ONNX Runtime vs the fp32 PyTorch model within the fp16
policy of runtime/tolerances.json, `rrwkv-trt compare` on an fp16 export, and the residual-stream variants."""
import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from helpers import REPO, assert_close
from safetensors.torch import save_file

from rrwkv_trt.export.checkpoint import load_checkpoint
from rrwkv_trt.export.families import build_model
from rrwkv_trt.export.models.random_init import random_blinkdl_state_dict
from rrwkv_trt.export.onnx_export import export_checkpoint
from rrwkv_trt.export.families import family_of
from rrwkv_trt.export.precision import RESCALE_LAYER, apply_precision_
from rrwkv_trt.runtime.backends.ort import OrtSession, find_custom_ops_library
from rrwkv_trt.cli.main import main
from rrwkv_trt.core.families.rrwkv import RrwkvConfig
from rrwkv_trt.core.families.rwkv4 import Rwkv4Config
from rrwkv_trt.core.metadata import from_metadata
from rrwkv_trt.runtime.tolerances import load_policy

SIZES = dict(vocab_size=97, n_embd=32, n_layer=3, dim_att=24, dim_ffn=96)
CONFIGS = {"rwkv4": Rwkv4Config(**SIZES), "rrwkv": RrwkvConfig(**SIZES, medium_interval=8)}
ONNX_DTYPES = {"float32": onnx.TensorProto.FLOAT, "float16": onnx.TensorProto.FLOAT16,
               "int64": onnx.TensorProto.INT64}
POLICY = load_policy("fp16")
BACKENDS = {"ort-function": dict(use_custom_ops=False), "ort-kernel": dict(use_custom_ops=True)}


@pytest.fixture(scope="module", params=list(CONFIGS))
def exported(request, tmp_path_factory):
    """(family, checkpoint folder, Checkpoint, fp16 OUT_DIR)."""
    name = request.param
    src = tmp_path_factory.mktemp(f"{name}_ckpt")
    save_file(random_blinkdl_state_dict(CONFIGS[name], seed=7), str(src / "model.safetensors"))
    ckpt = load_checkpoint(src, family=name)
    out = export_checkpoint(ckpt, tmp_path_factory.mktemp(f"{name}_fp16") / "onnx", precision="fp16")
    return name, src, ckpt, out


def _backend(name: str) -> dict:
    if name == "ort-kernel" and find_custom_ops_library() is None:
        pytest.skip("build/librrwkv_ort_ops.so not built (`make plugins`)")
    return BACKENDS[name]


def test_graph_dtypes_and_metadata(exported):
    name, _, ckpt, out = exported
    model = onnx.load(out / "model.onnx")
    onnx.checker.check_model(model, full_check=True)
    info = from_metadata({p.key: p.value for p in model.metadata_props})
    assert info.precision == "fp16" and info.state == ckpt.config.state_spec("float16")
    assert any(t.startswith("cast to float16") for t in info.transforms)
    slots = {t.slot.name: t.slot.dtype for t in info.state.tensors()}
    assert slots["att_xx"] == slots["ffn_xx"] == "float16"
    assert all(dt == "float32" for s, dt in slots.items() if s not in ("att_xx", "ffn_xx", "pos"))
    # Graph I/O types are the spec's (fp32 slots stay fp32); logits are fp32.
    io = {v.name: v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]}
    for t in info.state.tensors():
        assert io[t.input_name] == io[t.output_name] == ONNX_DTYPES[t.slot.dtype], t.input_name
    assert io["logits"] == onnx.TensorProto.FLOAT
    # Every projection matrix is fp16 except the medium path's (squeeze [s, C], W_km, W_vm: 4 per layer).
    matrices = [t for t in model.graph.initializer if len(t.dims) == 2]
    fp32 = [t for t in matrices if t.data_type == onnx.TensorProto.FLOAT]
    assert len(fp32) == (4 * ckpt.config.n_layer if name == "rrwkv" else 0)
    assert all(t.data_type == onnx.TensorProto.FLOAT16 for t in matrices if t not in fp32)
    norms = [t for t in model.graph.initializer if ".ln" in t.name]
    assert norms and all(t.data_type == onnx.TensorProto.FLOAT for t in norms)


@pytest.mark.parametrize("backend", list(BACKENDS))
@torch.no_grad()
def test_ort_fp16_vs_fp32_pytorch_within_policy(exported, backend):
    """Prefill (one call) and decode steps fed PyTorch's state: per-call policy; ORT carrying its own state over
    the decode: the drift policy's logit bound."""
    name, _, ckpt, out = exported
    tol = POLICY.call(backend)
    model = build_model(ckpt.config, ckpt.state_dict)
    ids = np.random.default_rng(0).integers(0, SIZES["vocab_size"], (2, 40))
    with OrtSession(out, **_backend(backend)) as sess:
        state = sess.initial_state(2)
        assert {k: v.dtype for k, v in state.items()} == {t.input_name: np.dtype(t.slot.dtype)
                                                            for t in sess.spec.tensors()}
        if "state_in.pos" in state:
            state["state_in.pos"][:] = [0, 5]
        logits, new = sess.run(ids, state)
        assert logits.dtype == np.float32 and sess.logits_dtype == np.float32
        ref, ref_state = model(torch.from_numpy(ids), _torch_state(state))
        assert_close("prefill logits", ref, logits, tol.logits.atol, tol.logits.rtol)
        for key, value in ref_state.items():
            got = new[f"state_in.{key}"]
            assert got.dtype == state[f"state_in.{key}"].dtype, key
            assert_close(f"prefill {key}", value, got, tol.state.atol, tol.state.rtol)

        sess.start_decode(new)
        token = ref[:, -1].argmax(-1)
        worst = 0.0
        for _ in range(24):
            ort_logits = np.array(sess.step(token.numpy()))
            ref_logits, ref_state = model.step(token, ref_state)
            worst = max(worst, float(np.abs(ort_logits - ref_logits.numpy()).max()))
            token = ref_logits.argmax(-1)
        assert worst <= POLICY.drift_for(backend).logits_atol, worst


def _torch_state(state):
    return {k.removeprefix("state_in."): torch.from_numpy(np.array(v)) for k, v in state.items()}


def test_compare_passes_on_fp16_export(exported, tmp_path):
    """The PyTorch reference of an fp16 export (fp32 model, fp16 state slots) and `rrwkv-trt compare` with the
    fp16 policy."""
    import shutil

    from rrwkv_trt.reference.writer import write_reference

    _, src, _, out = exported
    work = tmp_path / "onnx"
    shutil.copytree(out, work)
    write_reference(src, work, steps=6, prompt_len=21)
    result = CliRunner().invoke(main, ["compare", str(work), "--steps", "40", "--checkpoint", str(src)])
    assert result.exit_code == 0, result.output
    assert "compare: PASSED (tolerances: runtime/tolerances.json, fp16)" in result.output


@pytest.mark.parametrize("family", list(CONFIGS))
@torch.no_grad()
def test_apply_precision_dtypes_and_rescale(family):
    """fp32 parameters stay fp32; RESCALE_LAYER divides att.output / ffn.value by 2^(i // 6), halves x after every
    6th block, and both residual variants stay close to the fp32 model on a 13-layer model."""
    cfg = (RrwkvConfig if family == "rrwkv" else Rwkv4Config)(**(SIZES | dict(n_layer=13)),
                                                               **({"medium_interval": 4} if family == "rrwkv" else {}))
    from rrwkv_trt.export.models.random_init import randomize_

    ref = randomize_(build_model(cfg), seed=3)
    state_dict = ref.state_dict()
    variants = {}
    kept = family_of(cfg).fp32_parameters
    for residual in ("fp32", "rescale"):
        model = build_model(cfg, state_dict)
        transforms = apply_precision_(model, "fp16", kept, residual)
        for pname, p in model.named_parameters():
            fp32 = ".ln" in f".{pname}" or pname.rsplit(".", 1)[-1] in kept
            assert p.dtype == (torch.float32 if fp32 else torch.float16), pname
        variants[residual] = model
        assert any("rescale" in t for t in transforms) == (residual == "rescale")
    rescaled = variants["rescale"]
    assert rescaled.rescale_layer == RESCALE_LAYER and rescaled.residual_dtype is None
    assert variants["fp32"].residual_dtype == torch.float32 and variants["fp32"].rescale_layer == 0
    w = state_dict["blocks.12.ffn.value.weight"]
    assert torch.equal(rescaled.blocks[12].ffn.value.weight, (w / 4).half())

    ids = torch.from_numpy(np.random.default_rng(1).integers(0, cfg.vocab_size, (2, 24)))
    want, _ = ref(ids, ref.init_state(2))
    tol = POLICY.call("tensorrt").logits  # eager PyTorch rounds every op to fp16, as a GPU engine does
    for residual, model in variants.items():
        got, new = model(ids, model.init_state(2))
        assert got.dtype == torch.float32 and new["0.att_xx"].dtype == torch.float16
        assert new["0.att_aa"].dtype == torch.float32
        assert_close(f"{residual} logits", want, got, tol.atol, tol.rtol)


def test_tensorrt_rtx_builds_fp16_engine(exported, tmp_path):
    """TensorRT-RTX (CPU-only builder) parses the strongly typed fp16 graph with the plugins bound (fp16 k, v, y;
    fp32 state) and builds an engine; the network I/O dtypes are the state spec's."""
    import sys

    sys.path.insert(0, str(REPO / "tests" / "plugins"))
    import trt_rtx_support as rtx

    reason = rtx.skip_reason()
    if reason:
        pytest.skip(reason)
    import tensorrt_rtx as trt

    from rrwkv_trt.runtime import engine as engine_mod
    from rrwkv_trt.runtime import onnx_graph

    rtx.load_plugins(trt)  # the process's one plugin load, shared with tests/plugins and tests/runtime
    _, _, ckpt, out = exported
    proto, info, path, nodes = onnx_graph.load_model(out)
    parsed = engine_mod.ParsedNetwork(trt, onnx_graph.tensorrt_graph(proto).SerializeToString(), path, nodes)
    net = parsed.network
    dtypes = {t.name: t.dtype for t in [*(net.get_input(i) for i in range(net.num_inputs)),
                                        *(net.get_output(i) for i in range(net.num_outputs))]}
    want = {"float32": trt.DataType.FLOAT, "float16": trt.DataType.HALF, "int64": trt.DataType.INT64}
    for t in info.state.tensors():
        assert dtypes[t.input_name] == dtypes[t.output_name] == want[t.slot.dtype], t.input_name
    assert dtypes["logits"] == trt.DataType.FLOAT
    sidecar = engine_mod.build_engine(out, tmp_path / "fp16.plan", max_batch=2, max_seq=16,
                                      plugin_library=rtx.LIBRARY, compute_capability="8.6", trt=trt)
    assert sidecar.info.precision == "fp16" and len(sidecar.plugin_layers) == ckpt.config.n_layer


def test_cli_rejects_unknown_precision(tmp_path):
    result = CliRunner().invoke(main, ["export", str(tmp_path), "-o", str(tmp_path / "o"), "--precision", "bf16"])
    assert result.exit_code == 2 and "bf16" in result.output
