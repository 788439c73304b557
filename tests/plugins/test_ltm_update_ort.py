"""LTMUpdate in librrwkv_ort_ops.so: one-node models on the CPU kernel vs the function body (stock ORT) vs the float64
reference; the three modes mixed (KEEP rows B_past's bits in both); the thread pool does not change a bit; invalid
attributes, shapes and mode values rejected with a message naming them."""
from __future__ import annotations

import functools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from ltm_update_inputs import assert_b_close, ltm_inputs, poison_unread, reference
from one_node_ort import one_node_model as one_node
from one_node_ort import ort_session
from onnx import TensorProto

from rrwkv_trt.export.ops.ltm_update import INPUT_NAMES

DIMS = {"B_past": ["B", "N", "e"], "X_new": ["B", "L", "e"], "mode": ["B"], "G": ["L", "N"], "G_inf": ["P", "N"],
        "S_samp": ["M", "N"], "hist": ["B", "NB"], "basis_mu": ["N"], "basis_sigma": ["N"]}
SHAPES = [(1, 1, 1, 1, 1, 1), (3, 33, 7, 5, 9, 5), (2, 128, 40, 16, 32, 128)]  # B N e L M NB


def one_node_model(attrs: dict, functions: bool) -> onnx.ModelProto:
    return one_node("LTMUpdate", DIMS, {"B_new": ["B", "N", "e"]}, {"mode": TensorProto.INT64}, attrs, functions)


@functools.cache
def session(attrs: tuple, library: bool = True, functions: bool = False, threads: int = 0) -> ort.InferenceSession:
    return ort_session(one_node_model(dict(attrs), functions), library, threads)


def run(x: dict, library: bool = True, functions: bool = False, threads: int = 0, **attrs) -> np.ndarray:
    return session(tuple(sorted(attrs.items())), library, functions, threads).run(
        None, {n: x[n].numpy() for n in INPUT_NAMES})[0]


@pytest.mark.parametrize("sticky", [0, 1])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}N{}e{}L{}M{}NB{}".format(*s))
def test_ort_kernel_matches_reference_and_function_body(shape, sticky):
    x = ltm_inputs(*shape, seed=sum(shape))
    ref = reference(x, sticky)
    kernel = run(x, sticky=sticky)
    assert_b_close("cpu_kernel_fp32", ref, kernel, "/ort")
    body = run(x, library=False, functions=True, sticky=sticky)
    assert_b_close("function_body_fp32", ref, body, "/body")


def test_library_kernel_preferred_over_function_and_default_sticky_is_0():
    x = ltm_inputs(2, 20, 6, 5, 7, 9, seed=1)
    with_fn = run(x, functions=True)
    np.testing.assert_array_equal(with_fn, run(x, sticky=0))


@pytest.mark.parametrize("sticky", [0, 1])
def test_mixed_modes_kernel_and_function_body(sticky):
    """NaN in everything a row's mode must not read; KEEP rows come out as B_past's bits from kernel and body."""
    x = ltm_inputs(5, 33, 7, 5, 9, 5, seed=3, mode=[2, 0, 1, 0, 2])
    ref = reference(x, sticky)
    keep = (x["mode"] == 0).numpy()
    for what, out in (("/ort", run(poison_unread(x), sticky=sticky)),
                      ("/body", run(poison_unread(x), library=False, functions=True, sticky=sticky))):
        np.testing.assert_array_equal(out[keep], x["B_past"].numpy()[keep])
        assert_b_close("cpu_kernel_fp32" if what == "/ort" else "function_body_fp32", ref, out, what)
    all_keep = poison_unread(x | {"mode": x["mode"] * 0})
    np.testing.assert_array_equal(run(all_keep, sticky=sticky), x["B_past"].numpy())


@pytest.mark.parametrize("value", [-1, 3])
def test_invalid_mode_rejected_naming_input_value_and_row(value):
    x = ltm_inputs(3, 5, 3, 2, 4, 6, seed=0, mode=[2, 0, value])
    words = rf"LTMUpdate: input 'mode' holds {value} in row 2; expected 0 \(keep\), 1 \(first fit\) or 2 \(update\)"
    with pytest.raises(Exception, match=words):
        run(x)


def test_threads_do_not_change_a_bit():
    x = ltm_inputs(3, 70, 33, 9, 40, 16, seed=2)
    for sticky in (0, 1):
        np.testing.assert_array_equal(run(x, threads=1, sticky=sticky), run(x, threads=2, sticky=sticky))


@pytest.mark.parametrize("attrs,words", [({"sticky": 2}, "attribute sticky = 2 is invalid; expected 0 or 1"),
                                         ({"sticky": 0.5}, "attribute 'sticky' must be an INT")])
def test_bad_attributes_rejected(attrs, words):
    x = ltm_inputs(2, 5, 3, 2, 4, 6, seed=0)
    with pytest.raises(Exception, match=words):
        run(x, **attrs)


@pytest.mark.parametrize("name,cut,words", [("G_inf", 0, "G_inf"), ("hist", 0, "hist"), ("G", 1, "input 'G'"),
                                            ("basis_sigma", 0, "basis_sigma")])
def test_bad_shapes_rejected_naming_the_input(name, cut, words):
    x = ltm_inputs(2, 5, 3, 2, 4, 6, seed=0)
    x[name] = x[name].narrow(cut, 0, x[name].shape[cut] - 1).contiguous()
    with pytest.raises(Exception, match=words):
        run(x)
