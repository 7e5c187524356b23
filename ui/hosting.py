"""Hugging Face Spaces: `spaces.GPU` (ZeroGPU) around generation when the package is there."""
from __future__ import annotations

try:
    import spaces
except ImportError:  # a plain app
    spaces = None

GPU_SECONDS = 120


def gpu(fn):
    """fn wrapped for ZeroGPU on Spaces; unchanged elsewhere."""
    return spaces.GPU(duration=GPU_SECONDS)(fn) if spaces is not None else fn
