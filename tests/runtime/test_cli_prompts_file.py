"""`rrwkv-trt run MODEL --prompts-file FILE`: one JSON line per prompt, in input order, each what `run --prompt LINE`
prints after its prompt. The fake model continues each byte with the next one (a -> b -> c ...)."""
import json

import pytest
from click.testing import CliRunner

from rrwkv_trt.cli.main import main


def _run(*args):
    return CliRunner().invoke(main, ["run", *map(str, args)])


def _lines(result) -> list[dict]:
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def _prompts(tmp_path, data: bytes):
    path = tmp_path / "prompts.txt"
    path.write_bytes(data)
    return path


def _single(model, prompt: str, *options) -> str:
    """What `run --prompt` prints after the prompt."""
    result = _run(model, "--prompt", prompt, *options)
    assert result.exit_code == 0, result.stderr
    return result.stdout.removeprefix(prompt).removesuffix("\n")


def test_json_lines_in_input_order(make_fake_model, tmp_path):
    model = make_fake_model()
    path = _prompts(tmp_path, "\ufeffa\r\n\nxyz\n   \nq\u2028r\nk".encode())  # BOM, CRLF, empty line, U+2028
    result = _run(model, "--prompts-file", path, "--max-new-tokens", 3, "--slots", 2)
    assert _lines(result) == [
        {"index": 0, "prompt": "a", "text": "bcd", "token_ids": [98, 99, 100], "finish_reason": "max_tokens"},
        {"index": 2, "prompt": "xyz", "text": "{|}", "token_ids": [123, 124, 125], "finish_reason": "max_tokens"},
        {"index": 3, "prompt": "   ", "text": "!\"#", "token_ids": [33, 34, 35],
         "finish_reason": "max_tokens"},
        {"index": 4, "prompt": "q\u2028r", "text": "stu", "token_ids": [115, 116, 117], "finish_reason": "max_tokens"},
        {"index": 5, "prompt": "k", "text": "lmn", "token_ids": [108, 109, 110], "finish_reason": "max_tokens"},
    ]
    assert "prompts" in result.stderr  # the progress bar


@pytest.mark.parametrize("options", [
    ("--stop", "e", "--stop-token", ord("x")),
    ("--temperature", 30.0, "--top-p", 0.95, "--presence-penalty", 0.5, "--seed", 3),
], ids=["stops", "sampled"])
def test_each_line_as_run_prompt_prints_it(make_fake_model, tmp_path, options):
    model = make_fake_model()
    prompts = ["a", "uvw", "c", "hello", "b"]
    path = _prompts(tmp_path, "\n".join(prompts).encode())
    lines = _lines(_run(model, "--prompts-file", path, "--max-new-tokens", 6, "--slots", 2, *options))
    assert [line["text"] for line in lines] == [_single(model, p, "--max-new-tokens", 6, *options) for p in prompts]
    if options[0] == "--stop":
        assert [(line["text"], line["finish_reason"]) for line in lines] == [
            ("bcd", "stop_string"), ("", "stop_token"), ("d", "stop_string"), ("pqrstu", "max_tokens"),
            ("cd", "stop_string")]
        assert lines[0]["token_ids"] == [98, 99, 100, 101]  # the tokens that made the stop string are kept
        assert lines[1]["token_ids"] == [120]  # the stop token too


def test_shipped_model_lines_equal_single_runs(shipped_export, tmp_path):
    prompts = ["def ", "class Parser:", "import os"]
    path = _prompts(tmp_path, "\n".join(prompts).encode())
    options = ("--max-new-tokens", 24, "--stop", "\n\n")
    lines = _lines(_run(shipped_export, "--prompts-file", path, "--slots", 2, *options))
    assert [line["text"] for line in lines] == [_single(shipped_export, p, *options) for p in prompts]


@pytest.mark.parametrize("args, match", [
    (("--prompt", "a", "--prompts-file", "{path}"), "run needs --prompt TEXT or --prompts-file FILE"),
    ((), "run needs --prompt TEXT or --prompts-file FILE"),
    (("--prompt", "a", "--slots", 2), "--slots applies to --prompts-file"),
    (("--prompts-file", "{path}", "--state-out", "s.safetensors"), "--state-in / --state-out apply to a single"),
    (("--prompts-file", "{path}", "--stop-token", 256), r"--stop-token must be token ids in [0, 255]"),
    (("--prompts-file", "{path}", "--top-p", 2.0), "--top-p must be in (0, 1]"),
])
def test_option_errors(make_fake_model, tmp_path, args, match):
    path = _prompts(tmp_path, b"a\n")
    result = _run(make_fake_model(), *[str(a).format(path=path) for a in args])
    assert result.exit_code == 2 and match in result.stderr, result.stderr
    assert result.stdout == ""


def test_not_utf8_names_the_line(make_fake_model, tmp_path):
    path = _prompts(tmp_path, b"fine\nalso fine\nbad \xff byte\n")
    result = _run(make_fake_model(), "--prompts-file", path)
    assert result.exit_code == 2, result.stderr
    assert f"error: {path} line 3 is not UTF-8" in result.stderr


def test_zero_new_tokens_and_an_empty_file(make_fake_model, tmp_path):
    model = make_fake_model()
    lines = _lines(_run(model, "--prompts-file", _prompts(tmp_path, b"a\n"), "--max-new-tokens", 0))
    assert lines == [{"index": 0, "prompt": "a", "text": "", "token_ids": [], "finish_reason": "max_tokens"}]
    assert _lines(_run(model, "--prompts-file", _prompts(tmp_path, b"\n\n"))) == []
