"""Warm-up: a short request that makes a compiled model compile (or read from inductor's disk
cache) its blocks for one size and batch before the first real request."""
from __future__ import annotations

import dataclasses
import time

from .model import CascadeModel
from .pipeline import generate
from .request import GenerationRequest


def warm_up(model: CascadeModel, request: GenerationRequest | None = None) -> float:
    """Run `request` (default: one 1024×1024 image) with 3 + 3 steps; returns the seconds it took."""
    start = time.perf_counter()
    request = request or GenerationRequest("warm-up", seed=0)
    short = dataclasses.replace(request, prior_steps=3, decoder_steps=3)
    for _ in generate(model, short, preview_every=0, decode_every=0):
        pass
    return time.perf_counter() - start
