"""Weight-only w16 / int8 / int4 exports (export/quantize.py): graph, metadata, accuracy against fp32 on ONNX Runtime,
the export CLI, and refusals (non-fp32 input, occupied output folder, TensorRT build)."""
import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from helpers import REPO, assert_close

from rrwkv_trt.export.checkpoint import load_checkpoint
from rrwkv_trt.export.models.random_init import random_blinkdl_state_dict
from rrwkv_trt.export.onnx_export import export_checkpoint
from rrwkv_trt.export.quantize import BLOCK_SIZE, main as quantize_main, quantize_export
from rrwkv_trt.runtime.backends.ort import OrtSession
from rrwkv_trt.cli.main import main
from rrwkv_trt.core.families.rrwkv import RrwkvConfig
from rrwkv_trt.core.families.rwkv4 import Rwkv4Config
from rrwkv_trt.runtime.drift import drift
from rrwkv_trt.runtime.engine import build_engine
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.metadata import from_metadata

# C = 160 is not a multiple of BLOCK_SIZE: the last block of every column is partial.
SIZES = dict(vocab_size=101, n_embd=160, n_layer=2, dim_att=160, dim_ffn=320)
CONFIGS = {"rwkv4": Rwkv4Config(**SIZES), "rrwkv": RrwkvConfig(**SIZES, medium_interval=4)}
# Least greedy agreement and largest max |logit - fp32 logit| over 64 steps on these random models, about 2x
# looser than measured (w16: 1.0 and 1.3e-3 to 1.4e-3; int8: 0.94-1.0 and 0.05-0.07; int4: 0.75-0.84 and 0.59-0.61;
# random weights give near-tied logits, README "Speed on the edge CPU"). A broken quantization agrees ~1% of the time.
LIMITS = {"w16": (0.98, 3e-3), "int8": (0.9, 0.15), "int4": (0.6, 1.5)}
OP_TYPES = {"w16": "MatMulWF16", "int8": "MatMulW8", "int4": "MatMulW4"}


@pytest.fixture(scope="module", params=list(CONFIGS))
def fp32_export(request, tmp_path_factory):
    """(config, checkpoint path, fp32 OUT_DIR)."""
    cfg = CONFIGS[request.param]
    path = tmp_path_factory.mktemp("ckpt") / "model.pth"
    torch.save(random_blinkdl_state_dict(cfg, seed=3), path)
    out = export_checkpoint(load_checkpoint(path, family=request.param),
                            tmp_path_factory.mktemp("fp32") / "onnx")
    return cfg, path, out


def _load(out):
    model = onnx.load(out / "model.onnx")
    return model, from_metadata({p.key: p.value for p in model.metadata_props})


