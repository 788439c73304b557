"""bench/context_scaling.py on tiny models: one row per model and context, the state of the ∞-former flat and the
plain model's growing with its window, the JSON written atomically (the timing is the bench's, not asserted)."""
import json

import pytest

pytest.importorskip("torch", reason="the bench exports its models ([export] extra)")

from rrwkv_trt.bench import context_scaling as cs  # noqa: E402


def test_rows_and_growth(tmp_path, monkeypatch):
    monkeypatch.setattr(cs, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(cs, "SIZES", dict(vocab_size=61, n_layer=1, d_model=16, n_head=2, d_ff=32))
    monkeypatch.setattr(cs, "LTM", dict(window=8, segment_len=4, num_basis=6, num_samples=4))
    monkeypatch.setattr(cs, "PLAIN_STEPS", 3)
    out = tmp_path / "result.json"
    assert cs.main(["--contexts", "64", "16", "--threads", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = {(r["model"], r["context"]): r for r in result["rows"]}
    assert set(rows) == {("inftyformer", 16), ("inftyformer", 64), ("plain-window-16", 16), ("plain-window-64", 64)}
    assert rows["inftyformer", 16]["steps"] == 4  # one segment: one memory update inside the mean
    assert rows["inftyformer", 16]["state_bytes"] == rows["inftyformer", 64]["state_bytes"]
    assert rows["plain-window-64", 64]["state_bytes"] == 4 * rows["plain-window-16", 16]["state_bytes"] - 3 * 8
    growth = result["growth_last_over_first"]
    assert growth["inftyformer"]["state_bytes_ratio"] == 1.0 and growth["plain"]["context_ratio"] == 4.0
    assert not list(tmp_path.glob("*.tmp"))
