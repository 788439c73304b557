"""An export folder, written all or nothing: model.onnx with its metadata, its weights, config and tokenizer.

Output folder layout (what the runtime reads):
  model.onnx      inputs input_ids [batch, seq], logits_from [1] + state_in.*, outputs logits
                  [batch, seq - logits_from, vocab] + state_out.*
  model.onnx.data the weights, for models of EXTERNAL_DATA_MIN_BYTES and more (ONNX external data)
  model.onnx.kernel-weights.json  with model.onnx.data: the weights rrwkv kernels read in place, which
                  OrtSession loads into huge pages (export/kernel_weights.py)
  config.json     the config dict (the same JSON as metadata_props["rrwkv.config"])
  tokenizer.json  when the checkpoint came with one or --tokenizer named one
The folder is written under a temporary name and renamed at the end, so a failed export
leaves nothing half-written.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import onnx

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.metadata import ModelInfo, to_metadata
from rrwkv_trt.core.names import CONFIG_FILE, EXTERNAL_DATA_SUFFIX, MODEL_FILE, TOKENIZER_FILE

from .kernel_weights import write_kernel_weights_index

# Models whose initializers reach this size keep them in model.onnx.data beside the graph. ONNX Runtime then maps
# the file instead of holding a parsed copy of it next to its weight tensors, which lowers the peak RSS at load
# (measured: README "Speed on the edge CPU", Memory). Smaller models stay one file.
EXTERNAL_DATA_MIN_BYTES = 64 << 20


def check_output_folder(out_dir: str | Path) -> Path:
    """`out_dir` as a Path, if it does not exist or is an empty folder (checked before any slow work)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UserError(f"output folder {out_dir} already exists and is not empty; pick another -o or remove it")
    return out_dir


def save_model(proto: onnx.ModelProto, path: Path) -> None:
    """onnx.save, with the initializers in `<path>.data` when they reach EXTERNAL_DATA_MIN_BYTES, and then the
    index of the ones rrwkv kernels read in place (export/kernel_weights.py)."""
    weights = sum(len(i.raw_data) for i in proto.graph.initializer)
    if weights < EXTERNAL_DATA_MIN_BYTES:
        onnx.save(proto, path)
        return
    data = path.with_name(path.name + EXTERNAL_DATA_SUFFIX)
    onnx.save(proto, path, save_as_external_data=True, all_tensors_to_one_file=True, location=data.name,
              size_threshold=1024)
    data.chmod(0o644)  # onnx writes it private; it is as readable as model.onnx
    write_kernel_weights_index(path)


def write_export(proto: onnx.ModelProto, info: ModelInfo, out_dir: Path, tokenizer: Path | None = None) -> Path:
    """Write model.onnx (with `info` as its metadata), config.json and the tokenizer into `out_dir`, all or nothing:
    the folder is filled under a temporary name and renamed at the end."""
    del proto.metadata_props[:]
    for key, value in to_metadata(info).items():
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name = "rrwkv-trt"
    onnx.checker.check_model(proto, full_check=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary folder
        save_model(proto, tmp / MODEL_FILE)
        (tmp / CONFIG_FILE).write_text(to_metadata(info)["rrwkv.config"] + "\n")
        if tokenizer is not None:
            shutil.copyfile(tokenizer, tmp / TOKENIZER_FILE)
        if out_dir.exists():
            out_dir.rmdir()
        tmp.rename(out_dir)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError):
            raise UserError(f"cannot write {out_dir}: {err}") from None
        raise
    return out_dir
