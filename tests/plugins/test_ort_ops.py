"""librrwkv_ort_ops.so in ONNX Runtime: one-node models on the fused CPU kernel vs the function body (stock
ORT) vs the naive reference; error statuses; an exported tiny model with the library == without it, and a
function-stripped model that only runs with the library (proof that the kernel, not the function, ran)."""
from __future__ import annotations

import functools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from helpers import assert_close, assert_op_outputs_close, tolerance
from kernel_shim import ORT_OPS, require_library
from ops.op_models import MEDIUM_INPUTS, medium_inputs, one_node_model, run_function_body, wkv4_inputs
from safetensors.torch import save_file

from rrwkv_trt.export.checkpoint import load_checkpoint
from rrwkv_trt.export.models.random_init import random_blinkdl_state_dict
from rrwkv_trt.export.onnx_export import export_checkpoint
from rrwkv_trt.export.ops import naive_wkv4, naive_wkv4_medium, strip_functions
from rrwkv_trt.runtime.backends import ort as ort_backend
from rrwkv_trt.runtime.backends.ort import OrtSession
from rrwkv_trt.core.families.rrwkv import RrwkvConfig
from rrwkv_trt.core.families.rwkv4 import Rwkv4Config
from rrwkv_trt.core.errors import UserError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
SHAPES = [(T, C, B) for T in (1, 7, 63) for C in (1, 33, 500) for B in (1, 3)] + [(1000, 33, 3)]
SHAPE_IDS = [f"T{T}-C{C}-B{B}" for T, C, B in SHAPES]
WKV4_INPUTS = ("w", "u", "k", "v", "aa", "bb", "pp")


def library() -> str:
    return str(require_library(ORT_OPS))


