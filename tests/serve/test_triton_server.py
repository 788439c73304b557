"""A real tritonserver (the nvidia-pytriton wheel's) serving the shipped model through the Python-backend model:
concurrent sequences get exactly their local greedy continuations, batched; slots are freed at END and after the idle
timeout; bad requests get Triton errors while the other sequences go on."""
from __future__ import annotations

import contextlib
import io
import threading
import time
import urllib.request

import numpy as np
import pytest

from triton_settings import CHECK_SUFFIX, IDLE_TIMEOUT_S, SLOTS

grpc = pytest.importorskip("tritonclient.grpc", reason="the serving tests need tritonclient (Makefile venv step)")
from tritonclient.utils import InferenceServerException  # noqa: E402

from rrwkv_trt.runtime.backends.ort import OrtSession  # noqa: E402
from rrwkv_trt.runtime.decode import Generator  # noqa: E402
from rrwkv_trt.runtime.sampler import Sampler  # noqa: E402
from rrwkv_trt.serve.client import SequenceClient, client_example  # noqa: E402

TEXT = (b"import os\nimport sys\n\n\ndef main(argv):\n"
        b"    for name in sorted(os.listdir(argv[1])):\n        print(name)\n")
NEW_TOKENS = 24
_ids = iter(range(1000, 1_000_000))  # correlation ids, unique across the tests of the session
_ids_lock = threading.Lock()


def new_id() -> int:
    with _ids_lock:
        return next(_ids)


@pytest.fixture(scope="module")
def local(shipped_export):
    """The reference: the same export run locally, one sequence at a time."""
    with OrtSession(shipped_export, threads=1) as session:
        yield session


def greedy(session, prompt: list[int], n: int = NEW_TOKENS) -> list[int]:
    return Generator(session).greedy_ids(prompt, n)


def client(server):
    return grpc.InferenceServerClient(server.grpc_url)


def generate(seq: SequenceClient, prompt: list[int], n: int = NEW_TOKENS, end: bool = True) -> list[int]:
    tokens = [seq.start(prompt)]
    while len(tokens) < n:
        tokens.append(seq.step(tokens[-1], end=end and len(tokens) == n - 1))
    return tokens


def metrics(server) -> dict[str, float]:
    """The rrwkv_* samples of the metrics endpoint: {'rrwkv_slots{kind="live",model="rrwkv"}': 2.0, ...}."""
    with urllib.request.urlopen(server.metrics_url, timeout=5) as reply:
        lines = reply.read().decode().splitlines()
    return {k: float(v) for k, v in (line.rsplit(" ", 1) for line in lines if line.startswith("rrwkv_"))}


def live(server) -> float:
    return metrics(server)['rrwkv_slots{kind="live",model="rrwkv"}']


def counter(server, name: str) -> float:
    return metrics(server)[f'rrwkv_{name}{{model="rrwkv"}}']


def test_concurrent_sequences_get_their_greedy_continuations_in_batched_steps(triton_server, local):
    prompts = [list(TEXT[i % 7: i % 7 + 1 + 3 * i]) for i in range(16)]  # 1 to 46 tokens, different starts
    expected = [greedy(local, p) for p in prompts]
    got: list[list[int] | Exception] = [[] for _ in prompts]
    barrier = threading.Barrier(len(prompts))
    calls, tokens = counter(triton_server, "step_calls_total"), counter(triton_server, "step_tokens_total")

    def run(i: int) -> None:
        try:
            seq = SequenceClient(client(triton_server), new_id())
            barrier.wait(timeout=30)
            got[i] = generate(seq, prompts[i])
        except Exception as err:  # reported by the assertion below, with the others' results
            got[i] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert got == expected
    steps = counter(triton_server, "step_calls_total") - calls
    batched = (counter(triton_server, "step_tokens_total") - tokens) / steps
    # 16 sequences in lock step: most steps carry most of them (one at a time would be 1.0; 13.7 measured)
    assert batched > 8, f"{batched:.2f} tokens per batched step"
    assert live(triton_server) == 0


def test_a_sequence_resumed_after_others_ran_continues_exactly(triton_server, local):
    prompt = list(TEXT[:20])
    seq = SequenceClient(client(triton_server), new_id())
    tokens = [seq.start(prompt)]
    for _ in range(7):
        tokens.append(seq.step(tokens[-1]))
    for i in range(3):  # other sequences run, alone, in between
        other = list(TEXT[5 * i: 5 * i + 9])
        assert generate(SequenceClient(client(triton_server), new_id()), other, 8) == greedy(local, other, 8)
    while len(tokens) < NEW_TOKENS:
        tokens.append(seq.step(tokens[-1], end=len(tokens) == NEW_TOKENS - 1))
    assert tokens == greedy(local, prompt)


def test_end_frees_the_slot(triton_server):
    before, closed = live(triton_server), counter(triton_server, "slots_closed_total")
    seq = SequenceClient(client(triton_server), new_id())
    seq.start(list(TEXT[:5]))
    assert live(triton_server) == before + 1
    seq.end()
    assert live(triton_server) == before
    assert counter(triton_server, "slots_closed_total") == closed + 1


