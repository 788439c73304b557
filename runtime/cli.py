"""The `rrwkv-trt` command. Every user error becomes one `error: ...` line on stderr and exit code 2."""
from __future__ import annotations

import sys

import click

from .errors import UserError

EXIT_USER_ERROR = 2


class RrwkvGroup(click.Group):
    """Turns a UserError raised by any subcommand into a one-line message and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as err:
            message = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
            click.echo(f"error: {message}", err=True)
            ctx.exit(EXIT_USER_ERROR)


@click.group(cls=RrwkvGroup)
def main() -> None:
    """RWKV-4 / RRWKV models exported to ONNX: decode on ONNX Runtime."""


@main.command()
@click.argument("checkpoint", type=click.Path(path_type=str))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(path_type=str),
              help="Folder to create: model.onnx, config.json and, if known, tokenizer.json.")
@click.option("--family", default=None, help="Model family (rwkv4 or rrwkv) [default: detected from the keys].")
@click.option("--tokenizer", default=None, type=click.Path(dir_okay=False, path_type=str),
              help="tokenizer.json to ship beside the model [default: the one beside the checkpoint].")
def export(checkpoint: str, out_dir: str, family: str | None, tokenizer: str | None) -> None:
    """Export CHECKPOINT (BlinkDL .pth, .safetensors, or a folder) to ONNX in OUT_DIR."""
    try:  # export needs torch; the runtime never imports it unless this command runs
        from rrwkv_trt.export.checkpoint import load_checkpoint
        from rrwkv_trt.export.onnx_export import export_checkpoint
    except ImportError as err:
        raise UserError(f"export needs the [export] extra ({err}); pip install 'rrwkv-trt[export]'") from None
    click.echo(f"loading {checkpoint}", err=True)
    ckpt = load_checkpoint(checkpoint, family)
    cfg = ckpt.config
    click.echo(f"{cfg.family}: {cfg.n_layer} layers, width {cfg.n_embd}, vocab {cfg.vocab_size}; tracing to ONNX",
               err=True)
    out = export_checkpoint(ckpt, out_dir, tokenizer)
    if not (out / "tokenizer.json").is_file():
        click.echo("note: no tokenizer exported; `run` will need one (re-export with --tokenizer FILE)", err=True)
    click.echo(f"wrote {out / 'model.onnx'}", err=True)


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--prompt", required=True, help="Text to continue.")
@click.option("--max-new-tokens", type=click.IntRange(min=0), default=64, show_default=True)
@click.option("--temperature", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="0 is greedy.")
@click.option("--top-p", type=click.FloatRange(min=0.0, max=1.0, min_open=True), default=1.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="ORT intra-op threads [default: ORT's].")
@click.option("--state-in", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Start from a state .npz saved by --state-out.")
@click.option("--state-out", type=click.Path(dir_okay=False, writable=True, path_type=str), default=None,
              help="Save the state after the prompt and the generated tokens to this .npz.")
@click.option("--no-custom-ops", is_flag=True, default=False,
              help="Run the model's rrwkv function bodies instead of the fused kernels of librrwkv_ort_ops.so "
                   "(used automatically when `make plugins` has built it).")
def run(out_dir: str, prompt: str, max_new_tokens: int, temperature: float, top_p: float, seed: int,
        threads: int | None, state_in: str | None, state_out: str | None, no_custom_ops: bool) -> None:
    """Continue PROMPT with the model in OUT_DIR (ONNX Runtime, CPU), streaming text to stdout."""
    from .backends.ort import OrtSession, resolve_model_path
    from .decode import Generator
    from .sampler import Sampler
    from .state import load_state, save_state
    from .tokenizer import Tokenizer

    resolve_model_path(out_dir)  # a missing model is reported before a missing tokenizer
    tokenizer = Tokenizer.from_dir(out_dir)
    sampler = Sampler(temperature=temperature, top_p=top_p, seed=seed)
    with OrtSession(out_dir, threads=threads, use_custom_ops=not no_custom_ops) as session:
        state = None if state_in is None else load_state(state_in, session.spec, batch=1)
        generator = Generator(session, tokenizer, sampler)
        sys.stdout.write(prompt)  # the continuation reads on from the prompt, as in other LM CLIs
        for piece in generator.generate_text(prompt, max_new_tokens, state):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        sys.stdout.flush()
        if state_out is not None:
            save_state(state_out, session.spec, generator.final_state())


if __name__ == "__main__":
    main()
