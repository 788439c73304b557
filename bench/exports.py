"""The benchmark's models (needs torch; run by `rrwkv-trt bench` in a subprocess).

    python -m rrwkv_trt.bench.exports OUT_ROOT [--model CHECKPOINT ...] [--random-169m] [--random-hgrn2] [--fresh]

prepares, under OUT_ROOT, every export the benchmark measures and writes OUT_ROOT/manifest.json:
  * `--random-169m`: a BlinkDL RWKV-4 `.pth` of the 169M shape (12 layers, width 768, vocabulary 50277) with
    seeded random weights (export/models/random_init.py, seed RANDOM_SEED), generated here, never downloaded;
  * `--random-hgrn2`: an fla-format HGRN2 folder (config.json + model.safetensors) of width 768, 12 layers and
    expand ratio 128 (6 heads of K = V = 128), the MLP width by fla's rule (2048), vocabulary 50277 like the 169M,
    with seeded random weights (export/models/random_init.py), generated here the same way;
  * per checkpoint: fp32 and fp16 exports (`rrwkv-trt export`), and the weight-only w16 / int8 / int4 made from
    the fp32 export (export/quantize.py), with each export's weight bytes, the bytes one decode step reads, and the
    bytes of one sequence's recurrent state (which a decode step reads and writes).
An export is reused when its stamp (checkpoint size and mtime, precision, a digest of the export/ sources) matches;
`--fresh` redoes them all.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import torch

import rrwkv_trt.export
from rrwkv_trt.core.families.rwkv4 import Rwkv4Config
from rrwkv_trt.core.metadata import WEIGHT_ONLY_PRECISIONS, from_metadata
from rrwkv_trt.export.checkpoint import load_checkpoint, resolve_checkpoint_file
from rrwkv_trt.export.onnx_export import export_checkpoint
from rrwkv_trt.export.precision import PRECISIONS
from rrwkv_trt.export.quantize import quantize_export

RANDOM_SEED = 0
RANDOM_169M = Rwkv4Config(vocab_size=50277, n_embd=768, n_layer=12, dim_att=768, dim_ffn=3072)
RANDOM_169M_NAME = "rwkv4-169m-random"
RANDOM_HGRN2 = dict(hidden_size=768, num_hidden_layers=12, expand_ratio=128, vocab_size=50277)  # fla config.json
RANDOM_HGRN2_NAME = "hgrn2-12x768-random"
# what a decode step reads in full; Gather reads one embedding row
WEIGHT_OPS = ("MatMul", "MatMulW8", "MatMulWF16", "MatMulW4")


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def write_random_169m(path: Path) -> Path:
    """The seeded random 169M-shape RWKV-4 BlinkDL checkpoint at `path` (written once, atomically)."""
    if path.is_file():
        return path
    from rrwkv_trt.export.models.random_init import random_blinkdl_state_dict

    log(f"generating {path.name} (seed {RANDOM_SEED}, {RANDOM_169M})")
    state = random_blinkdl_state_dict(RANDOM_169M, seed=RANDOM_SEED)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    tmp.rename(path)
    return path


def write_random_hgrn2(folder: Path) -> Path:
    """The seeded random HGRN2 fla folder (RANDOM_HGRN2) at `folder`, written once, atomically: a temp folder
    renamed."""
    if folder.is_dir():
        return folder
    from rrwkv_trt.export.models.random_init import fla_hgrn2_config, random_fla_hgrn2_state_dict, write_fla_folder

    cfg = fla_hgrn2_config(**RANDOM_HGRN2)
    log(f"generating {folder.name} (seed {RANDOM_SEED}, fla HGRN2 {RANDOM_HGRN2})")
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write_fla_folder(tmp, cfg, random_fla_hgrn2_state_dict(cfg, seed=RANDOM_SEED))
    tmp.rename(folder)
    return folder


def weight_stats(model_path: Path) -> dict:
    """Bytes of all initializers, of those a decode step reads in full (the weights of WEIGHT_OPS), and
    of one sequence's recurrent state (every state input at batch 1)."""
    proto = onnx.load(model_path)
    sizes = {i.name: len(i.raw_data) or onnx.numpy_helper.to_array(i).nbytes for i in proto.graph.initializer}
    step = {name for n in proto.graph.node if n.op_type in WEIGHT_OPS for name in n.input[1:] if name in sizes}
    info = from_metadata({p.key: p.value for p in proto.metadata_props}, source=str(model_path))
    state = sum(math.prod(info.state.concrete_shape(t.slot, 1)) * np.dtype(t.slot.dtype).itemsize
                for t in info.state.tensors())
    return {"weight_bytes": sum(sizes.values()), "step_bytes": sum(sizes[n] for n in step), "state_bytes": state,
            "precision": info.precision}


