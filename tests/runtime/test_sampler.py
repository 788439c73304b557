"""SamplingParams validation, each step of the sampling order, penalties against ChatRWKV's loop, seeds, batches."""
import numpy as np
import pytest

from rrwkv_trt.runtime.sampler import MIN_TEMPERATURE, ParamError, Sampler, SamplingParams, _top_p, sample_rows


def _logits(seed: int, n: int = 500) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=n).astype(np.float32)


def _support(sampler: Sampler, logits: np.ndarray, draws: int = 2000) -> set[int]:
    return {sampler.sample(logits) for _ in range(draws)}


@pytest.mark.parametrize("seed", range(5))
def test_greedy_is_argmax(seed):
    logits = _logits(seed)
    assert Sampler(temperature=0.0).sample(logits) == int(np.argmax(logits))
    assert Sampler().sample(logits) == int(np.argmax(logits))  # the default is greedy


def test_greedy_draws_nothing_from_rng():
    sampler = Sampler(seed=3, top_k=5, repetition_penalty=1.3)
    before = sampler.rng.bit_generator.state
    sampler.sample(_logits(0))
    assert sampler.rng.bit_generator.state == before


def test_one_draw_per_token_whatever_the_filters():
    """Each sampled token takes exactly one number from the RNG, so filters never shift later draws."""
    logits = _logits(2)
    plain, filtered = Sampler(temperature=1.0, seed=5), Sampler(temperature=1.0, top_k=3, min_p=0.2, seed=5)
    for _ in range(10):
        plain.sample(logits)
        filtered.sample(logits)
    assert plain.rng.bit_generator.state == filtered.rng.bit_generator.state


def test_seeded_sampling_is_reproducible():
    logits = _logits(1)
    params = SamplingParams(temperature=1.0, top_p=0.9, top_k=50, min_p=0.01, presence_penalty=0.3, seed=7)
    s1, s2 = Sampler(params), Sampler(params)
    first = [s1.sample(logits) for _ in range(50)]
    assert first == [s2.sample(logits) for _ in range(50)]
    other = Sampler(SamplingParams(temperature=1.0, top_p=0.9, seed=8))
    assert first != [other.sample(logits) for _ in range(50)]


def test_temperature_sampling_follows_softmax():
    logits = np.log(np.array([0.5, 0.3, 0.2, 0.0], np.float32) + 1e-30)
    sampler = Sampler(temperature=1.0, seed=0)
    counts = np.bincount([sampler.sample(logits) for _ in range(4000)], minlength=4)
    np.testing.assert_allclose(counts / 4000, [0.5, 0.3, 0.2, 0.0], atol=0.03)


def test_temperature_sharpens():
    logits = np.log(np.array([0.5, 0.3, 0.2], np.float32))
    sampler = Sampler(temperature=0.5, seed=0)  # probabilities ∝ p^2: 0.658, 0.237, 0.105
    counts = np.bincount([sampler.sample(logits) for _ in range(4000)], minlength=3)
    np.testing.assert_allclose(counts / 4000, [0.658, 0.237, 0.105], atol=0.03)


def test_top_p_restricts_support():
    logits = np.log(np.array([0.05, 0.5, 0.3, 0.1, 0.05], np.float32))
    assert _support(Sampler(temperature=1.0, top_p=0.75, seed=0), logits) == {1, 2}  # 0.5 + 0.3 reaches 0.75
    assert _support(Sampler(temperature=1.0, top_p=1e-6, seed=0), logits, 200) == {1}  # always the top token


def test_top_k_restricts_support_and_keeps_ties():
    logits = np.array([1.0, 5.0, 3.0, 4.0, 2.0], np.float32)
    assert _support(Sampler(temperature=5.0, top_k=2, seed=0), logits) == {1, 3}
    assert _support(Sampler(temperature=5.0, top_k=1, seed=0), logits, 200) == {1}
    tied = np.array([0.0, 2.0, 1.0, 1.0], np.float32)
    assert _support(Sampler(temperature=5.0, top_k=2, seed=0), tied) == {1, 2, 3}  # ties at the k-th: all kept
    assert _support(Sampler(temperature=5.0, top_k=10, seed=0), tied) == {0, 1, 2, 3}  # k >= V: everything


def test_min_p_restricts_support():
    logits = np.log(np.array([0.5, 0.3, 0.12, 0.08], np.float32))
    assert _support(Sampler(temperature=1.0, min_p=0.5, seed=0), logits) == {0, 1}  # p >= 0.25
    assert _support(Sampler(temperature=1.0, min_p=0.2, seed=0), logits) == {0, 1, 2}  # p >= 0.1
    assert _support(Sampler(temperature=1.0, min_p=1.0, seed=0), logits, 200) == {0}


