import numpy as np
import pytest

from rrwkv_trt.core.errors import UserError
from rrwkv_trt.runtime.sampler import MIN_TEMPERATURE, Sampler


def _logits(seed: int, n: int = 500) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=n).astype(np.float32)


@pytest.mark.parametrize("seed", range(5))
def test_greedy_is_argmax(seed):
    logits = _logits(seed)
    assert Sampler(temperature=0.0).sample(logits) == int(np.argmax(logits))


def test_greedy_draws_nothing_from_rng():
    sampler = Sampler(seed=3)
    before = sampler.rng.bit_generator.state
    sampler.sample(_logits(0))
    assert sampler.rng.bit_generator.state == before


def test_seeded_sampling_is_reproducible():
    logits = _logits(1)
    a = [Sampler(temperature=1.0, top_p=0.9, seed=7).sample(logits) for _ in range(3)]
    s1, s2 = Sampler(temperature=1.0, seed=7), Sampler(temperature=1.0, seed=7)
    assert [s1.sample(logits) for _ in range(50)] == [s2.sample(logits) for _ in range(50)]
    assert len(set(a)) == 1


def test_temperature_sampling_follows_softmax():
    logits = np.log(np.array([0.5, 0.3, 0.2, 0.0], np.float32) + 1e-30)
    sampler = Sampler(temperature=1.0, seed=0)
    counts = np.bincount([sampler.sample(logits) for _ in range(4000)], minlength=4)
    np.testing.assert_allclose(counts / 4000, [0.5, 0.3, 0.2, 0.0], atol=0.03)


def test_top_p_restricts_support():
    probs = np.array([0.05, 0.5, 0.3, 0.1, 0.05], np.float32)
    logits = np.log(probs)
    sampler = Sampler(temperature=1.0, top_p=0.75, seed=0)
    seen = {sampler.sample(logits) for _ in range(2000)}
    assert seen == {1, 2}  # 0.5 + 0.3 reaches 0.75; 0.5 alone does not
    tiny = Sampler(temperature=1.0, top_p=1e-6, seed=0)
    assert {tiny.sample(logits) for _ in range(200)} == {1}  # the nucleus always keeps the top token


def test_float16_logits_and_reused_buffers():
    sampler = Sampler(temperature=0.7, top_p=0.95, seed=0)
    for n in (7, 500, 7):
        token = sampler.sample(_logits(n, n).astype(np.float16))
        assert 0 <= token < n


@pytest.mark.parametrize("kwargs, match", [
    (dict(temperature=-1.0), "temperature must be 0 "),
    (dict(temperature=float("nan")), "temperature must be 0 "),
    (dict(temperature=float("inf")), "temperature must be 0 "),
    (dict(temperature=1e-320), r"temperature must be 0 \(greedy\) or a finite number >= 1e-06, got 1e-320"),
    (dict(seed=-1), r"seed must be an int >= 0 \(or None to seed from the OS\), got -1"),
    (dict(seed=1.5), "seed must be an int >= 0"),
    (dict(top_p=0.0), r"top_p must be in \(0, 1\]"),
    (dict(top_p=1.5), r"top_p must be in \(0, 1\]"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(UserError, match=match):
        Sampler(**kwargs)


def test_smallest_temperature_samples_the_top_token():
    """At MIN_TEMPERATURE the scaled logits span hundreds of thousands: no overflow, no NaN, the top token wins
    (before, 1e-320 made every probability NaN and the sampler emitted token V-1 forever)."""
    logits = np.array([0.0, 3.0, -2.0, 1.0], np.float32)
    for top_p in (1.0, 0.5):
        sampler = Sampler(temperature=MIN_TEMPERATURE, top_p=top_p, seed=0)
        assert {sampler.sample(logits) for _ in range(20)} == {1}


def test_extreme_logits_do_not_overflow():
    logits = np.array([-3e38, 3e38, 0.0], np.float32)  # float32's ends: shifted by the max they stay finite
    sampler = Sampler(temperature=0.5, seed=0)
    assert {sampler.sample(logits) for _ in range(20)} == {1}
