"""Protobuf text format for Triton's config.pbtxt, written from plain dicts (stdlib only: generating a repository needs
no tritonclient; the tests parse the result with Triton's own ModelConfig message)."""
from __future__ import annotations

import json


class Enum(str):
    """An enum value (TYPE_FP32, KIND_CPU): written bare, where a str is written quoted."""


def render(message: dict, comment: str = "") -> str:
    """`message` as text format: a dict is a message, a list of dicts a repeated message, a list of scalars a repeated
    scalar; map fields are written as repeated {key, value} messages. `comment` lines go first, each after `# `."""
    head = [f"# {line}".rstrip() for line in comment.splitlines()]
    return "\n".join(head + _message(message, 0)) + "\n"


def _message(message: dict, depth: int) -> list[str]:
    lines = []
    for key, value in message.items():
        lines += _field(key, value, depth)
    return lines


def _field(key: str, value: object, depth: int) -> list[str]:
    pad = "  " * depth
    if isinstance(value, dict):
        return [f"{pad}{key} {{", *_message(value, depth + 1), f"{pad}}}"]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [line for item in value for line in _field(key, item, depth)]
    if isinstance(value, list):
        return [f"{pad}{key}: [ {', '.join(_scalar(v) for v in value)} ]"]
    return [f"{pad}{key}: {_scalar(value)}"]


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # quoted, with the escapes text format shares with JSON
    if isinstance(value, (int, float)):
        return repr(value)
    raise TypeError(f"no text-format scalar for {type(value).__name__} {value!r}")
