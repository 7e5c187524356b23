"""CLIP ViT-bigG text conditioning, as the official pipeline computes it.

`clip_text` is the last hidden state of the transformer (before the final layer norm:
`hidden_states[-1]`), `clip_text_pooled` the projected pooled output (`text_embeds`) as a
one-token sequence. Prompts are padded or truncated to 77 tokens.

A prompt's embedding depends on nothing but the prompt, so the encoder keeps the last few
(`CACHE_SIZE`): variations of a prompt, and every request's negative prompt after the first
("" or a style's), skip the text transformer.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch

MAX_TOKENS = 77
CACHE_SIZE = 32  # prompts; one embedding is 77 × 1280 numbers (0.4 MB in float32)


@dataclass(frozen=True)
class TextEmbedding:
    clip_text: torch.Tensor  # (1, 77, C)
    clip_text_pooled: torch.Tensor  # (1, 1, C)
    input_ids: torch.Tensor  # (1, 77)
    dropped: str  # the end of the prompt that did not fit in 77 tokens ("" when all fit)


class TextEncoder:
    """A tokenizer and a `CLIPTextModelWithProjection`, run together, with the embeddings of the
    `cache_size` most recently used prompts kept (0: none). Treat the embeddings as read-only."""

    def __init__(self, tokenizer, model, device: torch.device | None = None, cache_size: int = CACHE_SIZE):
        self.tokenizer = tokenizer
        self.model = model
        self._device = device or model.device  # where tokens go; offloaded weights live elsewhere
        self.cache_size = cache_size
        self._cache: OrderedDict[str, TextEmbedding] = OrderedDict()  # oldest first
        self._lock = threading.Lock()  # the studio's requests run in worker threads
        # A fast tokenizer keeps its padding/truncation settings in shared Rust state that each
        # call rewrites: two threads tokenizing at once can get each other's settings.
        self._tokenizer_lock = threading.Lock()

    @property
    def device(self) -> torch.device:
        return self._device

    def dropped_words(self, prompt: str) -> str:
        """The words cut by truncation to 77 tokens: [bos] + 75 tokens + [eos] are kept."""
        with self._tokenizer_lock:
            ids = self.tokenizer(prompt, verbose=False)["input_ids"]
            if len(ids) <= MAX_TOKENS:
                return ""
            return self.tokenizer.decode(ids[MAX_TOKENS - 1:-1], skip_special_tokens=True).strip()

    def cached(self, prompt: str) -> TextEmbedding | None:
        """The kept embedding of `prompt`, or None; a hit makes it the most recently used."""
        with self._lock:
            embedding = self._cache.get(prompt)
            if embedding is not None:
                self._cache.move_to_end(prompt)
            return embedding

    def forget(self) -> None:
        """Drop every kept embedding (the benchmark times cold requests this way)."""
        with self._lock:
            self._cache.clear()

    def __call__(self, prompt: str) -> TextEmbedding:
        embedding = self.cached(prompt)
        if embedding is None:
            embedding = self._encode(prompt)
            with self._lock:
                self._cache[prompt] = embedding
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return embedding

    @torch.inference_mode()
    def _encode(self, prompt: str) -> TextEmbedding:
        with self._tokenizer_lock:
            tokens = self.tokenizer(
                prompt, padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt"
            )
        out = self.model(
            input_ids=tokens["input_ids"].to(self.device),
            attention_mask=tokens["attention_mask"].to(self.device),
            output_hidden_states=True,
        )
        return TextEmbedding(
            clip_text=out.hidden_states[-1],
            clip_text_pooled=out.text_embeds[:, None],
            input_ids=tokens["input_ids"],
            dropped=self.dropped_words(prompt),
        )
