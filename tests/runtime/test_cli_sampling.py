"""`rrwkv-trt run`'s sampling and stopping options: what they do, and one `error:` line naming the option for a bad
value. The fake model continues each byte with the next one (a -> b -> c ...)."""
import pytest
from click.testing import CliRunner

from rrwkv_trt.cli.main import main


def _run(*args):
    return CliRunner().invoke(main, ["run", *map(str, args)])


def test_stop_string(make_fake_model):
    result = _run(make_fake_model(), "--prompt", "a", "--max-new-tokens", 10, "--stop", "xyz", "--stop", "ef")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "abcd\n"


def test_stop_token(make_fake_model):
    result = _run(make_fake_model(), "--prompt", "a", "--max-new-tokens", 10, "--stop-token", ord("d"))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "abc\n"


def test_sampling_options_reproducible_per_seed(make_fake_model):
    out_dir = make_fake_model()
    args = (out_dir, "--prompt", "a", "--max-new-tokens", 12, "--temperature", 30.0, "--top-k", 100, "--top-p", 0.95,
            "--min-p", 0.01, "--repetition-penalty", 1.2, "--presence-penalty", 0.5, "--frequency-penalty", 0.3,
            "--penalty-decay", 0.99)
    first, second = _run(*args, "--seed", 5), _run(*args, "--seed", 5)
    assert first.exit_code == 0, first.stderr
    assert first.stdout == second.stdout and first.stdout != "abcdefghijklm\n"
    assert _run(*args, "--seed", 6).stdout != first.stdout


def test_top_k_one_is_greedy(make_fake_model):
    result = _run(make_fake_model(), "--prompt", "a", "--max-new-tokens", 5, "--temperature", 50.0, "--top-k", 1)
    assert result.exit_code == 0 and result.stdout == "abcdef\n", result.stderr


def test_greedy_with_penalties(make_fake_model):
    """The fake's successor logit (10, the rest 0) outweighs the largest penalties: greedy still follows it."""
    result = _run(make_fake_model(), "--prompt", "abcde", "--max-new-tokens", 4, "--presence-penalty", 2.0,
                  "--frequency-penalty", 2.0, "--repetition-penalty", 5.0)
    assert result.exit_code == 0 and result.stdout == "abcdefghi\n", result.stderr


@pytest.mark.parametrize("option, value, message", [
    ("--top-k", -1, "--top-k must be an int >= 0 (0 = off), got -1"),
    ("--top-p", 0, "--top-p must be in (0, 1], got 0.0"),
    ("--top-p", 1.5, "--top-p must be in (0, 1], got 1.5"),
    ("--min-p", 2, "--min-p must be in [0, 1], got 2.0"),
    ("--temperature", -1, "--temperature must be 0 (greedy) or a finite number >= 1e-06, got -1.0"),
    ("--temperature", "nan", "--temperature must be 0 (greedy) or a finite number >= 1e-06, got nan"),
    ("--repetition-penalty", 0, "--repetition-penalty must be a finite number > 0 (1 = off), got 0.0"),
    ("--presence-penalty", 3, "--presence-penalty must be in [-2, 2] (0 = off), got 3.0"),
    ("--frequency-penalty", -2.5, "--frequency-penalty must be in [-2, 2] (0 = off), got -2.5"),
    ("--penalty-decay", 0, "--penalty-decay must be in (0, 1] (1 = no decay), got 0.0"),
    ("--stop", "", "--stop must be non-empty strings (a tuple), got ('',)"),
    ("--stop-token", -1, "--stop-token must be token ids >= 0 (a tuple), got (-1,)"),
    ("--stop-token", 256, "--stop-token must be token ids in [0, 255] (the model's vocabulary), got (256,)"),
])
def test_bad_value_is_one_error_line(make_fake_model, option, value, message):
    result = _run(make_fake_model(), "--prompt", "a", option, value)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.splitlines() == [f"error: {message}"]
    assert result.stdout == ""  # refused before the prompt is echoed


def test_help_lists_the_options():
    result = CliRunner().invoke(main, ["run", "--help"])
    assert result.exit_code == 0
    for option in ("--temperature", "--top-k", "--top-p", "--min-p", "--repetition-penalty", "--presence-penalty",
                   "--frequency-penalty", "--penalty-decay", "--stop", "--stop-token", "--seed", "--max-new-tokens"):
        assert option in result.stdout
