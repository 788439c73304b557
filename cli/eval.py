"""`rrwkv-trt eval MODEL --text FILE`: bits per byte and perplexity per token of an export (or engine) on a text.

The text is streamed through the state in chunks (runtime/evaluate.py says exactly what is counted); a progress
bar runs on stderr, the result goes to stdout as a line of text or, with --json, one JSON object.
"""
from __future__ import annotations

import json
import sys
import time

import click

from rrwkv_trt.core.errors import UserError

BACKENDS = ("auto", "ort-kernel", "ort-function", "tensorrt")
# runtime/evaluate.py's DEFAULT_CHUNK, ERRORS and MAX_TEXT_BYTES, written out so that `--help` imports no runtime
# (tests/runtime/test_evaluate.py checks they agree)
HELP_DEFAULT_CHUNK = 1024
HELP_ERRORS = ("strict", "replace")
HELP_MAX_MIB = 64


@click.command("eval")
@click.argument("model", type=click.Path(path_type=str))
@click.option("--text", "text_file", required=True, type=click.Path(path_type=str),
              help=f"UTF-8 text file to score (at most {HELP_MAX_MIB} MiB unless --max-bytes is given).")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True,
              help="auto: TensorRT for an engine (.plan / .engine), else the fused kernels of librrwkv_ort_ops.so "
                   "where `make plugins` built it, else the function bodies, as `run` chooses. ort-kernel refuses to "
                   "fall back.")
@click.option("--chunk", type=click.IntRange(min=1), default=None,
              help="Tokens per session call, the state carried between calls (the result does not depend on it) "
                   f"[default: {HELP_DEFAULT_CHUNK}].")
@click.option("--max-bytes", type=click.IntRange(min=1), default=None,
              help="Score only the file's first N bytes (cut back to a whole character).")
@click.option("--errors", type=click.Choice(HELP_ERRORS), default="strict", show_default=True,
              help="strict: refuse a file that is not UTF-8, naming the byte offset; replace: read undecodable bytes "
                   "as U+FFFD (3 bytes each in the count).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="ORT intra-op threads [default: ORT's].")
@click.option("--plugin-library", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="TensorRT engines: librrwkv_trt_plugins_dyn.so [default: as `run`].")
@click.option("--json", "as_json", is_flag=True, default=False, help="Print one JSON object instead of a line.")
def eval_command(model: str, text_file: str, backend: str, chunk: int | None, max_bytes: int | None, errors: str,
                 threads: int | None, plugin_library: str | None, as_json: bool) -> None:
    """Bits per byte and perplexity per token of MODEL on the text of FILE: the number by which to accept an export
    (a quantized one against its fp32 export, say).

    MODEL is a model folder from `rrwkv-trt export` (or its .onnx file) or a TensorRT engine. The first token is
    context only; bits per byte divides the cross-entropy of the others by the UTF-8 bytes of the whole text
    (README "Quality of an export")."""
    from rrwkv_trt.runtime.evaluate import DEFAULT_CHUNK, evaluate_ids, read_text_file

    chunk = DEFAULT_CHUNK if chunk is None else chunk
    text = read_text_file(text_file, max_bytes, errors)  # a bad text file is refused before a model loads
    session, tokenizer, used = open_session(model, backend, threads, plugin_library)
    with session:
        tokenizer.check_fits(session.vocab_size)
        ids = tokenizer.encode(text.text)
        start = time.perf_counter()
        with click.progressbar(length=max(len(ids) - 1, 0), label="eval", file=sys.stderr) as bar:
            result = evaluate_ids(session, ids, len(text.text.encode("utf-8")), chunk, progress=bar.update)
        seconds = time.perf_counter() - start
    record = {"model": model, "text": text.source, "backend": used, "precision": session.info.precision,
              "chunk": chunk, "max_bytes": max_bytes, "truncated": text.truncated, "errors": errors,
              **result.to_dict(), "seconds": round(seconds, 3),
              "tokens_per_s": round(result.scored_tokens / seconds, 1) if seconds > 0 else None}
    click.echo(json.dumps(record) if as_json else summary_line(record, result))


def summary_line(record: dict, result) -> str:
    """The one line of text output; `result` is the EvalResult behind `record`."""
    cut = f" (its first {record['max_bytes']:,} bytes)" if record["truncated"] else ""
    return (f"{record['model']} ({record['precision']}, {record['backend']}) on {record['text']}{cut}: "
            f"{result.bits_per_byte:.4f} bits/byte, perplexity {result.perplexity:.4f} per token; "
            f"{result.text_bytes:,} bytes, {result.tokens:,} tokens ({result.scored_tokens:,} scored, the first is "
            f"context); {record['seconds']:.1f} s")


def open_session(model: str, backend: str, threads: int | None, plugin_library: str | None):
    """(session, tokenizer, backend name) for MODEL, chosen as `run` chooses; UserError where `backend` does not
    fit MODEL or the options."""
    from rrwkv_trt.runtime.engine import is_engine_path
    from rrwkv_trt.runtime.tokenizer import Tokenizer

    engine_given = is_engine_path(model)
    if backend != "auto" and engine_given != (backend == "tensorrt"):
        kind = "a TensorRT engine" if engine_given else "an ONNX model"
        raise UserError(f"--backend {backend} does not run {model}, which is {kind}; TensorRT runs engines "
                        "(`rrwkv-trt build`), ONNX Runtime runs export folders")
    if engine_given:
        from rrwkv_trt.runtime.backends.trt import TrtSession
        from rrwkv_trt.runtime.engine import engine_tokenizer, resolve_engine_path

        if threads is not None:
            raise UserError(f"--threads applies to ONNX Runtime; {model} is a TensorRT engine")
        engine = resolve_engine_path(model)
        tokenizer = Tokenizer.from_file(engine_tokenizer(engine))
        return TrtSession(engine, plugin_library=plugin_library), tokenizer, "tensorrt"
    return _ort_session(model, backend, threads, plugin_library)


def _ort_session(model: str, backend: str, threads: int | None, plugin_library: str | None):
    from rrwkv_trt.core.paths import resolve_model_path
    from rrwkv_trt.runtime.backends.ort import CUSTOM_OPS_LIBRARY, OrtSession, find_custom_ops_library
    from rrwkv_trt.runtime.tokenizer import Tokenizer

    if plugin_library is not None:
        raise UserError(f"--plugin-library applies to TensorRT engines; {model} is an ONNX model")
    model_path = resolve_model_path(model)
    tokenizer = Tokenizer.from_dir(model_path.parent)
    if backend == "ort-kernel" and find_custom_ops_library() is None:
        raise UserError(f"--backend ort-kernel needs {CUSTOM_OPS_LIBRARY}; build it with `make plugins` (or use "
                        "--backend ort-function)")
    session = OrtSession(model_path, threads=threads, use_custom_ops=backend != "ort-function")
    return session, tokenizer, "ort-kernel" if session.custom_ops_library is not None else "ort-function"
