"""What one benchmark run measures: its settings, and a Variant per backend and precision with its samples.

The coordinator (suite.py) fills the Variants; report.py turns them into the JSON and the table.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import click


@dataclass
class Settings:
    reps: int = 5
    threads: int = 2
    decode_steps: int = 32  # batch 1
    batches: tuple[int, ...] = (8, 16)  # the batched decodes' sizes (continuous batching serves through them)
    batch_steps: int = 16
    prefill_tokens: int = 512
    agreement_steps: int = 1000
    agreement_prompt: int = 32
    eval_bytes: int = 200_000  # held-out text of the bits-per-byte check (quality.py); 0 skips it
    seed: int = 0
    started: float = field(default_factory=time.monotonic)  # progress lines show the time since

    def log(self, message: str) -> None:
        click.echo(f"bench: {message} [{time.monotonic() - self.started:.0f} s]", err=True)


@dataclass
class Variant:
    name: str  # "<backend> <precision>", e.g. "ort-kernel int8"
    backend: str
    precision: str
    factory: str  # "module:function" run by the worker
    kwargs: dict
    step_bytes: int  # weight bytes one decode step reads
    state_bytes: int = 0  # one sequence's recurrent state, which a decode step reads and writes
    samples: dict = field(default_factory=dict)  # measure -> list of worker results
    load: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    error: str | None = None