@functools.cache
def kernel_session(op_type: str, dtype: str, attrs: tuple, strip: bool = True) -> ort.InferenceSession:
    """One-node model (function stripped unless strip=False) with the custom-op library registered."""
    dtypes = {n: torch.float32 for n in MEDIUM_INPUTS} | {"k": DTYPES[dtype], "v": DTYPES[dtype],
                                                           "pos0": torch.int64}
    model = one_node_model(op_type, dtypes, dict(attrs))
    if strip:
        model = strip_functions(model)
    so = ort.SessionOptions()
    so.register_custom_ops_library(library())
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def run_kernel(op_type: str, feeds: dict[str, torch.Tensor], strip: bool = True, **attrs) -> list[np.ndarray]:
    dtype = "fp16" if feeds["k"].dtype == torch.float16 else "fp32"
    sess = kernel_session(op_type, dtype, tuple(sorted(attrs.items())), strip)
    return sess.run(None, {n: t.numpy() for n, t in feeds.items()})


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T,C,B", SHAPES, ids=SHAPE_IDS)
def test_wkv4_kernel_vs_function_vs_naive(T, C, B, dtype):
    x = wkv4_inputs(B, T, C, DTYPES[dtype], seed=T + C + B, init_state=(C == 33))
    kernel, function = run_kernel("WKV4", x), run_function_body("WKV4", x)
    assert_op_outputs_close("wkv4", f"cpu_kernel_{dtype}", naive_wkv4(**x), kernel)
    assert_op_outputs_close("wkv4", f"function_body_{dtype}", function, kernel)
    assert kernel[0].dtype == x["k"].numpy().dtype
    if T == 7:  # the library's kernel is preferred over the model-local function when both exist
        for a, b in zip(kernel, run_kernel("WKV4", x, strip=False)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T,C,B", SHAPES, ids=SHAPE_IDS)
def test_wkv4_medium_kernel_vs_function_vs_naive(T, C, B, dtype):
    s = (1, 4, 16)[(T + C + B) % 3]
    md = (T // 7 + C + B) % 2
    pos0 = [s - 1, 0, 2 * s + 1][:B]  # per-batch phases; sequence 0 closes on its first token
    x = medium_inputs(B, T, C, s, pos0, DTYPES[dtype], seed=T + C + B, init_state=(C == 33))
    kernel = run_kernel("WKV4Medium", x, s=s, medium_decays=md)
    function = run_function_body("WKV4Medium", x, s=s, medium_decays=md)
    assert_op_outputs_close("wkv4_medium", f"cpu_kernel_{dtype}", naive_wkv4_medium(**x, s=s, medium_decays=md),
                            kernel)
    assert_op_outputs_close("wkv4_medium", f"function_body_{dtype}", function, kernel)
    if T == 7:
        for a, b in zip(kernel, run_kernel("WKV4Medium", x, strip=False, s=s, medium_decays=md)):
            np.testing.assert_array_equal(a, b)


def test_medium_decays_defaults_to_zero():
    x = medium_inputs(3, 12, 6, 3, [0, 1, 5], seed=5)
    assert_op_outputs_close("wkv4_medium", "cpu_kernel_fp32", naive_wkv4_medium(**x, s=3),
                            run_kernel("WKV4Medium", x, s=3, plugin_namespace="rrwkv", plugin_version="1"))


def test_stripped_model_needs_the_library():
    model = strip_functions(one_node_model("WKV4", {n: torch.float32 for n in WKV4_INPUTS}, {}))
    with pytest.raises(Exception, match="rrwkv:WKV4.*is not a registered function/op"):
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _expect_error(op_type: str, feeds: dict, attrs: dict, match: str) -> None:
    with pytest.raises(Exception, match=match):
        run_kernel(op_type, feeds, **attrs)


@pytest.mark.parametrize("name,bad_shape,message", [
    ("aa", (2, 5), r"WKV4: input 'aa' has shape \[2, 5\], expected \[B, C\] = \[3, 5\]"),
    ("w", (4,), r"WKV4: input 'w' has shape \[4\], expected \[C\] = \[5\]"),
    ("v", (3, 6, 5), r"WKV4: input 'v' has shape \[3, 6, 5\], expected \[B, T, C\] = \[3, 7, 5\]"),
])
def test_wkv4_shape_errors_name_the_input(name, bad_shape, message):
    x = wkv4_inputs(3, 7, 5, seed=0)
    x[name] = torch.zeros(bad_shape, dtype=x[name].dtype)
    _expect_error("WKV4", x, {}, message)


def test_wkv4_medium_shape_and_attribute_errors():
    x = medium_inputs(3, 7, 5, 2, [0, 1, 2], seed=0)
    _expect_error("WKV4Medium", x | {"pos0": torch.zeros(2, dtype=torch.int64)}, {"s": 2},
                  r"WKV4Medium: input 'pos0' has shape \[2\], expected \[B\] = \[3\]")
    _expect_error("WKV4Medium", x | {"v_m": x["v_m"][:, :1]}, {"s": 2},
                  r"WKV4Medium: input 'v_m' has shape \[3, 1, 5\], expected \[B, Mmax, C\] = \[3, 4, 5\]")
    empty = {"k_m": x["k_m"][:, :0], "v_m": x["v_m"][:, :0]}
    _expect_error("WKV4Medium", x | empty, {"s": 2}, r"expected Mmax >= 1 rows")
    _expect_error("WKV4Medium", x, {"s": 0}, r"attribute s = 0 is invalid; expected s >= 1")
    _expect_error("WKV4Medium", x, {"s": 2, "medium_decays": 2}, r"medium_decays = 2 is invalid; expected 0 or 1")
    _expect_error("WKV4Medium", x, {}, r"required INT attribute 's'")


SIZES = dict(vocab_size=97, n_embd=32, n_layer=2, dim_att=24, dim_ffn=96)
CONFIGS = {"rwkv4": Rwkv4Config(**SIZES), "rrwkv": RrwkvConfig(**SIZES, medium_interval=4)}


@pytest.fixture(scope="module", params=list(CONFIGS))
def exported(request, tmp_path_factory):
    """(family, model.onnx, model.nofn.onnx): a random checkpoint exported, and a copy without functions."""
    name = request.param
    src = tmp_path_factory.mktemp(f"{name}_ckpt")
    save_file(random_blinkdl_state_dict(CONFIGS[name], seed=3), str(src / "model.safetensors"))
    out = export_checkpoint(load_checkpoint(src, family=name), tmp_path_factory.mktemp(f"{name}_out") / "onnx")
    stripped = out / "model.nofn.onnx"
    onnx.save(strip_functions(onnx.load(out / "model.onnx")), stripped)
    return name, out / "model.onnx", stripped


def _prefill_and_decode(session: OrtSession, ids: np.ndarray) -> list[np.ndarray]:
    state = session.initial_state(ids.shape[0])
    if "state_in.pos" in state:
        state["state_in.pos"][:] = [0, 5]  # sequences at different window phases
    logits, new_state = session.run(ids[:, :-3], state)
    outs = [logits, *(new_state[k] for k in sorted(new_state))]
    session.start_decode(new_state)
    for t in range(ids.shape[1] - 3, ids.shape[1]):
        outs.append(session.step(ids[:, t]).copy())
    final = session.decode_state()
    return outs + [final[k] for k in sorted(final)]


def test_exported_model_same_with_and_without_library(exported):
    family, model, stripped = exported
    ids = np.random.default_rng(1).integers(0, SIZES["vocab_size"], (2, 40))
    with OrtSession(model, use_custom_ops=False) as plain:
        assert plain.custom_ops_library is None
        ref = _prefill_and_decode(plain, ids)
    with OrtSession(model) as fused:  # found automatically in the checkout's build/
        assert fused.custom_ops_library is not None and fused.custom_ops_library.resolve() == ORT_OPS.resolve()
        out = _prefill_and_decode(fused, ids)
    with OrtSession(stripped, custom_ops_library=library()) as kernel_only:
        only = _prefill_and_decode(kernel_only, ids)
    atol_y, rtol_y = tolerance("wkv4", "model_kernel_vs_function_fp32", "y")
    atol_s, rtol_s = tolerance("wkv4", "model_kernel_vs_function_fp32", "state")
    for i, (r, o, k) in enumerate(zip(ref, out, only)):
        logits = r.shape[-1] == SIZES["vocab_size"]
        atol, rtol = (atol_y, rtol_y) if logits else (atol_s, rtol_s)
        assert_close(f"{family} output {i} (library vs function bodies)", r, o, atol, rtol)
        np.testing.assert_array_equal(o, k, err_msg=f"{family} output {i}: kernel-only model differs")


def test_stripped_exported_model_fails_without_library(exported):
    _, _, stripped = exported
    with pytest.raises(UserError, match=r"needs the rrwkv custom ops: build librrwkv_ort_ops\.so with `make plugins`"):
        OrtSession(stripped, use_custom_ops=False)


def test_custom_ops_discovery_and_arguments(exported, tmp_path):
    _, model, _ = exported
    assert ort_backend.find_custom_ops_library() == ORT_OPS
    assert ort_backend.custom_ops_search_path() == [ORT_OPS]
    with pytest.raises(UserError, match="pass one of them"):
        OrtSession(model, custom_ops_library=library(), use_custom_ops=False)
    with pytest.raises(UserError, match="not found; build it with `make plugins`"):
        OrtSession(model, custom_ops_library=tmp_path / "missing.so")


def test_chunked_prefill_equals_one_call(exported):
    """run() feeds long prompts in prefill_chunk pieces, the state carried: the same logits (all, or the last) and
    the same state as one call, RRWKV's medium windows included (sequences at different phases, chunks of 7 across
    windows of 4)."""
    family, model, _ = exported
    ids = np.random.default_rng(2).integers(0, SIZES["vocab_size"], (2, 40))
    atol, rtol = tolerance("wkv4", "model_kernel_vs_function_fp32", "state")
    with OrtSession(model, prefill_chunk=None) as whole, OrtSession(model, prefill_chunk=7) as chunked:
        state = whole.initial_state(2)
        if "state_in.pos" in state:
            state["state_in.pos"][:] = [0, 5]
        for last_only in (False, True):
            ref, ref_state = whole.run(ids, state, last_only=last_only)
            out, out_state = chunked.run(ids, state, last_only=last_only)
            assert out.shape == ref.shape == (2, 1 if last_only else 40, SIZES["vocab_size"])
            assert_close(f"{family} logits (last_only={last_only})", ref, out, atol, rtol)
            for name in ref_state:
                assert_close(f"{family} {name}", ref_state[name], out_state[name], atol, rtol)
    with pytest.raises(UserError, match="prefill_chunk must be an int >= 1"):
        OrtSession(model, prefill_chunk=0)
