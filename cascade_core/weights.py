"""Safetensors files → networks: read a file's layout, compare it with a config's, load it lean.

Networks are built on the meta device and their memory-mapped tensors are assigned, cast once
and placed straight on the target device. Pickles are never loaded.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .formats.plan import Plan, identity, load_plan, read_header
from .models import build

PREFIX = "model.diffusion_model."  # some redistributed copies prefix every name with it


@dataclass(frozen=True)
class NetworkFile:
    stage: str
    config: object
    path: Path  # the file, or the folder of a diffusers component
    size: str  # preset name ("full", "lite", "tiny") or "custom"
    plan: Plan | None = None  # our names → the file tensors (formats/); None: the file's names, less PREFIX
    format: str = "released names"  # how the file names the tensors, for messages and `check`


def read_layout(path: Path) -> dict[str, tuple[int, ...]]:
    """Names (without a `model.diffusion_model.` prefix) and shapes in a safetensors header."""
    return {name.removeprefix(PREFIX): tensor.shape for name, tensor in read_header(path).items()}


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
    plan = file.plan
    if plan is None:
        plan = {name.removeprefix(PREFIX): source for name, source in identity(read_header(file.path)).items()}
    net.load_state_dict(load_plan(plan, device, dtype), assign=True)
    return net.requires_grad_(False)