def test_order_temperature_then_top_k_then_top_p():
    """Temperature comes before top-p (unlike ChatRWKV), and top-p sees only what top-k kept (as HF and vLLM)."""
    logits = np.log(np.array([0.5, 0.3, 0.2], np.float32))
    assert _support(Sampler(temperature=1.0, top_p=0.6, seed=0), logits) == {0, 1}
    assert _support(Sampler(temperature=0.5, top_p=0.6, seed=0), logits) == {0}  # 0.658 alone reaches 0.6
    four = np.log(np.array([0.4, 0.3, 0.2, 0.1], np.float32))
    assert _support(Sampler(temperature=1.0, top_p=0.5, seed=0), four) == {0, 1}
    assert _support(Sampler(temperature=1.0, top_k=2, top_p=0.5, seed=0), four) == {0}  # 0.4 / 0.7 >= 0.5


def test_repetition_penalty_divides_positive_and_multiplies_negative():
    """HF / CTRL: with penalty 2, a repeated logit 3 becomes 1.5 and -1 becomes -2; the prompt counts."""
    logits = np.array([3.0, 2.0, -1.0, -1.5], np.float32)
    sampler = Sampler(repetition_penalty=2.0)
    sampler.reset(prompt_ids=[0, 2])
    assert sampler.sample(logits) == 1  # 3 -> 1.5 < 2
    assert sampler.sample(np.array([3.0, 2.0, -1.0, -1.5], np.float32)) == 0  # 1 is now repeated: 2 -> 1
    sampler.reset(prompt_ids=[1])
    assert sampler.sample(np.array([-1.0, -0.6, -1.1], np.float32)) == 0  # -0.6 -> -1.2


def _chatrwkv_greedy(logits, steps, presence, frequency, decay):
    """The penalty loop of rwkv.utils.PIPELINE.generate (ChatRWKV), greedy, without its whitespace exemption."""
    occurrence, out = {}, []
    for _ in range(steps):
        x = logits.astype(np.float64)
        for n in occurrence:
            x[n] -= presence + occurrence[n] * frequency
        token = int(np.argmax(x))
        out.append(token)
        for n in occurrence:
            occurrence[n] *= decay
        occurrence[token] = occurrence.get(token, 0) + 1
    return out


@pytest.mark.parametrize("presence, frequency, decay", [(0.5, 0.0, 1.0), (0.0, 0.3, 1.0), (0.2, 0.2, 0.996),
                                                        (0.1, 0.7, 0.5), (-0.3, 0.2, 0.9)])
def test_presence_and_frequency_match_chatrwkv(presence, frequency, decay):
    logits = _logits(3, 40) * 0.5
    params = SamplingParams(presence_penalty=presence, frequency_penalty=frequency, penalty_decay=decay)
    sampler = Sampler(params)
    sampler.reset(prompt_ids=[1, 2, 3])  # the prompt does not count for presence / frequency
    got = [sampler.sample(logits) for _ in range(60)]
    assert got == _chatrwkv_greedy(logits, 60, presence, frequency, decay)
    assert len(set(got)) > 1 or frequency == 0  # the counts did push the top token down


def test_reset_forgets_counts():
    logits = np.array([1.0, 0.9, 0.0], np.float32)
    sampler = Sampler(presence_penalty=1.0)
    assert [sampler.sample(logits) for _ in range(2)] == [0, 1]
    sampler.reset()
    assert sampler.sample(logits) == 0


def test_caller_logits_unchanged():
    logits = _logits(4, 50)
    copy = logits.copy()
    sampler = Sampler(temperature=0.7, top_k=5, repetition_penalty=1.5, presence_penalty=1.0, seed=0)
    sampler.reset([1, 2])
    for _ in range(5):
        sampler.sample(logits)
    np.testing.assert_array_equal(logits, copy)


def test_batched_rows_equal_rows_alone():
    """Every row has its own Sampler (RNG, counts, params), so a batch samples what each row samples alone."""
    params = [SamplingParams(temperature=1.0, seed=1), SamplingParams(temperature=0.7, top_k=20, seed=2),
              SamplingParams(temperature=1.3, top_p=0.8, frequency_penalty=0.5, seed=3), SamplingParams()]
    rng = np.random.default_rng(0)
    steps = [rng.normal(size=(4, 300)).astype(np.float32) for _ in range(25)]  # [B, V] per step
    batch, out = [Sampler(p) for p in params], np.empty(4, np.int64)
    got = []
    for logits in steps:
        sample_rows(batch, logits, out)
        got.append(out.copy())
    for b, p in enumerate(params):
        alone = Sampler(p)
        assert [int(g[b]) for g in got] == [alone.sample(logits[b]) for logits in steps]


def test_greedy_batch_is_argmax():
    logits = np.random.default_rng(1).normal(size=(3, 100)).astype(np.float32)
    out = np.empty(3, np.int64)
    sample_rows([Sampler() for _ in range(3)], logits, out)
    np.testing.assert_array_equal(out, logits.argmax(axis=-1))


def test_float16_logits():
    sampler = Sampler(temperature=0.7, top_p=0.95, seed=0)
    for n in (7, 500, 7):
        token = sampler.sample(_logits(n, n).astype(np.float16))
        assert 0 <= token < n