def test_idle_timeout_frees_the_slot(triton_server):
    before, expired = live(triton_server), counter(triton_server, "slots_expired_total")
    seq = SequenceClient(client(triton_server), new_id())
    seq.start(list(TEXT[:5]))
    assert live(triton_server) == before + 1
    deadline = time.monotonic() + IDLE_TIMEOUT_S + 5  # the reaper looks every second
    while live(triton_server) > before and time.monotonic() < deadline:
        time.sleep(0.25)
    assert live(triton_server) == before
    assert counter(triton_server, "slots_expired_total") == expired + 1
    with pytest.raises(InferenceServerException, match="START"):  # Triton has forgotten it too
        seq.step(1)


def test_bad_requests_get_errors_and_the_others_go_on(triton_server, local):
    prompt = list(TEXT[:12])
    good = SequenceClient(client(triton_server), new_id())
    tokens = [good.start(prompt)]
    raw = client(triton_server)
    for request, message in [
        (dict(sequence_id=new_id()), "START"),  # a sequence that never started (Triton's own check)
        (dict(sequence_id=new_id(), sequence_start=True, ids=[[1, 999]]), "outside the model's vocabulary"),
        (dict(sequence_id=new_id(), sequence_start=True, ids=[[1, 2]], dtype="INT32"), "INT32"),
        (dict(sequence_id=new_id(), sequence_start=True, ids=[[1, 2], [3, 4]]), "batch-size 1"),  # one sequence
        (dict(sequence_id=new_id(), sequence_start=True, ids=[[[1, 2]]]), "input_ids"),
        (dict(sequence_id=good.sequence_id, ids=[[-1]]), "outside the model's vocabulary"),
        (dict(sequence_id=new_id(), sequence_start=True, ids=[[1]], temperature=-1.0), "temperature"),
    ]:
        with pytest.raises(InferenceServerException, match=message):
            _raw_infer(raw, **request)
        tokens.append(good.step(tokens[-1]))  # the good sequence goes on between the bad requests
    while len(tokens) < NEW_TOKENS:
        tokens.append(good.step(tokens[-1]))
    good.end()
    assert tokens == greedy(local, prompt)


def test_more_live_sequences_than_slots_are_refused(triton_server, local):
    before = live(triton_server)
    seqs = [SequenceClient(client(triton_server), new_id()) for _ in range(SLOTS - int(before))]
    for seq in seqs:
        seq.start([1, 2, 3])
    extra = SequenceClient(client(triton_server), new_id())
    with pytest.raises(InferenceServerException, match=f"all {SLOTS} state slots"):
        extra.start([1, 2, 3])
    extra.end()  # releases Triton's side of the refused sequence
    for seq in seqs:
        seq.end()
    prompt = list(TEXT[:9])  # a slot is free again
    assert generate(SequenceClient(client(triton_server), new_id()), prompt) == greedy(local, prompt)


def test_sampling_inputs_at_start_sample_as_a_local_sampler_does(triton_server, local):
    prompt, params = list(TEXT[:10]), dict(temperature=0.9, top_p=0.95, seed=7)
    seq = SequenceClient(client(triton_server), new_id())
    tokens = [seq.start(prompt, **params)]
    while len(tokens) < NEW_TOKENS:
        tokens.append(seq.step(tokens[-1], end=len(tokens) == NEW_TOKENS - 1))
    expected = list(Generator(local, sampler=Sampler(**params)).generate_ids(prompt, NEW_TOKENS))
    assert tokens == expected
    later = SequenceClient(client(triton_server), new_id())
    later.start(prompt)
    with pytest.raises(InferenceServerException, match="sequence_start only"):
        _raw_infer(client(triton_server), later.sequence_id, ids=[[1]], temperature=0.5)
    later.end()


def test_the_client_example_prints_the_greedy_continuation(triton_server, local, shipped_export):
    code = client_example(triton_server.grpc_url, "rrwkv", str(shipped_export))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "client_example", "exec"), {})  # noqa: S102 - the README's client, as printed
    from rrwkv_trt.runtime.tokenizer import Tokenizer

    tokenizer = Tokenizer.from_dir(shipped_export)
    assert out.getvalue() == tokenizer.decode(greedy(local, tokenizer.encode("import "), 32)) + "\n"


def test_triton_loads_the_full_triton_configs_with_their_states(triton_server):
    raw = client(triton_server)
    for kind in ("onnx", "trt"):
        assert raw.is_model_ready(f"rrwkv_{kind}{CHECK_SUFFIX}")


def _raw_infer(raw, sequence_id: int, ids=None, dtype: str = "INT64", sequence_start: bool = False, **sampling):
    inputs = []
    if ids is not None:
        array = np.array(ids, dtype=np.int64 if dtype == "INT64" else np.int32)
        inputs.append(grpc.InferInput("input_ids", list(array.shape), dtype))
        inputs[-1].set_data_from_numpy(array)
    inputs += [_scalar(name, value) for name, value in sampling.items()]
    return raw.infer("rrwkv", inputs, sequence_id=sequence_id, sequence_start=sequence_start)


def _scalar(name: str, value: float):
    tensor = grpc.InferInput(name, [1, 1], "FP32")
    tensor.set_data_from_numpy(np.array([[value]], dtype=np.float32))
    return tensor
