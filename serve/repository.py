"""`rrwkv-trt triton-repo`: a Triton model repository for one exported model.

    REPO/
      README.md            how to start it and what the models take
      NAME/                the Python-backend model (runs on the pytriton wheel's server, CPU or GPU)
        config.pbtxt       sequence batcher (oldest strategy), controls START/END/READY/CORRID, sampling inputs
        1/model.py         imports rrwkv_trt.serve.triton_model
        1/export/          the export (hard links where the file system allows, else copies)
        1/ENGINE(.json)    with --engine: the TensorRT engine and its sidecar, used where a GPU is
      NAME_onnx/           full Triton only: onnxruntime backend with implicit state
        config.pbtxt, initial_state/*.bin, 1/model.onnx (logits_from frozen; weights linked)
      NAME_trt/            full Triton only: tensorrt backend with implicit state
        config.pbtxt, initial_state/*.bin, 1/model.plan (--engine, or copied there by hand)

The repository holds everything it serves, so it can be moved; it is written under a temporary name and renamed
when complete.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.metadata import ModelInfo, from_metadata
from rrwkv_trt.core.paths import resolve_model_path
from rrwkv_trt.core.sidecar import read_sidecar, sidecar_path
from rrwkv_trt.runtime.engine import DEFAULT_MAX_BATCH, resolve_engine_path
from .full_triton import ONNX_FILE, PLAN_FILE, implicit_state_config, write_initial_states
from .pbtxt import Enum, render
from .protocol import CORRID, END, INPUT_IDS, LOGITS, READY, SAMPLING_INPUTS, START, TOKEN

EXPORT_DIR = "export"  # the export's folder inside the Python model's version folder (not "model": model.py)
MODEL_PY = '''"""Triton's entry point for this model: the serving code is rrwkv_trt.serve.triton_model (rrwkv-trt)."""
from rrwkv_trt.serve.triton_model import TritonPythonModel  # noqa: F401
'''


@dataclass(frozen=True)
class RepoOptions:
    """What `triton-repo` writes. slots: sequences held at once by the Python model (Triton admits twice as many, so
    that a start beyond the slots is refused at once instead of waiting in Triton's backlog); idle_timeout_s: a
    sequence with no request for this long loses its slot; queue_delay_us: how long the batcher waits to fill a
    batch; threads: ONNX Runtime intra-op threads (None: ORT's default); engine: a TensorRT engine for the Python
    model (used where a GPU is) and the tensorrt model; full_triton: also write NAME_onnx and NAME_trt."""

    name: str = "rrwkv"
    slots: int = 16
    idle_timeout_s: float = 60.0
    queue_delay_us: int = 1000
    threads: int | None = None
    engine: Path | None = None
    full_triton: bool = True

    def __post_init__(self) -> None:
        if not self.name.replace("_", "").replace("-", "").isalnum() or not self.name.isascii():
            raise UserError(f"model name {self.name!r} must be ASCII letters, digits, '_' or '-'")
        if self.slots < 1 or self.idle_timeout_s <= 0 or self.queue_delay_us < 0:
            raise UserError(f"slots must be >= 1, idle timeout > 0 s and queue delay >= 0 us; got {self.slots}, "
                            f"{self.idle_timeout_s}, {self.queue_delay_us}")

    @property
    def idle_us(self) -> int:
        return max(1, round(self.idle_timeout_s * 1e6))


def write_repository(model: str | os.PathLike, out: str | os.PathLike, options: RepoOptions = RepoOptions()) -> Path:
    """Write the repository for `model` (an export folder or its model.onnx) to `out`, which must not exist or be
    empty. Returns `out`."""
    onnx = _import_onnx()
    path = resolve_model_path(model)
    proto = onnx.load(str(path), load_external_data=False)  # the metadata only; weights stay where they are
    info = from_metadata({p.key: p.value for p in proto.metadata_props}, source=str(path))
    engine = None if options.engine is None else resolve_engine_path(options.engine)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not an empty folder; choose a new repository folder")
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_python_model(tmp / options.name, path, info, engine, options)
        if options.full_triton:
            _write_onnx_model(onnx, tmp / f"{options.name}_onnx", proto, path, info, options)
            _write_trt_model(tmp / f"{options.name}_trt", info, engine, options)
        (tmp / "README.md").write_text(_readme(options))
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def python_model_config(info: ModelInfo, options: RepoOptions, engine: Path | None) -> str:
    """config.pbtxt of the Python-backend model."""
    def control(name: str, kind: str) -> dict:
        if kind == "CONTROL_SEQUENCE_CORRID":
            return {"name": name, "control": [{"kind": Enum(kind), "data_type": Enum("TYPE_UINT64")}]}
        return {"name": name, "control": [{"kind": Enum(kind), "bool_false_true": [False, True],
                                           "data_type": Enum("TYPE_BOOL")}]}

    sampling = [{"name": n, "data_type": Enum(t), "dims": [1], "optional": True} for n, t in SAMPLING_INPUTS.items()]
    params = {"export": EXPORT_DIR, "slots": str(options.slots),
              "threads": "" if options.threads is None else str(options.threads),
              "engine": "" if engine is None else engine.name}
    config = {
        "name": options.name,
        "backend": "python",
        "max_batch_size": options.slots,  # one batched step can hold every live sequence
        # ragged: a batch mixes prompts of any length with one-token steps; optional: a request may only end
        "input": [{"name": INPUT_IDS, "data_type": Enum("TYPE_INT64"), "dims": [-1], "allow_ragged_batch": True,
                   "optional": True}, *sampling],
        "output": [{"name": TOKEN, "data_type": Enum("TYPE_INT64"), "dims": [1]},
                   {"name": LOGITS, "data_type": Enum("TYPE_FP32"), "dims": [info.config.vocab_size]}],
        "sequence_batching": {
            "max_sequence_idle_microseconds": options.idle_us,
            "oldest": {"max_candidate_sequences": 2 * options.slots,
                       "max_queue_delay_microseconds": options.queue_delay_us},
            "control_input": [control(START, "CONTROL_SEQUENCE_START"), control(END, "CONTROL_SEQUENCE_END"),
                              control(READY, "CONTROL_SEQUENCE_READY"), control(CORRID, "CONTROL_SEQUENCE_CORRID")],
        },
        "instance_group": [{"kind": Enum("KIND_CPU"), "count": 1}],  # one instance: the slots live in it
        "parameters": [{"key": k, "value": {"string_value": v}} for k, v in params.items()],
    }
    return render(config, "rrwkv-trt's Python-backend model (README \"Serving with Triton\"); written by "
                          "`rrwkv-trt triton-repo`.")


def _write_python_model(model_dir: Path, path: Path, info: ModelInfo, engine: Path | None,
                        options: RepoOptions) -> None:
    version = model_dir / "1"
    (version / EXPORT_DIR).mkdir(parents=True)
    for src in path.parent.iterdir():  # the export folder's files: model, weights, config, tokenizer
        if src.is_file():
            _link_or_copy(src, version / EXPORT_DIR / src.name)
    if engine is not None:
        for src in (engine, sidecar_path(engine)):
            _link_or_copy(src, version / src.name)
    (version / "model.py").write_text(MODEL_PY)
    (model_dir / "config.pbtxt").write_text(python_model_config(info, options, engine))


def _write_onnx_model(onnx, model_dir: Path, proto, path: Path, info: ModelInfo, options: RepoOptions) -> None:
    from rrwkv_trt.runtime.onnx_graph import freeze_logits_from

    (model_dir / "1").mkdir(parents=True)
    # the [1] logits_from input cannot ride in a batched request: freeze it to 0, as `rrwkv-trt build` does
    onnx.save(freeze_logits_from(proto), str(model_dir / "1" / ONNX_FILE))
    for location in _external_data(proto):  # the weights keep the relative location the graph names
        _link_or_copy(path.parent / location, model_dir / "1" / location)
    _write_full_config(model_dir, info, "onnxruntime", options.slots, options)


def _write_trt_model(model_dir: Path, info: ModelInfo, engine: Path | None, options: RepoOptions) -> None:
    (model_dir / "1").mkdir(parents=True)
    max_batch = DEFAULT_MAX_BATCH
    if engine is not None:
        max_batch = read_sidecar(engine).max_batch
        _link_or_copy(engine, model_dir / "1" / PLAN_FILE)
    _write_full_config(model_dir, info, "tensorrt", max_batch, options)


def _write_full_config(model_dir: Path, info: ModelInfo, backend: str, max_batch: int, options: RepoOptions) -> None:
    text, files = implicit_state_config(model_dir.name, info.state, info.config.vocab_size, backend, max_batch,
                                        options.slots, options.idle_us, options.queue_delay_us)
    (model_dir / "config.pbtxt").write_text(text)
    write_initial_states(model_dir, files)


def _external_data(proto) -> set[str]:
    """The files the graph's external initializers name (relative to the model file)."""
    external = 1  # TensorProto.EXTERNAL
    return {e.value for t in proto.graph.initializer if t.data_location == external
            for e in t.external_data if e.key == "location"}


def _link_or_copy(src: Path, dst: Path) -> None:
    """A hard link (no copy of hundreds of MB of weights) where src and dst share a file system, else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _import_onnx():
    try:
        import onnx
    except ImportError as err:
        raise UserError(f"triton-repo reads the model with the onnx package ({err}); pip install 'rrwkv-trt[serve]'"
                        ) from None
    return onnx


def _readme(options: RepoOptions) -> str:
    name = options.name
    return f"""# Triton model repository (written by `rrwkv-trt triton-repo`)

- `{name}/`: the Python-backend model. Start it with `rrwkv-trt triton-serve REPO` (the pytriton wheel's
  tritonserver, localhost only), which loads `{name}` alone; or, in a Triton whose Python environment has
  rrwkv-trt installed: `tritonserver --model-repository=REPO --model-control-mode=explicit --load-model={name}`.
  Protocol (rrwkv_trt/serve/protocol.py): the first request of a sequence (sequence_start) carries the prompt in
  `input_ids` [1, T] and optionally the sampling inputs ({", ".join(SAMPLING_INPUTS)}); each later request
  feeds the ids to continue with, usually the last `token`. Every request with ids returns `token` [1, 1] and, when
  requested, `logits` [1, V]. The last request carries sequence_end (a request without `input_ids` only ends).
  {options.slots} sequences at once; one idle for {options.idle_timeout_s:g} s loses its state.
- `{name}_onnx/`, `{name}_trt/`: for a full Triton (onnxruntime / tensorrt backends) with implicit state; load
  them with `--load-model={name}_onnx` (or `_trt`, after placing the engine in `{name}_trt/1/{PLAN_FILE}`).
"""
