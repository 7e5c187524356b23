"""A prompt as the 77-token windows the CLIP text transformer reads, with a weight per token.

The official pipeline reads one window: `[bos] + 75 tokens + [eos]`, padded to 77, the rest cut.
Longer prompts go in more windows, each framed and padded the same way, as AUTOMATIC1111
(`modules/sd_hijack_clip.py`) and ComfyUI (`comfy/sd1_clip.py`) do; the text encoder runs each
window and concatenates them along the sequence. When a window fills up, the words after a comma
among its last `COMMA_BACKTRACK` tokens move to the next window, so that a phrase is not split
(A1111's `comma_padding_backtrack`, default 20); the last window allowed is filled to 75, never
moved back. Pure Python over a Hugging Face tokenizer; the caller serializes tokenizer calls.
"""
from __future__ import annotations

from dataclasses import dataclass

from .prompt_weighting import parse_weights

WINDOW = 77  # tokens the transformer reads at once: CLIP's max_position_embeddings
PROMPT_TOKENS = WINDOW - 2  # a window's prompt tokens, between [bos] and [eos]
COMMA_BACKTRACK = 20
SYNTAX = "()[]\\"  # characters of the weighting syntax (prompt_weighting.py)


@dataclass(frozen=True)
class PromptMode:
    """How a prompt is read: at most `windows` windows (1: the official truncation to 77 tokens),
    and whether `(word:1.3)` weighting syntax is parsed (False: brackets are plain text)."""
    windows: int = 1
    weighting: bool = False

    def __post_init__(self):
        if self.windows < 1:
            raise ValueError(f"windows must be 1 or more, got {self.windows}")


OFFICIAL = PromptMode()  # the official pipeline's reading


@dataclass(frozen=True)
class TokenWindows:
    """What the transformer is given for a prompt; `key` is all that its output depends on."""
    ids: tuple[tuple[int, ...], ...]  # (windows, 77): [bos] + tokens + [eos], then padding
    lengths: tuple[int, ...]  # each window's length before its padding (its attention mask)
    weights: tuple[tuple[float, ...], ...] | None  # (windows, 77) token weights; None: all 1
    dropped: str  # the end of the prompt that no window holds ("" when all fit)

    @property
    def key(self) -> tuple:
        return self.ids, self.lengths, self.weights


def token_windows(tokenizer, prompt: str, mode: PromptMode) -> TokenWindows:
    """The windows of `prompt` read as `mode` says. Without weighting syntax, one window is exactly what
    `tokenizer(prompt, padding="max_length", max_length=77, truncation=True)` gives."""
    if mode.weighting:
        literals = [t for t in tokenizer.get_added_vocab() if any(c in t for c in SYNTAX)]  # e.g. a LoRA's [token]
        runs = parse_weights(prompt, literals)
    else:
        runs = [(prompt, 1.0)]
    pieces = tokenizer([text for text, _ in runs], add_special_tokens=False, verbose=False)["input_ids"]
    tokens = [token for piece in pieces for token in piece]
    weights = [weight for piece, (_, weight) in zip(pieces, runs) for _ in piece]
    cuts = window_cuts(tokens, mode.windows, _comma_id(tokenizer))
    end = cuts[-1][1]
    ids, lengths, window_weights = [], [], []
    for start, stop in cuts:
        framed = [tokenizer.bos_token_id, *tokens[start:stop], tokenizer.eos_token_id]
        ids.append(tuple(framed + [tokenizer.pad_token_id] * (WINDOW - len(framed))))
        lengths.append(len(framed))
        window_weights.append(tuple([1.0, *weights[start:stop]] + [1.0] * (WINDOW - 1 - (stop - start))))
    dropped = tokenizer.decode(tokens[end:], skip_special_tokens=True).strip() if end < len(tokens) else ""
    all_one = all(w == 1.0 for w in weights[:end])
    return TokenWindows(tuple(ids), tuple(lengths), None if all_one else tuple(window_weights), dropped)


def window_cuts(tokens: list[int], windows: int, comma: int | None) -> list[tuple[int, int]]:
    """[start, stop) of each window's tokens: at most `windows` windows of at most 75; at least one."""
    cuts, start = [], 0
    while start < len(tokens) and len(cuts) < windows:
        stop = min(start + PROMPT_TOKENS, len(tokens))
        if stop < len(tokens) and len(cuts) + 1 < windows and tokens[stop] != comma:
            # A later window takes what follows: end this one after its last comma, if one is near the end.
            near = [i for i in range(stop - COMMA_BACKTRACK, stop) if tokens[i] == comma]
            stop = near[-1] + 1 if near else stop
        cuts.append((start, stop))
        start = stop
    return cuts or [(0, 0)]


def _comma_id(tokenizer) -> int | None:
    """The id of "," when the vocabulary has it as one token of its own (not the unknown token)."""
    ids = tokenizer(",", add_special_tokens=False, verbose=False)["input_ids"]
    return ids[0] if len(ids) == 1 and ids[0] != tokenizer.unk_token_id else None


def dropped_notice(label: str, dropped: str, mode: PromptMode) -> str:
    """What to tell the user about the words of `label` ("prompt", "negative prompt") left out."""
    if mode.windows == 1:
        return f"The {label} is longer than {WINDOW} CLIP tokens; these words were ignored: {dropped}"
    return (f"The {label} does not fit in {mode.windows} windows of {PROMPT_TOKENS} CLIP tokens; these words were "
            f"ignored: {dropped}")
