"""The `rrwkv-trt` command. Every user error becomes one `error: ...` line on stderr and exit code 2; a reader that
closes the output pipe early (`rrwkv-trt run ... | head`) stops the command quietly with exit code 141."""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import click

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.metadata import PRECISIONS
from .eval import eval_command
from .triton import triton_repo, triton_serve

# The benchmark's backends (bench/suite.py: variants_for), here so that `--help` imports nothing.
BENCH_BACKENDS = ("ort-kernel", "ort-function", "torch-eager", "rwkv-package")

EXIT_USER_ERROR = 2
EXIT_BROKEN_PIPE = 128 + 13  # 128 + SIGPIPE: what a shell reports for `cat`, `yes` or `grep` in the same place


class RrwkvGroup(click.Group):
    """Turns a UserError raised by any subcommand into a one-line message and exit code 2, and a closed output pipe
    into a quiet stop with exit code 141."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as err:
            message = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
            click.echo(f"error: {message}", err=True)
            ctx.exit(EXIT_USER_ERROR)
        except BrokenPipeError:
            _discard_stdout()
            ctx.exit(EXIT_BROKEN_PIPE)


def _discard_stdout() -> None:
    # Python flushes stdout once more at exit, which would fail again and print "Exception ignored ...": point the
    # descriptor at /dev/null first (docs.python.org/3/library/signal.html, "Note on SIGPIPE").
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


@click.group(cls=RrwkvGroup)
def main() -> None:
    """RWKV-4 / RRWKV models exported to ONNX: decode on ONNX Runtime, build and decode TensorRT engines."""


@main.command()
@click.argument("checkpoint", type=click.Path(path_type=str))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(path_type=str),
              help="Folder to create: model.onnx, config.json and, if known, tokenizer.json.")
@click.option("--family", default=None, help="Model family id, e.g. rwkv4 or rrwkv (docs/families/) [default: detected from the keys].")
@click.option("--tokenizer", default=None, type=click.Path(dir_okay=False, path_type=str),
              help="tokenizer.json to ship beside the model [default: the one beside the checkpoint].")
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
              help="fp16: fp16 weights and activations; LayerNorm, WKV/medium arithmetic, recurrent state, residual "
                   "stream and logits stay fp32 (README \"Precision\"); for TensorRT. w16/int8/int4: weight-only "
                   "MatMuls (fp16 weights / quantized) for ONNX Runtime on the CPU, everything else fp32 (README "
                   "\"Speed on the edge CPU\").")
def export(checkpoint: str, out_dir: str, family: str | None, tokenizer: str | None, precision: str) -> None:
    """Export CHECKPOINT (BlinkDL .pth, .safetensors, or a folder) to ONNX in OUT_DIR."""
    try:  # export needs torch; the runtime never imports it unless this command runs
        from rrwkv_trt.export.checkpoint import load_checkpoint
        from rrwkv_trt.export.onnx_export import export_checkpoint
    except ImportError as err:
        raise UserError(f"export needs the [export] extra ({err}); pip install 'rrwkv-trt[export]'") from None
    click.echo(f"loading {checkpoint}", err=True)
    ckpt = load_checkpoint(checkpoint, family)
    cfg = ckpt.config
    click.echo(f"{cfg.family}: {cfg.n_layer} layers, vocab {cfg.vocab_size}; tracing to ONNX "
               f"({precision})", err=True)
    out = export_checkpoint(ckpt, out_dir, tokenizer, precision=precision)
    if not (out / "tokenizer.json").is_file():
        click.echo("note: no tokenizer exported; `run` will need one (re-export with --tokenizer FILE)", err=True)
    click.echo(f"wrote {out / 'model.onnx'}", err=True)


def _sampling_options(command):
    """The `run` options that are SamplingParams fields of the same names (runtime/sampler.py validates them, so a
    bad value is one `error:` line naming the option and its range)."""
    options = [
        click.option("--temperature", type=float, default=0.0, show_default=True,
                     help="0 is exact greedy decoding; otherwise at least 1e-6 (smaller values are refused: use 0)."),
        click.option("--top-k", type=int, default=0, show_default=True,
                     help="Sample among the K most likely tokens (0: all)."),
        click.option("--top-p", type=float, default=1.0, show_default=True,
                     help="Sample among the fewest most likely tokens whose probability reaches P, in (0, 1] "
                          "(1: all)."),
        click.option("--min-p", type=float, default=0.0, show_default=True,
                     help="Drop the tokens less than P times as likely as the most likely one, in [0, 1] (0: none)."),
        click.option("--repetition-penalty", type=float, default=1.0, show_default=True,
                     help="Divide the positive logits of tokens in the prompt or output by this and multiply the "
                          "negative ones (HF / CTRL), > 0 (1: off)."),
        click.option("--presence-penalty", type=float, default=0.0, show_default=True,
                     help="Subtract this from the logit of every token generated so far, in [-2, 2] (ChatRWKV's "
                          "alpha_presence)."),
        click.option("--frequency-penalty", type=float, default=0.0, show_default=True,
                     help="Subtract this times a token's count in the output, in [-2, 2] (ChatRWKV's "
                          "alpha_frequency)."),
        click.option("--penalty-decay", type=float, default=1.0, show_default=True,
                     help="Multiply those counts by this after each token, in (0, 1] (ChatRWKV's alpha_decay, 0.996 "
                          "there; 1: plain counts)."),
        click.option("--seed", type=click.IntRange(min=0, max=2**64 - 1), default=0, show_default=True,
                     help="Seed of the sampler's RNG, 0 to 2^64-1; the same seed gives the same text."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


# SamplingParams / StopConditions fields whose option has another name than --field-with-dashes
_OPTION_OF_FIELD = {"stop_strings": "--stop", "stop_token_ids": "--stop-token"}


@contextlib.contextmanager
def _options_named():
    """A ParamError names a runtime field (top_p); on the command line, name the option (--top-p) instead."""
    from rrwkv_trt.runtime.sampler import ParamError

    try:
        yield
    except ParamError as err:
        option = _OPTION_OF_FIELD.get(err.field, "--" + err.field.replace("_", "-"))
        raise UserError(f"{option} must be {err.allowed}, got {err.value!r}") from None


@main.command()
@click.argument("model", type=click.Path(path_type=str))
@click.option("--prompt", default=None, help="Text to continue.")
@click.option("--prompts-file", type=click.Path(exists=True, dir_okay=False, path_type=str), default=None,
              help="Instead of --prompt: continue every line of this UTF-8 file (empty lines skipped) by continuous "
                   "batching, one JSON object per prompt on stdout in input order (README \"Continuous batching\").")
@click.option("--slots", type=click.IntRange(min=1), default=None,
              help="With --prompts-file: the most prompts decoded at once [default: 8].")
@click.option("--max-new-tokens", type=click.IntRange(min=0), default=64, show_default=True)
@_sampling_options
@click.option("--stop", "stop", multiple=True,
              help="Stop before this text, which is not printed (repeatable; matched across tokens). In bash, "
                   "$'\\n\\n' is a blank line.")
@click.option("--stop-token", "stop_token", type=int, multiple=True,
              help="Stop after sampling this token id, whose text is not printed (repeatable; RWKV World and 20B "
                   "tokenizers: 0 ends a document).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="ORT intra-op threads [default: ORT's].")
@click.option("--state-in", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Resume from a state file saved by --state-out with an export (any precision, any backend) of "
                   "the same checkpoint.")
@click.option("--state-out", type=click.Path(dir_okay=False, writable=True, path_type=str), default=None,
              help="Save the state after the prompt and the generated tokens to this file (safetensors; replaced "
                   "atomically, so it may be the --state-in file).")
@click.option("--no-custom-ops", is_flag=True, default=False,
              help="Run the model's rrwkv function bodies instead of the fused kernels of librrwkv_ort_ops.so "
                   "(used automatically when `make plugins` has built it).")
@click.option("--cuda-graph", is_flag=True, default=False,
              help="TensorRT engines: replay each decode step as a captured CUDA graph.")
@click.option("--plugin-library", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="TensorRT engines: librrwkv_trt_plugins_dyn.so [default: the one the engine was built with, if it is in "
                   "the engine's folder or build/ with the sha256 its sidecar recorded].")
def run(model: str, prompt: str | None, prompts_file: str | None, slots: int | None, max_new_tokens: int,
        stop: tuple[str, ...], stop_token: tuple[int, ...], threads: int | None, state_in: str | None,
        state_out: str | None, no_custom_ops: bool, cuda_graph: bool, plugin_library: str | None, **sampling) -> None:
    """Continue PROMPT with MODEL, streaming text to stdout (or every line of --prompts-file, as JSON lines).

    MODEL is a model folder from `rrwkv-trt export` (or its .onnx file), run on ONNX Runtime (CPU), or a TensorRT
    engine (.plan / .engine, from `rrwkv-trt build`), run on the GPU. Sampling applies the penalties, then
    temperature, top-k, top-p and min-p (README "Sampling and stopping"); the defaults are exact greedy decoding."""
    from rrwkv_trt.runtime.backends.ort import OrtSession
    from rrwkv_trt.runtime.decode import Generator
    from rrwkv_trt.runtime.engine import is_engine_path
    from rrwkv_trt.core.paths import resolve_model_path
    from rrwkv_trt.runtime.sampler import Sampler, SamplingParams
    from rrwkv_trt.runtime.resume import Resume
    from rrwkv_trt.runtime.tokenizer import Tokenizer
    from rrwkv_trt.cli import prompts_file as batch

    batch.check_options(prompt, prompts_file, slots, state_in, state_out)
    with _options_named():
        sampler = Sampler(SamplingParams(**sampling))
    if is_engine_path(model):
        from rrwkv_trt.runtime.backends.trt import TrtSession
        from rrwkv_trt.runtime.engine import engine_tokenizer, resolve_engine_path

        if threads is not None or no_custom_ops:
            raise UserError("--threads and --no-custom-ops apply to ONNX Runtime; "
                            f"{model} is a TensorRT engine")
        engine = resolve_engine_path(model)  # a missing engine is reported before a missing tokenizer
        tokenizer = Tokenizer.from_file(engine_tokenizer(engine))
        session = TrtSession(engine, plugin_library=plugin_library, cuda_graph=cuda_graph)
    else:
        if cuda_graph or plugin_library is not None:
            raise UserError(f"--cuda-graph and --plugin-library apply to TensorRT engines; {model} is an ONNX "
                            "model (build an engine with `rrwkv-trt build`)")
        model_path = resolve_model_path(model)  # a missing model is reported before a missing tokenizer
        tokenizer = Tokenizer.from_dir(model_path.parent)
        session = OrtSession(model_path, threads=threads, use_custom_ops=not no_custom_ops)
    with session:
        if prompts_file is not None:
            with _options_named():
                batch.run_prompts_file(session, tokenizer, prompts_file, slots or batch.DEFAULT_SLOTS, max_new_tokens,
                                       sampler.params, stop, stop_token)
            return
        resume = Resume(session, state_in, state_out)
        generator = Generator(resume.session, tokenizer, sampler)
        with _options_named():  # checks the stop conditions; decoding starts with the first piece
            pieces = generator.generate_text(prompt, max_new_tokens, resume.state, stop=stop,
                                             stop_token_ids=stop_token)
        sys.stdout.write(prompt)  # the continuation reads on from the prompt, as in other LM CLIs
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        sys.stdout.flush()
        if state_out is not None:
            resume.save(generator.final_state())



@main.command()
@click.argument("model", type=click.Path(path_type=str))
@click.option("-o", "--output", "engine", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="Engine file to write (.plan or .engine); the sidecar goes beside it as ENGINE.json.")
@click.option("--max-batch", type=click.IntRange(min=1), default=None,
              help="Largest batch of both profiles [default: 8].")
@click.option("--max-seq", type=click.IntRange(min=1), default=None,
              help="Longest prefill call; longer prompts run in chunks [default: 1024].")
@click.option("--plugin-library", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="librrwkv_trt_plugins_dyn.so [default: build/ of this checkout, from `make plugins`].")
@click.option("--compute-capability", default=None,
              help="Target GPU as major.minor (e.g. 8.6). TensorRT-RTX compiles for it; TensorRT builds for the "
                   "GPU it runs on and only checks it.")
@click.option("--tensorrt-rtx", is_flag=True, default=False,
              help="Build with TensorRT-RTX (CPU-only ahead-of-time builder) to check the plugins where no GPU is; "
                   "such an engine runs only on TensorRT-RTX.")
def build(model: str, engine: str, max_batch: int | None, max_seq: int | None, plugin_library: str | None,
          compute_capability: str | None, tensorrt_rtx: bool) -> None:
    """Build a TensorRT engine for MODEL (a model folder from `rrwkv-trt export`, or its .onnx file)."""
    from rrwkv_trt.runtime.engine import build_engine
    from rrwkv_trt.runtime.trt_loader import import_tensorrt_rtx

    trt = import_tensorrt_rtx() if tensorrt_rtx else None
    build_engine(model, engine, max_batch=max_batch, max_seq=max_seq, plugin_library=plugin_library,
                 compute_capability=compute_capability, progress=lambda line: click.echo(line, err=True), trt=trt)


@main.command()
@click.argument("model", type=click.Path(path_type=str))
@click.option("--engine", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Also compare this TensorRT engine (from `rrwkv-trt build`; GPU hosts).")
@click.option("--steps", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Decode steps of the drift check, each backend carrying its own state (0 skips it).")
@click.option("--window", type=click.IntRange(min=1), default=100, show_default=True,
              help="Decode steps per row of the drift table.")
@click.option("--checkpoint", type=click.Path(path_type=str), default=None,
              help="Run this checkpoint's PyTorch model in the drift check as its reference (needs the [export] "
                   "extra) [default: stock ONNX Runtime on the function bodies is the reference].")
@click.option("--custom-ops-library", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="librrwkv_ort_ops.so for the fused-kernel backend [default: build/ of this checkout].")
@click.option("--plugin-library", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="TensorRT engines: librrwkv_trt_plugins_dyn.so [default: the one the engine was built with, if it is in "
                   "the engine's folder or build/ with the sha256 its sidecar recorded].")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="ORT intra-op threads (one: reproducible sums, and no contention on a busy machine).")
@click.option("--all-outputs", is_flag=True, default=False,
              help="List every output in the per-call table [default: logits and each state slot's worst layer].")
def compare(model: str, engine: str | None, steps: int, window: int, checkpoint: str | None,
            custom_ops_library: str | None, plugin_library: str | None, threads: int,
            all_outputs: bool) -> None:
    """Compare ONNX Runtime (function bodies, fused kernels) and TensorRT with the PyTorch reference in
    MODEL/reference/ (written by `python -m rrwkv_trt.reference.writer CHECKPOINT MODEL`), per call and over a long
    decode. MODEL is a model folder from `rrwkv-trt export`. Exit code 1 when any backend is outside
    runtime/tolerances.json."""
    from rrwkv_trt.core.paths import resolve_model_path
    from rrwkv_trt.runtime.compare import run_compare

    with contextlib.ExitStack() as stack:
        pytorch = None
        if checkpoint is not None and steps > 0:
            try:  # the PyTorch reference needs torch; the rest of compare never imports it
                from rrwkv_trt.reference.torch_session import exported_model_info, session_for_export
            except ImportError as err:
                raise UserError(f"--checkpoint needs torch ({err}); pip install 'rrwkv-trt[export]' or leave it "
                                "out (stock ONNX Runtime is then the drift reference)") from None
            model_path = resolve_model_path(model)
            info, _ = exported_model_info(model_path)
            pytorch = stack.enter_context(session_for_export(checkpoint, model_path, info))
        ok = run_compare(model, engine=engine, steps=steps, window=window, pytorch=pytorch,
                         custom_ops_library=custom_ops_library, plugin_library=plugin_library, threads=threads,
                         all_outputs=all_outputs, echo=click.echo)
    if not ok:
        sys.exit(1)


@main.command()
@click.argument("checkpoints", nargs=-1, type=click.Path(exists=True, path_type=str))
@click.option("--random-169m/--no-random-169m", default=True, show_default=True,
              help="Also a seeded random RWKV-4 of the 169M shape (12x768, vocab 50277), generated as a BlinkDL .pth.")
@click.option("--random-hgrn2/--no-random-hgrn2", default=True, show_default=True,
              help="Also a seeded random HGRN2 (12 layers of width 768, expand ratio 128: 6 heads of K = V = 128; "
                   "MLP 2048; vocab 50277), generated as an fla Hugging Face folder.")
@click.option("--backend", "backends", multiple=True, type=click.Choice(BENCH_BACKENDS),
              help="Backends to measure (repeatable) [default: all].")
@click.option("--precision", "precisions", multiple=True, type=click.Choice(PRECISIONS),
              help="ONNX Runtime precisions (repeatable; fp32 always) [default: all].")
@click.option("--reps", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=2, show_default=True,
              help="Threads of every backend and of the bound probes.")
@click.option("--decode-steps", type=click.IntRange(min=1), default=32, show_default=True, help="Steps at batch 1.")
@click.option("--batch", "batches", type=click.IntRange(min=2), multiple=True, default=(8, 16), show_default=True,
              help="A batched decode's size (repeatable).")
@click.option("--batch-steps", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--prefill", "prefill_tokens", type=click.IntRange(min=1), default=512, show_default=True,
              help="Prompt tokens of the prefill and time-to-first-token measurement.")
@click.option("--agreement-steps", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Greedy steps of the w16/int8/int4 vs fp32 agreement check (0: skip it).")
@click.option("--eval-bytes", type=click.IntRange(min=0), default=200_000, show_default=True,
              help="Bytes of the stdlib's held-out split on which every precision's bits per byte is compared with "
                   "fp32 (models with a tokenizer; 0: skip it).")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("build/bench"),
              show_default=True, help="Generated checkpoint and exports (reused while their stamps match).")
@click.option("--results", "results_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("bench/results"), show_default=True, help="Folder of the JSON results.")
@click.option("--fresh", is_flag=True, default=False, help="Re-export every model.")
def bench(checkpoints: tuple[str, ...], random_169m: bool, random_hgrn2: bool, backends: tuple[str, ...],
          precisions: tuple[str, ...], reps: int, threads: int, decode_steps: int, batches: tuple[int, ...],
          batch_steps: int, prefill_tokens: int, agreement_steps: int, eval_bytes: int, work_dir: Path,
          results_dir: Path, fresh: bool) -> None:
    """Decode (batch 1, 8 and 16), prefill and time-to-first-token speed and peak RSS of every backend and precision,
    beside PyTorch eager and the rwkv package (RWKV-4 .pth only), A/B interleaved, against this machine's bandwidth
    and GEMM bounds.

    CHECKPOINTS default to the shipped model; the seeded random RWKV-4 169M and HGRN2 run beside them unless turned
    off. Needs the [export] extra (it exports the models) and, for the rwkv-package baseline, the [dev] extra."""
    from rrwkv_trt.bench.plan import Settings
    from rrwkv_trt.bench.suite import RandomModels, run_bench
    from rrwkv_trt.core.paths import SHIPPED_MODEL

    settings = Settings(reps=reps, threads=threads, decode_steps=decode_steps,
                        batches=tuple(dict.fromkeys(batches)), batch_steps=batch_steps,
                        prefill_tokens=prefill_tokens, agreement_steps=agreement_steps, eval_bytes=eval_bytes)
    precisions = ("fp32", *[p for p in PRECISIONS if p in precisions and p != "fp32"]) if precisions else PRECISIONS
    run_bench([Path(c) for c in checkpoints] or [SHIPPED_MODEL], RandomModels(random_169m, random_hgrn2), work_dir,
              results_dir, backends or BENCH_BACKENDS, precisions, settings, fresh)


main.add_command(eval_command)
main.add_command(triton_repo)
main.add_command(triton_serve)


if __name__ == "__main__":
    main()
