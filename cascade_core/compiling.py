"""Optional torch.compile of the denoising step, block by block, with inductor's on-disk cache.

`prepare` runs once per request and stays eager; `step` runs 20–30 times, so its blocks are
what is worth compiling. Each block is compiled on its own ("regional compilation"): the
dozens of blocks of a level share one compiled graph per shape, so compiling takes seconds
per distinct block instead of minutes for the whole unrolled network, and inductor still
fuses what lies between the matrix products (GELU, the GRN reduction and scaling, the
LayerNorms, the modulation, the residual adds). Shapes are static (`dynamic=False`): each
new image size or batch compiles once, and inductor's cache on disk makes that fast in
later runs. `reduce-overhead` also records the blocks as CUDA graphs.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch


RECOMPILE_LIMIT = 64  # compiled variants per block class: levels × shapes × batch sizes


def cache_dir() -> Path:
    """Where inductor keeps compiled kernels between runs ($CASCADE_COMPILE_CACHE, else ~/.cache)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cascade-studio" / "inductor"
    return Path(os.environ.get("CASCADE_COMPILE_CACHE", default))


def compile_blocks(net: torch.nn.Module, mode: str) -> None:
    """torch.compile every block of `net`'s levels in `mode` (one of options.COMPILE_MODES, checked
    there), in place (`none`: leave them eager).
    Compiling is lazy: the first step of each shape compiles."""
    if mode == "none":
        return
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir()))
    dynamo = torch._dynamo.config
    dynamo.recompile_limit = max(dynamo.recompile_limit, RECOMPILE_LIMIT)
    for level in (*net.down_blocks, *net.up_blocks):
        for block in level:
            block.compile(mode=None if mode == "default" else mode, dynamic=False)
