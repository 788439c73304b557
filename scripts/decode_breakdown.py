"""Where a decode step's time goes: the projections or the rest of the graph (README "Speed on the edge CPU").

    python scripts/decode_breakdown.py [MODEL_DIR] [--reps 8] [--threads 2] [--steps 32] [--batch 1] [--out FILE]

MODEL_DIR defaults to the int8 export of the random 169M RWKV-4 that `make bench` prepares. Four variants of it,
each in its own worker (bench/worker.py) with the fused kernels, decode `--steps` greedy steps of `--batch` sequences
per repetition, in an order rotated each repetition:
    full           the export as it is
    seq1           the token shift rewritten for one token: Concat(Unsqueeze(prev), Slice(x, 0:-1)) -> Unsqueeze(prev),
                   which is what a decode graph specialised for seq = 1 would drop
    no-matmul      every projection (MatMul, MatMulW8, MatMulW4, MatMulWF16 with a constant weight) replaced by a
                   copy of its input cut or tiled to the output's width: the step without reading any projection weight
    seq1 no-matmul both
ORT's profiler is not used: it adds microseconds to every node, which at ~500 nodes per step distorts exactly this
split. Writes bench/results/<date>-decode-breakdown.json (or --out).
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import shutil
import statistics
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from rrwkv_trt.export.kernel_weights import write_kernel_weights_index
from rrwkv_trt.export.ops.matmul_w8 import DEFAULT_BLOCK
from rrwkv_trt.bench.suite import Worker
from rrwkv_trt.core.paths import BUILD_DIR, REPO_ROOT

DEFAULT_MODEL = BUILD_DIR / "bench" / "rwkv4-169m-random" / "int8"
PROJECTIONS = ("MatMul", "MatMulW8", "MatMulW4", "MatMulWF16")


def projection_widths(node: onnx.NodeProto, inits: dict) -> tuple[int, int] | None:
    """(K at least, N) of a projection with a constant weight, else None."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "MatMul" and node.input[1] in inits and len(inits[node.input[1]].dims) == 2:
        k, n = inits[node.input[1]].dims
        return k, n
    if node.op_type in ("MatMulW8", "MatMulW4") and node.input[1] in inits:
        # w [G, Kpad / 2, 64, 2] (W8) or [G, Kpad / 2, 64] (W4); K > Kpad - block_size
        kpad = inits[node.input[1]].dims[1] * 2
        return kpad - attrs.get("block_size", DEFAULT_BLOCK) + 1, attrs["N"]
    if node.op_type == "MatMulWF16" and node.input[1] in inits:
        return inits[node.input[1]].dims[1], attrs["N"]  # w [G, K, 64]
    return None


def drop_projections(proto: onnx.ModelProto) -> int:
    """Replace each projection by Slice(Tile(x)) to its N columns (x [B, T, K], as in these exports); returns how
    many."""
    inits = {i.name: i for i in proto.graph.initializer}
    nodes, count = [], 0
    for node in proto.graph.node:
        widths = projection_widths(node, inits) if node.op_type in PROJECTIONS else None
        if widths is None:
            nodes.append(node)
            continue
        k, n = widths
        x, y, tag = node.input[0], node.output[0], f"breakdown{count}"
        consts = {f"{tag}.reps": [1, 1, math.ceil(n / k)], f"{tag}.zero": [0], f"{tag}.n": [n], f"{tag}.axis": [2]}
        proto.graph.initializer.extend(numpy_helper.from_array(np.array(v, dtype=np.int64), name)
                                       for name, v in consts.items())
        nodes += [helper.make_node("Tile", [x, f"{tag}.reps"], [f"{tag}.tiled"]),
                  helper.make_node("Slice", [f"{tag}.tiled", f"{tag}.zero", f"{tag}.n", f"{tag}.axis"], [y])]
        count += 1
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    return count