@pytest.mark.parametrize("kwargs, match", [
    (dict(temperature=-1.0), "temperature must be 0 "),
    (dict(temperature=float("nan")), "temperature must be 0 "),
    (dict(temperature=float("inf")), "temperature must be 0 "),
    (dict(temperature="1"), "temperature must be 0 "),
    (dict(temperature=1e-320), r"temperature must be 0 \(greedy\) or a finite number >= 1e-06, got 1e-320"),
    (dict(seed=-1), r"seed must be an int >= 0 \(or None to seed from the OS\), got -1"),
    (dict(seed=1.5), "seed must be an int >= 0"),
    (dict(seed=True), "seed must be an int >= 0"),
    (dict(top_p=0.0), r"top_p must be in \(0, 1\], got 0.0"),
    (dict(top_p=1.5), r"top_p must be in \(0, 1\]"),
    (dict(top_p=float("nan")), r"top_p must be in \(0, 1\]"),
    (dict(top_k=-1), r"top_k must be an int >= 0 \(0 = off\), got -1"),
    (dict(top_k=2.0), "top_k must be an int >= 0"),
    (dict(min_p=-0.1), r"min_p must be in \[0, 1\], got -0.1"),
    (dict(min_p=1.01), r"min_p must be in \[0, 1\]"),
    (dict(repetition_penalty=0.0), r"repetition_penalty must be a finite number > 0 \(1 = off\), got 0.0"),
    (dict(repetition_penalty=float("inf")), "repetition_penalty must be a finite number > 0"),
    (dict(presence_penalty=2.5), r"presence_penalty must be in \[-2, 2\] \(0 = off\), got 2.5"),
    (dict(frequency_penalty=-3), r"frequency_penalty must be in \[-2, 2\]"),
    (dict(frequency_penalty=float("nan")), r"frequency_penalty must be in \[-2, 2\]"),
    (dict(penalty_decay=0.0), r"penalty_decay must be in \(0, 1\] \(1 = no decay\), got 0.0"),
    (dict(penalty_decay=1.5), r"penalty_decay must be in \(0, 1\]"),
])
def test_bad_params(kwargs, match):
    with pytest.raises(ParamError, match=match) as err:
        SamplingParams(**kwargs)
    assert err.value.field == next(iter(kwargs))
    with pytest.raises(ParamError, match=match):
        Sampler(**kwargs)


def test_params_or_fields_not_both():
    with pytest.raises(TypeError, match="not both"):
        Sampler(SamplingParams(), temperature=1.0)
    with pytest.raises(TypeError, match="takes SamplingParams"):
        Sampler({"temperature": 1.0})


def test_params_are_frozen():
    with pytest.raises(AttributeError):
        SamplingParams().temperature = 1.0


def test_smallest_temperature_samples_the_top_token():
    """At MIN_TEMPERATURE the scaled logits span hundreds of thousands: no overflow, no NaN, the top token wins
    (before, 1e-320 made every probability NaN and the sampler emitted token V-1 forever)."""
    logits = np.array([0.0, 3.0, -2.0, 1.0], np.float32)
    for top_p in (1.0, 0.5):
        sampler = Sampler(temperature=MIN_TEMPERATURE, top_p=top_p, seed=0)
        assert _support(sampler, logits, 20) == {1}


def test_extreme_logits_do_not_overflow():
    logits = np.array([-3e38, 3e38, 0.0], np.float32)  # float32's ends: shifted by the max they stay finite
    assert _support(Sampler(temperature=0.5, seed=0), logits, 20) == {1}
    assert _support(Sampler(temperature=0.5, repetition_penalty=3.0, seed=0), logits, 20) == {1}


def test_masked_logits_are_never_drawn():
    logits = np.array([-np.inf, 0.0, -np.inf, 0.0], np.float32)  # a caller's ban list
    assert _support(Sampler(temperature=1.0, seed=0), logits, 500) == {1, 3}


def test_logits_row_shape():
    with pytest.raises(ValueError, match=r"one logits row \[V\], got shape \[2, 3\]"):
        Sampler().sample(np.zeros((2, 3), np.float32))


@pytest.mark.parametrize("case", range(30))
def test_top_p_matches_a_full_sort(case):
    """The nucleus from a partial sort (widened until it reaches top_p) equals the one from sorting everything,
    ties and flat distributions included."""
    rng = np.random.default_rng(case)
    n = int(rng.integers(1, 5000))
    weights = np.exp(rng.normal(size=n) * (0.05, 3.0, 1.0)[case % 3])
    if case % 3 == 2:
        weights = np.round(weights, 1) + 0.1  # many ties
    weights /= weights.max()
    top_p = float(rng.uniform(0.01, 1.0))
    order = np.argsort(-weights, kind="stable")
    keep = int(np.searchsorted(np.cumsum(weights[order]), top_p * weights.sum(), side="left")) + 1
    expected = weights.copy()
    expected[order[keep:]] = 0.0
    got = weights.copy()
    _top_p(got, top_p)
    np.testing.assert_array_equal(got, expected)