def _stamp(checkpoint: Path, precision: str) -> str:
    st = checkpoint.stat()
    return json.dumps({"checkpoint": str(checkpoint.resolve()), "size": st.st_size, "mtime": st.st_mtime,
                       "precision": precision, "export_sources": _export_sources_digest()})


def _export_sources_digest() -> str:
    """sha256 of the export package's Python sources: a changed exporter or quantizer redoes the cached exports."""
    digest = hashlib.sha256()
    root = Path(rrwkv_trt.export.__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def prepare_export(checkpoint: Path, out: Path, precision: str, fp32_dir: Path, fresh: bool) -> Path:
    """`out` holding the export of `checkpoint` at `precision`, reused when its stamp matches."""
    file, _ = resolve_checkpoint_file(checkpoint)
    stamp_file = out / "bench-stamp.json"
    if not fresh and stamp_file.is_file() and stamp_file.read_text() == _stamp(file, precision):
        return out
    shutil.rmtree(out, ignore_errors=True)
    start = time.monotonic()
    if precision in WEIGHT_ONLY_PRECISIONS:
        quantize_export(fp32_dir, out, precision)
    else:
        export_checkpoint(load_checkpoint(checkpoint), out, precision=precision)
    stamp_file.write_text(_stamp(file, precision))
    log(f"exported {out} ({precision}) in {time.monotonic() - start:.0f} s")
    return out


def prepare_model(checkpoint: Path, root: Path, name: str, precisions: tuple[str, ...], fresh: bool) -> dict:
    ckpt_file, _ = resolve_checkpoint_file(checkpoint)
    config = load_checkpoint(checkpoint).config
    exports = {}
    for precision in ("fp32", *[p for p in precisions if p != "fp32"]):
        out = prepare_export(checkpoint, root / name / precision, precision, root / name / "fp32", fresh)
        exports[precision] = {"dir": str(out), **weight_stats(out / "model.onnx")}
    return {"name": name, "checkpoint": str(checkpoint), "config": config.to_dict(),
            "rwkv_package_checkpoint": str(ckpt_file) if config.family == "rwkv4" and ckpt_file.suffix == ".pth"
            else None, "exports": exports}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Prepare the benchmark's exports and write OUT_ROOT/manifest.json")
    p.add_argument("out_root")
    p.add_argument("--model", action="append", default=[], help="checkpoint file or folder (repeatable)")
    p.add_argument("--random-169m", action="store_true", help=f"also the seeded random {RANDOM_169M_NAME} .pth")
    p.add_argument("--random-hgrn2", action="store_true", help=f"also the seeded random {RANDOM_HGRN2_NAME} fla folder")
    p.add_argument("--precision", action="append", choices=PRECISIONS, help="[default: all]")
    p.add_argument("--fresh", action="store_true", help="re-export even when a matching export exists")
    args = p.parse_args(argv)
    root = Path(args.out_root)
    precisions = tuple(args.precision or PRECISIONS)
    targets = [(Path(m), Path(m).name.removesuffix(Path(m).suffix) or "model") for m in args.model]
    if args.random_169m:
        targets.append((write_random_169m(root / f"{RANDOM_169M_NAME}.pth"), RANDOM_169M_NAME))
    if args.random_hgrn2:
        targets.append((write_random_hgrn2(root / f"{RANDOM_HGRN2_NAME}-fla"), RANDOM_HGRN2_NAME))
    names = [name for _, name in targets]
    if len(set(names)) != len(names):
        p.error(f"two checkpoints share a name ({names}); their exports would share {root}/<name>/")
    models = [prepare_model(ckpt, root, name, precisions, args.fresh) for ckpt, name in targets]
    manifest = root / "manifest.json"
    manifest.write_text(json.dumps({"models": models}, indent=2) + "\n")
    log(f"wrote {manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
