"""runtime/evaluate.py and `rrwkv-trt eval`: bits per byte and perplexity against a hand computation on the fake model
(tests/fake_model.py: logits = table[input], 10 at the successor (i + 1) % V and 0 elsewhere), independence of the
chunk size (the fake, and the shipped model whose logits depend on its state), the TensorRT path through the
stand-ins, and every refusal."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_trt_backend import fakes, make_sidecar  # noqa: F401 - `fakes` is a fixture

from rrwkv_trt.cli import eval as eval_cli
from rrwkv_trt.cli.main import main
from rrwkv_trt.core.errors import UserError
from rrwkv_trt.core.sidecar import sidecar_path, write_sidecar
from rrwkv_trt.runtime import engine as engine_mod
from rrwkv_trt.runtime import evaluate
from rrwkv_trt.runtime.backends.ort import OrtSession
from rrwkv_trt.runtime.evaluate import EvalResult, evaluate_ids, evaluate_text, nll_sum, read_text_file
from rrwkv_trt.runtime.tokenizer import Tokenizer

V = 256
HIT = math.log(math.exp(10) + V - 1) - 10  # -ln p of the successor: softmax of one 10 among 255 zeros
MISS = math.log(math.exp(10) + V - 1)  # -ln p of any other byte
TEXT = "abcdxyz{ éa"  # byte-level ids; "é" is 2 bytes, 2 tokens (0xC3 0xA9)


def _hand(text: str) -> tuple[float, int, int]:
    """(nats, bytes, scored tokens) of `text` under the fake, counted by hand from its bytes."""
    data = text.encode("utf-8")
    hits = sum(b == (a + 1) % V for a, b in zip(data, data[1:]))
    return hits * HIT + (len(data) - 1 - hits) * MISS, len(data), len(data) - 1


def _eval(*args):
    return CliRunner().invoke(main, ["eval", *map(str, args)])


def _assert_user_error(result, match):
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert lines[-1].startswith("error: ") and match in lines[-1], result.stderr
    assert "Traceback" not in result.output


def test_bits_per_byte_and_perplexity_by_hand(fake_model):
    nats, n_bytes, scored = _hand(TEXT)  # a->b, b->c, c->d, x->y, y->z, z->{ hit; 5 misses
    assert scored == 11 and n_bytes == 12
    with OrtSession(fake_model, use_custom_ops=False) as session:
        result = evaluate_text(session, Tokenizer.from_dir(fake_model), TEXT, chunk=4)
    assert (result.text_bytes, result.tokens, result.scored_tokens) == (12, 12, 11)
    assert result.nats == pytest.approx(nats, rel=1e-12)
    assert result.bits_per_byte == pytest.approx(nats / math.log(2) / 12, rel=1e-12)
    assert result.perplexity == pytest.approx(math.exp(nats / 11), rel=1e-12)
    assert result.to_dict()["bits_per_byte"] == result.bits_per_byte


def test_nll_sum_is_a_stable_float64_log_softmax():
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((300, 7)) * 50 + 1e4).astype(np.float32)  # exp() of these overflows anywhere
    targets = rng.integers(0, 7, 300)
    x = logits.astype(np.float64)
    want = sum(np.logaddexp.reduce(row) - row[t] for row, t in zip(x, targets))  # 300 rows: two float64 blocks
    assert nll_sum(logits, targets) == pytest.approx(want, rel=1e-12)
    assert nll_sum(logits.astype(np.float16), targets) > 0  # fp16 logits are read in float64 too


@pytest.mark.parametrize("chunk", [1, 2, 5, 11, 1024])
def test_chunk_size_does_not_change_the_result(fake_model, chunk):
    nats, _, _ = _hand(TEXT)
    with OrtSession(fake_model, use_custom_ops=False) as session:
        seen = []
        result = evaluate_text(session, Tokenizer.from_dir(fake_model), TEXT, chunk=chunk, progress=seen.append)
    assert result.nats == pytest.approx(nats, rel=1e-12)
    assert sum(seen) == 11 and len(seen) == math.ceil(11 / chunk)


def test_chunk_size_with_a_state_that_matters(shipped_export, ort_backend):
    """The shipped model's logits depend on the state carried between calls: chunks of 7 and 100 tokens give what
    one call over the whole text gives (the state round trip is exact to rounding)."""
    text = Path(evaluate.__file__).read_text()[:1500]
    with OrtSession(shipped_export, prefill_chunk=None, **ort_backend) as session:
        tokenizer = Tokenizer.from_dir(shipped_export)
        whole = evaluate_text(session, tokenizer, text, chunk=10_000)
        for chunk in (7, 100):
            assert evaluate_text(session, tokenizer, text, chunk=chunk).nats == pytest.approx(whole.nats, rel=1e-6)
        logits, _ = session.run(np.asarray([tokenizer.encode(text)]))  # independent: log_softmax of one call's logits
    ids = tokenizer.encode(text)
    x = logits[0, :-1].astype(np.float64)
    ref = float(sum(np.logaddexp.reduce(row) - row[t] for row, t in zip(x, ids[1:])))
    assert whole.nats == pytest.approx(ref, rel=1e-12)
    assert 0.5 < whole.bits_per_byte < 4  # a trained model on its own source, not a uniform 8 bits


def test_refusals_of_the_computation(fake_model):
    with OrtSession(fake_model, use_custom_ops=False) as session:
        with pytest.raises(UserError, match=r"the text has 1 token\(s\); bits per byte needs at least 2"):
            evaluate_ids(session, [5], 1)
        with pytest.raises(UserError, match="chunk must be an int >= 1, got 0"):
            evaluate_ids(session, [5, 6], 2, chunk=0)

    class LastOnly:  # a backend that returns one row per call
        vocab_size = V

        def run(self, ids, state=None, last_only=False):
            return np.zeros((1, 1, V), np.float32), state

    with pytest.raises(UserError, match=r"logits of shape \[1, 256\] for 3 tokens"):
        evaluate_ids(LastOnly(), [1, 2, 3, 4], 4)

    class Poisoned(LastOnly):  # NaN in the logits after the text's token 6
        def __init__(self):
            self.start = 0

        def run(self, ids, state=None, last_only=False):
            out = np.zeros((1, ids.shape[1], V), np.float32)
            if self.start <= 6 < self.start + ids.shape[1]:
                out[0, 6 - self.start, 3] = np.nan
            self.start += ids.shape[1]
            return out, state

    poisoned = Poisoned()
    with pytest.raises(UserError, match="the model's logits after token 6 are not finite"):
        evaluate_ids(poisoned, list(range(20)), 20, chunk=4)


def test_text_files(tmp_path, monkeypatch):
    good = tmp_path / "good.txt"
    good.write_text("héllo", encoding="utf-8")
    assert read_text_file(good).text == "héllo" and not read_text_file(good).truncated
    cut = read_text_file(good, max_bytes=2)  # "h" and the first byte of "é": cut back to "h"
    assert (cut.text, cut.truncated, cut.file_bytes) == ("h", True, 2)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\n\xff\xfeok")
    with pytest.raises(UserError, match=r"bad.txt is not UTF-8: byte 0xff at offset 3 \(invalid start byte\)"):
        read_text_file(bad)
    assert read_text_file(bad, errors="replace").text == "ok\n\ufffd\ufffdok"
    ends_early = tmp_path / "end.txt"
    ends_early.write_bytes("aé".encode()[:-1])
    with pytest.raises(UserError, match="byte 0xc3 at offset 1 \\(unexpected end of data\\)"):
        read_text_file(ends_early)
    monkeypatch.setattr(evaluate, "MAX_TEXT_BYTES", 4)
    with pytest.raises(UserError, match="has more than 4 bytes, the most eval reads whole; pass --max-bytes N"):
        read_text_file(good)
    with pytest.raises(UserError, match="not found"):
        read_text_file(tmp_path / "none.txt")
    with pytest.raises(UserError, match="not found \\(or not a regular file\\)"):
        read_text_file(tmp_path)
    with pytest.raises(UserError, match="errors must be one of"):
        read_text_file(good, errors="ignore")


def test_cli_text_and_json(fake_model, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text(TEXT, encoding="utf-8")
    nats, _, _ = _hand(TEXT)
    result = _eval(fake_model, "--text", text, "--backend", "ort-function", "--chunk", 3)
    assert result.exit_code == 0, result.stderr
    bpb = nats / math.log(2) / 12
    assert f"(fp32, ort-function) on {text}: {bpb:.4f} bits/byte, perplexity {math.exp(nats / 11):.4f}" in result.stdout
    assert "12 bytes, 12 tokens (11 scored, the first is context)" in result.stdout
    record = json.loads(_eval(fake_model, "--text", text, "--backend", "ort-function", "--json",
                              "--max-bytes", 5).stdout)
    assert record["truncated"] and record["text_bytes"] == 5 and record["backend"] == "ort-function"
    assert record["nats"] == pytest.approx(_hand(TEXT[:5])[0], rel=1e-12)
    assert record["precision"] == "fp32" and record["chunk"] == evaluate.DEFAULT_CHUNK


def test_cli_errors(fake_model, tmp_path, monkeypatch):
    text = tmp_path / "t.txt"
    text.write_bytes(b"abc\x80")
    _assert_user_error(_eval(fake_model, "--text", text), "t.txt is not UTF-8: byte 0x80 at offset 3")
    assert _eval(fake_model, "--text", text, "--errors", "replace", "--backend", "ort-function").exit_code == 0
    _assert_user_error(_eval(fake_model, "--text", tmp_path / "no.txt"), "text file")
    text.write_text("a")
    _assert_user_error(_eval(fake_model, "--text", text, "--backend", "ort-function"), "needs at least 2")
    text.write_text("ab")
    _assert_user_error(_eval(fake_model, "--text", text, "--backend", "tensorrt"),
                       "--backend tensorrt does not run")
    _assert_user_error(_eval(fake_model, "--text", text, "--plugin-library", "x.so"),
                       "--plugin-library applies to TensorRT engines")
    monkeypatch.setattr("rrwkv_trt.runtime.backends.ort.find_custom_ops_library", lambda: None)
    _assert_user_error(_eval(fake_model, "--text", text, "--backend", "ort-kernel"),
                       "--backend ort-kernel needs librrwkv_ort_ops.so; build it with `make plugins`")
    assert _eval(fake_model, "--text", text, "--chunk", 0).exit_code == 2  # click's own range check


def test_cli_help_states_the_runtime_defaults():
    assert eval_cli.HELP_DEFAULT_CHUNK == evaluate.DEFAULT_CHUNK
    assert eval_cli.HELP_ERRORS == evaluate.ERRORS
    assert eval_cli.HELP_MAX_MIB << 20 == evaluate.MAX_TEXT_BYTES


def test_cli_tensorrt_through_the_stand_ins(fakes, fake_model, tmp_path):  # noqa: F811
    """An engine path runs TrtSession (the fake TensorRT runs the ONNX graph; max_seq 3 chunks every call): the same
    result as ONNX Runtime."""
    engine = tmp_path / "fake.plan"
    shutil.copyfile(fake_model / "model.onnx", engine)
    write_sidecar(sidecar_path(engine), make_sidecar(fake_model, engine))
    shutil.copyfile(fake_model / "tokenizer.json", engine_mod.engine_tokenizer_path(engine))
    text = tmp_path / "t.txt"
    text.write_text(TEXT, encoding="utf-8")
    record = json.loads(_eval(engine, "--text", text, "--json").stdout)
    assert record["backend"] == "tensorrt" and record["nats"] == pytest.approx(_hand(TEXT)[0], rel=1e-12)
    _assert_user_error(_eval(engine, "--text", text, "--threads", 2), "--threads applies to ONNX Runtime")
    _assert_user_error(_eval(engine, "--text", text, "--backend", "ort-kernel"), "which is a TensorRT engine")


def test_eval_result_arithmetic():
    r = EvalResult(text_bytes=4, tokens=3, scored_tokens=2, nats=2 * math.log(2))
    assert r.bits_per_byte == 0.5 and r.perplexity == pytest.approx(2.0)
