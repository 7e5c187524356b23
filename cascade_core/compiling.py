"""Optional torch.compile of each network's per-step call, with inductor's on-disk cache.

`prepare` runs once per request and stays eager; `step` (one denoising step) is what runs
20–30 times, so it is the call worth compiling. Shapes are static (`dynamic=False`): each new
image size or batch compiles once, and inductor's cache on disk makes that fast in later runs.
`reduce-overhead` also records the step as a CUDA graph on GPUs.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch

COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")


def cache_dir() -> Path:
    """Where inductor keeps compiled kernels between runs ($CASCADE_COMPILE_CACHE, else ~/.cache)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cascade-studio" / "inductor"
    return Path(os.environ.get("CASCADE_COMPILE_CACHE", default))


def step_function(net: torch.nn.Module, mode: str) -> Callable:
    """`net.step`, compiled with torch.compile in `mode` unless it is `none` (compiling is lazy: the
    first call of each shape compiles)."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {mode!r}; use one of {', '.join(COMPILE_MODES)}")
    if mode == "none":
        return net.step
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir()))
    return torch.compile(net.step, mode=None if mode == "default" else mode, dynamic=False)