def shift_for_one_token(proto: onnx.ModelProto) -> int:
    """Drop each token shift's Slice and Concat (valid for T = 1 only); returns how many shifts."""
    producer = {o: n for n in proto.graph.node for o in n.output}
    rename, drop = {}, set()
    for node in proto.graph.node:
        ins = [producer.get(i) for i in node.input]
        if (node.op_type == "Concat" and len(ins) == 2 and ins[0] is not None and ins[1] is not None
                and ins[0].op_type == "Unsqueeze" and ins[1].op_type == "Slice"
                and ins[0].input[0].startswith("state_in.")):
            rename[node.output[0]] = node.input[0]
            drop |= {id(node), id(ins[1])}
    keep = [n for n in proto.graph.node if id(n) not in drop]
    for node in keep:
        node.input[:] = [rename.get(i, i) for i in node.input]
    del proto.graph.node[:]
    proto.graph.node.extend(keep)
    return len(rename)


def write_variants(model: Path, out: Path) -> dict[str, Path]:
    variants = {}
    for name, rewrites in {"full": (), "seq1": (shift_for_one_token,), "no-matmul": (drop_projections,),
                           "seq1 no-matmul": (shift_for_one_token, drop_projections)}.items():
        if not rewrites:
            variants[name] = model
            continue
        proto = onnx.load(model / "model.onnx")
        counts = [rewrite(proto) for rewrite in rewrites]
        if 0 in counts:
            raise SystemExit(f"{model}: {rewrites[counts.index(0)].__name__} found nothing to rewrite")
        folder = out / name.replace(" ", "-")
        folder.mkdir()
        onnx.save(proto, folder / "model.onnx", save_as_external_data=True, location="model.onnx.data")
        write_kernel_weights_index(folder / "model.onnx")  # as the export does: the same huge-page loading
        variants[name] = folder
        print(f"{name}: {dict(zip((r.__name__ for r in rewrites), counts))}, {len(proto.graph.node)} nodes")
    return variants


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", default=str(DEFAULT_MODEL))
    p.add_argument("--reps", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--batch", type=int, default=1, help="sequences per step (the times are per step)")
    p.add_argument("--out", type=Path, default=None, help="[default: bench/results/<date>-decode-breakdown.json]")
    args = p.parse_args()
    model = Path(args.model)
    vocab = json.loads((model / "config.json").read_text())["vocab_size"]
    scratch = Path(tempfile.mkdtemp(prefix="decode-breakdown-"))
    try:
        variants = write_variants(model, scratch)
        ms = measure(variants, vocab, args)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rows = {name: {"median_ms": round(statistics.median(v), 3), "min_ms": round(min(v), 3),
                   "max_ms": round(max(v), 3)} for name, v in ms.items()}
    for name, r in rows.items():
        print(f"{name:<16} {r['median_ms']:7.3f} ms per step [{r['min_ms']:.3f}, {r['max_ms']:.3f}]")
    out = args.out or REPO_ROOT / "bench" / "results" / f"{datetime.date.today().isoformat()}-decode-breakdown.json"
    out.write_text(json.dumps({"model": str(model), "threads": args.threads, "reps": args.reps, "steps": args.steps,
                               "batch": args.batch, "results": rows}, indent=2) + "\n")
    print(f"wrote {out}")


def measure(variants: dict[str, Path], vocab: int, args) -> dict[str, list[float]]:
    """Per variant, the ms per decode step of each repetition (variants in a rotated order)."""
    workers = {}
    try:
        for name, folder in variants.items():
            w = Worker("rrwkv_trt.bench.worker:ort_backend",
                       dict(model=str(folder), threads=args.threads, use_custom_ops=True, weight_bytes=0))
            if not w.hello.get("ok"):
                raise SystemExit(f"{name}: {w.hello.get('error')}")
            w.call("decode", batch=args.batch, steps=args.steps, vocab=vocab)  # warm-up
            workers[name] = w
        names, ms = list(workers), {name: [] for name in workers}
        for rep in range(args.reps):
            for name in names[rep % len(names):] + names[:rep % len(names)]:
                reply = workers[name].call("decode", batch=args.batch, steps=args.steps, vocab=vocab)
                ms[name].append(1e3 * reply["seconds"] / args.steps)
        return ms
    finally:
        for w in workers.values():
            w.close()


if __name__ == "__main__":
    main()
