"""Safetensors files → networks: read a file's layout, compare it with a config's, load it lean.

Networks are built on the meta device and their memory-mapped tensors are assigned, cast once
and placed straight on the target device. Pickles are never loaded.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from .errors import ModelLoadError
from .models import build

PREFIX = "model.diffusion_model."  # some redistributed copies prefix every name with it


@dataclass(frozen=True)
class NetworkFile:
    stage: str
    config: object
    path: Path
    size: str  # preset name ("full", "lite", "tiny") or "custom"


def read_layout(path: Path) -> dict[str, tuple[int, ...]]:
    """Names (without a `model.diffusion_model.` prefix) and shapes in a safetensors header."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k.removeprefix(PREFIX): tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise ModelLoadError(f"{path} is not a readable safetensors file ({e}); delete it and fetch it again") from e


def layout_problems(found: dict, expected: dict, limit: int = 3) -> list[str]:
    """Human-readable differences between two layouts, at most `limit` of each kind."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    wrong = [f"{k} {list(found[k])} (expected {list(expected[k])})"
             for k in expected if k in found and found[k] != expected[k]]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            more = f" and {len(items) - limit} more" if len(items) > limit else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:limit])}{more}")
    return problems


def load_network(file: NetworkFile, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    """Build on meta, then assign the memory-mapped tensors cast to `dtype` on `device`."""
    with torch.device("meta"):
        net = build(file.config)
    state = {}
    try:
        with safe_open(str(file.path), framework="pt", device="cpu") as f:
            for name in f.keys():
                tensor = f.get_tensor(name)
                cast = dtype if tensor.is_floating_point() else tensor.dtype
                state[name.removeprefix(PREFIX)] = tensor.to(device=device, dtype=cast)
    except (SafetensorError, OSError, RuntimeError) as e:
        raise ModelLoadError(f"{file.path} could not be read ({e}); delete it and fetch it again") from e
    net.load_state_dict(state, assign=True)
    return net.requires_grad_(False)
