"""A LoRA's trained tokens in the text encoder, added and removed without copying its token table.

The official LoRA training (train/train_c_lora.py, ../shared/reference README "extras/lora") gives each
`train_tokens` entry `[token, aggregate]` either a new token, when `token` is bracketed (`[name]` or
`<name>`): the tokenizer gets it as an added token (split off before BPE) and the token table a row, the
mean of the rows whose vocabulary entry `re.search`es `aggregate` (zeros without a match); or, otherwise,
the existing rows whose vocabulary entry matches `token`. The file's `ReToken` then adds `embeddings[i]`
to row `indices[i]`. Here that offset is scaled by the LoRA's strength (1: the official rows).

The rows live beside the table (`TokenRows`), and the tokenizer is a copy with the added tokens, so
removing them puts the original tokenizer and embedding module back: nothing to undo by arithmetic.
"""
from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ModelLoadError
from .lora_files import TrainedTokens
from .text import TextEncoder

log = logging.getLogger(__name__)


class TokenRows(nn.Module):
    """A token embedding with some rows replaced or added (ids at or past the table's size).

    The rows are plain attributes, not parameters or buffers, so the text encoder's list of tensors (which
    offloading walks) is the base table's, unchanged; they follow the ids to their device."""

    def __init__(self, base: nn.Embedding, ids: list[int], rows: torch.Tensor):
        super().__init__()
        self.base = base
        self.patched_ids = torch.tensor(ids)  # (m,)
        self.patched_rows = rows  # (m, width)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out = self.base(ids.clamp(max=self.base.num_embeddings - 1))  # (..., width)
        match = ids.unsqueeze(-1) == self.patched_ids.to(ids.device)  # (..., m)
        rows = F.embedding(match.int().argmax(-1), self.patched_rows.to(out))  # (..., width)
        return torch.where(match.any(-1, keepdim=True), rows, out)


@dataclass(frozen=True)
class TokenPlan:
    """The tokens of a set of LoRAs, worked out against the text encoder's own tokenizer and table."""
    tokenizer: object | None  # a copy of the tokenizer with the new tokens; None when no token is new
    rows: dict[int, torch.Tensor]  # token id → its row (float32)
    added: tuple[str, ...]  # the new tokens


@dataclass(frozen=True)
class TokenPatch:
    """What `add_tokens` replaced, to put back."""
    tokenizer: object
    embedding: nn.Module
    tokens: tuple[str, ...]  # the added tokens


def is_new_token(token: str) -> bool:
    """A bracketed train token is a new token; any other is a regex over the vocabulary (official rule)."""
    return (token.startswith("[") and token.endswith("]")) or (token.startswith("<") and token.endswith(">"))


@torch.no_grad()
def plan_tokens(tokenizer, embedding: nn.Embedding,
                trained: list[tuple[Path, TrainedTokens, float]]) -> tuple[TokenPlan, tuple[str, ...]]:
    """The rows and tokens of several LoRAs (file, tokens, strength) and notices, changing nothing; raises
    ModelLoadError when a file does not fit the text encoder."""
    size, vocab = embedding.num_embeddings, tokenizer.get_vocab()
    extended, rows, notices, added = None, {}, [], []
    for path, tokens, strength in trained:
        if tokens.embeddings.shape[1] != embedding.embedding_dim:
            raise ModelLoadError(f"{path}: embeddings.embeddings rows are {tokens.embeddings.shape[1]} wide; this "
                                 f"text encoder's tokens are {embedding.embedding_dim} wide: the file was made for "
                                 "another text encoder")
        new = [pair for pair in tokens.train_tokens or () if is_new_token(pair[0])]
        unnamed = [i for i in tokens.indices if i >= size + len(new)]
        if unnamed and tokens.train_tokens is not None:
            raise ModelLoadError(f"{path}: embeddings.indices has token ids {unnamed} past the {len(new)} new tokens "
                                 "its train_tokens name")
        if unnamed:
            notices.append(f"{path.name} trains {len(unnamed)} new token(s) it does not name: its Stage C weights "
                           f"apply, its token(s) do not. Put {path.with_suffix('.json').name} beside it with "
                           '{"train_tokens": [["[token]", "^aggregate regex"]]} from its training config')
        for i, index in enumerate(tokens.indices):
            if index in unnamed:
                continue
            if index < size:
                row_id = index
                rows.setdefault(row_id, embedding.weight[index].float())
            else:
                token, aggregate = new[index - size]
                extended = extended or copy.deepcopy(tokenizer)
                extended.add_tokens([token])
                row_id = extended.convert_tokens_to_ids(token)
                if row_id not in rows:
                    rows[row_id] = _aggregate(embedding.weight, vocab, aggregate)
                added.append(token)
            rows[row_id] = rows[row_id] + strength * tokens.embeddings[i].to(rows[row_id])
    return TokenPlan(extended, rows, tuple(dict.fromkeys(added))), tuple(notices)


def add_tokens(encoder: TextEncoder, plan: TokenPlan) -> TokenPatch:
    """Give the encoder the planned rows and tokens; returns what to put back."""
    base = encoder.model.get_input_embeddings()
    patch = TokenPatch(encoder.tokenizer, base, plan.added)
    if plan.rows:
        ids = sorted(plan.rows)
        rows = torch.stack([plan.rows[i] for i in ids]).to(base.weight.dtype)  # (m, width)
        encoder.model.set_input_embeddings(TokenRows(base, ids, rows))
        if plan.tokenizer is not None:
            encoder.tokenizer = plan.tokenizer
        encoder.forget()  # kept prompt embeddings were made without these tokens
        log.info("tokens %s: rows %s of the text encoder's token table", ", ".join(plan.added) or "-", ids)
    return patch


def _aggregate(table: torch.Tensor, vocab: dict[str, int], pattern: str | None) -> torch.Tensor:
    """The mean of the rows whose vocabulary entry matches `pattern` (float32); zeros without one."""
    ids = [v for k, v in vocab.items() if pattern is not None and re.search(pattern, k)]
    if not ids:
        return torch.zeros(table.shape[1], device=table.device)
    return table[ids].float().mean(dim=0)


def remove_tokens(encoder: TextEncoder, patch: TokenPatch) -> None:
    """Put back the tokenizer and the token embedding `add_tokens` replaced."""
    if encoder.model.get_input_embeddings() is not patch.embedding or encoder.tokenizer is not patch.tokenizer:
        encoder.model.set_input_embeddings(patch.embedding)
        encoder.tokenizer = patch.tokenizer
        encoder.forget()
