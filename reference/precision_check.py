"""fp16 exports vs fp32 exports of one checkpoint: logit error, greedy agreement and fp16 range headroom.

    python -m rrwkv_trt.reference.precision_check CKPT [--steps 1000] [--prompt-len 64] [--residual fp32 rescale]
    python -m rrwkv_trt.reference.precision_check --random 12,768,1024 [--seed 0] ...   # seeded random RWKV-4
    python -m rrwkv_trt.reference.precision_check --random 12,768,1024 --amplify 3000 ...  # fp16 range stress

CKPT is exported to a temporary folder at fp32 and at fp16 (once per --residual variant: "fp32" is the shipped
fp32 residual stream, "rescale" ChatRWKV's RESCALE_LAYER = 6; export/precision.py). Per backend, every model
prefills the same seeded prompt, then decodes --steps tokens carrying its own state, all fed the fp32 model's
greedy tokens (runtime/drift.py, the one definition of greedy agreement); reported: max abs logit error against
the fp32 model of the same backend, and the fraction of steps whose greedy token agrees. Backends:
  ort-function  ONNX Runtime (CPU), the rrwkv function bodies
  ort-kernel    ONNX Runtime (CPU) with build/librrwkv_ort_ops.so (skipped when it is not built)
  torch         the converted PyTorch model, eagerly (step form); --no-torch skips it
ONNX Runtime's CPU provider has few fp16 kernels: it runs chains of fp16 nodes in fp32 and rounds to fp16 only
where an fp16-native node (LayerNormalization, Gather, Slice, Concat, the rrwkv ops) or a graph output breaks the
chain, so it understates fp16 rounding. In PyTorch every op rounds its output to fp16, as a GPU engine does
(matmuls accumulate in fp32): `torch` is the GPU-like estimate.
--amplify A multiplies att.output.weight and ffn.value.weight of every layer of the --random model by A, so the
residual stream grows A times larger (LayerNorm keeps the sub-blocks' inputs unchanged): a range stress in which
an fp16 residual stream overflows and the fp32 one does not.
Headroom: the fp32 model's largest |x| (residual stream after each block), |sub-block output| (att.output,
ffn.value), relu(k)^2 and |logit| over the prompt and the decoded tokens (fp16's largest finite value: 65504).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.families.rwkv4 import Rwkv4Config
from rrwkv_trt.export.checkpoint import load_checkpoint
from rrwkv_trt.export.families import family_of
from rrwkv_trt.export.onnx_export import export_checkpoint
from rrwkv_trt.export.precision import RESIDUALS, apply_precision_
from rrwkv_trt.runtime.backends.ort import OrtSession, find_custom_ops_library
from rrwkv_trt.runtime.drift import drift

from .torch_session import TorchSession
from .writer import default_prompt

FP16_MAX = 65504.0


def random_checkpoint(folder: Path, layers: int, width: int, vocab: int, seed: int, amplify: float = 1.0) -> Path:
    """A seeded random RWKV-4 (dim_att = width, dim_ffn = 4 * width) saved as folder/model.safetensors; `amplify`
    scales every att.output.weight and ffn.value.weight."""
    from safetensors.torch import save_file

    from rrwkv_trt.export.models.random_init import random_blinkdl_state_dict

    cfg = Rwkv4Config(vocab_size=vocab, n_embd=width, n_layer=layers, dim_att=width, dim_ffn=4 * width)
    folder.mkdir(parents=True, exist_ok=True)
    raw = random_blinkdl_state_dict(cfg, seed=seed)
    for key in raw:
        if key.endswith(("att.output.weight", "ffn.value.weight")):
            raw[key] = raw[key] * amplify
    save_file(raw, str(folder / "model.safetensors"))
    return folder


class Headroom:
    """Forward hooks on an fp32 model recording the largest magnitudes that an fp16 model would have to hold."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.max = {"residual": 0.0, "sub_block_output": 0.0, "relu_k_squared": 0.0, "logits": 0.0}
        self._handles = [model.head.register_forward_hook(self._record("logits", abs))]
        for block in model.blocks:
            self._hook(block, "residual", abs)
            self._hook(block.att.output, "sub_block_output", abs)
            self._hook(block.ffn.value, "sub_block_output", abs)
            self._hook(block.ffn.key, "relu_k_squared", lambda y: torch.relu(y) ** 2)

    def _hook(self, module, key, fn) -> None:
        self._handles.append(module.register_forward_hook(self._record(key, fn)))

    def _record(self, key, fn):
        def record(_module, _args, out):
            self.max[key] = max(self.max[key], float(fn(out).max()))
        return record

    def close(self) -> None:
        for h in self._handles:
            h.remove()


def export_variants(ckpt_path: Path, family: str | None, residuals: list[str], work: Path) -> dict[str, Path]:
    """{"fp32": folder, "fp16" or "fp16-rescale": folder, ...}, exported under `work`."""
    ckpt = load_checkpoint(ckpt_path, family)
    out = {"fp32": export_checkpoint(ckpt, work / "fp32")}
    for residual in residuals:
        name = variant_name(residual)
        out[name] = export_checkpoint(ckpt, work / name, precision="fp16", residual=residual)
    return out


def variant_name(residual: str) -> str:
    return "fp16" if residual == "fp32" else f"fp16-{residual}"


def measure(sessions: dict, prompt: list[int], steps: int) -> dict:
    """drift() of every fp16 session against sessions["fp32"]: {variant: {prefill, decode max abs, agreement}}."""
    report = drift(sessions, "fp32", prompt, steps, window=max(steps, 1))
    return {name: {"prefill_max_abs": report.prefill_max_abs[name],
                   "max_abs": report.max_abs(name),
                   "greedy_agreement": report.agreement(name)}
            for name in report.prefill_max_abs}


