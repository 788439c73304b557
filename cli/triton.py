"""`rrwkv-trt triton-repo` and `rrwkv-trt triton-serve`: a Triton model repository for an export, and the pytriton
wheel's tritonserver started on one (README "Serving with Triton")."""
from __future__ import annotations

import signal
import time
from pathlib import Path

import click

from rrwkv_trt.core.errors import UserError


@click.command("triton-repo")
@click.argument("model", type=click.Path(path_type=str))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(path_type=str),
              help="Repository folder to create (must not exist, or be empty).")
@click.option("--name", default="rrwkv", show_default=True,
              help="Model name; the full-Triton models are NAME_onnx and NAME_trt.")
@click.option("--slots", type=click.IntRange(min=1), default=16, show_default=True,
              help="Sequences the Python model holds at once (and the largest batched step).")
@click.option("--idle-timeout", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Seconds without a request after which a sequence loses its state and slot.")
@click.option("--queue-delay-us", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Microseconds the sequence batcher waits for more sequences' requests to batch together.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="ONNX Runtime intra-op threads of the Python model [default: ORT's].")
@click.option("--engine", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A TensorRT engine of MODEL (`rrwkv-trt build`): the Python model uses it where a GPU is, and it "
                   "becomes NAME_trt/1/model.plan.")
@click.option("--full-triton/--no-full-triton", default=True, show_default=True,
              help="Also write NAME_onnx and NAME_trt: configs with implicit state for the onnxruntime and tensorrt "
                   "backends of a full Triton (they do not run on the pytriton wheel's server).")
def triton_repo(model: str, out_dir: str, name: str, slots: int, idle_timeout: float, queue_delay_us: int,
                threads: int | None, engine: Path | None, full_triton: bool) -> None:
    """Write a Triton model repository serving MODEL (a folder from `rrwkv-trt export`, or its .onnx file)."""
    from rrwkv_trt.serve.repository import RepoOptions, write_repository

    options = RepoOptions(name=name, slots=slots, idle_timeout_s=idle_timeout, queue_delay_us=queue_delay_us,
                          threads=threads, engine=engine, full_triton=full_triton)
    out = write_repository(model, out_dir, options)
    click.echo(f"wrote {out}: serve it with `rrwkv-trt triton-serve {out}`", err=True)


@click.command("triton-serve")
@click.argument("repo", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--model", "models", multiple=True, help="Model to load (repeatable) [default: rrwkv].")
@click.option("--http-port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0: a free port.")
@click.option("--grpc-port", type=click.IntRange(0, 65535), default=8001, show_default=True, help="0: a free port.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=8002, show_default=True, help="0: a free port.")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("build/triton"),
              show_default=True, help="The server's backends folder and server.log.")
@click.option("--ready-timeout", type=click.FloatRange(min=1), default=180.0, show_default=True,
              help="Seconds to wait for the models to load.")
def triton_serve(repo: Path, models: tuple[str, ...], http_port: int, grpc_port: int, metrics_port: int,
                 work_dir: Path, ready_timeout: float) -> None:
    """Run the pytriton wheel's tritonserver on REPO (from `rrwkv-trt triton-repo`), bound to 127.0.0.1, until
    interrupted; prints a client example once the models are ready."""
    from rrwkv_trt.serve.client import client_example
    from rrwkv_trt.serve.launcher import Ports, TritonServer, free_ports

    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the server too, as Ctrl-C does
    names = list(models) or ["rrwkv"]
    wanted = [http_port, grpc_port, metrics_port]
    spare = iter(free_ports(wanted.count(0)))
    ports = Ports(*[p or next(spare) for p in wanted])
    with TritonServer(repo, names, work_dir, ports) as server:
        server.wait_ready(ready_timeout)
        export = repo / names[0] / "1" / "export"
        click.echo(f"tritonserver ready: HTTP {server.http_url}, gRPC {server.grpc_url}, metrics "
                   f"{server.metrics_url}; log {server.log_path}. Ctrl-C stops it. A client:\n", err=True)
        click.echo(client_example(server.grpc_url, names[0], str(export.resolve())))
        try:
            while server.process.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            click.echo("stopping tritonserver", err=True)
            return
    raise UserError(f"tritonserver exited with code {server.process.returncode}:\n{server.log_tail()}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
