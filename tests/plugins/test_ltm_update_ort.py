"""LTMUpdate in librrwkv_ort_ops.so: one-node models on the CPU kernel vs the function body (stock ORT) vs the float64
reference; the thread pool does not change a bit; invalid attributes and shapes rejected with a message naming them."""
from __future__ import annotations

import functools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from ltm_update_inputs import assert_b_close, ltm_inputs, reference
from one_node_ort import one_node_model as one_node
from one_node_ort import ort_session
from onnx import TensorProto

from rrwkv_trt.export.ops.ltm_update import INPUT_NAMES

DIMS = {"B_past": ["B", "N", "e"], "X_new": ["B", "L", "e"], "has_past": ["B"], "G": ["L", "N"], "G_inf": ["P", "N"],
        "S_samp": ["M", "N"], "hist": ["B", "NB"], "basis_mu": ["N"], "basis_sigma": ["N"]}
SHAPES = [(1, 1, 1, 1, 1, 1), (3, 33, 7, 5, 9, 5), (2, 128, 40, 16, 32, 128)]  # B N e L M NB


def one_node_model(attrs: dict, functions: bool) -> onnx.ModelProto:
    return one_node("LTMUpdate", DIMS, {"B_new": ["B", "N", "e"]}, {"has_past": TensorProto.INT64}, attrs, functions)


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
