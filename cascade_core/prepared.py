"""A network's prepared conditioning (`prepare`'s output, models/unet.py `Conditioning`) as data: its
layout, and several requests' conditionings joined into one batch.

Tensors of two or more dimensions have the batch first: every attention block's text keys and values
(B, T, C), Stage B's added latent (B, C, H, W), ControlNet outputs (B, C, h, w). A one-dimensional
tensor is a per-network constant, the same in every request: the timestep blocks' modulation of the
zero extra conditions (2C,) (models/blocks.py `TimestepBlock.prepare`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import torch


def layout(prepared: Any) -> Any:
    """The conditioning's structure and shapes apart from the batch: those of equal layouts can be joined
    (and a CUDA graph captured for one can replay another)."""
    if prepared is None:
        return None
    if isinstance(prepared, torch.Tensor):
        rows = prepared.dim() > 1
        return ("rows" if rows else "shared", tuple(prepared.shape[1:] if rows else prepared.shape), prepared.dtype)
    if dataclasses.is_dataclass(prepared):
        return (type(prepared).__name__, *(layout(getattr(prepared, f.name)) for f in dataclasses.fields(prepared)))
    if isinstance(prepared, (tuple, list)):
        return tuple(layout(p) for p in prepared)
    raise TypeError(f"a prepared conditioning holds a {type(prepared).__name__}; expected tensors, tuples or None")


def join(parts: Sequence[Any]) -> Any:
    """Conditionings of equal layouts as one, their rows in the given order: batch tensors concatenated,
    per-network constants taken once, None staying None."""
    first = parts[0]
    if first is None:
        return None
    if isinstance(first, torch.Tensor):
        return first if first.dim() == 1 else torch.cat(list(parts))
    if dataclasses.is_dataclass(first):
        return dataclasses.replace(first, **{f.name: join([getattr(p, f.name) for p in parts])
                                             for f in dataclasses.fields(first)})
    return type(first)(join(list(entries)) for entries in zip(*parts, strict=True))


def tensors(prepared: Any) -> list[torch.Tensor]:
    """Every tensor of the conditioning, in a fixed order (the order `layout` walks)."""
    if prepared is None:
        return []
    if isinstance(prepared, torch.Tensor):
        return [prepared]
    if dataclasses.is_dataclass(prepared):
        return [t for f in dataclasses.fields(prepared) for t in tensors(getattr(prepared, f.name))]
    return [t for p in prepared for t in tensors(p)]


def clone(prepared: Any) -> Any:
    """A copy of the conditioning in new memory (a CUDA graph's static inputs)."""
    if prepared is None:
        return None
    if isinstance(prepared, torch.Tensor):
        return prepared.clone()
    if dataclasses.is_dataclass(prepared):
        return dataclasses.replace(prepared, **{f.name: clone(getattr(prepared, f.name))
                                                for f in dataclasses.fields(prepared)})
    return type(prepared)(clone(p) for p in prepared)
