"""`rrwkv-trt run MODEL --prompts-file FILE`: every prompt of FILE continued by continuous batching
(runtime/scheduler.py), one JSON object per prompt on stdout.

- FILE is UTF-8 (a leading BOM is dropped), one prompt per line ("\\n" or "\\r\\n"); empty lines are skipped, a line of
  spaces is a prompt.
- Each prompt samples with the command's options and its own Sampler seeded with --seed, so a line's output is what
  `run --prompt LINE` with the same options prints after the prompt.
- Output is in input order: {"index": the prompt's 0-based line number in FILE, "prompt", "text" (the continuation,
  as `run` streams it: no stop token's text, nothing from a stop string on), "token_ids" (every sampled id, a stop
  token's included), "finish_reason" ("stop_token", "stop_string" or "max_tokens")}. A line is written as soon as
  its prompt and every earlier one have finished; a progress bar counts finished prompts on stderr. U+0085, U+2028
  and U+2029 are written as \\u escapes, so that any reader sees one record per line.
- A prompt cannot hold a line break; use `run --prompt` (or the Python API: runtime/scheduler.py) for those.
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.runtime.decode import Session
from rrwkv_trt.runtime.sampler import ParamError, SamplingParams
from rrwkv_trt.runtime.scheduler import ContinuousBatcher, Event, Request
from rrwkv_trt.runtime.stopping import StopConditions, StopStringFilter
from rrwkv_trt.runtime.tokenizer import Tokenizer

# --slots' default: the batch TensorRT engines are built for by default (`build --max-batch`)
DEFAULT_SLOTS = 8


# JSON leaves these unescaped, but str.splitlines (and other readers) break lines at them: one record per line needs
# them escaped. Control characters, "\n" among them, json.dumps escapes itself.
_LINE_BREAKS = {ord(c): f"\\u{ord(c):04x}" for c in "\x85\u2028\u2029"}


def check_options(prompt: str | None, prompts_file: str | None, slots: int | None, state_in: str | None,
                  state_out: str | None) -> None:
    """`run` takes --prompt or --prompts-file; --slots goes with the file, the state files with the single prompt."""
    if (prompt is None) == (prompts_file is None):
        raise UserError("run needs --prompt TEXT or --prompts-file FILE (one of them)")
    if prompts_file is None and slots is not None:
        raise UserError("--slots applies to --prompts-file")
    if prompts_file is not None and (state_in or state_out):
        raise UserError("--state-in / --state-out apply to a single --prompt, not to --prompts-file")


def read_prompts(path: str | os.PathLike) -> list[tuple[int, str]]:
    """The prompts of FILE as (0-based line number, text), empty lines left out; UserError naming a line that is not
    UTF-8."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise UserError(f"{path} line {line} is not UTF-8 ({err.reason} at byte {err.start}); save the file as "
                        "UTF-8") from None
    # split on "\n" only: str.splitlines would also split a prompt at U+2028, form feeds and other separators
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    return [(i, line) for i, line in enumerate(lines) if line]


class _Continuation:
    """One prompt's output, built from its events as `run` streams text (runtime/stopping.py TextStream)."""

    def __init__(self, index: int, prompt: str, tokenizer: Tokenizer, stop: Sequence[str]) -> None:
        self.index, self.prompt = index, prompt
        self.text = ""
        self.token_ids: list[int] = []
        self.finish_reason: str | None = None
        self._decoder = tokenizer.stream()
        self._filter = StopStringFilter(stop)

    def push(self, event: Event) -> bool:
        """Take the request's next event. Returns: True when the output is complete (finished, or a stop string)."""
        if event.token_id is not None:
            self.token_ids.append(event.token_id)
            if event.finish_reason != "stop_token":  # a stop token's text is not shown
                self.text += self._filter.push(self._decoder.step(event.token_id))
        if self._filter.hit:
            self.finish_reason = "stop_string"
            return True
        if event.finished:
            tail = self._filter.push(self._decoder.finish())
            self.text += tail + ("" if self._filter.hit else self._filter.flush())
            self.finish_reason = "stop_string" if self._filter.hit else event.finish_reason
        return event.finished

    def record(self) -> dict:
        return {"index": self.index, "prompt": self.prompt, "text": self.text, "token_ids": self.token_ids,
                "finish_reason": self.finish_reason}


def run_prompts_file(session: Session, tokenizer: Tokenizer, path: str | os.PathLike, slots: int,
                     max_new_tokens: int, params: SamplingParams, stop: Sequence[str] = (),
                     stop_token_ids: Sequence[int] = ()) -> None:
    """Continue every prompt of `path` over `slots` state slots and write the JSON lines (module docstring).

    Raises ParamError for a bad stop condition (the CLI names the option) and UserError naming a bad line.
    """
    tokenizer.check_fits(session.vocab_size)
    _check_stops(max_new_tokens, stop, stop_token_ids, session.vocab_size)
    prompts = read_prompts(path)
    batcher = ContinuousBatcher(session, slots)
    outputs = {}
    for index, prompt in prompts:
        try:
            batcher.submit(Request(index, tokenizer.encode(prompt), max_new_tokens, params, tuple(stop_token_ids)))
        except UserError as err:
            raise UserError(f"{path} line {index + 1}: {err}") from None
        outputs[index] = _Continuation(index, prompt, tokenizer, stop)
    order = [index for index, _ in prompts]
    written = 0
    with click.progressbar(length=len(prompts), label="prompts", file=sys.stderr) as bar:
        while batcher.unfinished:
            for event in batcher.step():
                output = outputs[event.request_id]
                if output.finish_reason is None and output.push(event):  # a stop string ends it before its last event
                    _end(batcher, event.request_id)
                    bar.update(1)
            written = _write_ready(outputs, order, written)


def _check_stops(max_new_tokens: int, stop: Sequence[str], stop_token_ids: Sequence[int], vocab: int) -> None:
    conditions = StopConditions(max_new_tokens, tuple(stop), tuple(stop_token_ids))
    if any(i >= vocab for i in conditions.stop_token_ids):  # an id the model can never sample
        raise ParamError("stop_token_ids", f"token ids in [0, {vocab - 1}] (the model's vocabulary)",
                         conditions.stop_token_ids)


def _end(batcher: ContinuousBatcher, index: int) -> None:
    """A complete output: drop its request from the batcher, which may still run it when a stop string ended it."""
    if index in batcher.results:
        del batcher.results[index], batcher.finish_reasons[index]
    else:
        batcher.cancel(index)


def _write_ready(outputs: dict[int, _Continuation], order: list[int], written: int) -> int:
    """Write the outputs from order[written] on that are complete, stopping at the first that is not.
    Returns: how many of `order` are written."""
    while written < len(order) and outputs[order[written]].finish_reason is not None:
        record = outputs.pop(order[written]).record()
        sys.stdout.write(json.dumps(record, ensure_ascii=False).translate(_LINE_BREAKS) + "\n")
        sys.stdout.flush()
        written += 1
    return written
