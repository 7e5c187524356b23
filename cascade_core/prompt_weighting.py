"""Prompt weighting syntax as AUTOMATIC1111's web UI reads it (`modules/prompt_parser.py`,
`parse_prompt_attention`); our own parser of the same grammar.

- `(words)` multiplies the words' weight by 1.1, `[words]` divides it by 1.1; brackets nest
  and multiply: `((words))` is 1.21.
- `(words:1.3)` multiplies by 1.3 (any decimal number, signed or not: `(a:-.5)`).
- `\\(`, `\\)`, `\\[`, `\\]`, `\\\\` are the literal characters; a backslash before any other
  character is dropped, as A1111 drops it.
- As in A1111, brackets are always syntax: "a photo (1985)" weights "1985" by 1.1. A closing
  bracket without its opening one is text; an opening one never closed weights everything after
  it. `:` that does not end a `(…:number)` is text, so are `[a:b:0.5]` and `[a|b]` (A1111's
  prompt editing and alternation, which this engine does not do) and `BREAK`.
- Strings in `literals` are never syntax (the tokenizer's added tokens, such as a LoRA's
  `[fernando]`): they keep their brackets and take the weight around them.

Pure Python: the text encoder turns the runs into per-token weights (`prompt_windows.py`).
"""
from __future__ import annotations

import re
from typing import Iterable

UP, DOWN = 1.1, 1 / 1.1  # A1111's round and square bracket multipliers

_PIECE = re.compile(r"""
    \\(?P<escaped>[()\[\]\\]) |          # an escaped bracket or backslash: the character itself
    \\ |                                 # any other backslash: dropped
    (?P<open>[(\[]) |
    :\s*(?P<weight>[+-]?(?:\d+\.?\d*|\.\d+))\s*\) |   # the end of (words:1.3)
    (?P<close>[)\]]) |
    (?P<text>[^\\()\[\]:]+|:)
""", re.X)


def parse_weights(prompt: str, literals: Iterable[str] = ()) -> list[tuple[str, float]]:
    """The prompt as runs of (text, weight), neighbours of equal weight merged; [("", 1.0)] when no
    text is left. A prompt without syntax is one run: [(prompt, 1.0)]."""
    for literal in sorted(set(literals), key=len, reverse=True):
        prompt = prompt.replace(literal, re.sub(r"([()\[\]\\])", r"\\\1", literal))
    runs: list[list] = []  # [text, weight], weights multiplied in place as brackets close
    opened: list[tuple[str, int]] = []  # ("(" or "[", index of the first run inside)

    def multiply(start: int, factor: float) -> None:
        for run in runs[start:]:
            run[1] *= factor

    def close(bracket: str) -> int | None:
        """The start of the innermost open `bracket`, removed from the open ones; None if none is open."""
        for k in range(len(opened) - 1, -1, -1):
            if opened[k][0] == bracket:
                return opened.pop(k)[1]
        return None

    for match in _PIECE.finditer(prompt):
        piece = match.group(0)
        if match.group("escaped") is not None:
            runs.append([match.group("escaped"), 1.0])
        elif match.group("open") is not None:
            opened.append((piece, len(runs)))
        elif match.group("weight") is not None and (start := close("(")) is not None:
            multiply(start, float(match.group("weight")))
        elif match.group("close") is not None and (start := close("(" if piece == ")" else "[")) is not None:
            multiply(start, UP if piece == ")" else DOWN)
        elif piece != "\\":
            runs.append([piece, 1.0])  # text, or a closing bracket with nothing open to close
    for kind, factor in (("(", UP), ("[", DOWN)):  # never closed: weighted to the end, round first as A1111
        for bracket, start in opened:
            if bracket == kind:
                multiply(start, factor)
    merged: list[tuple[str, float]] = []
    for text, weight in runs:
        if merged and merged[-1][1] == weight:
            merged[-1] = (merged[-1][0] + text, weight)
        else:
            merged.append((text, weight))
    return merged or [("", 1.0)]
