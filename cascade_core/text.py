"""CLIP ViT-bigG text conditioning, as the official pipeline computes it.

`clip_text` is the last hidden state of the transformer (before the final layer norm:
`hidden_states[-1]`), `clip_text_pooled` the projected pooled output (`text_embeds`) as a
one-token sequence. Prompts are padded or truncated to 77 tokens.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

MAX_TOKENS = 77


@dataclass(frozen=True)
class TextEmbedding:
    clip_text: torch.Tensor  # (1, 77, C)
    clip_text_pooled: torch.Tensor  # (1, 1, C)
    input_ids: torch.Tensor  # (1, 77)
    dropped: str  # the end of the prompt that did not fit in 77 tokens ("" when all fit)


class TextEncoder:
    """A tokenizer and a `CLIPTextModelWithProjection`, run together."""

    def __init__(self, tokenizer, model, device: torch.device | None = None):
        self.tokenizer = tokenizer
        self.model = model
        self._device = device or model.device  # where tokens go; offloaded weights live elsewhere

    @property
    def device(self) -> torch.device:
        return self._device

    def dropped_words(self, prompt: str) -> str:
        """The words cut by truncation to 77 tokens: [bos] + 75 tokens + [eos] are kept."""
        ids = self.tokenizer(prompt, verbose=False)["input_ids"]
        if len(ids) <= MAX_TOKENS:
            return ""
        return self.tokenizer.decode(ids[MAX_TOKENS - 1:-1], skip_special_tokens=True).strip()

    @torch.inference_mode()
    def __call__(self, prompt: str) -> TextEmbedding:
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
