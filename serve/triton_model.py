"""The Python-backend model Triton runs: a repository's `1/model.py` imports TritonPythonModel from here.

Triton's sequence batcher (oldest strategy) hands `execute` the requests of up to max_batch_size sequences, at most
one per sequence; SequenceServer answers them with one prefill per prompt and ONE batched step (serve/sequences.py,
serve/protocol.py). The model keeps every sequence's state itself, in a SlotPool keyed by the correlation id: this
build's Python backend has no implicit state.

The model's settings are the config's `parameters` (written by `rrwkv-trt triton-repo`): `export` (the export
folder inside the version folder), `slots`, `threads` (ONNX Runtime intra-op threads; empty: ORT's default) and
`engine` (a TensorRT engine file inside the version folder, used where a GPU is; empty: none). The idle timeout is
the sequence batcher's max_sequence_idle_microseconds.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.runtime.slots import SlotPool
from .metrics import IdleReaper, ServerMetrics
from .protocol import CORRID, END, INPUT_IDS, LOGITS, READY, SAMPLING_INPUTS, START, TOKEN
from .sequences import SequenceReply, SequenceRequest, SequenceServer

TRITON_DEFAULT_IDLE_US = 1_000_000  # Triton's max_sequence_idle_microseconds when a config leaves it out


@dataclass(frozen=True)
class ModelSettings:
    """The model's config.pbtxt settings, read from the JSON config Triton passes to `initialize`."""

    export: str
    slots: int
    threads: int | None
    engine: str | None
    idle_timeout_s: float

    @classmethod
    def from_config(cls, config: dict) -> ModelSettings:
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        idle_us = int(config.get("sequence_batching", {}).get("max_sequence_idle_microseconds")
                      or TRITON_DEFAULT_IDLE_US)
        try:
            return cls(export=params.get("export") or "export", slots=int(params["slots"]),
                       threads=int(params["threads"]) if params.get("threads") else None,
                       engine=params.get("engine") or None, idle_timeout_s=idle_us / 1e6)
        except (KeyError, ValueError) as err:
            raise UserError(f"config.pbtxt parameters {params} are not what `rrwkv-trt triton-repo` writes "
                            f"(slots: an int; threads: an int or empty): {err!r}") from None


class TritonPythonModel:
    """Triton's entry points: initialize, execute, finalize."""

    def initialize(self, args: dict) -> None:
        import triton_python_backend_utils as pb_utils  # exists only inside Triton's stub process

        self._pb = pb_utils
        self._log = pb_utils.Logger
        settings = ModelSettings.from_config(json.loads(args["model_config"]))
        self._session = open_session(Path(args["model_repository"]) / args["model_version"], settings, self._log)
        self._server = SequenceServer(SlotPool(self._session, settings.slots, settings.idle_timeout_s))
        self._metrics = ServerMetrics(pb_utils, args["model_name"])
        self._metrics.update(self._server)
        self._reaper = IdleReaper(self._server, min(1.0, settings.idle_timeout_s / 4), self._expired)
        quiet_dlpack_capsules()

    def execute(self, requests: list) -> list:
        parsed = [self._parse(r) for r in requests]
        valid = [p for p in parsed if isinstance(p, SequenceRequest)]
        answers = iter(self._server.handle(valid))
        responses = [self._response(p if isinstance(p, UserError) else next(answers)) for p in parsed]
        self._metrics.update(self._server)
        return responses

    def finalize(self) -> None:
        self._reaper.stop()
        self._session.close()

    def _expired(self, keys: list[int]) -> None:
        self._log.log_info(f"rrwkv: freed the slots of sequences {keys}, idle for longer than the timeout")
        self._metrics.update(self._server)

    def _parse(self, request) -> SequenceRequest | UserError:
        def array(name: str) -> np.ndarray | None:
            # through DLPack: with numpy 2 the stub's as_numpy() repeats the first element (it builds the array
            # with numpy 1's descriptor layout); a copy, as the request's memory goes with the request
            tensor = self._pb.get_input_tensor_by_name(request, name)
            return None if tensor is None else np.from_dlpack(tensor).copy()

        def scalar(name: str):
            value = array(name)
            return None if value is None else value.reshape(-1)[0].item()

        key = scalar(CORRID)
        if not scalar(READY):  # the oldest strategy batches ready requests only; refuse anything else loudly
            return UserError(f"sequence {key}: the sequence batcher marked this request not ready")
        sampling = {name: value for name in SAMPLING_INPUTS if (value := scalar(name)) is not None}
        return SequenceRequest(key=key, start=bool(scalar(START)), end=bool(scalar(END)), ids=array(INPUT_IDS),
                               sampling=sampling, want_logits=LOGITS in request.requested_output_names())

    def _response(self, answer: SequenceReply | UserError):
        pb = self._pb
        if isinstance(answer, UserError):
            return pb.InferenceResponse(error=pb.TritonError(str(answer)))
        tensors = []
        if answer.token is not None:
            tensors.append(pb.Tensor.from_dlpack(TOKEN, np.array([[answer.token]], np.int64)))
        if answer.logits is not None:
            tensors.append(pb.Tensor.from_dlpack(LOGITS, np.ascontiguousarray(answer.logits[None], np.float32)))
        return pb.InferenceResponse(output_tensors=tensors)


def open_session(version_dir: Path, settings: ModelSettings, log):
    """A TrtSession on the repository's engine where one was written and a GPU is; an OrtSession otherwise."""
    from rrwkv_trt.runtime.engine import gpu_compute_capability

    if settings.engine is not None:
        if gpu_compute_capability() is not None:
            from rrwkv_trt.runtime.backends.trt import TrtSession

            return TrtSession(version_dir / settings.engine)
        log.log_info(f"rrwkv: no CUDA GPU here; serving {settings.export} on ONNX Runtime instead of {settings.engine}")
    from rrwkv_trt.runtime.backends.ort import OrtSession

    return OrtSession(version_dir / settings.export, threads=settings.threads)


def quiet_dlpack_capsules() -> None:
    """Drop one harmless message per output tensor.

    Tensors cross the stub through DLPack: with numpy 2, pb_utils.Tensor(name, array) sends empty data and
    as_numpy() misreads (the stub reads numpy's array descriptor with numpy 1's struct layout). The stub renames a
    capsule it consumed "used_dlpack" where DLPack says "used_dltensor", so numpy's capsule destructor reports a
    ValueError as unraisable; the stub frees the tensor itself, so nothing leaks. Every other unraisable exception
    is reported as before.
    """
    previous = sys.unraisablehook

    def hook(unraisable) -> None:
        exc = unraisable.exc_value
        if isinstance(exc, ValueError) and "PyCapsule_GetPointer called with incorrect name" in str(exc):
            return
        previous(unraisable)

    sys.unraisablehook = hook