def torch_sessions(ckpt_path: Path, residuals: list[str]) -> tuple[dict, Headroom]:
    ref = TorchSession(ckpt_path, "fp32")
    sessions = {"fp32": ref}
    for residual in residuals:
        sess = TorchSession(ckpt_path, "fp16")
        apply_precision_(sess.model, "fp16", family_of(sess.config).fp32_parameters, residual)
        sessions[variant_name(residual)] = sess
    return sessions, Headroom(ref.model)


def run_check(ckpt_path: Path, family: str | None, steps: int, prompt_len: int, residuals: list[str],
              threads: int | None, with_torch: bool, echo=print) -> dict:
    results: dict = {"checkpoint": str(ckpt_path), "steps": steps, "prompt_len": prompt_len, "backends": {}}
    with tempfile.TemporaryDirectory(prefix="precision_check.") as tmp:
        start = time.perf_counter()
        folders = export_variants(ckpt_path, family, residuals, Path(tmp))
        echo(f"exported {', '.join(folders)} in {time.perf_counter() - start:.0f} s")
        with OrtSession(folders["fp32"], use_custom_ops=False) as probe:
            config = probe.info.config
        results["config"] = config.to_dict()
        prompt = default_prompt(config.vocab_size, prompt_len)
        library = find_custom_ops_library()
        backends = {"ort-function": dict(use_custom_ops=False)}
        if library is None:
            echo("ort-kernel: skipped (build/librrwkv_ort_ops.so not found; run `make plugins`)")
        else:
            backends["ort-kernel"] = dict(custom_ops_library=library)
        for backend, kwargs in backends.items():
            start = time.perf_counter()
            sessions = {name: OrtSession(folder, threads=threads, **kwargs) for name, folder in folders.items()}
            try:
                results["backends"][backend] = measure(sessions, prompt, steps)
            finally:
                for s in sessions.values():
                    s.close()
            echo(f"{backend}: {time.perf_counter() - start:.0f} s")
        if with_torch:
            start = time.perf_counter()
            if threads is not None:
                torch.set_num_threads(threads)
            sessions, headroom = torch_sessions(ckpt_path, residuals)
            with torch.no_grad():
                results["backends"]["torch"] = measure(sessions, prompt, steps)
            headroom.close()
            results["headroom_fp32_model"] = headroom.max
            echo(f"torch: {time.perf_counter() - start:.0f} s")
    return results


def format_results(results: dict) -> list[str]:
    cfg = results["config"]
    lines = [f"{cfg['family']}: {cfg['n_layer']} layers, width {cfg['n_embd']}, vocab {cfg['vocab_size']}; "
             f"prompt {results['prompt_len']} tokens, {results['steps']} decode steps fed the fp32 greedy tokens",
             f"{'backend':<13} {'variant':<13} {'prefill max abs':>15} {'decode max abs':>14} {'greedy agree':>12}"]
    for backend, variants in results["backends"].items():
        for name, r in variants.items():
            lines.append(f"{backend:<13} {name:<13} {r['prefill_max_abs']:>15.2e} {r['max_abs']:>14.2e} "
                         f"{r['greedy_agreement']:>12.1%}")
    head = results.get("headroom_fp32_model")
    if head:
        lines.append(f"fp32 model, largest magnitudes (fp16 max {FP16_MAX:g}): " +
                     ", ".join(f"{k} {v:.3g}" for k, v in head.items()))
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rrwkv_trt.reference.precision_check",
                                description="fp16 vs fp32 exports: logit error, greedy agreement, fp16 headroom")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("checkpoint", nargs="?", help="checkpoint file or folder (as for `rrwkv-trt export`)")
    src.add_argument("--random", metavar="LAYERS,WIDTH,VOCAB",
                     help="a seeded random RWKV-4 of this size instead of a checkpoint")
    p.add_argument("--seed", type=int, default=0, help="seed of --random [default: 0]")
    p.add_argument("--amplify", type=float, default=1.0,
                   help="--random only: scale att.output and ffn.value weights (range stress) [default: 1]")
    p.add_argument("--family", default=None, help="rwkv4 or rrwkv [default: detected]")
    p.add_argument("--steps", type=int, default=1000, help="decode steps [default: 1000]")
    p.add_argument("--prompt-len", type=int, default=64, help="prompt tokens (fixed seeded ids) [default: 64]")
    p.add_argument("--residual", nargs="+", choices=RESIDUALS, default=list(RESIDUALS),
                   help="fp16 residual variants to export [default: both]")
    p.add_argument("--threads", type=int, default=1, help="ORT and torch threads [default: 1]")
    p.add_argument("--no-torch", action="store_true", help="skip the eager PyTorch fp16 backend")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="precision_ckpt.") as tmp:
            if args.random:
                try:
                    layers, width, vocab = (int(v) for v in args.random.split(","))
                except ValueError:
                    raise UserError(f"--random wants LAYERS,WIDTH,VOCAB, got {args.random!r}") from None
                ckpt = random_checkpoint(Path(tmp), layers, width, vocab, args.seed, args.amplify)
            else:
                ckpt = Path(args.checkpoint)
            log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
            results = run_check(ckpt, args.family, args.steps, args.prompt_len, args.residual, args.threads,
                                not args.no_torch, echo=log)
            if args.random:
                results["checkpoint"] = f"random rwkv4 {args.random} seed {args.seed} amplify {args.amplify:g}"
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n".join(format_results(results)))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