@pytest.mark.parametrize("precision", list(OP_TYPES))
def test_graph_and_metadata(fp32_export, precision, tmp_path):
    _, _, fp32 = fp32_export
    out = quantize_export(fp32, tmp_path / precision, precision)
    ref, ref_info = _load(fp32)
    model, info = _load(out)
    weights = {i.name for i in ref.graph.initializer}
    matmuls = [n.name for n in ref.graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    computed = [n.name for n in ref.graph.node if n.op_type == "MatMul" and n.input[1] not in weights]  # RRWKV
    op_type = OP_TYPES[precision]
    quantized = [n for n in model.graph.node if n.op_type == op_type]
    assert matmuls and len(quantized) == len(matmuls)
    assert [n.name for n in model.graph.node if n.op_type == "MatMul"] == computed
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in quantized[0].attribute}
    if precision == "w16":
        weight = {i.name: i for i in model.graph.initializer}[quantized[0].input[1]]
        assert weight.data_type == onnx.TensorProto.FLOAT16 and list(weight.dims)[::2] == [-(-attrs["N"] // 64), 64]
    else:
        assert attrs["block_size"] == BLOCK_SIZE
    # Everything else is the fp32 graph: the rrwkv nodes and functions, the embedding, the state contract.
    added = [op_type]
    assert [f.name for f in model.functions] == [f.name for f in ref.functions] + added
    rrwkv_nodes = sum(n.domain == "rrwkv" for n in ref.graph.node) + len(quantized) * bool(added)
    assert sum(n.domain == "rrwkv" for n in model.graph.node) == rrwkv_nodes
    assert [i.name for i in model.graph.input] == [i.name for i in ref.graph.input]
    assert [o.name for o in model.graph.output] == [o.name for o in ref.graph.output]
    emb = {i.name: i for i in ref.graph.initializer}["model.emb.weight"]
    assert {i.name: i for i in model.graph.initializer}["model.emb.weight"] == emb
    assert info.precision == precision and info.state == ref_info.state and info.config == ref_info.config
    assert info.transforms[:-1] == ref_info.transforms and op_type in info.transforms[-1]
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.onnx"]


@pytest.mark.parametrize("precision", list(OP_TYPES))
def test_agreement_with_fp32(fp32_export, precision, tmp_path):
    cfg, _, fp32 = fp32_export
    out = quantize_export(fp32, tmp_path / precision, precision)
    with OrtSession(fp32) as ref, OrtSession(out) as quant:
        prompt = np.random.default_rng(0).integers(0, cfg.vocab_size, 9).tolist()
        report = drift({"fp32": ref, precision: quant}, "fp32", prompt, steps=64, window=64)
    min_agree, max_err = LIMITS[precision]
    assert report.agreement(precision) >= min_agree, report
    assert 0 < report.max_abs(precision) <= max_err, report  # > 0: the weights really changed


def test_export_cli_int8_equals_quantized_fp32(fp32_export, tmp_path):
    cfg, ckpt, fp32 = fp32_export
    out = tmp_path / "int8"
    result = CliRunner().invoke(main, ["export", str(ckpt), "-o", str(out), "--precision", "int8",
                                       "--family", cfg.family])
    assert result.exit_code == 0, result.output
    direct = quantize_export(fp32, tmp_path / "direct", "int8")
    ids = np.arange(7, dtype=np.int64)[None] % cfg.vocab_size
    with OrtSession(out) as a, OrtSession(direct) as b:
        np.testing.assert_array_equal(a.run(ids)[0], b.run(ids)[0])
    assert _load(out)[1] == _load(direct)[1]


def test_refusals(fp32_export, tmp_path):
    _, _, fp32 = fp32_export
    int8 = quantize_export(fp32, tmp_path / "int8", "int8")
    with pytest.raises(UserError, match="is a int8 export; quantize an fp32 export"):
        quantize_export(int8, tmp_path / "again", "int4")
    assert not (tmp_path / "again").exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("")
    with pytest.raises(UserError, match="already exists and is not empty"):
        quantize_export(fp32, tmp_path / "busy", "int8")
    with pytest.raises(UserError, match="precision must be one of"):
        quantize_export(fp32, tmp_path / "fp8", "fp8")
    assert quantize_main([str(fp32), "-o", str(tmp_path / "busy")]) == 2
    with pytest.raises(UserError, match="export for ONNX Runtime on the CPU"):
        build_engine(int8, tmp_path / "engine.plan")
    assert not (tmp_path / "engine.plan").exists()


@pytest.fixture(scope="module")
def shipped_fp32(tmp_path_factory):
    """The shipped checkpoint's fp32 export: runtime/tolerances.json's w16/int8/int4 policies were measured on it."""
    ckpt = REPO / "models" / "rrwkv-pystdlib"
    return ckpt, export_checkpoint(load_checkpoint(ckpt), tmp_path_factory.mktemp("shipped") / "fp32")


@pytest.mark.slow
@pytest.mark.parametrize("precision", list(OP_TYPES))
def test_compare_passes_on_the_shipped_model(shipped_fp32, precision, tmp_path):
    from rrwkv_trt.reference.writer import write_reference

    ckpt, fp32 = shipped_fp32
    out = quantize_export(fp32, tmp_path / precision, precision)
    write_reference(ckpt, out)
    result = CliRunner().invoke(main, ["compare", str(out), "--steps", "300", "--checkpoint", str(ckpt)])
    assert result.exit_code == 0, result.output
    assert f"compare: PASSED (tolerances: runtime/tolerances.json, {precision})" in result.output


@pytest.mark.parametrize("precision", ["w16", "int4"])
def test_shipped_model_with_and_without_the_library(shipped_fp32, precision, tmp_path):
    """The shipped model at w16 / int4 on the fused kernels and on the function bodies (stock ORT) against its fp32
    export, within the precision's policy: the kernels and the function bodies compute the same product of the
    stored weights (fp16; int4 with int16 activations)."""
    from rrwkv_trt.runtime.tolerances import load_policy

    _, fp32 = shipped_fp32
    out = quantize_export(fp32, tmp_path / precision, precision)
    ids = np.frombuffer(b"def main(argv: list[str]) -> int:\n    return len(argv)\n", np.uint8).astype(np.int64)[None]
    with OrtSession(fp32) as ref, OrtSession(out) as kernel, OrtSession(out, use_custom_ops=False) as body:
        assert kernel.custom_ops_library is not None and body.custom_ops_library is None
        want = ref.run(ids)[0]
        for backend, session in (("ort-kernel", kernel), ("ort-function", body)):
            got = session.run(ids)[0]
            tol = load_policy(precision).call(backend).logits
            assert_close(f"{precision} {backend} logits vs fp32", want, got, tol.atol, tol.rtol)
            assert np.abs(got - want).max() > 0, f"the weights were not stored at {precision}"
