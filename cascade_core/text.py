"""CLIP ViT-bigG text conditioning, as the official pipeline computes it, and beyond 77 tokens.

`clip_text` is the last hidden state of the transformer (before the final layer norm:
`hidden_states[-1]`), `clip_text_pooled` the projected pooled output (`text_embeds`) as a
one-token sequence. The official pipeline pads or truncates the prompt to one window of 77
tokens (`OFFICIAL`); a `PromptMode` may allow more windows, run through the transformer
separately and concatenated along the sequence (the pooled output stays the first window's),
and weighting syntax (`(word:1.3)`), applied to the hidden states as AUTOMATIC1111 does
(`modules/sd_hijack_clip.py`, `process_tokens`): each token's state times its weight, then the
window rescaled to its mean before. Windows and weights: `prompt_windows.py`.

A prompt's embedding depends on nothing but the token windows it is read as, so the encoder
keeps the last few (`CACHE_SIZE`), keyed by those: variations of a prompt, and every request's
negative prompt after the first ("" or a style's), skip the text transformer.
"""
from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, ContextManager

import torch

from .prompt_windows import OFFICIAL, WINDOW, PromptMode, TokenWindows, token_windows

CACHE_SIZE = 32  # prompts; one window's embedding is 77 × 1280 numbers (0.4 MB in float32)


@dataclass(frozen=True)
class TextEmbedding:
    clip_text: torch.Tensor  # (1, 77·windows, C)
    clip_text_pooled: torch.Tensor  # (1, 1, C): the first window's
    input_ids: torch.Tensor  # (1, 77·windows)
    dropped: str  # the end of the prompt that no window holds ("" when all fit)

    @property
    def windows(self) -> int:
        return self.input_ids.shape[1] // WINDOW


class TextEncoder:
    """A tokenizer and a `CLIPTextModelWithProjection`, run together, with the embeddings of the
    `cache_size` most recently used prompts kept (0: none). Treat the embeddings as read-only.
    After changing the tokenizer or the model (a trained token), call `forget()`."""

    def __init__(self, tokenizer, model, device: torch.device | None = None, cache_size: int = CACHE_SIZE):
        self.tokenizer = tokenizer
        self.model = model
        self._device = device or model.device  # where tokens go; offloaded weights live elsewhere
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple, TextEmbedding] = OrderedDict()  # by TokenWindows.key, oldest first
        self._lock = threading.Lock()  # the studio's requests run in worker threads
        # A fast tokenizer keeps its padding/truncation settings in shared Rust state that each
        # call rewrites: two threads tokenizing at once can get each other's settings.
        self._tokenizer_lock = threading.Lock()

    @property
    def device(self) -> torch.device:
        return self._device

    def windows_of(self, prompt: str, mode: PromptMode = OFFICIAL) -> TokenWindows:
        """The token windows `prompt` is read as (prompt_windows.token_windows)."""
        with self._tokenizer_lock:
            return token_windows(self.tokenizer, prompt, mode)

    def dropped_words(self, prompt: str, mode: PromptMode = OFFICIAL) -> str:
        """The words cut because they fit in no window (OFFICIAL: past [bos] + 75 tokens + [eos])."""
        return self.windows_of(prompt, mode).dropped

    def cached(self, prompt: str, mode: PromptMode = OFFICIAL) -> TextEmbedding | None:
        """The kept embedding of `prompt`, or None; a hit makes it the most recently used."""
        windows = self.windows_of(prompt, mode)
        embedding = self._kept(windows)
        return None if embedding is None else _told(embedding, windows)

    def forget(self) -> None:
        """Drop every kept embedding (after the tokenizer or the model changed; the benchmark's cold runs)."""
        with self._lock:
            self._cache.clear()

    def __call__(self, prompt: str, mode: PromptMode = OFFICIAL) -> TextEmbedding:
        windows = self.windows_of(prompt, mode)
        embedding = self._kept(windows)
        return _told(self._encoded(windows) if embedding is None else embedding, windows)

    def pair(self, prompt: str, negative: str, mode: PromptMode,
             on_miss: Callable[[], ContextManager] = contextlib.nullcontext) -> tuple[TextEmbedding, TextEmbedding]:
        """Both branches of guidance, with as many windows each (batched together in Stage C): the shorter
        one gets windows of the empty prompt, as A1111 pads the unconditional one. Each prompt is tokenized
        once; `on_miss()` is entered around the transformer when anything must be encoded (the pipeline
        brings the encoder's weights to the device there), and not at all when everything is kept."""
        wanted = self._wanted(prompt, negative, mode)
        kept = [self._kept(windows) for windows in wanted]
        if None in kept:
            with on_miss():
                kept = [self._encoded(w) if e is None else e for e, w in zip(kept, wanted)]
        return _paired(wanted, kept)

    def cached_pair(self, prompt: str, negative: str, mode: PromptMode) -> tuple[TextEmbedding, TextEmbedding] | None:
        """`pair(prompt, negative, mode)` when every embedding it needs is kept, else None."""
        wanted = self._wanted(prompt, negative, mode)
        kept = [self._kept(windows) for windows in wanted]
        return None if None in kept else _paired(wanted, kept)

    def _wanted(self, prompt: str, negative: str, mode: PromptMode) -> list[TokenWindows]:
        """The windows of both prompts, and of the empty prompt when they fill different numbers of windows."""
        wanted = [self.windows_of(prompt, mode), self.windows_of(negative, mode)]
        if len(wanted[0].ids) != len(wanted[1].ids):
            wanted.append(self.windows_of("", mode))
        return wanted

    def _kept(self, windows: TokenWindows) -> TextEmbedding | None:
        """The kept embedding of these windows (without `dropped`), or None; a hit becomes the most recent."""
        with self._lock:
            embedding = self._cache.get(windows.key)
            if embedding is not None:
                self._cache.move_to_end(windows.key)
        return embedding

    def _encoded(self, windows: TokenWindows) -> TextEmbedding:
        """The windows through the transformer, kept as the most recently used."""
        embedding = self._encode(windows)
        with self._lock:
            self._cache[windows.key] = embedding
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return embedding

    @torch.inference_mode()
    def _encode(self, windows: TokenWindows) -> TextEmbedding:
        """All windows through the transformer as one batch; kept without `dropped` (it is the prompt's)."""
        ids = torch.tensor(windows.ids)  # (W, 77)
        mask = (torch.arange(WINDOW) < torch.tensor(windows.lengths)[:, None]).long()  # (W, 77)
        out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), output_hidden_states=True)
        hidden = out.hidden_states[-1]  # (W, 77, C)
        if windows.weights is not None:
            hidden = emphasized(hidden, torch.tensor(windows.weights, device=hidden.device))
        return TextEmbedding(
            clip_text=hidden.reshape(1, -1, hidden.shape[-1]),  # (1, W·77, C): the windows one after another
            clip_text_pooled=out.text_embeds[:1, None],
            input_ids=ids.reshape(1, -1),
            dropped="",
        )


