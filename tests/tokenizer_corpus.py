"""A varied, seeded text corpus for tokenizer tests (generated here, nothing downloaded), and World vocabulary files
written the way rwkv_vocab_v20230424.txt is."""
from __future__ import annotations

import random

CODE = [
    "def f(x: int) -> int:\n    return x ** 2  # square\n",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }\n",
    '{"key": [1, 2.5e-3, null, true], "nested": {"a": "b"}}',
    "#!/bin/sh\nset -eu\ncat <<'EOF' | grep -v '^#' > out.txt\nEOF\n",
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;",
    "\tif err != nil {\n\t\treturn fmt.Errorf(\"open %s: %w\", path, err)\n\t}\n",
]
CJK = ["我们今天去公园散步，天气很好。", "日本語の文章を書きます。カタカナとひらがな。", "한국어 문장입니다. 안녕하세요!",
       "繁體中文與简体中文混合", "「引用」『二重』【括弧】〈山括弧〉"]
EMOJI = ["🎉👍🏽 party", "👩‍👩‍👧‍👦 family", "🇺🇳🇯🇵 flags", "❤️ ❤ ♥️", "🧑🏿‍🚀 🫠 🪿", "a🎉b🎉c"]
COMBINING = ["e\u0301 a\u0308\u0323 n\u0303", "Z\u0351\u0352\u0353\u0354a\u0300\u0301\u0302\u0303\u0304lgo",
             "\u0915\u094d\u0937 हिन्दी", "\uff83\uff9e \u30c7 \u30c6\u3099", "\u00c5 \u212b A\u030a",
             "\u05e9\u05b8\u05c1\u05dc\u05d5\u05b9\u05dd"]
INVALID_LOOKING = ["\ufffd\ufffd", "Ã©tÃ© mojibake Ã¼", "\x00\x01\x02\x1f\x7f", "\ufeffBOM first", "zero\u200bwidth\u200d",
                   "\U0010ffff\U000e0001 \uffff\ufffe", "\\xff\\x80 literal backslashes", "\u202eright-to-left\u202c",
                   "\ue000 private use \U000f0000", "\x80\x9f C1 controls \x85"]
WHITESPACE = [" " * n for n in (1, 2, 3, 7, 64, 129, 300)] + [
    "\t\t\t", "\n" * 5, "\r\n" * 3, "\u3000\u3000", "\xa0 \xa0", " \t \n \r\n \x0b\x0c ", "word   word\t\tword\n\n\nword"]
LONG_WORDS = ["a" * 1000, "Pneumonoultramicroscopicsilicovolcanoconiosis" * 20, "1234567890" * 50,
              "https://example.com/" + "path/" * 100 + "?q=" + "x" * 50, "長" * 300, "🎉" * 100,
              "e\u0301" * 200]

_POOLS = [
    [chr(c) for c in range(0x20, 0x7F)],
    [chr(c) for c in range(0xA0, 0x250)],
    [chr(c) for c in range(0x4E00, 0x4E00 + 400)],
    [chr(c) for c in range(0x3040, 0x30FF)],
    [chr(c) for c in range(0x1F300, 0x1F650)],
    [chr(c) for c in range(0x300, 0x370)],
    [" ", "  ", "\n", "\t", "\r\n", "\u3000"],
    [chr(c) for c in range(0, 0x20)],
]


def random_texts(n: int = 200, seed: int = 20230424) -> list[str]:
    """`n` strings of 0..80 characters, each from a random mix of the pools above."""
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        pools = rng.sample(_POOLS, rng.randint(1, 4))
        texts.append("".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(0, 80))))
    return texts


def corpus() -> dict[str, list[str]]:
    """Category -> texts; `all` is every text joined into one document."""
    parts = {"code": CODE, "cjk": CJK, "emoji": EMOJI, "combining": COMBINING, "invalid_looking": INVALID_LOOKING,
             "whitespace": WHITESPACE, "long_words": LONG_WORDS, "random": random_texts()}
    parts["all"] = ["\n".join(text for texts in list(parts.values()) for text in texts)]
    return parts


def world_line(token_id: int, token: bytes) -> str:
    """One vocabulary line as the real file writes it: a str literal when the bytes are UTF-8, else bytes."""
    try:
        literal = repr(token.decode("utf-8"))
    except UnicodeDecodeError:
        literal = repr(token)
    return f"{token_id} {literal} {len(token)}"


def world_vocab_text(extra: list[bytes], newline: str = "\n") -> str:
    """A World vocabulary: the 256 single bytes as ids 1..256 (as in the real file), then `extra` from 257 on."""
    tokens = [bytes([b]) for b in range(256)] + list(extra)
    return "".join(world_line(i, t) + newline for i, t in enumerate(tokens, start=1))
