"""The tensor layout (names and shapes) a network of a config holds, as its released file does."""
from __future__ import annotations

import functools

import torch

from . import build


@functools.lru_cache(maxsize=None)
def expected_layout(config) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes a network of this config holds (built on meta: free)."""
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in build(config).state_dict().items()}