def emphasized(hidden: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Hidden states (W, 77, C) times their tokens' weights (W, 77), each window then scaled back to
    the mean it had (A1111 `sd_emphasis.EmphasisOriginal`: `z *= w; z *= original_mean / new_mean`)."""
    z = hidden.float()
    before = z.mean(dim=(1, 2), keepdim=True)  # (W, 1, 1)
    z = z * weights.float()[..., None]
    return (z * (before / z.mean(dim=(1, 2), keepdim=True))).to(hidden.dtype)


def _told(embedding: TextEmbedding, windows: TokenWindows) -> TextEmbedding:
    """The embedding with the words its prompt's windows left out (kept embeddings hold none)."""
    return dataclasses.replace(embedding, dropped=windows.dropped) if windows.dropped else embedding


def _paired(wanted: list[TokenWindows], kept: list[TextEmbedding]) -> tuple[TextEmbedding, TextEmbedding]:
    """`TextEncoder.pair`'s result from the wanted windows' embeddings (the third, if any: the empty prompt)."""
    text, other = _told(kept[0], wanted[0]), _told(kept[1], wanted[1])
    return _padded(text, other, kept[2] if len(kept) > 2 else None)


def _padded(text: TextEmbedding, other: TextEmbedding,
            empty: TextEmbedding | None) -> tuple[TextEmbedding, TextEmbedding]:
    """The two embeddings, the one with fewer windows followed by copies of `empty`'s window."""
    def grown(e: TextEmbedding, windows: int) -> TextEmbedding:
        extra = windows - e.windows
        if extra == 0:
            return e
        return dataclasses.replace(
            e, clip_text=torch.cat([e.clip_text, empty.clip_text.repeat(1, extra, 1)], dim=1),
            input_ids=torch.cat([e.input_ids, empty.input_ids.repeat(1, extra)], dim=1))

    windows = max(text.windows, other.windows)
    return grown(text, windows), grown(other, windows)
