"""Model configs for a full Triton (its onnxruntime and tensorrt backends, which carry implicit state): every
state_in.* / state_out.* pair of the model's StateSpec is declared in sequence_batching.state, and Triton keeps each
sequence's state between requests. These backends are not in the pytriton wheel (docs/toolchain.md §11): the
configs are checked by parsing, not run, on the project's machines.

A state starts from zero data, or from a file under the model's initial_state/ folder for a non-zero initial value
(att_pp = -1e30): Triton feeds the initial state to a sequence's first request itself, so the configs declare no
START control. The ONNX Runtime and TensorRT backends pass a declared control to the model as an input, which the
exported graphs do not have.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rrwkv_trt.core.names import INPUT_IDS, LOGITS
from rrwkv_trt.core.state import StateSpec
from rrwkv_trt.runtime.engine import PROFILES
from .pbtxt import Enum, render
from .protocol import STATE_DTYPES

INITIAL_STATE_DIR = "initial_state"  # Triton reads data_file names relative to <model>/initial_state/
ONNX_FILE = "model.onnx"  # Triton's default model file names
PLAN_FILE = "model.plan"


def state_dims(spec: StateSpec, tensor) -> list[int]:
    """The dims of one sequence's slot: the concrete shape without its leading batch dim ([] for `pos`)."""
    return list(spec.concrete_shape(tensor.slot, 1))[1:]


def initial_state_file(slot, dims: list[int]) -> tuple[str, bytes]:
    """(file name, bytes) of one sequence's initial value of `slot`, row-major, little-endian; one file per slot
    kind serves every layer."""
    data = np.full(dims, slot.init, dtype=np.dtype(slot.dtype).newbyteorder("<"))
    return f"{slot.name}.bin", data.tobytes()


def state_section(spec: StateSpec) -> tuple[list[dict], dict[str, bytes]]:
    """sequence_batching.state entries in the spec's tensor order, and the initial-state files they name."""
    states, files = [], {}
    for t in spec.tensors():
        dims, dtype = state_dims(spec, t), Enum(STATE_DTYPES[t.slot.dtype])
        initial = {"data_type": dtype, "dims": dims, "name": f"{t.key} initial"}
        if t.slot.init == 0:
            initial["zero_data"] = True
        else:
            name, data = initial_state_file(t.slot, dims)
            initial["data_file"], files[name] = name, data
        states.append({"input_name": t.input_name, "output_name": t.output_name, "data_type": dtype, "dims": dims,
                       "initial_state": initial})
    return states, files


def implicit_state_config(name: str, spec: StateSpec, vocab_size: int, backend: str, max_batch: int, slots: int,
                          idle_us: int, queue_delay_us: int) -> tuple[str, dict[str, bytes]]:
    """(config.pbtxt text, initial-state files) of one full-Triton model; backend is "onnxruntime" or "tensorrt"."""
    states, files = state_section(spec)
    config = {"name": name}
    if backend == "onnxruntime":
        config |= {"backend": "onnxruntime", "default_model_filename": ONNX_FILE}
        instance = {"kind": Enum("KIND_CPU"), "count": 1}
    else:
        # the prefill profile (seq 1..max_seq) also covers decode (seq 1): a sequence's requests share one instance
        config |= {"platform": "tensorrt_plan", "default_model_filename": PLAN_FILE}
        instance = {"kind": Enum("KIND_GPU"), "count": 1, "profile": [str(PROFILES["prefill"])]}
    config |= {
        "max_batch_size": max_batch,
        "input": [{"name": INPUT_IDS, "data_type": Enum("TYPE_INT64"), "dims": [-1]}],  # [batch, seq]
        "output": [{"name": LOGITS, "data_type": Enum("TYPE_FP32"), "dims": [-1, vocab_size]}],  # [batch, seq, V]
        "sequence_batching": {
            "max_sequence_idle_microseconds": idle_us,
            "oldest": {"max_candidate_sequences": slots, "max_queue_delay_microseconds": queue_delay_us},
            "state": states,
        },
        "instance_group": [instance],
    }
    return render(config, _COMMENT[backend]), files


def write_initial_states(model_dir: Path, files: dict[str, bytes]) -> None:
    if files:
        (model_dir / INITIAL_STATE_DIR).mkdir()
        for name, data in files.items():
            (model_dir / INITIAL_STATE_DIR / name).write_bytes(data)


_COMMON = ("Prefill: input_ids [1, T] returns logits [1, T, V] (take the last row); decode: [B, 1], one token per "
           "sequence,\nbatched across sequences. Triton keeps the recurrent state (sequence_batching.state) between "
           "a sequence's requests.")
_COMMENT = {
    "onnxruntime": "Full Triton only (the onnxruntime backend): rrwkv-trt's export with logits_from frozen to 0.\n"
                   + _COMMON,
    "tensorrt": "Full Triton only (the tensorrt backend, GPU): put the engine of `rrwkv-trt build` here as "
                f"1/{PLAN_FILE}\n(--max-batch at least max_batch_size) and preload the plugins: "
                "LD_PRELOAD=librrwkv_trt_plugins.so tritonserver ...\n" + _COMMON,
}
